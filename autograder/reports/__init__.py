"""The instructor's view of a class, made from a batch's output (``OUT/<student>/results.json``,
``OUT/grades.csv``) and the hand-ins: renderers over many results.

    class_report.py  OUT/report.html: totals, problems, the checks failed most, time, integrity
    plots.py         the report's matplotlib figures, as embedded PNGs
    similarity.py    hand-ins that are suspiciously alike (copydetect), with side-by-side pages
    export.py        final grades for the LMS: autograded + hand-graded points, plain or Canvas CSV
"""

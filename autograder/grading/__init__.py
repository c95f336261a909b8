"""Grading: from a hand-in to a ``GradingResult``, with the student's code in sandboxes.

    broken.py    the grader's own faults (GraderBroken: nobody gets a score)
    data.py      the MNIST data of Problems 7 and 8 (held-out labels stay here)
    hidden.py    what a sandbox must not see
    messages.py  the student-facing sentence for what stopped a check
    plugin.py    the pytest plugin that runs the hidden checks against a Student
    grader.py    Grader: grade one submission
    batch.py     grade a class into grades.csv
    validate.py  what is unfinished, per problem (nbgrader's validator)
"""

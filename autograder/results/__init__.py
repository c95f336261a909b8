"""What a grading run produces, as data and as the files and tables made from it.

- ``model``: ``CheckResult`` (one per check) and ``GradingResult`` (one per submission), plain data.
- ``gradescope``: Gradescope's results.json, graded or not graded.
- ``feedback``: the student's feedback.md and feedback.html (``templates/feedback.html.j2``), written
  answers rendered safely with their math as MathML.
- ``table``: the class's scores per problem, as grades.csv and as the console's table.
- ``files``: writing a submission's results.json + feedback atomically, reading results.json back.

Import from the modules, e.g. ``from autograder.results.files import write_result``.
"""

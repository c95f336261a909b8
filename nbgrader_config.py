"""nbgrader configuration of the cnn2d course (read by every `nbgrader ...` run from the repo root).

    nbgrader generate_assignment cnn2d --force     # source/cnn2d -> release/cnn2d (+ gradebook)
    python -m autograder release                   # the same, through autograder/release.py
"""
from pathlib import Path

c = get_config()  # noqa: F821  (injected by traitlets when nbgrader loads this file)

ROOT = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "cnn2d-course"
c.CourseDirectory.root = str(ROOT)
# The one assignment is "cnn2d" (source/cnn2d -> release/cnn2d). It is deliberately NOT set as
# c.CourseDirectory.assignment_id: nbgrader 0.9.6 then refuses every command that also names it
# ("The assignment cannot both be specified in config and as an argument"), and the scripts run
# `nbgrader generate_assignment cnn2d` / `nbgrader autograde cnn2d`.
ASSIGNMENT_ID = "cnn2d"

# The gradebook: nbgrader's default SQLite file in the course root (ignored by git).
# To share one gradebook between graders, point it at a server instead, e.g.
#   c.CourseDirectory.db_url = "postgresql://user:password@host:5432/gradebook"
# (or pass --db=... on the command line).
c.CourseDirectory.db_url = f"sqlite:///{ROOT / 'gradebook.db'}"

# Executing notebooks (autograde, validate): the hidden tests of Problems 7 and 8 train small
# networks, so allow a generous per-cell limit.
c.ExecutePreprocessor.timeout = 600
c.ExecutePreprocessor.kernel_name = "python3"
c.Execute.timeout = 600

# What replaces a solution region in the student version.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"

# Keep the student's copy free of build junk.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".pytest_cache"]

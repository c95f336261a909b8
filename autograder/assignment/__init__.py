"""The assignment as nbgrader notebooks: the release (trusted), a hand-in (untrusted), the solutions.

    metadata     the one reader of nbgrader's cell metadata (grade_id, points, checksum, kind) and markers
    spec         the release: Assignment.from_release, NotebookSpec, CellSpec
    submission   a hand-in (folder, notebook, zip) read against the release: Submission.load, NotebookProgram
    solutions    the source's solutions, and submissions built from them (make_submission, examples)
    gradescope   build the autograder zip for Gradescope
"""

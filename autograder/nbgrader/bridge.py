"""The hidden test cells of ``source/`` call ``run_checks``: the grader's checks, run inside
nbgrader's kernel against the kernel's own namespace, so ``nbgrader autograde`` gives the same
autograded points as ``python -m autograder grade``.

    ### BEGIN HIDDEN TESTS
    from autograder.nbgrader.bridge import run_checks
    run_checks(1, "01_scratch_cnn", globals())
    ### END HIDDEN TESTS

The value of the call is the points earned; nbgrader takes a number in a test cell's output as
partial credit. Nothing may be written to stderr here (nbgrader scores a cell with stderr output 0):
Python's ``sys.stderr`` and the process's file descriptor 2 (where TensorFlow's C++ start-up
logging goes, whatever ``TF_CPP_MIN_LOG_LEVEL`` says) are both diverted while the checks run.
Here the student's code runs in the same process as the checks, which is nbgrader's model; the
CLI grader is the one that keeps them apart.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _no_stderr():
    """Send Python's and the C libraries' stderr (fd 2) to a scratch file for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink, contextlib.redirect_stderr(io.StringIO()):
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


class Points(float):
    """The points earned, displayed with the per-check report underneath (nbgrader reads the number)."""

    report: str = ""

    def __repr__(self) -> str:
        return f"{float(self):g}"


def run_checks(problem: int, notebook: str, namespace: dict, verbose: bool = True) -> Points:
    """Run Problem ``problem``'s checks of ``notebook`` against ``namespace`` (the kernel's globals)."""
    from autograder.grading.plugin import check_modules, notebook_of, run_check_modules
    from autograder.sandbox.proxy import LocalStudent

    modules = [m for m in check_modules() if m.startswith(f"check_p{problem:02d}_") and notebook_of(m) == notebook]
    if not modules:
        raise ValueError(f"no checks for Problem {problem} in {notebook}")
    local = LocalStudent(namespace)
    with _no_stderr():
        results, _ = run_check_modules(lambda nb: local, modules, capture="sys")
    earned = sum(r.score for r in results)
    possible = sum(r.max_score for r in results)
    if verbose:
        for r in results:
            mark = {"passed": "PASS", "partial": "PART"}.get(r.status, "FAIL")
            print(f"[{mark}] {r.name} ({r.score:g}/{r.max_score:g})")
            if r.status != "passed" and r.output:
                print("       " + r.output.replace("\n", "\n       ")[:1500])
        print(f"Problem {problem}: {earned:g} / {possible:g} points")
    return Points(round(earned, 4))


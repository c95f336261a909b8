"""What nbgrader tells a student, and what it tells the instructor.

* ``nbgrader validate`` (the Validate button), run as a student runs it: from the notebook's folder,
  with the course environment's bin/ first on PATH and nothing else set (no PYTHONPATH, no
  CNN2D_FAST, no MNIST_PATH). It names every problem whose visible tests fail, by the first line of
  its ``pN_visible`` cell ("# Problem N, visible tests: ..."), and says "Success!" only when every
  answer runs and every visible test passes.
* ``nbgrader autograde`` of an unchanged submission warns about no cell ("... has changed!").

The submissions are built in a folder under build/ (ignored by git), below the folder that holds
the offline MNIST data, as a student's copy of the course is. About 2 minutes in all: 02_keras
imports TensorFlow, the full 01_scratch_cnn trains its small (FAST) demo.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from autograder.nbgrader.autograde import ASSIGNMENT, nbgrader, prepare_course
from autograder.assignment.solutions import make_submission, source_solutions

from autograder.course import ROOT
VENV_BIN = ROOT / ".venv" / "bin"
SUCCESS = "Success! Your notebook passes all the tests."
# nbgrader validate prints the source of every failed cell indented by four spaces; the first line
# of a visible-test cell names its problem.
NAMED = re.compile(r"^    # Problem (\d+), visible tests\b", re.M)


def student_env() -> dict[str, str]:
    """The student's environment: none of the course's or the test run's variables. In particular
    not PYTEST_CURRENT_TEST: with it, ipykernel does not forward what the kernel writes to file
    descriptor 2 (TensorFlow's C++ start-up lines), which nbgrader counts as a failing cell."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "CNN2D_FAST", "MNIST_PATH", "PYTEST_CURRENT_TEST")
           and not k.startswith("NBGRADER")}
    env["PATH"] = str(VENV_BIN) + os.pathsep + env.get("PATH", "")
    return env


def validate(notebook: Path) -> str:
    nbgrader_cli = VENV_BIN / "nbgrader" if (VENV_BIN / "nbgrader").exists() else "nbgrader"
    proc = subprocess.run([str(nbgrader_cli), "validate", notebook.name], cwd=notebook.parent,
                          env=student_env(), capture_output=True, text=True, timeout=900)
    return proc.stdout + proc.stderr


def named_problems(output: str) -> set[int]:
    return {int(n) for n in NAMED.findall(output)}


@pytest.fixture(scope="module")
def work():
    (ROOT / "build").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="test-validate-", dir=ROOT / "build"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def untouched(work) -> Path:
    return make_submission(work / "untouched", solved=False)


def test_untouched_scratch_notebook_names_problems_1_to_7(untouched):
    out = validate(untouched / "01_scratch_cnn.ipynb")
    assert SUCCESS not in out, out[-3000:]
    assert named_problems(out) == {1, 2, 3, 4, 5, 6, 7}, out[-3000:]
    assert "NotImplementedError" in out


def test_only_problem_1_solved_names_problems_2_to_7(work):
    p1 = source_solutions()["01_scratch_cnn"]["p1_conv2d"]
    sub = make_submission(work / "p1-only", solved=False, overrides={"p1_conv2d": p1})
    out = validate(sub / "01_scratch_cnn.ipynb")
    assert SUCCESS not in out, out[-3000:]
    assert named_problems(out) == {2, 3, 4, 5, 6, 7}, out[-3000:]


def test_untouched_theory_notebook_names_problem_10(untouched):
    out = validate(untouched / "03_theory.ipynb")
    assert SUCCESS not in out, out[-3000:]
    assert named_problems(out) == {10}, out[-3000:]
    assert out.count("YOUR ANSWER HERE") >= 2, "the two written answers are flagged too"


# The full solution's "Success!" for all three notebooks is checked as the README writes the command,
# in tests/test_readme.py::test_readme_student_self_check_works_as_written.


def test_autograde_of_an_unchanged_submission_warns_about_no_cell(untouched, work):
    """nbgrader records a test cell with its hidden tests and releases it without them; autograde
    must not take that difference for a change (it used to warn once per test cell)."""
    course = prepare_course(work / "course")
    dest = course / "submitted" / "unchanged" / ASSIGNMENT
    shutil.copytree(untouched, dest)
    proc = nbgrader("autograde", ASSIGNMENT, "--student", "unchanged", "--force", cwd=course)
    log = proc.stdout + proc.stderr
    changed = [ln for ln in log.splitlines() if "has changed" in ln]
    assert not changed, "\n".join(changed)
    # ... while a test cell the student did edit is still reported (and restored).
    import nbformat

    path = dest / "03_theory.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "p10_tests")
    cell.source += "\nprint('edited')"
    nbformat.write(nb, path)
    proc = nbgrader("autograde", ASSIGNMENT, "--student", "unchanged", "--force", "--notebook", "03_theory",
                    cwd=course)
    log = proc.stdout + proc.stderr
    changed = [ln for ln in log.splitlines() if "has changed" in ln]
    assert len(changed) == 1 and "p10_tests" in changed[0], "\n".join(changed) or log[-3000:]


# ----------------------------------------------------------------------------- Validate predicts the grade
def _bench():
    import importlib.util

    import sys

    if "bench_validate" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_validate", ROOT / "benchmarks" / "bench_validate.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_validate"] = module   # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["bench_validate"]


def test_validate_names_a_stride_bug_in_problem_1_backward(work):
    """The catalogue's conv_stride_ignored_in_backward (backward steps the windows by 1 whatever the
    stride) loses hidden points on Problem 1's d_x and d_weights: Validate names Problem 1, and its
    message says what was expected, what the code gave and where to look. The benchmark's proxy
    (the setup, answer and visible cells in a fresh process) names the same problem."""
    from tests.test_catalogue import BUG_BY_NAME

    bug = BUG_BY_NAME["stride_ignored_in_backward"]
    sub = make_submission(work / "stride-bug", overrides=bug.overrides())
    out = validate(sub / "01_scratch_cnn.ipynb")
    assert SUCCESS not in out, out[-3000:]
    assert 1 in named_problems(out), out[-3000:]
    assert re.search(r"expected: d_x \(x .*stride 2, padding 1\)", out) or \
        re.search(r"expected: d_x \(x .*stride 3, padding 2\)", out), out[-3000:]
    assert "your code gave:" in out and "look at: backward" in out, out[-3000:]
    bench = _bench()
    entry = next(e for e in bench.catalogue() if e.name == bug.name)
    (outcome,) = bench.run([entry])
    assert 1 in outcome.named, outcome.failed


def test_validate_catches_the_catalogue_s_bugs_and_passes_its_correct_variants():
    """Over the catalogue (tests/test_catalogue.py), the visible tests name the problem of at least
    95% of the bugs (each loses hidden points on that problem) and pass every correct variant (and
    the source solution): benchmarks/bench_validate.py's proxy of nbgrader validate, about three
    minutes with two workers. docs/benchmarks.md has the figures."""
    bench = _bench()
    figures = bench.figures(bench.measure(workers=2))
    missed = [o.entry.name for o in figures["missed"]]
    alarms = {o.entry.name: next((w for w in o.failed.values() if w), "")[-400:] for o in figures["alarms"]}
    assert figures["bugs"] >= 50 and figures["correct"] >= 20, figures
    assert figures["catch_rate"] >= bench.GOAL_CATCH, f"missed: {missed}"
    assert not alarms, f"false alarms on correct variants: {alarms}"

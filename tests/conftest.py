"""Shared fixtures. One ``Grader`` per test session, so TensorFlow is imported once.

Grading a submission costs a few seconds per notebook, Problem 7 (training) most of it. Tests that
plant a bug in one notebook grade only that notebook's checks (``grade(..., select=...)``): every
notebook runs in a sandbox of its own, so the other notebooks' results cannot change.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.grading.grader import Grader
from autograder.grading.plugin import check_modules, notebook_of
from autograder.assignment.solutions import make_submission

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NOTEBOOKS = ("01_scratch_cnn", "02_keras", "03_theory")
SLOW_MODULES = {"check_p07_classifier.py"}
SUMMARY = "summary"     # a user property: a line for the end of the run (``report_line``)


def report_line(request, line: str) -> None:
    """A line for the suite's closing summary (what ran in which mode). It travels on the test's
    report, so it reaches the end of the run from a pytest-xdist stream too, whose prints do not."""
    request.node.user_properties.append((SUMMARY, line))


_LINES: list[str] = []


def pytest_runtest_logreport(report):
    _LINES.extend(value for name, value in report.user_properties if name == SUMMARY and value not in _LINES)


def pytest_terminal_summary(terminalreporter):
    if _LINES:
        terminalreporter.section("what ran")
        for line in _LINES:
            terminalreporter.write_line(line)


def modules_of(notebook: str, include_slow: bool = False) -> list[str]:
    return [m for m in check_modules() if notebook_of(m) == notebook
            and (include_slow or m not in SLOW_MODULES)]


def problem_of(module: str) -> int:
    return int(module.split("_")[1][1:])


@pytest.fixture(scope="session")
def grader() -> Grader:
    return Grader()


@pytest.fixture(scope="session")
def solution_dir(tmp_path_factory) -> Path:
    return make_submission(tmp_path_factory.mktemp("solution") / "full-solution")


@pytest.fixture(scope="session")
def full_result(grader, solution_dir, tmp_path_factory):
    """The full solution graded once, every check included (Problem 7 and 8 training too)."""
    return grader.grade(solution_dir, tmp_path_factory.mktemp("full-out"), student="full-solution")


@pytest.fixture
def submission(tmp_path):
    """``submission(overrides=..., patches=..., solved=...)``: a submission built from source/."""
    def make(**kwargs) -> Path:
        return make_submission(tmp_path / "student", **kwargs)
    return make


def edit_notebook(folder: Path, notebook: str, edit) -> Path:
    """Apply ``edit(nb)`` to one notebook of a submission folder, in place."""
    path = Path(folder) / f"{notebook}.ipynb"
    nb = nbformat.read(path, as_version=4)
    edit(nb)
    nbformat.write(nb, path)
    return path


def cell_by_id(nb, grade_id: str):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def scores(result) -> dict[int, float]:
    return {p: s for p, (s, _, _) in result.by_problem().items()}


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

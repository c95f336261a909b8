"""The pytest plugin that runs the hidden checks (ordinary pytest modules in ``autograder/checks``)
against one student and turns each into a ``CheckResult``. Used by the grader (the student behind
a sandbox) and by the nbgrader bridge (the student in nbgrader's kernel).

    results, log = run_check_modules(students, select=["check_p04_maxpool.py"])

``students(notebook)`` returns the ``proxy.Student`` the checks of that notebook see.
"""
from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Callable

import pytest

from autograder import course
from autograder.grading.broken import GraderBroken, grader_fault
from autograder.grading.data import grading_data
from autograder.grading.messages import describe_failure, hinted
from autograder.results.model import CheckResult
from autograder.sandbox.errors import MissingAnswer, NotImplementedAnswer
from autograder.sandbox.proxy import Student

# --tb=no: a check's message is built from its exception (messages.describe_failure), never from
# pytest's traceback text, which took 2 s of a 5 s grading of an unfinished hand-in to format.
PYTEST_ARGS = ["-c", str(course.CHECKS_DIR / "pytest.ini"), "--rootdir", str(course.CHECKS_DIR),
               "-p", "no:cacheprovider", "-q", "-W", "ignore", "--tb=no"]


def check_modules() -> list[str]:
    return sorted(p.name for p in course.CHECKS_DIR.glob("check_p*.py"))


def notebook_of(module: str | Path) -> str | None:
    """The NOTEBOOK constant of a check module, read without importing it."""
    for line in (course.CHECKS_DIR / module).read_text().splitlines():
        if line.startswith("NOTEBOOK ="):
            return line.split("=", 1)[1].strip().strip("\"'")
    return None


class CheckCollector:
    """Provides the ``student``, ``partial`` and ``grading_data`` fixtures and records one
    ``CheckResult`` per check."""

    def __init__(self, students: Callable[[str], Student], data_loader=grading_data):
        self.students = students
        self.data_loader = data_loader
        self.results: list[CheckResult] = []
        self._partial: dict[str, tuple[float, str]] = {}
        self._failure: dict[str, BaseException] = {}
        self._start: dict[str, float] = {}
        self.broken: GraderBroken | None = None   # the first failure that was the grader's own

    @pytest.fixture
    def student(self, request):
        return self.students(request.module.NOTEBOOK)

    @pytest.fixture
    def partial(self, request):
        nodeid = request.node.nodeid

        def award(fraction: float, message: str = "") -> None:
            self._partial[nodeid] = (min(1.0, max(0.0, float(fraction))), str(message))
        return award

    @pytest.fixture(scope="session")
    def grading_data(self):
        return self.data_loader()

    def pytest_runtest_setup(self, item):
        self._start[item.nodeid] = time.monotonic()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.failed and call.excinfo is not None and item.nodeid not in self._failure:
            self._failure[item.nodeid] = call.excinfo.value
            if self.broken is None:
                self.broken = grader_fault(call.excinfo.value)
        if call.when == "teardown" and item.get_closest_marker("check") is not None:
            self.results.append(self._result(item))

    def _result(self, item) -> CheckResult:
        marker = item.get_closest_marker("check")
        points = float(marker.kwargs.get("points", 0))
        number = getattr(item.module, "PROBLEM", 0)
        hint = marker.kwargs.get("hint", "")
        failure = self._failure.get(item.nodeid)
        if failure is not None:
            score, status, output = 0.0, "failed", describe_failure(failure)
            if not isinstance(failure, (NotImplementedAnswer, MissingAnswer)):
                output = hinted(output, hint)
        elif item.nodeid in self._partial:
            fraction, message = self._partial[item.nodeid]
            score = round(points * fraction, 4)
            status = "passed" if fraction >= 1 else ("partial" if fraction > 0 else "failed")
            output = hinted(message, hint if fraction < 1 else "")
        else:
            score, status, output = points, "passed", ""
        return CheckResult(number, f"Problem {number}: {marker.kwargs.get('name', item.name)}", score, points,
                           status, output.strip(), marker.kwargs.get("visibility", "visible"),
                           round(time.monotonic() - self._start.get(item.nodeid, time.monotonic()), 3))


def run_check_modules(students: Callable[[str], Student], select: list[str] | None = None,
                      data_loader=grading_data, capture: str = "fd") -> tuple[list[CheckResult], str]:
    """Run the checks (all, or the modules named in ``select``); return their results and pytest's
    log. Raises ``GraderBroken`` when the checks cannot run or a check failed for the grader's reasons."""
    collector = CheckCollector(students, data_loader)
    targets = [str(course.CHECKS_DIR / f) for f in select] if select else [str(course.CHECKS_DIR)]
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        code = pytest.main([*PYTEST_ARGS, f"--capture={capture}", *targets], plugins=[collector])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise GraderBroken(f"the checks could not be loaded (pytest exit {int(code)}):\n{log.getvalue()[-3000:]}",
                           "a check module or its dependencies is broken: run "
                           "`python -m pytest autograder/checks --collect-only -c autograder/checks/pytest.ini` "
                           "to see the error, then repair the module or the environment")
    if collector.broken is not None:
        raise collector.broken
    return collector.results, log.getvalue()

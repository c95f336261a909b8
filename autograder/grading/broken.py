"""The grader's own faults: when its data, a dependency or a check module is broken, nobody gets a
score. ``GraderBroken`` says so, with the fix; ``grader_fault`` tells a check's failure that is the
grader's from one that is the student's."""
from __future__ import annotations

from autograder.sandbox.errors import SandboxError


class GraderBroken(Exception):
    """The grader's own environment is at fault (its data, a dependency, a check module): the
    instructor's problem, never the student's. Nobody gets a score; ``fix`` says what to do."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason, self.fix = reason, fix

    def __str__(self) -> str:
        return f"{self.reason}\nFix: {self.fix}"


def grader_fault(exc: BaseException) -> GraderBroken | None:
    """Whether a check's failure was the grader's own environment. Student code runs behind the
    proxy, whose failures are ``SandboxError``s; an ImportError here is the grader's own."""
    if isinstance(exc, GraderBroken):
        return exc
    if isinstance(exc, ImportError) and not isinstance(exc, SandboxError):
        return GraderBroken(f"a dependency of the checks failed to import: {type(exc).__name__}: {exc}",
                            "repair the grader's environment: .venv/bin/pip install -r requirements.txt "
                            "(or remove .venv and run python3 tasks.py setup, which re-creates it)")
    return None

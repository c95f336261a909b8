"""What can stop a call into student code. ``str()`` of each is student-facing.

The checks tell a sandbox failure that ends a check (a timeout, a crash, a missing or unfinished
answer) from one that is a sub-case's wrong answer by these classes, never by their names.
"""
from __future__ import annotations


class SandboxError(Exception):
    """Something about the student's code stopped a check."""


class StudentError(SandboxError):
    """The student's code raised an exception."""

    def __init__(self, exc_type: str, message: str, traceback: str = ""):
        self.exc_type, self.message, self.student_traceback = exc_type, message, traceback
        super().__init__(f"{exc_type}: {message}" if message else exc_type)


class NotImplementedAnswer(StudentError):
    """The answer still raises NotImplementedError."""


class MissingAnswer(StudentError):
    """A name the check needs is not defined by the answer cells."""


class SandboxTimeout(SandboxError):
    """A call ran past its time limit (or the submission's whole budget is spent)."""


class SandboxCrash(SandboxError):
    """The child died, or sent something that is not a well-formed reply."""


# A check cannot go on after one of these: it is never a sub-case's wrong answer.
ENDS_CHECK = (SandboxTimeout, SandboxCrash, MissingAnswer, NotImplementedAnswer)


def student_error(exc_type: str, message: str, traceback: str = "", missing: bool = False) -> StudentError:
    """The right ``StudentError`` for an exception the student's code raised."""
    if missing:
        return MissingAnswer(exc_type, message, traceback)
    cls = NotImplementedAnswer if exc_type == "NotImplementedError" else StudentError
    return cls(exc_type, message, traceback)

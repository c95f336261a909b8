"""The student-facing sentence for whatever stopped a check."""
from __future__ import annotations

import pytest

from autograder.sandbox.errors import (MissingAnswer, NotImplementedAnswer, SandboxCrash, SandboxError,
                                       SandboxTimeout, StudentError)


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, NotImplementedAnswer):
        return "Not implemented yet: your answer still raises NotImplementedError."
    if isinstance(exc, MissingAnswer):
        return f"Missing answer: {exc.message}."
    if isinstance(exc, StudentError):
        tb = exc.student_traceback.strip()
        return f"Your code raised {exc.exc_type}: {exc.message}" + (f"\n\n{tb[-1500:]}" if tb else "")
    if isinstance(exc, SandboxTimeout):
        return f"Time limit: {exc}."
    if isinstance(exc, SandboxCrash):
        return f"Your code stopped the sandbox: {exc}. The checks after this one ran in a fresh sandbox."
    if isinstance(exc, SandboxError):
        return str(exc)
    if isinstance(exc, AssertionError):
        text = str(exc).strip()
        # pytest appends its own rendering of the failed expression after the message: drop it.
        head = text.split("\nassert ")[0].strip()
        return head or "The result is not what was expected."
    if isinstance(exc, pytest.skip.Exception):
        return str(exc)
    return f"The check could not use what your code returned ({type(exc).__name__}: {str(exc)[:500]})."


def hinted(output: str, hint: str) -> str:
    """A failed check's output with its "What to look at" line."""
    return output + (f"\nWhat to look at: {hint}" if hint else "")

"""The checks' generic assertions: describing what a student's code returned, comparing it with
what was expected, and turning sub-cases into partial credit. Every message here is read by
students: it says what came back, what was expected, and where to look.

Tolerances: ``assert_close`` compares ``|actual - expected| <= atol * scale + rtol * |expected|``
with ``scale = max(1, max |expected|)``, so a float32 implementation of a large sum is judged
relative to the size of the numbers; a float32/float16 ``actual`` widens the tolerance to what
that dtype can hold. Nothing here ever requires a dtype beyond "real numbers".
"""
from __future__ import annotations

import re

import numpy as np

from autograder.sandbox.errors import ENDS_CHECK, StudentError
from autograder.sandbox.proxy import StudentObject, student_type

# Tolerance for comparing student results with a float64 oracle; wide enough for float32 code.
TOL = {"rtol": 1e-4, "atol": 1e-5}


# ----------------------------------------------------------------------------- describing values
def type_name(value) -> str:
    """The type of ``value`` as the student would name it (a handle reports the student's type)."""
    if isinstance(value, StudentError):
        return value.exc_type  # the student's exception type
    name = student_type(value)
    if name:
        return name.replace("class ", "")
    return type(value).__name__


def short(value, limit: int = 200) -> str:
    """A one-line, length-limited repr for messages."""
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=4, suppress=True, threshold=20, edgeitems=2, linewidth=1000):
            text = np.array2string(value, separator=", ")
    else:
        try:
            text = repr(value)
        except Exception:
            text = f"<{type_name(value)}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unanswered(value) -> bool:
    """A placeholder left in a stated answer: None, ``...`` or NotImplemented (handles included)."""
    if value is None or value is Ellipsis or value is NotImplemented:
        return True
    return isinstance(value, StudentObject) and type_name(value) in ("ellipsis", "NotImplementedType")


def is_fatal(exc: BaseException) -> bool:
    """The sandbox or the answer as a whole is unusable (``ENDS_CHECK``), or the run is being stopped:
    never turned into a partial-credit sub-case failure, always passed on to the harness (which words it)."""
    return isinstance(exc, ENDS_CHECK) or not isinstance(exc, Exception)


def describe_error(exc: BaseException) -> str:
    """``TypeError: ...`` for a sub-case message (student errors included)."""
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type_name(exc)}: {text}" if text else type_name(exc)


class CrashExplained(AssertionError):
    """A student error reworded with its likely cause: still a crash for ``run_cases``."""


def require(condition, message: str) -> None:
    """``assert`` without pytest's rewritten explanation appended to the student's message."""
    if not condition:
        raise AssertionError(message)


# ----------------------------------------------------------------------------- arrays
def as_array(value, what: str) -> np.ndarray:
    """``value`` as a plain ndarray of real numbers (bool, int or float), or an AssertionError
    saying what came back instead. Lists/tuples of numbers are accepted."""
    if value is None:
        raise AssertionError(f"{what} returned None, expected a numpy array: is a `return` missing?")
    if isinstance(value, StudentObject):
        raise AssertionError(f"{what} returned an object of type {type_name(value)}, expected a numpy array")
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (list, tuple, int, float, np.generic)) and not isinstance(value, str):
        try:
            arr = np.asarray(value)
        except Exception:  # ragged lists
            raise AssertionError(f"{what} returned a {type(value).__name__} that is not a rectangular "
                                 f"array of numbers: {short(value)}") from None
        if arr.dtype.kind not in "biuf":
            raise AssertionError(f"{what} returned a {type(value).__name__} that is not an array of "
                                 f"numbers: {short(value)}")
    else:
        raise AssertionError(f"{what} returned an object of type {type_name(value)}, expected a numpy array")
    if arr.dtype.kind not in "biuf":
        kind = "complex numbers" if arr.dtype.kind == "c" else f"dtype {arr.dtype}"
        raise AssertionError(f"{what} is an array of {kind}, expected real numbers (float)")
    return np.asarray(arr)


def assert_shape(arr, expected, what: str, hint: str = "") -> np.ndarray:
    arr = as_array(arr, what)
    expected = tuple(int(d) for d in expected)
    if arr.shape != expected:
        msg = f"{what} has shape {arr.shape}, expected {expected}"
        raise AssertionError(msg + (f". {hint}" if hint else ""))
    return arr


def _tolerances(actual: np.ndarray, rtol: float, atol: float) -> tuple[float, float]:
    if actual.dtype.kind == "f" and actual.dtype.itemsize < 8:
        floor = (1e-4, 1e-5) if actual.dtype.itemsize >= 4 else (1e-2, 1e-3)
        rtol, atol = max(rtol, floor[0]), max(atol, floor[1])
    return rtol, atol


def mismatch(actual, expected, rtol: float = TOL["rtol"], atol: float = TOL["atol"]) -> np.ndarray | None:
    """Boolean mask of the wrong elements, or None when everything is within tolerance.
    Shapes must match; non-finite values count as wrong unless they equal the expected ones."""
    a = np.asarray(actual)
    e = np.asarray(expected, dtype=np.float64)
    rtol, atol = _tolerances(a, rtol, atol)
    a = a.astype(np.float64)
    scale = max(1.0, float(np.max(np.abs(e)))) if e.size and np.all(np.isfinite(e)) else 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~(np.abs(a - e) <= atol * scale + rtol * np.abs(e))
    bad &= ~((a == e) & ~np.isfinite(e))
    return bad if bad.any() else None


def close(actual, expected, rtol: float = TOL["rtol"], atol: float = TOL["atol"]) -> bool:
    """True when ``actual`` is a real array of the expected shape and within tolerance (no raise)."""
    try:
        a = np.asarray(actual)
    except Exception:
        return False
    if a.dtype.kind not in "biuf" or a.shape != np.shape(expected):
        return False
    return mismatch(a, expected, rtol, atol) is None


def _excerpt(a: np.ndarray, e: np.ndarray, idx: tuple) -> str:
    """The 3x3 neighbourhood (last two axes) of the worst element, got vs expected."""
    if a.ndim < 2:
        lo = max(0, idx[-1] - 2) if a.ndim else 0
        sl = (slice(lo, lo + 5),) if a.ndim else ()
    else:
        i, j = idx[-2], idx[-1]
        sl = tuple(idx[:-2]) + (slice(max(0, i - 1), i + 2), slice(max(0, j - 1), j + 2))
    return f" Nearby: got {short(np.asarray(a[sl]), 160)}, expected {short(np.asarray(e[sl]), 160)}."


def assert_close(actual, expected, what: str, rtol: float = 1e-5, atol: float = 1e-6, hint: str = "",
                 lead: str = "") -> np.ndarray:
    """Shape first, then NaN/inf, then values; the message says where and by how much.
    ``hint`` is appended to a failure message; ``lead`` (a recognised bug) is put first."""
    expected = np.asarray(expected, dtype=np.float64)
    a = assert_shape(actual, expected.shape, what, hint)
    af = a.astype(np.float64)
    suffix = f" {hint}" if hint else ""
    nonfinite = ~np.isfinite(af) & np.isfinite(expected)
    if nonfinite.any():
        idx = tuple(int(i) for i in np.argwhere(nonfinite)[0])
        raise AssertionError(f"{what} contains {'NaN' if np.isnan(af[idx]) else 'inf'} "
                             f"({int(nonfinite.sum())} of {af.size} values, first at index {idx})."
                             f"{suffix}")
    bad = mismatch(a, expected, rtol, atol)
    if bad is None:
        return a
    err = np.where(bad, np.abs(af - expected), -1.0)
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
    where = f" at index {idx}" if af.ndim else ""
    lead = (lead if lead.endswith(("?", "!", ".")) else lead + ".") + " " if lead else ""
    msg = (f"{what}: {lead}{int(bad.sum())} of {af.size} values are wrong; the largest error is "
           f"{float(err[idx]):.4g}{where} (got {float(af[idx]):.6g}, expected {float(expected[idx]):.6g}).")
    if af.ndim and af.size > 1:
        msg += _excerpt(af, expected, idx)
    raise AssertionError(msg + suffix)


def distinct(rng: np.random.Generator, shape, low: float = -3.0, high: float = 3.0) -> np.ndarray:
    """Random float64 values with no two closer than about (high - low) / size: no ties anywhere."""
    shape = tuple(shape)
    n = int(np.prod(shape))
    grid = np.linspace(low, high, n) if n > 1 else np.array([0.5 * (low + high)])
    return rng.permutation(grid).reshape(shape)


# ----------------------------------------------------------------------------- the student's cells
def cell_error(student, cell: str) -> dict | None:
    """The error the answer cell ``cell`` (its grade_id) raised when the sandbox ran it, as the sandbox
    recorded it (``SandboxReport.cell_errors``: type, message, traceback), or None: it did not raise,
    or nothing was recorded (in nbgrader's kernel the checks do not see the cells run)."""
    own = getattr(student, "_cell_errors", None)    # the proxy's (autograder.sandbox.proxy)
    errors = own() if callable(own) else None
    if not isinstance(errors, dict):
        return None
    for name, err in errors.items():
        if (name == cell or str(name).split("#")[0] == cell) and isinstance(err, dict):
            return err
    return None


def raised_text(err: dict) -> str:
    """"ValueError: ... (line 9)" for a recorded cell error."""
    kind = str(err.get("type") or "an error")
    message = " ".join(str(err.get("message") or "").split())[:300]
    lines = re.findall(r"line (\d+)", str(err.get("traceback") or ""))
    where = f" (line {lines[-1]})" if lines else ""
    return f"{kind}: {message}{where}" if message else f"{kind}{where}"


# ----------------------------------------------------------------------------- student objects
def read_attr(obj, name: str, what: str, hint: str = ""):
    """``getattr(obj, name)`` with a student-facing message when the attribute does not exist."""
    try:
        return getattr(obj, name)
    except BaseException as exc:
        if is_fatal(exc):
            raise
        if isinstance(exc, AttributeError) or type_name(exc) == "AttributeError":
            raise AssertionError(f"{what}: the object has no attribute `{name}`." + (f" {hint}" if hint else "")) from None
        raise


# ----------------------------------------------------------------------------- sub-cases
def run_cases(cases, partial, what: str) -> None:
    """Run ``cases`` (pairs ``(label, fn)``); each ``fn()`` raises AssertionError (or a student
    error) on failure. All pass: return. None pass: raise the first failure. Some pass: award the
    passing fraction through ``partial`` with the first failure as the message. When the first
    failure is a crash (a student error) and a later case fails otherwise (a wrong value), or the
    reverse, the message names that second failure too: a crash must not hide a second bug."""
    failures = []
    first_exc = None
    kinds: list[bool] = []                      # per failure: was it a crash (not an AssertionError)?
    for label, fn in cases:
        try:
            fn()
        except BaseException as exc:
            if is_fatal(exc):
                raise
            if first_exc is None:
                first_exc = exc
            crash = not isinstance(exc, AssertionError) or isinstance(exc, CrashExplained)
            text = str(exc) if isinstance(exc, AssertionError) else describe_error(exc)
            failures.append(f"{label}: {text}")
            kinds.append(crash)
    if not failures:
        return
    other = next((f for f, k in zip(failures, kinds) if k != kinds[0]), None)
    also = (f" Another case fails differently, so there is a second problem behind the first: {other}"
            if other is not None else "")
    n = len(cases)
    if len(failures) == n:
        if not isinstance(first_exc, AssertionError) and not also:
            raise first_exc  # the harness words student errors itself
        more = f" (all {n} cases fail)" if n > 1 else ""
        raise AssertionError(f"{failures[0]}{more}{also}")
    passed = n - len(failures)
    partial(passed / n, f"{what}: {passed} of {n} cases pass. First failing case, {failures[0]}{also}")

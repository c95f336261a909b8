"""Problem 3, first part (4 points): ``calculate_output_size(N_in, P, F, S)`` = (N_in + 2P - F) // S + 1.

The expected values are computed here with Python's own integer floor division. Values are
graded numerically (an integral float such as 26.0 counts for the value checks); one check
requires an ``int`` (numpy integers arrive as ints through the sandbox and are accepted).
"""
from __future__ import annotations

import math
import numbers

import pytest

from autograder.checks.assertions import require, run_cases, short

PROBLEM = 3
NOTEBOOK = "01_scratch_cnn"

FORMULA = "output size = (N_in + 2*P - F) // S + 1"


def expected_size(n, p, f, s) -> int:
    return (n + 2 * p - f) // s + 1


def call(student, n, p, f, s):
    return student.calculate_output_size(n, p, f, s)


def as_number(value, args) -> float:
    what = "calculate_output_size"
    if value is None:
        raise AssertionError(f"{what} returned None: is a `return` missing?")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AssertionError(f"{what} returned {short(value)} ({type(value).__name__}), expected a whole number.")
    if not math.isfinite(value):
        raise AssertionError(f"{what} returned {value}.")
    return value


def diagnose(value, n, p, f, s) -> str:
    exact = (n + 2 * p - f) / s + 1
    if value != int(value):
        return "the size is a whole number of window positions: use integer floor division //, not /"
    if value == math.ceil(exact) and value != expected_size(n, p, f, s):
        return "the result is rounded up: use floor division //"
    if p and value == (n + p - f) // s + 1:
        return "padding is added on both sides: 2*P"
    if value == expected_size(n, p, f, s) - 1:
        return "off by one: remember the + 1 (the first window position)"
    if s > 1 and value == n + 2 * p - f + 1:
        return "the stride is ignored: divide by S"
    return FORMULA


def verify_value(student, args):
    n, p, f, s = args
    value = as_number(call(student, *args), args)
    want = expected_size(*args)
    if value != want:
        raise AssertionError(f"calculate_output_size returned {short(value)}, expected {want}: "
                             f"{diagnose(value, *args)}.")


def value_cases(student, cases):
    return [("calculate_output_size(N_in={}, P={}, F={}, S={})".format(*args),
             lambda args=args: verify_value(student, args)) for args in cases]


@pytest.mark.check(points=1, name="output size without padding, stride 1 or an even stride",
                   hint=FORMULA)
def check_basic(student, partial):
    run_cases(value_cases(student, [(28, 0, 3, 1), (32, 0, 5, 1), (7, 0, 3, 2), (5, 0, 5, 1)]),
              partial, "output size")


@pytest.mark.check(points=1, name="output size when the stride does not divide evenly (floor)",
                   hint="when (N_in + 2P - F) is not a multiple of S the last partial window is dropped: floor division //")
def check_uneven_stride(student, partial):
    run_cases(value_cases(student, [(28, 0, 3, 2), (10, 0, 3, 3), (224, 0, 11, 4), (9, 0, 2, 2)]),
              partial, "output size with an uneven stride")


@pytest.mark.check(points=1, name="output size with padding",
                   hint="P zeros are added on each side, so the padded size is N_in + 2P")
def check_padding(student, partial):
    run_cases(value_cases(student, [(28, 1, 3, 1), (28, 1, 3, 2), (5, 2, 3, 2), (32, 2, 5, 3), (6, 1, 4, 2)]),
              partial, "output size with padding")


@pytest.mark.check(points=1, name="output size is an int",
                   hint="return an int: use integer floor division //, not / (which gives a float such as 14.0)")
def check_returns_int(student):
    for args in ((28, 0, 3, 1), (7, 0, 3, 2), (5, 2, 3, 2), (6, 1, 4, 2)):
        value = call(student, *args)
        require(value is not None, f"calculate_output_size{args} returned None: is a `return` missing?")
        expected = (args[0] + 2 * args[1] - args[2]) // args[3] + 1
        require(value == expected, f"calculate_output_size{args} returned {short(value)}, expected {expected}: "
                "the value must be right before its type counts")
        require(isinstance(value, int) and not isinstance(value, bool),
                f"calculate_output_size{args} returned {short(value)} of type {type(value).__name__}, expected an int: "
                "use integer floor division // (the / operator always gives a float).")

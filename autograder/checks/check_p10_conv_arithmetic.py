"""Problem 10 (6 points): output shapes and parameter counts of three convolutional layers.

``conv_layer_answers = {"a": {"output_shape": (H, W, C), "parameters": n}, "b": ..., "c": ...}``
(lists are accepted for tuples). One point per output shape and one per parameter count.
The expected numbers are derived here from the layer descriptions ('valid' convolutions, no padding):

    a: 144x144x3,  6 filters 3x3, stride 1 -> (142, 142, 6),  (3*3*3 + 1) * 6   = 168
    b: 60x60x24,  48 filters 3x3, stride 1 -> (58, 58, 48),   (3*3*24 + 1) * 48 = 10,416
    c: 20x20x10,  20 filters 3x3, stride 2 -> (9, 9, 20),     (3*3*10 + 1) * 20 = 1,820
"""
from __future__ import annotations

import numbers

import numpy as np
import pytest

from autograder.checks.assertions import require, short, type_name, unanswered

PROBLEM = 10
NOTEBOOK = "03_theory"

LAYERS = {  # name: (H, W, C_in, filters, k, stride)
    "a": (144, 144, 3, 6, 3, 1),
    "b": (60, 60, 24, 48, 3, 1),
    "c": (20, 20, 10, 20, 3, 2),
}
PARAMS_FORMULA = "parameters = (k*k*C_in + 1) * F: each of the F filters has k*k*C_in weights and one bias"
SHAPE_FORMULA = "output size = (N - k) // S + 1 (no padding), and the output has one channel per filter"


def expected(name):
    H, W, C, F, k, s = LAYERS[name]
    return ((H - k) // s + 1, (W - k) // s + 1, F), (k * k * C + 1) * F


def answer(student, name: str, key: str):
    answers = student.conv_layer_answers
    require(not unanswered(answers), "Not implemented yet: conv_layer_answers is still a placeholder.")
    require(isinstance(answers, dict), f"conv_layer_answers is a {type_name(answers)}; expected a dict with keys "
                                       "'a', 'b' and 'c'.")
    require(name in answers, f"conv_layer_answers has no entry {name!r}; expected keys 'a', 'b' and 'c'.")
    entry = answers[name]
    require(not unanswered(entry), f"Not implemented yet: conv_layer_answers[{name!r}] is still a placeholder.")
    require(isinstance(entry, dict), f"conv_layer_answers[{name!r}] is a {type_name(entry)}; expected a dict with "
                                     "'output_shape' and 'parameters'.")
    require(key in entry, f"conv_layer_answers[{name!r}] has no {key!r} entry.")
    return entry[key]


def whole(value) -> int | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        return None
    return int(value) if float(value).is_integer() else None


def verify_shape(student, name):
    want, _ = expected(name)
    H, W, C, F, k, s = LAYERS[name]
    value = answer(student, name, "output_shape")
    require(not unanswered(value), f"Not implemented yet: conv_layer_answers[{name!r}]['output_shape'] is still a placeholder.")
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    got = tuple(whole(v) for v in value) if isinstance(value, (list, tuple)) else None
    require(got is not None and len(got) == 3 and None not in got,
            f"conv_layer_answers[{name!r}]['output_shape'] is {short(value, 60)}; expected three whole numbers (H, W, C).")
    if got == want:
        return
    why = SHAPE_FORMULA
    if got == (want[2], want[0], want[1]):
        why = "give the shape as (H, W, C), channels last"
    elif s > 1 and got[:2] == (H - k + 1, W - k + 1):
        why = f"layer {name} uses stride {s}: the window moves {s} pixels at a time, so output size = (N - k) // S + 1"
    elif got[:2] == want[:2] and got[2] == C:
        why = "the number of output channels is the number of filters, not the input channels"
    elif got[:2] == (H, W):
        why = "without padding a 3x3 window fits only N - k + 1 times (divided by the stride)"
    raise AssertionError(f"Layer {name}: output_shape {got} is not right: {why}.")


def verify_params(student, name):
    _, want = expected(name)
    H, W, C, F, k, s = LAYERS[name]
    value = answer(student, name, "parameters")
    require(not unanswered(value), f"Not implemented yet: conv_layer_answers[{name!r}]['parameters'] is still a placeholder.")
    got = whole(value)
    require(got is not None, f"conv_layer_answers[{name!r}]['parameters'] is {short(value, 60)}; expected a whole number.")
    if got == want:
        return
    why = PARAMS_FORMULA
    if got == k * k * C * F:
        why = "the biases are missing: add one per filter, (k*k*C_in + 1) * F"
    elif got == (k * k + 1) * F:
        why = "each filter spans all C_in input channels: (k*k*C_in + 1) * F"
    elif got == k * k * C + 1:
        why = "that is one filter; there are F of them: (k*k*C_in + 1) * F"
    elif s > 1:
        why = "the stride does not change the number of parameters: " + PARAMS_FORMULA
    raise AssertionError(f"Layer {name}: {got:,} parameters is not right: {why}.")


@pytest.mark.check(points=1, name="layer a: output shape", hint=SHAPE_FORMULA)
def check_a_output_shape(student):
    verify_shape(student, "a")


@pytest.mark.check(points=1, name="layer a: parameters", hint=PARAMS_FORMULA)
def check_a_parameters(student):
    verify_params(student, "a")


@pytest.mark.check(points=1, name="layer b: output shape", hint=SHAPE_FORMULA)
def check_b_output_shape(student):
    verify_shape(student, "b")


@pytest.mark.check(points=1, name="layer b: parameters", hint=PARAMS_FORMULA)
def check_b_parameters(student):
    verify_params(student, "b")


@pytest.mark.check(points=1, name="layer c: output shape (stride 2)",
                   hint="layer c uses stride 2: output size = (N - k) // 2 + 1; channels = number of filters")
def check_c_output_shape(student):
    verify_shape(student, "c")


@pytest.mark.check(points=1, name="layer c: parameters", hint=PARAMS_FORMULA + "; the stride does not change it")
def check_c_parameters(student):
    verify_params(student, "c")

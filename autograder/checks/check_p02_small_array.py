"""Problem 2 (5 points): the small worked example, by hand and with the student's Conv2d.

x = 1..16 as (1, 1, 4, 4), two 3x3 filters, biases 0, stride 1, padding 0, and the given delta.
Three points need the student's ``Conv2d`` to reproduce the example (run in the sandbox); two
points are for the stated variables ``small_out``, ``small_dx``, ``small_dweights``,
``small_dbiases``. Hard-coded variables therefore earn only those two.

The expected numbers below were derived by hand and confirmed once with plain index loops
(never with the course's solution):

    x[i, j] = 4*i + j + 1 (0-based)                       1  2  3  4
                                                          5  6  7  8
    filter 0 = [[0,0,0],[0,1,0],[0,-1,0]]                 9 10 11 12
    filter 1 = [[0,0,0],[0,-1,1],[0,0,0]]                13 14 15 16

    out[0, i, j] = x[i+1, j+1] - x[i+2, j+1] = -4         (rows differ by 4)
    out[1, i, j] = -x[i+1, j+1] + x[i+1, j+2] = +1        (columns differ by 1)
    A flipped kernel gives +4 and -1 instead.

    delta[0] = [[-4, -4], [10, 11]],  delta[1] = [[1, -7], [1, -11]]
    d_biases = sums of delta: [-4-4+10+11, 1-7+1-11] = [13, -16]
    d_weights[f, a, b] = sum_ij delta[f, i, j] * x[i+a, j+b]
                       = sum(delta_f * (4i + j + 1)) + sum(delta_f) * (4a + b)
        f = 0: 4*21 + 7 + 13 = 104, plus 13 * (4a + b)
        f = 1: 4*(-10) + (-18) + (-16) = -74, plus -16 * (4a + b)
    d_x[r, c] = sum_f sum_ij delta[f, i, j] * w_f[r - i, c - j]:
        filter 0 sends +delta0[i, j] to (i+1, j+1) and -delta0[i, j] to (i+2, j+1);
        filter 1 sends -delta1[i, j] to (i+1, j+1) and +delta1[i, j] to (i+1, j+2).
"""
from __future__ import annotations

import numpy as np
import pytest

from autograder.checks.assertions import as_array, assert_close, cell_error, close, raised_text, read_attr, unanswered
from autograder.checks.conv2d import make_case, verify_dweights, verify_dx, verify_forward

PROBLEM = 2
NOTEBOOK = "01_scratch_cnn"

X = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)
FILTERS = np.array([[[[0, 0, 0], [0, 1, 0], [0, -1, 0]]],
                    [[[0, 0, 0], [0, -1, 1], [0, 0, 0]]]], dtype=np.float64)
BIASES = np.zeros(2)
DELTA = np.array([[[[-4, -4], [10, 11]], [[1, -7], [1, -11]]]], dtype=np.float64)

SMALL_OUT = np.array([[[[-4, -4], [-4, -4]], [[1, 1], [1, 1]]]], dtype=np.float64)
SMALL_DX = np.array([[[[0, 0, 0, 0],
                       [0, -5, 4, -7],
                       [0, 13, 27, -11],
                       [0, -10, -11, 0]]]], dtype=np.float64)
SMALL_DWEIGHTS = np.array([[[[104, 117, 130], [156, 169, 182], [208, 221, 234]]],
                           [[[-74, -90, -106], [-138, -154, -170], [-202, -218, -234]]]], dtype=np.float64)
SMALL_DBIASES = np.array([13, -16], dtype=np.float64)

# What a flipped (true-convolution) kernel gives instead, for the diagnosis.
FLIPPED_OUT = np.array([[[[4, 4], [4, 4]], [[-1, -1], [-1, -1]]]], dtype=np.float64)
FLIPPED_DX = np.array([[[[0, 4, 4, 0], [1, -22, -8, 0], [1, -2, 22, 0], [0, 0, 0, 0]]]], dtype=np.float64)

FLIPPED = "you flipped the kernel: this layer is cross-correlation, so weights[f, c, i, j] multiplies x[row + i, col + j] with no flip"

ACCEPTED = {"small_out": "(1, 2, 2, 2) or (2, 2, 2)", "small_dx": "(1, 1, 4, 4) or (4, 4)",
            "small_dweights": "(2, 1, 3, 3) or (2, 3, 3)", "small_dbiases": "(2,)"}


def fit_shape(value, expected: np.ndarray, what: str, accepted: str) -> tuple[np.ndarray, np.ndarray]:
    """The value and the expected array in a common shape. Any shape that differs from the
    canonical one only by axes of length 1 (e.g. a dropped batch axis) is accepted."""
    arr = as_array(value, what)
    if arr.shape == expected.shape:
        return arr, expected
    if arr.size == expected.size and np.squeeze(arr).shape == np.squeeze(expected).shape:
        return np.squeeze(arr), np.squeeze(expected)
    raise AssertionError(f"{what} has shape {arr.shape}; expected {accepted}.")


def small_layer(student):
    layer = student.Conv2d(1, 2, 3, stride=1, padding=0)
    layer.weights = FILTERS
    layer.biases = BIASES
    return layer


def compare(value, expected, what, accepted, flipped=None):
    arr, exp = fit_shape(value, expected, what, accepted)
    lead = ""
    if flipped is not None:
        _, flipped_fit = fit_shape(value, flipped, what, accepted)
        if close(arr, flipped_fit):
            lead = FLIPPED
    if not lead and not np.any(arr) and np.any(exp):
        lead = "it is all zeros: was the gradient computed and stored?"
    assert_close(arr, exp, what, rtol=1e-6, atol=1e-6, lead=lead)


# ----------------------------------------------------------------------------- your Conv2d
def real_convolution(student, rng, oracle, what: str) -> None:
    """A Conv2d that only replays the worked example would pass the three checks below: their points
    need the same computation to be right on a random stride-1, unpadded case too."""
    x, w, b, d = make_case(rng, 2, 2, 5, 6, 3, 3, 1, 0)
    verify = {"forward": verify_forward, "d_x": verify_dx, "d_weights": verify_dweights}[what]
    args = (student, oracle, x, w, b, 1, 0) + ((d,) if what != "forward" else ())
    try:
        verify(*args)
    except AssertionError as e:
        raise AssertionError(f"Your Conv2d's {what} must also be right on inputs other than the example "
                             f"(stride 1, no padding): {e}") from None


@pytest.mark.check(points=1, name="your Conv2d reproduces the example's forward output",
                   hint="with the two given filters and zero biases, forward(x) must give -4 everywhere in map 0 and +1 in map 1")
def check_layer_forward(student, rng, oracle):
    real_convolution(student, rng, oracle, "forward")
    out = small_layer(student).forward(X)
    compare(out, SMALL_OUT, "Conv2d.forward on the example", ACCEPTED["small_out"], FLIPPED_OUT)


@pytest.mark.check(points=1, name="your Conv2d reproduces the example's d_x",
                   hint="each delta[f, i, j] is sent back through filter f onto the 3x3 input window it came from")
def check_layer_dx(student, rng, oracle):
    real_convolution(student, rng, oracle, "d_x")
    layer = small_layer(student)
    layer.forward(X)
    dx = layer.backward(DELTA)
    compare(dx, SMALL_DX, "Conv2d.backward (d_x) on the example", "(1, 1, 4, 4)", FLIPPED_DX)


@pytest.mark.check(points=1, name="your Conv2d reproduces the example's d_weights and d_biases",
                   hint="d_weights[f] = sum over i, j of delta[f, i, j] * (the 3x3 window of x at (i, j)); d_biases[f] = sum of delta[f]")
def check_layer_dweights_dbiases(student, rng, oracle):
    real_convolution(student, rng, oracle, "d_weights")
    layer = small_layer(student)
    layer.forward(X)
    layer.backward(DELTA)
    hint = "backward(d_out) must store self.{} on the layer."
    dw = read_attr(layer, "d_weights", "after backward on the example", hint.format("d_weights"))
    db = read_attr(layer, "d_biases", "after backward on the example", hint.format("d_biases"))
    compare(dw, SMALL_DWEIGHTS, "Conv2d d_weights on the example", "(2, 1, 3, 3)")
    compare(db, SMALL_DBIASES, "Conv2d d_biases on the example", "(2,)")


# ----------------------------------------------------------------------------- the stated answers
CELL = "p2_small_array"


def stated(student, name: str):
    value = getattr(student, name)
    if unanswered(value):
        err = cell_error(student, CELL)
        if err is not None and err.get("type") not in ("NotImplementedError", None):
            raise AssertionError(
                f"`{name}` was never set: your Problem 2 answer cell raised {raised_text(err)} before it got there "
                "(it still holds the stub's placeholder). Fix that error first: if it comes from your Conv2d, "
                "Problem 1's checks and the three checks above say what is wrong with it.")
        raise AssertionError(f"Not implemented yet: `{name}` is still a placeholder; set it to the example's values.")
    return value


@pytest.mark.check(points=1, name="small_out and small_dx hold the example's values",
                   hint="set small_out and small_dx to the forward output and the input gradient of the example")
def check_stated_out_dx(student):
    compare(stated(student, "small_out"), SMALL_OUT, "small_out", ACCEPTED["small_out"], FLIPPED_OUT)
    compare(stated(student, "small_dx"), SMALL_DX, "small_dx", ACCEPTED["small_dx"], FLIPPED_DX)


@pytest.mark.check(points=1, name="small_dweights and small_dbiases hold the example's values",
                   hint="set small_dweights and small_dbiases to the weight and bias gradients of the example")
def check_stated_dweights_dbiases(student):
    compare(stated(student, "small_dweights"), SMALL_DWEIGHTS, "small_dweights", ACCEPTED["small_dweights"])
    compare(stated(student, "small_dbiases"), SMALL_DBIASES, "small_dbiases", ACCEPTED["small_dbiases"])

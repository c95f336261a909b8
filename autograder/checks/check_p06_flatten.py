"""Problem 6 (4 points): Flatten: (N, ...) -> (N, D) in C order, and back."""
from __future__ import annotations

import numpy as np
import pytest

from autograder.checks.assertions import as_array, assert_close, close, run_cases

PROBLEM = 6
NOTEBOOK = "01_scratch_cnn"


def forward_lead(out, x) -> str:
    N = x.shape[0]
    D = x.size // N
    if out.shape == (D, N):
        return "the output is transposed: rows are samples, so the shape is (N, D)"
    if out.shape == (x.size,):
        return "the batch axis is gone: keep it, out = x.reshape(N, -1)"
    if out.shape == (N, D) and x.ndim == 4:
        if close(out, np.transpose(x, (0, 2, 3, 1)).reshape(N, -1)):
            return "the values are reordered (channels last): flatten in C order, x.reshape(N, -1), without transposing"
        if close(out, np.transpose(x, (0, 3, 2, 1)).reshape(N, -1)) or close(out, x.reshape(N, -1, order="F")):
            return "the values are reordered: flatten in C order, x.reshape(N, -1)"
    if out.shape == (N, D) and close(out, x.reshape(D, N).T):
        return "the values are mixed across samples: reshape with the batch axis first, x.reshape(N, -1)"
    return ""


def verify_forward(student, x):
    N = x.shape[0]
    expected = x.reshape(N, -1)
    out = as_array(student.Flatten().forward(x), "Flatten().forward(x)")
    lead = forward_lead(out, x) if out.shape != expected.shape or not close(out, expected) else ""
    if out.shape != expected.shape:
        raise AssertionError(f"Flatten().forward(x) for x of shape {x.shape} has shape {out.shape}, expected "
                             f"{expected.shape}" + (f": {lead}." if lead else ": (N, D) with D the product of the other axes."))
    assert_close(out, expected, f"Flatten().forward(x) for x of shape {x.shape}", rtol=1e-12, atol=0, lead=lead,
                 hint="out must equal x.reshape(N, -1).")


def verify_backward(student, x, rng):
    N = x.shape[0]
    layer = student.Flatten()
    layer.forward(x)
    d = rng.normal(size=(N, x.size // N))
    dx = as_array(layer.backward(d), "Flatten().backward(d_out)")
    if dx.shape != x.shape:
        raise AssertionError(f"Flatten().backward(d_out) for x of shape {x.shape} has shape {dx.shape}: "
                             "it must restore the input shape that forward saw (store x.shape in forward).")
    assert_close(dx, d.reshape(x.shape), f"Flatten().backward(d_out) for x of shape {x.shape}", rtol=1e-12, atol=0,
                 hint="d_x = d_out.reshape(the input shape), the exact inverse of forward.")


@pytest.mark.check(points=1, name="forward gives (N, D) in C order",
                   hint="out = x.reshape(N, -1): the batch axis first, the rest flattened in C (row-major) order")
def check_forward(student, rng, partial):
    shapes = [(3, 2, 4, 5), (2, 3, 3, 3)]
    run_cases([(f"x of shape {s}", lambda s=s: verify_forward(student, rng.normal(size=s))) for s in shapes],
              partial, "forward")


@pytest.mark.check(points=1, name="backward restores the input shape and order",
                   hint="backward(d_out) = d_out.reshape(shape of the x given to forward)")
def check_backward(student, rng, partial):
    def round_trip():
        x = rng.normal(size=(3, 2, 4, 5))
        layer = student.Flatten()
        out = layer.forward(x)
        back = as_array(layer.backward(out), "Flatten().backward(Flatten().forward(x))")
        if back.shape != x.shape:
            raise AssertionError(f"backward(forward(x)) has shape {back.shape}, expected {x.shape}.")
        assert_close(back, x, "backward(forward(x)) (a round trip)", rtol=1e-12, atol=0,
                     hint="backward must undo forward exactly.")

    cases = [("x of shape (2, 3, 4, 4)", lambda: verify_backward(student, rng.normal(size=(2, 3, 4, 4)), rng)),
             ("round trip, x of shape (3, 2, 4, 5)", round_trip)]
    run_cases(cases, partial, "backward")


@pytest.mark.check(points=1, name="keeps the batch axis for a single sample (N = 1)",
                   hint="for x of shape (1, C, H, W) forward returns (1, C*H*W), not (C*H*W,): avoid squeeze() and flatten()/ravel() of the whole array")
def check_single_sample(student, rng):
    x = rng.normal(size=(1, 3, 4, 4))
    layer = student.Flatten()
    out = as_array(layer.forward(x), "Flatten().forward(x)")
    if out.shape != (1, 48):
        lead = forward_lead(out, x)
        raise AssertionError(f"Flatten().forward(x) for x of shape (1, 3, 4, 4) has shape {out.shape}, expected (1, 48)"
                             + (f": {lead}." if lead else "."))
    dx = as_array(layer.backward(rng.normal(size=(1, 48))), "Flatten().backward(d_out)")
    if dx.shape != x.shape:
        raise AssertionError(f"Flatten().backward(d_out) for x of shape (1, 3, 4, 4) has shape {dx.shape}: it must "
                             "restore the input shape that forward saw (store x.shape in forward).")


@pytest.mark.check(points=1, name="works for 2-D and 5-D inputs",
                   hint="do not assume 4-D input: (N, D) stays (N, D), and (N, a, b, c, d) becomes (N, a*b*c*d)")
def check_other_ranks(student, rng, partial):
    cases = []
    for shape in ((5, 7), (2, 3, 2, 2, 2)):
        x = rng.normal(size=shape)
        cases.append((f"forward, x of shape {shape}", lambda x=x: verify_forward(student, x)))
        cases.append((f"backward, x of shape {shape}", lambda x=x: verify_backward(student, x, rng)))
    run_cases(cases, partial, "other ranks")

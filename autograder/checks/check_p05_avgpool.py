"""Problem 5 (6 points): AveragePool2D against ``tf.nn.avg_pool2d`` (padding VALID) and its gradient."""
from __future__ import annotations

import numpy as np
import pytest

from autograder.checks.helpers import (TOL, as_array, assert_close, assert_shape, close, make_pool, pair,
                                       pool_label, pool_out_shape, pool_shape_hint, run_cases, window_view)

PROBLEM = 5
NOTEBOOK = "01_scratch_cnn"


def forward_case(student, oracle, x, pool, stride=None):
    out = as_array(make_pool(student, "AveragePool2D", pool, stride).forward(x), "forward(x)")
    expected = oracle.avg_pool(x, pool, stride)
    assert_shape(out, expected.shape, "forward(x)", hint=pool_shape_hint(out.shape, x.shape, pool, stride))
    lead = ""
    if not close(out, expected):
        (ph, pw) = pair(pool)
        if close(out, window_view(x, pool, stride).sum(axis=(-2, -1))):
            lead = f"this is the sum of each window: divide by its {ph * pw} cells"
        elif close(out, window_view(x, pool, stride).max(axis=(-2, -1))):
            lead = "this is the maximum of each window, not its average"
    assert_close(out, expected, "forward(x)", **TOL, lead=lead,
                 hint="out[n, c, i, j] = mean of x[n, c, i*sh : i*sh + ph, j*sw : j*sw + pw].")


def backward_diagnosis(dx, x, pool, stride, d, expected) -> str:
    (ph, pw), (sh, sw) = pair(pool), pair(pool if stride is None else stride)
    if dx.shape != x.shape:
        return ""
    if close(dx, expected * (ph * pw)):
        return f"d_out is not divided by the window size: each of the {ph * pw} cells gets d_out / {ph * pw}"
    windows = d.size
    if not np.any(dx) and np.any(expected):
        return ("d_x is all zeros: average pooling has no mask (an equality test such as x == mean almost never "
                "matches); every cell of window (i, j) gets d_out[n, c, i, j] / (ph * pw)")
    if np.count_nonzero(dx) <= windows < expected.size and np.count_nonzero(expected) > windows:
        return ("only one cell per window received gradient, as in max pooling: average pooling has no mask; "
                "every cell of the window gets d_out / (ph * pw)")
    if (sh, sw) != (ph, pw):
        return ("window (i, j) starts at row i*stride_h and column j*stride_w; where windows overlap, "
                "the shares add up (+=)")
    return ""


def backward_case(student, oracle, x, pool, stride, d):
    layer = make_pool(student, "AveragePool2D", pool, stride)
    layer.forward(x)
    dx = as_array(layer.backward(d), "backward(d_out)")
    expected = oracle.avg_pool_grad(x, pool, stride, d)
    assert_shape(dx, x.shape, "backward(d_out)", hint="d_x has the shape of the input x.")
    lead = "" if close(dx, expected) else backward_diagnosis(dx, x, pool, stride, d, expected)
    assert_close(dx, expected, "d_x returned by backward", **TOL, lead=lead,
                 hint="every cell of window (i, j) gets d_out[n, c, i, j] / (ph * pw); cells outside every window get 0.")


def cases(rng, specs, fn, student, oracle, with_grad=False):
    out = []
    for shape, pool, stride in specs:
        x = rng.normal(size=shape)
        if with_grad:
            d = rng.normal(size=pool_out_shape(shape, pool, stride))
            out.append((pool_label(shape, pool, stride),
                        lambda x=x, pool=pool, stride=stride, d=d: fn(student, oracle, x, pool, stride, d)))
        else:
            out.append((pool_label(shape, pool, stride),
                        lambda x=x, pool=pool, stride=stride: fn(student, oracle, x, pool, stride)))
    return out


BASIC = [((2, 3, 6, 8), 2, None), ((1, 2, 9, 6), 3, None)]
VARIETY = [((2, 2, 7, 9), 2, None),          # not divisible by the pool size: floor
           ((2, 3, 6, 9), (2, 3), None),     # tuple pool size
           ((2, 2, 7, 8), 3, 1),             # overlapping windows
           ((1, 2, 8, 7), (3, 2), (2, 1))]   # tuple pool and stride


@pytest.mark.check(points=2, name="forward matches tf.nn.avg_pool2d (stride = pool size)",
                   hint="the mean of each window, separately for every sample and channel; output (N, C, (H - ph)//sh + 1, (W - pw)//sw + 1)")
def check_forward_basic(student, rng, oracle, partial):
    run_cases(cases(rng, BASIC, forward_case, student, oracle), partial, "forward")


@pytest.mark.check(points=1, name="forward with uneven sizes, tuple pool sizes and strides",
                   hint="floor the output size, use (h, w) pool sizes and strides as given, and let windows overlap when stride < pool size")
def check_forward_variety(student, rng, oracle, partial):
    run_cases(cases(rng, VARIETY, forward_case, student, oracle), partial, "forward")


@pytest.mark.check(points=2, name="backward spreads d_out equally over each window",
                   hint="every cell of window (i, j) receives d_out[n, c, i, j] / (ph * pw); no mask")
def check_backward_basic(student, rng, oracle, partial):
    run_cases(cases(rng, BASIC, backward_case, student, oracle, with_grad=True), partial, "backward")


@pytest.mark.check(points=1, name="backward with overlapping windows, uneven sizes and tuple pool sizes",
                   hint="window (i, j) starts at (i*stride_h, j*stride_w); shares of overlapping windows add up (+=); rows/columns left over by the floor get 0")
def check_backward_variety(student, rng, oracle, partial):
    run_cases(cases(rng, VARIETY, backward_case, student, oracle, with_grad=True), partial, "backward")

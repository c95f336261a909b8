"""Problem 4 (10 points): MaxPool2D against ``tf.nn.max_pool2d`` and its gradient.

Exact comparisons use tie-free inputs (every value distinct), so the arg-max of every window is
unique. Ties are graded separately and leniently: per window, the gradient that reaches the input
must add up to d_out and sit on positions holding the window's maximum (any one of them, or
shared between them).
"""
from __future__ import annotations

import numpy as np
import pytest

from autograder.checks import oracles, pooling
from autograder.checks.assertions import as_array, assert_shape, close, distinct, run_cases
from autograder.checks.pooling import (Pooling, pool_and_stride, pool_label, pool_out_shape, pool_shape_hint,
                                       window_view)

PROBLEM = 4
NOTEBOOK = "01_scratch_cnn"

BASIC = pooling.BASIC
VARIETY = pooling.VARIETY + [((2, 1, 8, 11), 2, 3)]  # stride larger than the window: gaps


def forward_lead(out, x, pool, stride) -> str:
    if close(out, window_view(x, pool, stride).mean(axis=(-2, -1))):
        return "this is the average of each window, not its maximum"
    if close(out, window_view(x, pool, stride).min(axis=(-2, -1))):
        return "this is the minimum of each window, not its maximum"
    return ""


def backward_lead(dx, x, pool, stride, d, expected) -> str:
    (ph, pw), (sh, sw) = pool_and_stride(pool, stride)
    spread = np.zeros_like(x)
    Ho, Wo = d.shape[2:]
    for i in range(ph):
        for j in range(pw):
            spread[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw] += d
    if close(dx, spread):
        return ("the gradient goes to every cell of the window: only the position that held the maximum "
                "receives d_out (the others did not affect the output)")
    if close(dx, spread / (ph * pw)):
        return "the gradient is spread evenly as in average pooling: route all of d_out to the arg-max position"
    if (sh, sw) != (ph, pw):
        return ("with overlapping or strided windows, window (i, j) starts at row i*stride_h and column "
                "j*stride_w; a cell that is the max of several windows collects the sum of their gradients")
    return ""


MAX_POOL = Pooling(
    cls="MaxPool2D", reference=oracles.max_pool, reference_grad=oracles.max_pool_grad,
    inputs=distinct,  # tie-free: the arg-max of every window is unique
    forward_lead=forward_lead, backward_lead=backward_lead,
    forward_hint="out[n, c, i, j] = max of x[n, c, i*sh : i*sh + ph, j*sw : j*sw + pw].",
    backward_hint="d_x[n, c, arg-max row, arg-max col of window (i, j)] += d_out[n, c, i, j]; every other cell gets 0.")


@pytest.mark.check(points=1, name="forward output shape",
                   hint="H' = (H - pool_h) // stride_h + 1 (floor, no padding); pool_size and stride may be ints or (h, w) pairs")
def check_forward_shape(student, rng, partial):
    def shape_case(shape, pool, stride):
        out = as_array(MAX_POOL.layer(student, pool, stride).forward(distinct(rng, shape)), "forward(x)")
        assert_shape(out, pool_out_shape(shape, pool, stride), "forward(x)",
                     hint=pool_shape_hint(out.shape, shape, pool, stride))

    run_cases([(pool_label(*spec), lambda spec=spec: shape_case(*spec)) for spec in BASIC + VARIETY],
              partial, "output shape")


@pytest.mark.check(points=2, name="forward matches tf.nn.max_pool2d (stride = pool size)",
                   hint="the maximum of each window, separately for every sample and channel")
def check_forward_basic(student, rng, partial):
    MAX_POOL.check_forward(student, rng, partial, BASIC)


@pytest.mark.check(points=2, name="forward with uneven sizes, tuple pool sizes and strides",
                   hint="floor the output size, use (h, w) pool sizes and strides as given, and let windows overlap when stride < pool size")
def check_forward_variety(student, rng, partial):
    MAX_POOL.check_forward(student, rng, partial, VARIETY)


@pytest.mark.check(points=2, name="backward routes d_out to the arg-max (stride = pool size)",
                   hint="only the position that held each window's maximum receives that window's d_out; every other cell gets 0")
def check_backward_basic(student, rng, partial):
    MAX_POOL.check_backward(student, rng, partial, BASIC)


@pytest.mark.check(points=2, name="backward with overlapping windows, uneven sizes and tuple pool sizes",
                   hint="window (i, j) starts at (i*stride_h, j*stride_w); gradients of overlapping windows add up (+=); rows/columns left over by the floor get 0")
def check_backward_variety(student, rng, partial):
    MAX_POOL.check_backward(student, rng, partial, VARIETY)


@pytest.mark.check(points=1, name="backward with ties sends each window's gradient to its maximum once",
                   hint="when several cells share a window's maximum, route d_out to one of them (not to each)")
def check_ties(student, rng):
    pool = 2
    x = rng.integers(0, 3, size=(2, 2, 6, 8)).astype(np.float64)
    x[0, 0, :2, :2] = 1.0  # a window where all four cells tie
    x[1, 1, 2:4, 4:6] = [[2.0, 2.0], [0.0, 2.0]]
    d = rng.uniform(0.5, 1.5, size=pool_out_shape(x.shape, pool))
    layer = MAX_POOL.layer(student, pool)
    layer.forward(x)
    dx = assert_shape(layer.backward(d), x.shape, "backward(d_out) with tied maxima").astype(np.float64)
    win_x = window_view(x, pool)
    win_dx = window_view(dx, pool)
    is_max = win_x == win_x.max(axis=(-2, -1), keepdims=True)
    off_max = np.abs(np.where(is_max, 0.0, win_dx)).max(axis=(-2, -1))
    mass = win_dx.sum(axis=(-2, -1))
    bad_place = np.argwhere(off_max > 1e-6)
    if len(bad_place):
        raise AssertionError(f"With tied maxima, gradient reached a cell that is not a maximum of its window (the "
                             f"window at (n, c, i, j) = {tuple(int(i) for i in bad_place[0])}): only max positions "
                             "may receive d_out.")
    wrong = ~np.isclose(mass, d, rtol=1e-4, atol=1e-6)
    if wrong.any():
        idx = tuple(int(i) for i in np.argwhere(wrong)[0])
        ratio = mass[idx] / d[idx]
        more = (f" It received {ratio:.3g} times d_out: with ties, send d_out to one max position, not to every tied one."
                if ratio > 1.01 else "")
        raise AssertionError(f"With tied maxima, window {idx} passed on {mass[idx]:.6g} in total instead of its "
                             f"d_out = {d[idx]:.6g}.{more}")

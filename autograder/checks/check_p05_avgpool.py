"""Problem 5 (6 points): AveragePool2D against ``tf.nn.avg_pool2d`` (padding VALID) and its gradient."""
from __future__ import annotations

import numpy as np
import pytest

from autograder.checks import oracles, pooling
from autograder.checks.assertions import close
from autograder.checks.pooling import Pooling, normal, pool_and_stride, window_view

PROBLEM = 5
NOTEBOOK = "01_scratch_cnn"

BASIC = pooling.BASIC
VARIETY = pooling.VARIETY


def forward_lead(out, x, pool, stride) -> str:
    (ph, pw), _ = pool_and_stride(pool, stride)
    if close(out, window_view(x, pool, stride).sum(axis=(-2, -1))):
        return f"this is the sum of each window: divide by its {ph * pw} cells"
    if close(out, window_view(x, pool, stride).max(axis=(-2, -1))):
        return "this is the maximum of each window, not its average"
    return ""


def backward_lead(dx, x, pool, stride, d, expected) -> str:
    (ph, pw), (sh, sw) = pool_and_stride(pool, stride)
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


AVERAGE_POOL = Pooling(
    cls="AveragePool2D", reference=oracles.avg_pool, reference_grad=oracles.avg_pool_grad, inputs=normal,
    forward_lead=forward_lead, backward_lead=backward_lead,
    forward_hint="out[n, c, i, j] = mean of x[n, c, i*sh : i*sh + ph, j*sw : j*sw + pw].",
    backward_hint="every cell of window (i, j) gets d_out[n, c, i, j] / (ph * pw); cells outside every window get 0.")


@pytest.mark.check(points=2, name="forward matches tf.nn.avg_pool2d (stride = pool size)",
                   hint="the mean of each window, separately for every sample and channel; output (N, C, (H - ph)//sh + 1, (W - pw)//sw + 1)")
def check_forward_basic(student, rng, partial):
    AVERAGE_POOL.check_forward(student, rng, partial, BASIC)


@pytest.mark.check(points=1, name="forward with uneven sizes, tuple pool sizes and strides",
                   hint="floor the output size, use (h, w) pool sizes and strides as given, and let windows overlap when stride < pool size")
def check_forward_variety(student, rng, partial):
    AVERAGE_POOL.check_forward(student, rng, partial, VARIETY)


@pytest.mark.check(points=2, name="backward spreads d_out equally over each window",
                   hint="every cell of window (i, j) receives d_out[n, c, i, j] / (ph * pw); no mask")
def check_backward_basic(student, rng, partial):
    AVERAGE_POOL.check_backward(student, rng, partial, BASIC)


@pytest.mark.check(points=1, name="backward with overlapping windows, uneven sizes and tuple pool sizes",
                   hint="window (i, j) starts at (i*stride_h, j*stride_w); shares of overlapping windows add up (+=); rows/columns left over by the floor get 0")
def check_backward_variety(student, rng, partial):
    AVERAGE_POOL.check_backward(student, rng, partial, VARIETY)

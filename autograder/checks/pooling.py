"""The checks of the two pooling layers (Problem 4, MaxPool2D; Problem 5, AveragePool2D): what the
two share, parametrised by what differs.

A ``Pooling`` names the student's class, its oracle and its diagnoses; it runs the forward and
backward sub-cases (``BASIC``, ``VARIETY``) against the oracle and words a wrong result. The
check modules keep their marks, their own cases and their diagnoses.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from autograder.checks.assertions import (TOL, CrashExplained, as_array, assert_close, assert_shape, close,
                                          describe_error, is_fatal, run_cases)
from autograder.sandbox.errors import StudentError
from autograder.checks.oracles import pair

# (x shape, pool_size, stride): the cases both layers are graded on.
BASIC = [((2, 3, 6, 8), 2, None), ((1, 2, 9, 6), 3, None)]
VARIETY = [((2, 2, 7, 9), 2, None),          # H and W not divisible by the pool size: floor
           ((2, 3, 6, 9), (2, 3), None),     # tuple pool size
           ((2, 2, 7, 8), 3, 1),             # overlapping windows
           ((1, 2, 8, 7), (3, 2), (2, 1))]   # tuple pool and stride, overlapping in one direction


# ----------------------------------------------------------------------------- geometry
def pool_and_stride(pool, stride=None) -> tuple[tuple[int, int], tuple[int, int]]:
    """((ph, pw), (sh, sw)); stride None means stride = pool size."""
    return pair(pool), pair(pool if stride is None else stride)


def pool_out_shape(x_shape, pool, stride=None) -> tuple[int, int, int, int]:
    (ph, pw), (sh, sw) = pool_and_stride(pool, stride)
    N, C, H, W = x_shape
    return N, C, (H - ph) // sh + 1, (W - pw) // sw + 1


def pool_label(x_shape, pool, stride=None) -> str:
    s = "None (= pool size)" if stride is None else repr(stride)
    return f"x of shape {tuple(x_shape)}, pool_size={pool!r}, stride={s}"


def pool_shape_hint(got, x_shape, pool, stride=None) -> str:
    (ph, pw), (sh, sw) = pool_and_stride(pool, stride)
    N, C, H, W = x_shape
    exp = pool_out_shape(x_shape, pool, stride)
    got = tuple(got)
    if len(got) != 4:
        return "The output must be 4-D: (N, C, H', W')."
    if got[:2] != (N, C):
        return "Pooling keeps the batch and channel axes: (N, C, H', W')."
    if got[2:] == (exp[3], exp[2]) and exp[2] != exp[3]:
        return "Height and width are swapped."
    if got[2:] == (-(-(H - ph) // sh) + 1, -(-(W - pw) // sw) + 1):
        return "A partial window at the edge is counted: H' = (H - ph) // sh + 1 drops it (floor)."
    if got[2:] == ((H - ph) // ph + 1, (W - pw) // pw + 1) and (sh, sw) != (ph, pw):
        return "The stride is ignored: windows start every `stride` rows/columns (stride None means stride = pool size)."
    if (ph, pw) != (ph, ph) and got[2:] == ((H - ph) // sh + 1, (W - ph) // sw + 1):
        return "A tuple pool_size (h, w) uses h for rows and w for columns."
    return "H' = (H - pool_h) // stride_h + 1 and W' = (W - pool_w) // stride_w + 1 (no padding)."


def window_view(x: np.ndarray, pool, stride=None) -> np.ndarray:
    """(N, C, H', W', ph, pw) view of the pooling windows of x."""
    from numpy.lib.stride_tricks import sliding_window_view

    (ph, pw), (sh, sw) = pool_and_stride(pool, stride)
    return sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::sh, ::sw]


def normal(rng: np.random.Generator, shape) -> np.ndarray:
    """Standard-normal inputs (ties are possible, which average pooling does not mind)."""
    return rng.normal(size=shape)


# ----------------------------------------------------------------------------- a crash, with its cause
INDEXING_ERRORS = ("IndexError", "ValueError", "TypeError")


@contextlib.contextmanager
def named_cause(x_shape, pool, stride, what: str):
    """A student error on a case whose pool or stride is not square (or does not divide the input)
    is reworded with its usual cause: the height's size used for the width, or a (h, w) pair used as
    one number. Other errors pass unchanged."""
    try:
        yield
    except Exception as exc:
        if is_fatal(exc) or not isinstance(exc, StudentError) or exc.exc_type not in INDEXING_ERRORS:
            raise
        (ph, pw), (sh, sw) = pool_and_stride(pool, stride)
        causes = []
        if isinstance(pool, tuple) or isinstance(stride, tuple):
            causes.append(f"pool_size and stride may be (h, w) pairs, here pool_size={pool!r}, stride={stride!r}: "
                          "take them apart, (ph, pw) = pool_size, and never use a pair as one number")
        if (ph, sh) != (pw, sw):
            causes.append("the window is not square here: use the pool height and row stride for rows "
                          "(H' = (H - ph) // sh + 1, i * sh .. i * sh + ph) and the width and column stride for columns; "
                          "an IndexError on such a case usually means one of them is used for both")
        N, C, H, W = x_shape
        if (H - ph) % sh or (W - pw) % sw:
            causes.append("the windows do not cover H or W exactly here: the last rows/columns that fit no "
                          "window are dropped, H' = (H - ph) // sh + 1")
        if not causes:
            raise
        raise CrashExplained(f"{what} raised {describe_error(exc)}. On this case "
                             + "; ".join(causes) + ".") from None


# ----------------------------------------------------------------------------- one pooling layer
@dataclass(frozen=True)
class Pooling:
    """What the checks of one pooling layer need to know about it."""

    cls: str                   # the student's class, e.g. "MaxPool2D"
    reference: Callable        # the oracle's forward: (x, pool, stride) -> out
    reference_grad: Callable   # the oracle's gradient: (x, pool, stride, d_out) -> d_x
    inputs: Callable           # (rng, shape) -> x
    forward_lead: Callable     # (out, x, pool, stride) -> a recognised forward bug, or ""
    backward_lead: Callable    # (dx, x, pool, stride, d_out, expected) -> a recognised backward bug, or ""
    forward_hint: str          # what out[n, c, i, j] is, for a wrong forward
    backward_hint: str         # where d_out goes, for a wrong backward

    def layer(self, student, pool, stride=None):
        """``student.MaxPool2D(pool_size=..., stride=...)``; stride is left out when it is None."""
        factory = getattr(student, self.cls)
        return factory(pool_size=pool) if stride is None else factory(pool_size=pool, stride=stride)

    def forward_case(self, student, x, pool, stride=None) -> None:
        with named_cause(x.shape, pool, stride, "forward"):
            out = as_array(self.layer(student, pool, stride).forward(x), "forward(x)")
        expected = self.reference(x, pool, stride)
        assert_shape(out, expected.shape, "forward(x)", hint=pool_shape_hint(out.shape, x.shape, pool, stride))
        lead = "" if close(out, expected) else self.forward_lead(out, x, pool, stride)
        assert_close(out, expected, "forward(x)", **TOL, lead=lead, hint=self.forward_hint)

    def backward_case(self, student, x, pool, stride, d) -> None:
        with named_cause(x.shape, pool, stride, "backward"):
            layer = self.layer(student, pool, stride)
            layer.forward(x)
            dx = as_array(layer.backward(d), "backward(d_out)")
        expected = self.reference_grad(x, pool, stride, d)
        assert_shape(dx, x.shape, "backward(d_out)", hint="d_x has the shape of the input x.")
        lead = "" if close(dx, expected) else self.backward_lead(dx, x, pool, stride, d, expected)
        assert_close(dx, expected, "d_x returned by backward", **TOL, lead=lead, hint=self.backward_hint)

    def check_forward(self, student, rng, partial, specs) -> None:
        """Forward on every (shape, pool, stride) of ``specs``, with partial credit."""
        cases = []
        for shape, pool, stride in specs:
            x = self.inputs(rng, shape)
            cases.append((pool_label(shape, pool, stride),
                          lambda x=x, pool=pool, stride=stride: self.forward_case(student, x, pool, stride)))
        run_cases(cases, partial, "forward")

    def check_backward(self, student, rng, partial, specs) -> None:
        """Backward (a random d_out) on every (shape, pool, stride) of ``specs``, with partial credit."""
        cases = []
        for shape, pool, stride in specs:
            x = self.inputs(rng, shape)
            d = rng.normal(size=pool_out_shape(shape, pool, stride))
            cases.append((pool_label(shape, pool, stride),
                          lambda x=x, pool=pool, stride=stride, d=d: self.backward_case(student, x, pool, stride, d)))
        run_cases(cases, partial, "backward")

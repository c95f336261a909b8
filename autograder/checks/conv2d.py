"""One Conv2d sub-case against the oracle, for Problem 1 and Problem 2 (which runs the student's
Conv2d on its worked example and on a random case): build a layer with known parameters, run
forward or backward, compare with ``tf.nn.conv2d`` and its gradients, and recognise the classic
bugs from a wrong result. Each ``verify_*`` raises an AssertionError with the student-facing message.
"""
from __future__ import annotations

import numpy as np

from autograder.checks.assertions import TOL, as_array, assert_close, close, mismatch, read_attr

CROSS_CORRELATION = "you flipped the kernel: this layer is cross-correlation, weights[f, c, i, j] multiplies x[n, c, row + i, col + j] with no flip"


def out_size(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def make_case(rng, N, C, H, W, F, k, s, p):
    x = rng.normal(size=(N, C, H, W))
    w = rng.normal(size=(F, C, k, k))
    b = rng.normal(size=(F,))
    d = rng.normal(size=(N, F, out_size(H, k, s, p), out_size(W, k, s, p)))
    return x, w, b, d


def label(x, F, k, s, p) -> str:
    return f"x of shape {tuple(x.shape)}, {F} filters {k}x{k}, stride {s}, padding {p}"


def layer_with(student, w, b, s, p):
    F, C, k, _ = w.shape
    layer = student.Conv2d(C, F, k, stride=s, padding=p)
    layer.weights = w
    layer.biases = b
    return layer


def shape_hint(got, x_shape, F, k, s, p) -> str:
    """A guess at the bug behind a wrong output shape."""
    N, C, H, W = x_shape
    got = tuple(got)
    Ho, Wo = out_size(H, k, s, p), out_size(W, k, s, p)
    if len(got) != 4:
        return "The output must be 4-D: (N, F, H', W')."
    if got == (N, F, Wo, Ho) and Ho != Wo:
        return "Height and width are swapped: H' comes from x.shape[2], W' from x.shape[3]."
    if p == 0 and 0 in got[2:]:
        return "With padding 0, slicing [p:-p] gives an empty array: slice [p:p + H] or skip the crop when p is 0."
    if got[1] == C and C != F:
        return "The channel axis should hold one map per filter (F = out_channels), not the input channels."
    if s > 1 and got[2:] == (out_size(H, k, 1, p), out_size(W, k, 1, p)):
        return "The stride is ignored: step the window by `stride` rows and columns."
    if p > 0 and got[2:] == (out_size(H, k, s, 0), out_size(W, k, s, 0)):
        return "The padding is missing: pad x with `padding` zeros on every side of H and W."
    if got[2:] in ((Ho + 1, Wo + 1), (Ho - 1, Wo - 1), (Ho + 1, Wo), (Ho, Wo + 1), (Ho - 1, Wo), (Ho, Wo - 1)):
        return "Off by one: H' = (H + 2*padding - k) // stride + 1."
    return "H' = (H + 2*padding - k) // stride + 1, and likewise W'."


FORWARD_FORMULA = ("out[n, f, i, j] = sum over c, di, dj of x_padded[n, c, i*stride + di, j*stride + dj] "
                   "* weights[f, c, di, dj] + biases[f].")


def forward_diagnosis(out, x, w, b, s, p, oracle) -> str:
    """Recognise a few classic forward bugs from the values ("" when none fits)."""
    C = x.shape[1]
    if close(out, oracle.conv2d_forward(x, w[:, :, ::-1, ::-1], b, s, p)):
        return CROSS_CORRELATION
    if close(out, oracle.conv2d_forward(x, np.swapaxes(w, 2, 3), b, s, p)):
        return "the kernel is transposed: weights[f, c, i, j] pairs with row offset i and column offset j"
    if close(out, oracle.conv2d_forward(x, w, np.zeros_like(b), s, p)):
        return "the bias is missing: add biases[f] to every position of output map f"
    if C > 1 and close(out, oracle.conv2d_forward(x, w, C * b, s, p)):
        return "the bias is added once per input channel: add biases[f] once per output value, after summing over channels"
    return ""


def verify_forward(student, oracle, x, w, b, s, p):
    F, _, k, _ = w.shape
    expected = oracle.conv2d_forward(x, w, b, s, p)
    out = as_array(layer_with(student, w, b, s, p).forward(x), "forward(x)")
    if out.shape != expected.shape:
        raise AssertionError(f"forward(x) has shape {out.shape}, expected {expected.shape}. "
                             + shape_hint(out.shape, x.shape, F, k, s, p))
    if not close(out, expected):
        lead = forward_diagnosis(out, x, w, b, s, p, oracle)
        assert_close(out, expected, "forward(x)", **TOL, lead=lead, hint="" if lead else FORWARD_FORMULA)


def window_coverage(H: int, W: int, k: int, s: int, p: int) -> np.ndarray:
    """(H, W): how many of the forward's windows read each input position (padding cropped)."""
    Ho, Wo = out_size(H, k, s, p), out_size(W, k, s, p)
    cover = np.zeros((H + 2 * p, W + 2 * p), np.int64)
    for i in range(Ho):
        for j in range(Wo):
            cover[i * s:i * s + k, j * s:j * s + k] += 1
    return cover[p:p + H, p:p + W]


OVERLAP_ASSIGNED = ("d_x is right where a single window read the input and wrong where windows overlap: each "
                    "window must add its contribution (d_x_padded[..., window] += ..., or np.add.at in col2im), "
                    "not overwrite what the windows before it put there (=)")


def overlap_lead(dx, edx, x, k: int, s: int, p: int) -> str:
    """The classic `=` for `+=` in backward or col2im: right where one window covers the input, wrong
    only where windows overlap ("" when that is not the pattern)."""
    if np.shape(dx) != np.shape(edx):
        return ""
    wrong = mismatch(dx, edx)
    if wrong is None:
        return ""
    cover = np.broadcast_to(window_coverage(x.shape[2], x.shape[3], k, s, p), wrong.shape)
    single, overlap = cover == 1, cover > 1
    if single.any() and overlap.any() and not wrong[single].any() and wrong[overlap].any() and not wrong[cover == 0].any():
        return OVERLAP_ASSIGNED
    return ""


def dx_hint(dx, x, w, b, s, p, d, oracle) -> str:
    N, C, H, W = x.shape
    k = w.shape[2]
    if dx.shape == (N, C, H + 2 * p - 2, W + 2 * p - 2) and p != 1:
        return (f"d_x has 1 row and column cropped from every side ([1:-1]), but the padding here is {p}: crop "
                "`padding` rows and columns, d_x_padded[:, :, p:p + H, p:p + W] (nothing when padding is 0).")
    if dx.shape == (N, C, H + 2 * p, W + 2 * p) and p > 0:
        return "d_x still includes the padding: crop `padding` rows and columns from every side."
    if p == 0 and 0 in dx.shape:
        return "With padding 0, slicing [p:-p] gives an empty array: slice [p:p + H] or skip the crop when p is 0."
    if dx.shape == (N, C, W, H) and H != W:
        return "Height and width are swapped."
    if dx.shape == x.shape:
        if close(dx, oracle.conv2d_grads(x, w[:, :, ::-1, ::-1], b, s, p, d)[0]):
            return "d_x uses the flipped kernel relative to forward: d_x[n, c, i*s + di, j*s + dj] += d_out[n, f, i, j] * weights[f, c, di, dj]."
        if s > 1:
            return ("Check how the stride maps output positions back to the input: output (i, j) came from "
                    "rows i*stride .. i*stride + k - 1 and columns j*stride .. j*stride + k - 1.")
    return "d_x[n, c, i*stride + di, j*stride + dj] (in padded coordinates) += d_out[n, f, i, j] * weights[f, c, di, dj]; then remove the padding."


def backward_layer(student, oracle, x, w, b, s, p, d):
    """Run forward then backward on a fresh layer; returns (layer, d_x, oracle grads)."""
    layer = layer_with(student, w, b, s, p)
    layer.forward(x)
    dx = layer.backward(d)
    return layer, dx, oracle.conv2d_grads(x, w, b, s, p, d)


def optional_grad(layer, name: str):
    """The stored gradient, or None when backward did not store it (its own check reports that)."""
    try:
        return as_array(read_grad(layer, name, "after backward"), f"layer.{name}")
    except AssertionError:
        return None


def read_grad(layer, name: str, what: str):
    return read_attr(layer, name, what,
                     hint=f"backward(d_out) must store the gradient on the layer as self.{name}.")


def verify_dx(student, oracle, x, w, b, s, p, d):
    _, dx, (edx, _, _) = backward_layer(student, oracle, x, w, b, s, p, d)
    dx = as_array(dx, "backward(d_out) (the returned d_x)")
    if dx.shape != edx.shape or not close(dx, edx):
        lead = overlap_lead(dx, edx, x, w.shape[2], s, p)
        assert_close(dx, edx, "d_x returned by backward", **TOL, lead=lead,
                     hint="" if lead else dx_hint(dx, x, w, b, s, p, d, oracle))


def verify_dweights(student, oracle, x, w, b, s, p, d):
    layer, _, (_, edw, _) = backward_layer(student, oracle, x, w, b, s, p, d)
    dw = as_array(read_grad(layer, "d_weights", "after backward"), "layer.d_weights")
    hint = "d_weights[f, c, di, dj] = sum over n, i, j of d_out[n, f, i, j] * x_padded[n, c, i*stride + di, j*stride + dj]."
    lead = ""
    if dw.shape == edw.shape and not close(dw, edw):
        N = x.shape[0]
        if not np.any(dw):
            lead = "d_weights is all zeros: backward must compute the weight gradient and store it in self.d_weights"
        elif N > 1 and close(dw * N, edw):
            lead = "d_weights is divided by the batch size: sum over the batch (d_out already carries any averaging)"
        elif close(dw, edw[:, :, ::-1, ::-1]):
            lead = "d_weights is flipped: this layer is cross-correlation, so no flip anywhere"
        elif s > 1:
            hint += " Check the stride: output (i, j) saw input rows from i*stride."
    elif dw.shape != edw.shape:
        hint = "d_weights must have the shape of weights, (F, C, k, k)."
    assert_close(dw, edw, "layer.d_weights", **TOL, lead=lead, hint="" if lead else hint)


def verify_dbiases(student, oracle, x, w, b, s, p, d):
    layer, _, (_, _, edb) = backward_layer(student, oracle, x, w, b, s, p, d)
    db = as_array(read_grad(layer, "d_biases", "after backward"), "layer.d_biases")
    hint = "d_biases[f] is the sum of d_out[:, f, :, :] over the batch and both spatial axes (axes 0, 2, 3)."
    lead = ""
    if db.shape == edb.shape and not close(db, edb):
        if not np.any(db):
            lead = "d_biases is all zeros: backward must compute the bias gradient and store it in self.d_biases"
        elif close(db * x.shape[0], edb):
            lead = "d_biases is divided by the batch size: sum over the batch instead"
    assert_close(db, edb, "layer.d_biases", **TOL, lead=lead, hint="" if lead else hint)

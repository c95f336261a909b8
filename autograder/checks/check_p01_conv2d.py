"""Problem 1 (20 points): the Conv2d layer, against TensorFlow's ``tf.nn.conv2d`` and its gradients.

Every check builds its own layers, sets known parameters by assignment
(``layer.weights = w; layer.biases = b``) and compares with the oracle (``oracles.py``); one case's
run and diagnosis is in ``conv2d.py``, shared with Problem 2. Checks that run several cases give
partial credit for the fraction of cases that pass.
"""
from __future__ import annotations

import numpy as np
import pytest

from autograder.checks.assertions import TOL, as_array, assert_close, assert_shape, close, require, run_cases
from autograder.checks.conv2d import (label, layer_with, make_case, optional_grad, out_size, read_grad, shape_hint,
                                      verify_dbiases, verify_dweights, verify_dx, verify_forward)

PROBLEM = 1
NOTEBOOK = "01_scratch_cnn"


# ----------------------------------------------------------------------------- parameters
@pytest.mark.check(points=1, name="weights and biases have the right shapes",
                   hint="weights is (out_channels, in_channels, k, k); biases is (out_channels,)")
def check_parameter_shapes(student):
    for C, F, k in ((3, 8, 3), (1, 4, 5), (2, 3, 1)):
        layer = student.Conv2d(C, F, k)
        what = f"Conv2d({C}, {F}, {k})"
        assert_shape(layer.weights, (F, C, k, k), f"{what}.weights",
                     hint="weights is (out_channels, in_channels, kernel_size, kernel_size).")
        assert_shape(layer.biases, (F,), f"{what}.biases", hint="biases has one entry per output channel.")


@pytest.mark.check(points=1, name="He initialisation",
                   hint="weights ~ N(0, 2 / (in_channels * k * k)); biases start at zero")
def check_init_scale(student):
    C, F, k = 32, 64, 3
    layer = student.Conv2d(C, F, k)
    w = as_array(layer.weights, "Conv2d(32, 64, 3).weights").astype(np.float64)
    b = as_array(layer.biases, "Conv2d(32, 64, 3).biases").astype(np.float64)
    he = np.sqrt(2.0 / (C * k * k))
    std = float(np.std(w))
    require(np.all(np.isfinite(w)), "The initial weights contain NaN or inf.")
    # 18,432 draws pin the standard deviation to about 0.5 %: a band of +-15 % accepts He (normal or
    # uniform) and rejects the other common scales (LeCun/Xavier 0.71x, Glorot 0.58x).
    require(0.85 * he <= std <= 1.15 * he,
            f"The initial weights of Conv2d(32, 64, 3) have standard deviation {std:.4g}; He initialisation "
            f"gives sqrt(2 / (C * k * k)) = {he:.4g}. Scale standard-normal draws by that factor.")
    require(abs(float(np.mean(w))) <= 0.25 * he,
            f"The initial weights have mean {float(np.mean(w)):.4g}: they should be centred on zero.")
    require(np.max(np.abs(b), initial=0.0) <= 0.1,
            f"The initial biases reach {float(np.max(np.abs(b))):.4g}: start them at zero.")


# ----------------------------------------------------------------------------- forward
@pytest.mark.check(points=1, name="forward output shape",
                   hint="H' = (H + 2*padding - k) // stride + 1, W' likewise; shape (N, F, H', W')")
def check_forward_shape(student, rng, partial):
    cases = []
    for N, C, H, W, F, k, s, p in ((2, 3, 7, 9, 4, 3, 1, 0), (2, 3, 8, 11, 4, 3, 2, 1),
                                   (1, 2, 11, 8, 3, 3, 3, 2), (3, 1, 9, 6, 2, 5, 2, 0)):
        x, w, b, _ = make_case(rng, N, C, H, W, F, k, s, p)

        def run(x=x, w=w, b=b, s=s, p=p, F=F, k=k):
            out = as_array(layer_with(student, w, b, s, p).forward(x), "forward(x)")
            expected = (x.shape[0], F, out_size(x.shape[2], k, s, p), out_size(x.shape[3], k, s, p))
            assert_shape(out, expected, "forward(x)", hint=shape_hint(out.shape, x.shape, F, k, s, p))

        cases.append((label(x, F, k, s, p), run))
    run_cases(cases, partial, "forward output shape")


@pytest.mark.check(points=2, name="forward matches tf.nn.conv2d (stride 1, no padding)",
                   hint="cross-correlation (no kernel flip) over all input channels, plus one bias per filter")
def check_forward_basic(student, rng, oracle, partial):
    cases = []
    for N, C, H, W, F, k in ((1, 1, 5, 6, 1, 3), (3, 3, 6, 8, 4, 3), (2, 2, 7, 5, 3, 1), (2, 4, 9, 7, 2, 5)):
        x, w, b, _ = make_case(rng, N, C, H, W, F, k, 1, 0)
        cases.append((label(x, F, k, 1, 0), lambda x=x, w=w, b=b: verify_forward(student, oracle, x, w, b, 1, 0)))
    run_cases(cases, partial, "forward")


@pytest.mark.check(points=3, name="forward matches tf.nn.conv2d with stride and padding",
                   hint="pad H and W with `padding` zeros, then move the window `stride` steps at a time")
def check_forward_stride_padding(student, rng, oracle, partial):
    cases = []
    for N, C, H, W, F, k, s, p in ((2, 3, 6, 8, 4, 3, 1, 1), (2, 2, 7, 5, 3, 3, 1, 2), (2, 3, 9, 8, 4, 3, 2, 0),
                                   (3, 2, 8, 11, 2, 3, 2, 1), (2, 3, 11, 10, 4, 3, 3, 2), (1, 2, 10, 7, 3, 2, 3, 0)):
        x, w, b, _ = make_case(rng, N, C, H, W, F, k, s, p)
        cases.append((label(x, F, k, s, p),
                      lambda x=x, w=w, b=b, s=s, p=p: verify_forward(student, oracle, x, w, b, s, p)))
    run_cases(cases, partial, "forward with stride/padding")


# ----------------------------------------------------------------------------- backward
BACKWARD_CASES = ((2, 3, 6, 7, 4, 3, 1, 0), (2, 2, 7, 5, 3, 3, 1, 1), (2, 3, 9, 8, 4, 3, 2, 0),
                  (3, 2, 8, 11, 2, 3, 2, 1), (2, 3, 11, 10, 4, 3, 3, 2), (1, 2, 7, 9, 3, 2, 2, 2))


def backward_cases(rng, fn, student, oracle, which=BACKWARD_CASES):
    cases = []
    for N, C, H, W, F, k, s, p in which:
        x, w, b, d = make_case(rng, N, C, H, W, F, k, s, p)
        cases.append((label(x, F, k, s, p),
                      lambda x=x, w=w, b=b, s=s, p=p, d=d: fn(student, oracle, x, w, b, s, p, d)))
    return cases


@pytest.mark.check(points=3, name="backward returns d_x matching TensorFlow",
                   hint="scatter d_out[n, f, i, j] * weights[f] back onto the input window it came from (mind stride and padding), then crop the padding")
def check_backward_dx(student, rng, oracle, partial):
    run_cases(backward_cases(rng, verify_dx, student, oracle), partial, "d_x")


@pytest.mark.check(points=2, name="backward stores d_weights matching TensorFlow",
                   hint="self.d_weights[f, c, di, dj] = sum over n, i, j of d_out[n, f, i, j] * x_padded[n, c, i*stride + di, j*stride + dj]")
def check_backward_dweights(student, rng, oracle, partial):
    run_cases(backward_cases(rng, verify_dweights, student, oracle), partial, "d_weights")


@pytest.mark.check(points=1, name="backward stores d_biases matching TensorFlow",
                   hint="self.d_biases = d_out summed over axes (0, 2, 3), shape (F,)")
def check_backward_dbiases(student, rng, oracle, partial):
    run_cases(backward_cases(rng, verify_dbiases, student, oracle, BACKWARD_CASES[::2]), partial, "d_biases")


@pytest.mark.check(points=1, name="backward agrees with a numerical gradient of your forward",
                   hint="backward must be the exact derivative of your own forward; compare with centred differences on a tiny input")
def check_numerical_gradient(student, rng, oracle):
    s, p = 2, 1
    x, w, b, d = make_case(rng, 1, 2, 3, 5, 2, 2, s, p)
    eps = 1e-2  # forward is linear in x, w and b, so centred differences are exact up to rounding
    tol = {"rtol": 1e-3, "atol": 1e-4}
    layer = layer_with(student, w, b, s, p)
    where = f"({label(x, 2, 2, s, p)})"
    forward = layer.forward  # one bound method handle, called many times

    def fwd(xx):
        out = as_array(forward(xx), "forward(x)")
        return assert_shape(out, (len(xx),) + d.shape[1:], f"forward(x) {where}", hint="fix the output shape first")

    # d_x: every perturbed copy of x in one batch (samples are independent), 2 calls instead of 2 per element.
    n = x.size
    batch = np.repeat(x, 2 * n, axis=0).reshape(2 * n, n)
    batch[np.arange(0, 2 * n, 2), np.arange(n)] += eps
    batch[np.arange(1, 2 * n, 2), np.arange(n)] -= eps
    out = fwd(batch.reshape((2 * n,) + x.shape[1:]))
    num_dx = (np.sum((out[0::2] - out[1::2]) * d, axis=(1, 2, 3)) / (2 * eps)).reshape(x.shape)

    def fwd_w(ww):
        layer.weights = ww
        return fwd(x)

    def fwd_b(bb):
        layer.biases = bb
        return fwd(x)

    num_dw = oracle.numerical_gradient(fwd_w, w, d, eps)
    layer.weights = w
    num_db = oracle.numerical_gradient(fwd_b, b, d, eps)
    layer.biases = b
    layer.forward(x)
    dx = layer.backward(d)
    assert_close(dx, num_dx, f"d_x vs the numerical gradient of your forward {where}", **tol)
    for name, num in (("d_weights", num_dw), ("d_biases", num_db)):
        grad = optional_grad(layer, name)  # a missing gradient is reported by its own check
        if grad is not None:
            assert_close(grad, num, f"{name} vs the numerical gradient of your forward {where}", **tol)


# ----------------------------------------------------------------------------- parameters and state
def working(what: str, verify, *args) -> None:
    """The checks below test properties that a layer doing nothing also has (it keeps its parameters,
    repeats itself, accepts float32). Their points go only to a layer that also computes: ``verify``
    must pass on the same case first."""
    try:
        verify(*args)
    except AssertionError as e:
        raise AssertionError(f"This check needs a working {what} first: {e}") from None


@pytest.mark.check(points=1, name="backward leaves weights and biases unchanged",
                   hint="backward only computes and stores gradients; update(learning_rate) is what changes the parameters")
def check_backward_keeps_parameters(student, rng, oracle):
    x, w, b, d = make_case(rng, 2, 2, 6, 7, 3, 3, 1, 1)
    working("backward (d_x)", verify_dx, student, oracle, x, w, b, 1, 1, d)
    layer = layer_with(student, w, b, 1, 1)
    layer.forward(x)
    layer.backward(d)
    w_after = as_array(layer.weights, "layer.weights after backward")
    b_after = as_array(layer.biases, "layer.biases after backward")
    d_b = d.sum(axis=(0, 2, 3))
    if b_after.shape == b.shape and close(b_after, d_b) and not close(b, d_b):
        raise AssertionError("backward wrote the bias gradient into self.biases: store it in self.d_biases "
                             "and leave the biases for update().")
    assert_close(w_after, w, "layer.weights after backward", rtol=1e-7, atol=1e-7,
                 hint="backward must not change the weights (no update inside backward).")
    assert_close(b_after, b, "layer.biases after backward", rtol=1e-7, atol=1e-7,
                 hint="backward must not change the biases (no update inside backward).")


@pytest.mark.check(points=2, name="update(learning_rate) applies one SGD step",
                   hint="weights -= learning_rate * d_weights; biases -= learning_rate * d_biases")
def check_update_sgd(student, rng, oracle):
    lr = 0.1
    x, w, b, d = make_case(rng, 2, 2, 6, 7, 3, 3, 1, 1)
    working("d_weights", verify_dweights, student, oracle, x, w, b, 1, 1, d)
    working("d_biases", verify_dbiases, student, oracle, x, w, b, 1, 1, d)
    layer = layer_with(student, w, b, 1, 1)
    layer.forward(x)
    layer.backward(d)
    dw = as_array(read_grad(layer, "d_weights", "after backward"), "layer.d_weights").astype(np.float64)
    db = as_array(read_grad(layer, "d_biases", "after backward"), "layer.d_biases").astype(np.float64)
    w0 = as_array(layer.weights, "layer.weights").astype(np.float64)
    b0 = as_array(layer.biases, "layer.biases").astype(np.float64)
    layer.update(lr)
    for name, before, grad, after in (("weights", w0, dw, layer.weights), ("biases", b0, db, layer.biases)):
        after = as_array(after, f"layer.{name} after update(0.1)")
        expected = before - lr * grad
        hint = f"update must do {name} -= learning_rate * d_{name}."
        if after.shape == expected.shape and not close(after, expected):
            if close(after, before + lr * grad):
                hint = "update adds the gradient: gradient descent subtracts it, " + hint
            elif close(after, before - grad):
                hint = "the learning rate is not applied: " + hint
            elif close(after, before - 2 * lr * grad):
                hint = "the step is applied twice (once in backward?): " + hint
            elif close(after, before):
                hint = f"update(0.1) left the {name} unchanged: " + hint
        assert_close(after, expected, f"layer.{name} after update(0.1)", **TOL, hint=hint)


@pytest.mark.check(points=1, name="repeated calls give the same results (no leftover state)",
                   hint="forward must not modify its input or keep state between calls; backward must overwrite (not accumulate) d_weights/d_biases and must not modify the cached input")
def check_no_state_leaks(student, rng, oracle):
    s, p = 2, 1
    x1, w, b, d = make_case(rng, 2, 2, 7, 6, 3, 3, s, p)
    working("forward", verify_forward, student, oracle, x1, w, b, s, p)
    working("backward (d_x)", verify_dx, student, oracle, x1, w, b, s, p, d)
    x2 = rng.normal(size=x1.shape)
    layer = layer_with(student, w, b, s, p)
    first = as_array(layer.forward(x1), "forward(x)")
    again = as_array(layer.forward(x1), "forward(x) (second call)")
    assert_close(again, first, "forward(x) called a second time on the same x", rtol=1e-9, atol=1e-9,
                 hint="forward must give the same result every time: does it modify x or keep state?")
    layer.forward(x2)
    dx_a = as_array(layer.backward(d), "backward(d_out)")
    grads_a = {name: optional_grad(layer, name) for name in ("d_weights", "d_biases")}
    dx_b = as_array(layer.backward(d), "backward(d_out) (second call)")
    grads_b = {name: optional_grad(layer, name) for name in ("d_weights", "d_biases")}
    assert_close(dx_b, dx_a, "d_x from a second backward(d_out) call", rtol=1e-9, atol=1e-9,
                 hint="backward must not modify the input cached by forward (e.g. in-place padding or +=).")
    for name in ("d_weights", "d_biases"):  # a missing gradient is reported by its own check
        a, b2 = grads_a[name], grads_b[name]
        if a is None or b2 is None:
            continue
        if b2.shape == a.shape and np.any(a) and close(b2, 2 * a):
            raise AssertionError(f"{name} doubled on a second backward call: assign it (=), do not accumulate (+=).")
        assert_close(b2, a, f"{name} after a second backward(d_out) call", rtol=1e-9, atol=1e-9,
                     hint=f"a second backward with the same d_out must give the same {name}: assign it (=, not +=) "
                          "and do not modify the input cached by forward (no in-place -=, *= or padding on it).")
    # The cache must hold the latest input: the same gradients as a fresh layer that saw only x2.
    fresh = layer_with(student, w, b, s, p)
    fresh.forward(x2)
    fresh_dx = as_array(fresh.backward(d), "backward(d_out)")
    assert_close(dx_b, fresh_dx, "d_x after forward(x1), forward(x2), backward(d_out) vs a fresh layer", **TOL,
                 hint="backward must use the input of the most recent forward call.")
    fresh_dw = optional_grad(fresh, "d_weights")
    if fresh_dw is not None and grads_b["d_weights"] is not None:
        assert_close(grads_b["d_weights"], fresh_dw,
                     "d_weights after forward(x1), forward(x2), backward(d_out) vs a fresh layer", **TOL,
                     hint="backward must use the input of the most recent forward call.")


@pytest.mark.check(points=1, name="float32 inputs work",
                   hint="float32 x, weights and d_out must give finite results equal to the float64 ones at float32 precision; do not hard-code integer or float64-only buffers")
def check_float32(student, rng, oracle):
    s, p = 1, 1
    x, w, b, d = make_case(rng, 2, 3, 6, 7, 4, 3, s, p)
    working("forward", verify_forward, student, oracle, x, w, b, s, p)
    working("backward (d_x)", verify_dx, student, oracle, x, w, b, s, p, d)
    x32, w32, b32, d32 = (a.astype(np.float32) for a in (x, w, b, d))
    x64, w64, b64, d64 = (a.astype(np.float64) for a in (x32, w32, b32, d32))
    ref = layer_with(student, w64, b64, s, p)
    out64 = as_array(ref.forward(x64), "forward(x) on float64 input")
    dx64 = as_array(ref.backward(d64), "backward(d_out) on float64 input")
    layer = layer_with(student, w32, b32, s, p)
    out = as_array(layer.forward(x32), "forward(x) on float32 input")
    dx = as_array(layer.backward(d32), "backward(d_out) on float32 input")
    tol = {"rtol": 1e-4, "atol": 1e-4}
    assert_close(out, out64, "forward(x) on float32 input vs the same values in float64", **tol,
                 hint="keep float32 inputs as floats (no integer buffers, no truncation).")
    assert_close(dx, dx64, "d_x on float32 input vs the same values in float64", **tol,
                 hint="keep float32 inputs as floats (no integer buffers, no truncation).")

"""Independent reference results for the hidden checks, and the grader's one import of TensorFlow.

Every function takes and returns float64 NumPy arrays in NCHW layout (the course's layout).
The convolution and pooling oracles run TensorFlow's own kernels (``tf.nn.conv2d``,
``tf.nn.max_pool2d``, ``tf.nn.avg_pool2d``) and take gradients with ``tf.GradientTape``;
``numerical_gradient`` is plain NumPy centred differences, for cross-checks on tiny inputs.
None of this uses the course's own solution.

TensorFlow is imported lazily, once per process, on the first call that needs it: ``tensorflow()``
is the one place that imports it (``keras_models`` goes through it too). The checks reach this
module through the ``oracle`` fixture (``conftest.py``).
"""
from __future__ import annotations

import os

import numpy as np

_TF = None


def tensorflow():
    """TensorFlow, imported on first use and cached for the life of the process."""
    global _TF
    if _TF is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf  # noqa: PLC0415 - deliberately lazy

        _TF = tf
    return _TF


def pair(v) -> tuple[int, int]:
    """An int or an (h, w) pair as (h, w): how pool sizes, strides and kernel sizes are given."""
    if isinstance(v, (tuple, list)):
        a, b = v
        return int(a), int(b)
    return int(v), int(v)


def _nhwc(x: np.ndarray):
    tf = tensorflow()
    return tf.constant(np.transpose(np.asarray(x, dtype=np.float64), (0, 2, 3, 1)))


def _nchw(t) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(t.numpy(), (0, 3, 1, 2)))


# ----------------------------------------------------------------------------- convolution
def _conv_nhwc(x_nhwc, w_kkcf, b, stride: int, pad: int):
    tf = tensorflow()
    xp = tf.pad(x_nhwc, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    out = tf.nn.conv2d(xp, w_kkcf, strides=[1, int(stride), int(stride), 1], padding="VALID")
    return out + tf.reshape(b, (1, 1, 1, -1))


def _filters(w: np.ndarray):
    """(F, C, k, k) -> TensorFlow's (k, k, C, F)."""
    return tensorflow().constant(np.transpose(np.asarray(w, dtype=np.float64), (2, 3, 1, 0)))


def conv2d_forward(x, w, b, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Cross-correlation of x (N, C, H, W) with w (F, C, k, k) plus b (F,): (N, F, H', W')."""
    tf = tensorflow()
    out = _conv_nhwc(_nhwc(x), _filters(w), tf.constant(np.asarray(b, dtype=np.float64)), stride, pad)
    return _nchw(out)


def conv2d_grads(x, w, b, stride: int, pad: int, d_out) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``sum(conv2d_forward(x, w, b) * d_out)``: (d_x, d_w, d_b) in the shapes of x, w, b."""
    tf = tensorflow()
    xt, wt = _nhwc(x), _filters(w)
    bt = tf.constant(np.asarray(b, dtype=np.float64))
    gt = _nhwc(d_out)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt, bt])
        loss = tf.reduce_sum(_conv_nhwc(xt, wt, bt, stride, pad) * gt)
    dx, dw, db = tape.gradient(loss, [xt, wt, bt])
    return _nchw(dx), np.ascontiguousarray(np.transpose(dw.numpy(), (3, 2, 0, 1))), db.numpy()


# ----------------------------------------------------------------------------- pooling
def _pool(kind: str, x_nhwc, pool, stride):
    tf = tensorflow()
    ph, pw = pair(pool)
    sh, sw = pair(pool if stride is None else stride)
    fn = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    return fn(x_nhwc, ksize=[1, ph, pw, 1], strides=[1, sh, sw, 1], padding="VALID")


def _pool_forward(kind, x, pool, stride):
    return _nchw(_pool(kind, _nhwc(x), pool, stride))


def _pool_grad(kind, x, pool, stride, d_out):
    tf = tensorflow()
    xt, gt = _nhwc(x), _nhwc(d_out)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(_pool(kind, xt, pool, stride) * gt)
    return _nchw(tape.gradient(loss, xt))


def max_pool(x, pool=2, stride=None) -> np.ndarray:
    """Max pooling, no padding; ``pool``/``stride`` an int or (h, w); stride None = pool."""
    return _pool_forward("max", x, pool, stride)


def max_pool_grad(x, pool, stride, d_out) -> np.ndarray:
    """d_x of max pooling (TensorFlow's routing; use tie-free x for exact comparisons)."""
    return _pool_grad("max", x, pool, stride, d_out)


def avg_pool(x, pool=2, stride=None) -> np.ndarray:
    """Average pooling, padding VALID; ``pool``/``stride`` an int or (h, w)."""
    return _pool_forward("avg", x, pool, stride)


def avg_pool_grad(x, pool, stride, d_out) -> np.ndarray:
    """d_x of average pooling."""
    return _pool_grad("avg", x, pool, stride, d_out)


# ----------------------------------------------------------------------------- numerical
def numerical_gradient(f, x, d_out, eps: float = 1e-6) -> np.ndarray:
    """Centred differences of ``sum(f(x) * d_out)`` with respect to x (pure NumPy, float64).

    ``f`` maps an array shaped like x to an array shaped like d_out. Costs 2·x.size calls of f:
    for tiny inputs only.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    d_out = np.asarray(d_out, dtype=np.float64)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = np.sum(np.asarray(f(x.copy()), dtype=np.float64) * d_out)
        flat[i] = old - eps
        minus = np.sum(np.asarray(f(x.copy()), dtype=np.float64) * d_out)
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad

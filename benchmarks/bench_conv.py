"""Reference Conv2d forward+backward against the seed's naive loops and TensorFlow on the CPU, in one run.

    python3 tasks.py bench                # all benchmarks
    .venv/bin/python benchmarks/bench_conv.py [--repeats 5] [--naive-limit 2]

The reference comes from the source notebook (the single home of the solutions). TensorFlow runs
``tf.nn.conv2d`` (NHWC, the layout its CPU kernels support) under a GradientTape for d_x, d_w, d_b,
eagerly and as a ``tf.function``; the layout transposes are not timed. The naive loops are the seed
notebook's per-pixel style, timed on a slice of the batch and scaled up (they take minutes in full).
Goal: the reference is no slower than TensorFlow on every shape.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHAPES = [  # (N, C, F, H, k, stride, pad)
    (128, 1, 8, 28, 3, 1, 1),
    (64, 16, 32, 28, 3, 1, 1),
    (100, 3, 25, 31, 3, 2, 1),
]


def naive_forward_backward(x, w, b, stride, pad, d_out):
    """The seed notebook's style: a Python loop over every sample, filter and output pixel."""
    N, C, H, W = x.shape
    F, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    out[n, f, i, j] = np.sum(xp[n, :, i * stride:i * stride + k, j * stride:j * stride + k] * w[f]) + b[f]
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    win = (n, slice(None), slice(i * stride, i * stride + k), slice(j * stride, j * stride + k))
                    dw[f] += d_out[n, f, i, j] * xp[win]
                    dxp[win] += d_out[n, f, i, j] * w[f]
    return out, dxp[:, :, pad:pad + H, pad:pad + W], dw, d_out.sum(axis=(0, 2, 3))


def best_of(fns, repeats):
    """Best time of each function, the runs interleaved so that a busy machine slows all alike."""
    for fn in fns:
        fn()  # warm-up (tf.function tracing, caches)
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def main(repeats: int = 30, naive_limit: int = 2) -> list[dict]:
    import tensorflow as tf

    from autograder.assignment.solutions import solution_module

    Conv2d = solution_module("01_scratch_cnn").Conv2d
    rows = []
    for (N, C, F, H, k, s, p) in SHAPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        layer = Conv2d(C, F, k, stride=s, padding=p)
        layer.weights = layer.weights.astype(np.float32)
        layer.biases = layer.biases.astype(np.float32)
        out = layer.forward(x)
        d_out = rng.standard_normal(out.shape).astype(np.float32)

        def ref():
            layer.forward(x)
            layer.backward(d_out)

        xt = tf.constant(x.transpose(0, 2, 3, 1))
        wt = tf.Variable(layer.weights.transpose(2, 3, 1, 0))
        bt = tf.Variable(layer.biases)
        dt = tf.constant(d_out.transpose(0, 2, 3, 1))

        def tf_step(xt=xt, wt=wt, bt=bt, dt=dt):
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y = tf.nn.conv2d(tf.pad(xt, [[0, 0], [p, p], [p, p], [0, 0]]), wt, s, "VALID") + bt
                loss = tf.reduce_sum(y * dt)
            return tape.gradient(loss, [xt, wt, bt])

        tf_graph = tf.function(tf_step)
        t_ref, t_tf, t_tfg = best_of([ref, lambda: [g.numpy() for g in tf_step()],
                                      lambda: [g.numpy() for g in tf_graph()]], repeats)
        n_small = min(N, naive_limit)
        t0 = time.perf_counter()
        naive_forward_backward(x[:n_small].astype(np.float64), layer.weights.astype(np.float64),
                               layer.biases.astype(np.float64), s, p, d_out[:n_small].astype(np.float64))
        t_naive = (time.perf_counter() - t0) * N / n_small
        rows.append(dict(shape=f"({N}, {C}->{F}, {H}, k{k}, s{s}, p{p})", ref=t_ref, tf=t_tf, tf_graph=t_tfg,
                         naive=t_naive))
    print(f"{'shape (N, C->F, H, k, stride, pad)':<36} {'reference':>10} {'TF eager':>10} {'TF graph':>10} "
          f"{'naive loops':>12} {'TF/ref':>7} {'naive/ref':>10}")
    for r in rows:
        print(f"{r['shape']:<36} {r['ref'] * 1e3:>8.1f}ms {r['tf'] * 1e3:>8.1f}ms {r['tf_graph'] * 1e3:>8.1f}ms "
              f"{r['naive']:>11.1f}s {min(r['tf'], r['tf_graph']) / r['ref']:>7.2f} {r['naive'] / r['ref']:>10.0f}")
    print("forward+backward, float32, best of", repeats, "runs; TF/ref > 1 means the reference is faster "
          "than the faster of TensorFlow's two modes; naive timed on", naive_limit, "samples and scaled.")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--naive-limit", type=int, default=2, help="samples the naive loops are timed on")
    main(**vars(ap.parse_args()))

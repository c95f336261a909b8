"""Fixtures of the hidden checks that do not depend on the sandbox.

``student``, ``partial`` and ``grading_data`` come from the grader's pytest plugin
(``autograder/grading/plugin.py``); this file adds ``rng`` and ``oracle`` and registers the
``check`` marker.

Only ``check_*.py`` modules are collected (``pytest.ini``); the others are the checks' library:
``assertions`` (generic assertions and partial credit), ``conv2d`` (Problems 1 and 2),
``pooling`` (Problems 4 and 5), ``keras_models`` (Problems 3 and 8) and ``oracles`` (TensorFlow).
No check module imports another.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "check(points, name, hint): a graded check worth `points`, reported as "
        "'Problem N: name', with a student-facing `hint` of what to look at",
    )


def check_key(node) -> str:
    """``check_p01_conv2d::check_forward_values``: independent of rootdir and of the install path."""
    module = getattr(node, "module", None)
    mod = module.__name__.rsplit(".", 1)[-1] if module is not None else node.nodeid.split("::")[0]
    return f"{mod}::{node.name}"


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the check's name: the same inputs on every run."""
    return np.random.default_rng(zlib.crc32(check_key(request.node).encode()))


@pytest.fixture(scope="session")
def oracle():
    """``autograder.checks.oracles`` (TensorFlow is imported on its first use, once per process)."""
    from autograder.checks import oracles

    return oracles

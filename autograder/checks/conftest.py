"""Fixtures of the hidden checks that do not depend on the sandbox.

``student``, ``partial`` and ``grading_data`` come from the harness plugin
(``autograder/harness.py``); this file adds ``rng`` and ``oracle`` and registers the ``check``
marker.
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
    """``autograder.oracles`` (TensorFlow is imported on its first use, once per process)."""
    from autograder import oracles

    return oracles

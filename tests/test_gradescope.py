"""Gradescope, run the way Gradescope runs it: the autograder zip unpacked into ``<root>/source``,
``setup.sh`` run once as root, then for each submission ``<root>/run_autograder`` with the student's
files in ``<root>/submission`` and ``results.json`` read from ``<root>/results``. ``<root>`` is a
temporary folder (``AUTOGRADER_ROOT``; Gradescope's is /autograder) and HOME a temporary home, so
the set-up's Keras cache lands there and not in this machine's.

The environment is what Gradescope's image gives a root shell: PATH with the system's Python 3.11,
HOME, nothing of this project's (no PYTHONPATH, no MNIST_PATH, no venv on PATH).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from autograder import course
from autograder.assignment.gradescope import build_zip
from autograder.assignment.solutions import BUGGY_OVERRIDES, make_submission

# Gradescope's results.json specification: the top-level and per-test fields and their types.
TOP_FIELDS = {"score": (int, float), "execution_time": (int, float), "output": str, "tests": list,
              "extra_data": dict, "visibility": str, "stdout_visibility": str, "output_format": str,
              "leaderboard": list}
TEST_FIELDS = {"name": str, "score": (int, float), "max_score": (int, float), "status": str, "output": str,
               "visibility": str, "number": str, "tags": list, "extra_data": dict, "name_format": str,
               "output_format": str}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def validate_results(data: dict) -> None:
    """Assert that ``data`` uses only the specification's fields, with their types and values."""
    assert set(data) <= set(TOP_FIELDS), set(data) - set(TOP_FIELDS)
    for key, value in data.items():
        assert isinstance(value, TOP_FIELDS[key]), (key, value)
    assert "score" in data or all("score" in t for t in data["tests"]) or not data["tests"]
    for t in data["tests"]:
        assert set(t) <= set(TEST_FIELDS), set(t) - set(TEST_FIELDS)
        for key, value in t.items():
            assert isinstance(value, TEST_FIELDS[key]), (t.get("name"), key, value)
        assert t["status"] in ("passed", "failed"), t
        assert t["visibility"] in VISIBILITY, t
        assert 0 <= t["score"] <= t["max_score"], t
        assert (t["status"] == "passed") == (t["score"] == t["max_score"]), t
    json.dumps(data, allow_nan=False)


def gradescope_env(root: Path, home: Path) -> dict[str, str]:
    python_bin = Path(sys.base_prefix) / "bin"   # the system's python3.11, as on Gradescope's image
    return {"HOME": str(home), "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "AUTOGRADER_ROOT": str(root)}


@pytest.fixture(scope="module")
def autograder_root(tmp_path_factory):
    """``<root>/source`` unpacked from the zip, ``setup.sh`` run: Gradescope's image, built."""
    base = tmp_path_factory.mktemp("gradescope")
    (X, y), (Xt, yt) = _load("offline")   # the offline set stands in for Gradescope's download
    npz = base / "mnist.npz"
    np.savez_compressed(npz, x_train=X, y_train=y, x_test=Xt, y_test=yt)
    archive = build_zip(base / "autograder.zip", mnist=npz)
    root, home = base / "autograder", base / "home"
    home.mkdir()
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert {"setup.sh", "run_autograder", "nbgrader_config.py", "requirements.txt", "data/mnist.npz"} <= set(names)
        assert not any(n.startswith((".venv/", ".git/")) for n in names)
        z.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")  # Gradescope does this
    env = gradescope_env(root, home)
    proc = subprocess.run(["bash", str(root / "source" / "setup.sh")], cwd=root / "source", env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "grading data: data/mnist.npz from the autograder zip" in proc.stdout
    assert (home / ".keras" / "datasets" / "mnist.npz").is_file()
    return root, env


def _load(source: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mnist_data_for_test", course.SOURCE_DIR / "mnist_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_mnist(source)


def run_submission(root: Path, env: dict, notebooks: Path) -> tuple[int, dict, str]:
    for folder in ("submission", "results"):
        shutil.rmtree(root / folder, ignore_errors=True)
    shutil.copytree(notebooks, root / "submission")
    (root / "results").mkdir()
    (root / "submission_metadata.json").write_text(json.dumps(
        {"id": 123456, "users": [{"email": "ada@example.edu", "name": "Ada", "sid": "1"}]}))
    proc = subprocess.run(["bash", str(root / "run_autograder")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=1200)
    results = root / "results" / "results.json"
    assert results.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.returncode, json.loads(results.read_text()), proc.stdout + proc.stderr


def by_problem(data: dict) -> dict[int, float]:
    out: dict[int, float] = {}
    for t in data["tests"]:
        problem = int(t["name"].split(":")[0].split()[1])
        out[problem] = out.get(problem, 0) + t["score"]
    return out


def test_full_empty_and_buggy_submissions(autograder_root, tmp_path):
    root, env = autograder_root
    rc, full, log = run_submission(root, env, make_submission(tmp_path / "full"))
    assert rc == 0, log[-3000:]
    validate_results(full)
    assert full["score"] == 86 and sum(t["max_score"] for t in full["tests"]) == 86
    assert all(t["status"] == "passed" for t in full["tests"])
    # The written answers are not autograder tests; the instructor reads them in output and extra_data.
    assert not {9, 11} & set(by_problem(full))
    assert set(full["extra_data"]["manual_answers"]) == {"p9_survey", "p11_survey"}
    assert full["extra_data"]["student"] == "ada@example.edu"

    rc, empty, log = run_submission(root, env, make_submission(tmp_path / "empty", solved=False))
    assert rc == 0, log[-3000:]
    validate_results(empty)
    assert empty["score"] == 0 and sum(t["max_score"] for t in empty["tests"]) == 86
    assert all("NotImplementedError" in t["output"] for t in empty["tests"] if t["name"].startswith("Problem 1:"))

    rc, buggy, log = run_submission(root, env, make_submission(tmp_path / "buggy", overrides=BUGGY_OVERRIDES))
    assert rc == 0, log[-3000:]
    validate_results(buggy)
    lost = {p: s for p, s in by_problem(full).items() if by_problem(buggy)[p] < s}
    assert set(lost) == {3, 5, 10}, by_problem(buggy)   # the three planted bugs, nothing else


def test_a_broken_grader_environment_gives_no_score(autograder_root, tmp_path):
    """Without its data (Keras's cache gone, no network, no offline set beside this copy) the grader
    writes a results.json that says the submission could not be graded and why: no score."""
    root, env = autograder_root
    cache = Path(env["HOME"]) / ".keras" / "datasets" / "mnist.npz"
    moved = cache.with_suffix(".away")
    cache.rename(moved)
    try:
        rc, data, log = run_submission(root, env, make_submission(tmp_path / "full"))
    finally:
        moved.rename(cache)
    assert rc == 3, log[-3000:]
    validate_results(data)
    assert "score" not in data and data["tests"] == []
    assert data["extra_data"]["graded"] is False
    assert "could not be graded" in data["output"] and "MNIST" in data["output"]
    assert "c.GradingData.mnist" in data["output"]   # the fix is named


def test_a_submission_without_the_notebooks_says_what_is_missing(autograder_root, tmp_path):
    root, env = autograder_root
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.txt").write_text("forgot the notebooks")
    rc, data, log = run_submission(root, env, tmp_path / "nothing")
    assert rc == 0, log[-3000:]
    validate_results(data)
    assert data["score"] == 0 and sum(t["max_score"] for t in data["tests"]) == 86
    messages = " ".join(t["output"] for t in data["tests"])
    assert all(f"{nb}.ipynb is missing" in messages for nb in ("01_scratch_cnn", "02_keras", "03_theory"))

#!/usr/bin/env python3
"""The project's entry point: ``python3 tasks.py main`` and ``python3 tasks.py test``.

Needs nothing but Python 3.11. Each task first makes sure ``.venv`` exists and holds exactly
``requirements.txt`` (re-installed only when that file changes), then runs inside it with the
venv's ``bin/`` on PATH, so nbgrader finds ``alembic``.

    python3 tasks.py main      set up, generate release/ from source/, grade the example submissions
    python3 tasks.py test      set up, run the whole test suite (what .ci/run calls)
    python3 tasks.py release   set up, regenerate release/ only
    python3 tasks.py bench     set up, run every benchmark in benchmarks/ and print the figures
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PY = BIN / "python"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = VENV / ".requirements.sha256"


def ensure_venv() -> None:
    """Create .venv and install the pinned requirements, unless they are installed already."""
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == want and PY.exists():
        return
    if not PY.exists():
        print(f"[setup] creating {VENV.relative_to(ROOT)}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("[setup] installing requirements.txt (first run only; about a minute)", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    STAMP.write_text(want + "\n")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"  # nbgrader shells out to alembic
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    e.setdefault("MPLBACKEND", "Agg")
    e.setdefault("MNIST_PATH", "offline")  # no network here; online users unset it or point it at mnist.npz
    e["VIRTUAL_ENV"] = str(VENV)
    return e


def run(*args: str, extra_env: dict[str, str] | None = None) -> int:
    e = env()
    e.update(extra_env or {})
    return subprocess.run([str(PY), *args], cwd=ROOT, env=e).returncode


def task_release() -> int:
    return run("-m", "autograder", "release")


def task_main() -> int:
    rc = task_release()
    if rc:
        return rc
    return run("-m", "autograder", "demo")


def task_test() -> int:
    # CNN2D_FAST shortens the training cells of the source notebooks (see source/cnn2d/mnist_data.py).
    # pytest.ini's testpaths = tests: extra arguments may name single files instead.
    return run("-m", "pytest", *sys.argv[2:], extra_env={"CNN2D_FAST": "1"})


def task_bench() -> int:
    rc = 0
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        print(f"\n=== {script.name}", flush=True)
        rc |= run(str(script), *sys.argv[2:])
    return rc


TASKS = {"main": task_main, "test": task_test, "release": task_release, "bench": task_bench}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        print(__doc__)
        sys.exit(2)
    ensure_venv()
    sys.exit(TASKS[sys.argv[1]]())

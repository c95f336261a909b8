#!/usr/bin/env python3
"""The project's entry point: ``python3 tasks.py main`` and ``python3 tasks.py test``.

Needs nothing but Python 3.11. Each task first does the set-up a person does once (and only what a
person does: the tests prove that the README's commands work after exactly this):

- ``.venv`` holds exactly ``requirements.txt`` (the one home of the pins) and the grader itself,
  installed from ``pyproject.toml`` in editable mode, so ``import autograder`` works in any shell or
  kernel of ``.venv`` with no path variables set;
- the Jupyter kernel ``cnn2d`` (this ``.venv``'s Python) is registered inside ``.venv``; the
  notebooks name it in their metadata;
- ``python3 tasks.py test`` also installs Debian's ``chromium`` when missing (the browser tests).

Re-installation happens only when requirements.txt or pyproject.toml change. Tasks then run
``.venv/bin/python`` with the venv's ``bin/`` first on PATH, as ``source .venv/bin/activate`` does.

    python3 tasks.py setup     set up only (what the other tasks do first)
    python3 tasks.py main      set up, generate release/ from source/, grade the example submissions
    python3 tasks.py test      set up, run the whole test suite (what .ci/run calls; two streams)
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
PYPROJECT = ROOT / "pyproject.toml"
STAMP = VENV / ".setup.sha256"
KERNEL = "cnn2d"            # the notebooks' kernelspec name (their metadata); nbgrader_config.py uses it too
SETUP_VERSION = "2"         # bump when the set-up steps below change


def ensure_venv() -> None:
    """Create .venv, install the pins and the grader, register the kernel, unless already done."""
    digest = hashlib.sha256(SETUP_VERSION.encode())
    for f in (REQUIREMENTS, PYPROJECT):
        digest.update(f.read_bytes())
    want = digest.hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == want and PY.exists():
        return
    if not PY.exists():
        print(f"[setup] creating {VENV.relative_to(ROOT)}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("[setup] installing requirements.txt and the grader (first run only; about a minute)", flush=True)
    pip = [str(PY), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    # The grader itself, editable: the checks and the release stay where the instructor edits them.
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True)
    subprocess.run([str(PY), "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL,
                    "--display-name", "Python 3 (cnn2d)"], check=True, stdout=subprocess.DEVNULL)
    STAMP.write_text(want + "\n")


DEBIAN_PACKAGES = {  # what the tests need from Debian: the file that shows it is there, and why
    "chromium": ("/usr/bin/chromium", "the browser tests drive it through Playwright (playwright install cannot "
                 "download browsers here)"),
    "bubblewrap": ("/usr/bin/bwrap", "an unprivileged grader isolates sandboxes with it; the hostile catalogue "
                   "also runs as nobody"),
}


def ensure_debian_packages() -> None:
    """Install the Debian packages the tests need when missing; this needs root, as CI has."""
    missing = [name for name, (path, _) in DEBIAN_PACKAGES.items() if not Path(path).exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        for name in missing:
            print(f"[setup] {name} is missing and installing it needs root: sudo apt-get install {name} "
                  f"({DEBIAN_PACKAGES[name][1]}; those tests will fail without it)", flush=True)
        return
    print(f"[setup] installing Debian's {', '.join(missing)} for the tests", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    subprocess.run(["apt-get", "update", "-q"], check=True, **quiet)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=True, **quiet)


def env() -> dict[str, str]:
    """What ``source .venv/bin/activate`` gives a person's shell, and nothing more."""
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
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
    """The whole suite in two streams (pytest-xdist, a test file per stream at a time, so its module
    fixtures are built once): much of it waits on a sandbox that uses one core (one BLAS thread) or
    on a time limit, so two streams use a 2-core machine that one leaves half idle. The tests marked
    ``alone`` change the checkout itself (test_readme regenerates release/, which the others read)
    and run after, by themselves. Extra arguments run just those, in one stream (pytest.ini's
    testpaths = tests; they may name single files)."""
    ensure_debian_packages()
    if sys.argv[2:]:
        return run("-m", "pytest", *sys.argv[2:])
    streams = str(max(1, min(2, os.cpu_count() or 1)))
    together = run("-m", "pytest", "-n", streams, "--dist", "loadfile", "-m", "not alone")
    alone = run("-m", "pytest", "-m", "alone")
    return together or alone


def task_bench() -> int:
    rc = 0
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        print(f"\n=== {script.name}", flush=True)
        rc |= run(str(script), *sys.argv[2:])
    return rc


TASKS = {"setup": lambda: 0, "main": task_main, "test": task_test, "release": task_release, "bench": task_bench}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        print(__doc__)
        sys.exit(2)
    ensure_venv()
    sys.exit(TASKS[sys.argv[1]]())

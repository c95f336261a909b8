"""Run nbgrader's own commands from the grader: the one place the package builds their environment
(``nbgrader_env``) and command line (``run``, ``nbgrader``; release.py generates the release with
them). ``autograde`` runs ``nbgrader autograde`` on one submission in a throw-away copy of the course
and reads the points back from nbgrader's own gradebook. Used to show that nbgrader and the CLI
agree, and to time the two side by side (benchmarks/bench_grading.py). ``tasks.py`` has its twin
``env()``: it runs under the system python before this package is installed.

    points = autograde(Path("build/examples/submissions/full-solution"), "alice", Path("/tmp/course"))
    # {"p1_tests": 20.0, "p2_tests": 5.0, ...}
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from autograder.course import ASSIGNMENT, ROOT


def nbgrader_env() -> dict[str, str]:
    """What ``source .venv/bin/activate`` gives: this environment's bin/ first on PATH (nbgrader
    shells out to ``alembic``). Nothing else: the package is installed, the kernel registered.
    ``PYTEST_CURRENT_TEST`` is dropped: with it ipykernel stops forwarding the kernel's fd 2, which
    would hide from a test the stderr that makes nbgrader score a cell 0."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``nbgrader ARGS...`` in ``cwd`` with this environment's nbgrader, output captured; never raises."""
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=nbgrader_env(),
                          capture_output=True, text=True)


def nbgrader(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``run``, raising RuntimeError (with the end of nbgrader's output) when nbgrader fails."""
    proc = run(*args, cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def prepare_course(course: Path) -> Path:
    """A copy of the course (source/ + config) with its own gradebook, the assignment generated."""
    course = Path(course)
    if course.exists():
        shutil.rmtree(course)
    course.mkdir(parents=True)
    shutil.copytree(ROOT / "source", course / "source")
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    nbgrader("generate_assignment", ASSIGNMENT, "--force", cwd=course)
    return course


def autograde(submission: Path, student: str, course: Path, prepared: bool = False) -> dict[str, float]:
    """Autograde ``submission`` (a folder of the cnn2d notebooks) as ``student``; return the points of
    every autograded test cell, by grade_id, from nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    course = Path(course) if prepared else prepare_course(course)
    dest = course / "submitted" / student / ASSIGNMENT
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(submission, dest)
    nbgrader("autograde", ASSIGNMENT, "--student", student, "--force", cwd=course)
    points: dict[str, float] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission_row = gb.find_submission(ASSIGNMENT, student)
        for nb in submission_row.notebooks:
            for grade in nb.grades:
                if grade.cell.cell_type == "code" and grade.auto_score is not None:
                    points[grade.name] = float(grade.score)
    return points

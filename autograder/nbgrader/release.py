"""Generate the student version: ``source/cnn2d`` -> ``release/cnn2d`` with nbgrader.

    python -m autograder release        (or: python3 tasks.py release)

Its one job: run nbgrader's ``generate_assignment`` (through ``autograder.nbgrader.autograde``, the
one home of nbgrader's environment) and summarise the release it made.

``generate_release(root)`` runs ``nbgrader generate_assignment cnn2d --force`` in the course root
(this also records the assignment, its notebooks and hidden tests in the gradebook, which
``nbgrader autograde`` needs). ``generate_release(root, dest)`` does the same in a temporary copy of
the course (``source/`` + ``nbgrader_config.py``) and copies the result to ``dest``, leaving
``release/`` and the gradebook of ``root`` alone (the tests compare that with the committed release).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from autograder.assignment import metadata
from autograder.course import ASSIGNMENT, ROOT
from autograder.nbgrader import autograde


def _run_nbgrader(course: Path) -> None:
    args = ("generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN")
    proc = autograde.run(*args, cwd=course)
    if proc.returncode != 0:
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed in {course} (exit {proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def generate_release(root: Path = ROOT, dest: Path | None = None) -> list[Path]:
    """Generate the release of ``cnn2d``; returns the files produced (under root/release/cnn2d or dest)."""
    root = Path(root).resolve()
    if dest is None:
        _run_nbgrader(root)
        return _files(root / "release" / ASSIGNMENT)
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="cnn2d-release-") as tmp:
        course = Path(tmp)
        shutil.copytree(root / "source", course / "source",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints"))
        shutil.copy2(root / "nbgrader_config.py", course / "nbgrader_config.py")
        _run_nbgrader(course)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(course / "release" / ASSIGNMENT, dest)
    return _files(dest)


def summarize(notebook: Path) -> dict:
    """Answer cells and points of one release notebook, from its nbgrader metadata."""
    nb = nbformat.read(notebook, as_version=4)
    answers = auto = manual = 0
    for cell in nb.cells:
        if metadata.is_solution(cell) and cell.cell_type == "code":
            answers += 1
        if metadata.is_grade(cell):
            if cell.cell_type == "code":
                auto += metadata.points(cell)
            else:
                manual += metadata.points(cell)
                answers += 1
    return {"notebook": Path(notebook).name, "answer_cells": answers, "autograded": auto, "manual": manual}


def main() -> int:
    files = generate_release(ROOT)
    rows = [summarize(p) for p in files if p.suffix == ".ipynb"]
    print(f"release/{ASSIGNMENT}: {len(files)} files")
    print(f"{'notebook':<24}{'answer cells':>13}{'autograded':>12}{'manual':>8}")
    for r in rows:
        print(f"{r['notebook']:<24}{r['answer_cells']:>13}{r['autograded']:>12g}{r['manual']:>8g}")
    print(f"{'total':<24}{sum(r['answer_cells'] for r in rows):>13}"
          f"{sum(r['autograded'] for r in rows):>12g}{sum(r['manual'] for r in rows):>8g}")
    others = [p.name for p in files if p.suffix != ".ipynb"]
    if others:
        print("other files:", ", ".join(others))
    return 0


if __name__ == "__main__":
    sys.exit(main())

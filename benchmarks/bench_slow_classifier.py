"""Slow but correct hand-ins: what grading them costs and what they score (Problem 7's ladder).

    .venv/bin/python benchmarks/bench_slow_classifier.py [--only NAME ...] [--code DIR]

Each hand-in is the full source solution with one Conv2d swapped in (the catalogue's correct
variants, tests/fixtures/catalogue/correct/), graded whole (three notebooks) by the CLI as a fresh
process, the way one Gradescope run pays for it:

    vectorised   the source solution (im2col)
    loops        conv_loops.py: the course material's loops over output rows, columns and filters, the batch vectorised
    naive        conv_naive_cs231n.py: CS231n's naive loops over images, filters and output pixels
    per_pixel    conv_per_pixel.py: loops over images, filters, output pixels and input channels

CPU is the grader's process and every sandbox together (``RUSAGE_CHILDREN`` of the CLI process:
its sandboxes are its reaped children), so it does not depend on how busy the machine is; wall
time does. ``--code DIR`` grades with the grader of another checkout (e.g. a ``git worktree`` of an
older commit: ``PYTHONPATH=DIR``, run from DIR), for before/after figures. Goal: ``loops`` in at most
60 s of CPU, ``vectorised`` with every point.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.assignment.solutions import make_submission
from autograder.course import ROOT

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CORRECT = ROOT / "tests" / "fixtures" / "catalogue" / "correct"
HANDINS = {"vectorised": None, "loops": "conv_loops.py", "naive": "conv_naive_cs231n.py", "per_pixel": "conv_per_pixel.py"}
# The catalogue's layers take the stub's rng= keyword, which the source classifier passes.
WITH_RNG = [("p1_conv2d", "stride=1, padding=0):", "stride=1, padding=0, *, rng=None):")]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def grade(submission: Path, out: Path, code: Path | None) -> tuple[float, float, dict]:
    env = dict(os.environ)
    cwd = ROOT
    if code is not None:
        env["PYTHONPATH"] = str(code)
        cwd = code
    cpu, wall = children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "grade", str(submission), "--out", str(out), "-q"],
                   cwd=cwd, env=env, check=True)
    wall, cpu = time.perf_counter() - wall, children_cpu() - cpu
    return cpu, wall, json.loads((out / "results.json").read_text())


def by_problem(results: dict) -> dict[int, float]:
    points: dict[int, float] = {}
    for test in results.get("tests", []):
        number = int(str(test.get("name", "Problem 0")).split(":")[0].split()[-1])
        points[number] = points.get(number, 0.0) + float(test.get("score", 0))
    return points


def main(only: list[str], code: Path | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cnn2d-slow-"))
    print(f"{'hand-in':<11} {'CPU s':>7} {'wall s':>7}  {'P1':>5} {'P7':>5} {'total':>6}   Problem 7", flush=True)
    for name, fixture in HANDINS.items():
        if only and name not in only:
            continue
        overrides = {"p1_conv2d": (CORRECT / fixture).read_text()} if fixture else {}
        sub = make_submission(tmp / "subs" / name, overrides=overrides, patches=WITH_RNG if fixture else [])
        cpu, wall, results = grade(sub, tmp / "out" / name, code)
        points = by_problem(results)
        p7 = [t for t in results.get("tests", []) if str(t.get("name", "")).startswith("Problem 7")]
        first = (p7[0].get("output") or "").split("\n")[0][:160] if p7 else ""
        print(f"{name:<11} {cpu:7.1f} {wall:7.1f}  {points.get(1, 0):5.1f} {points.get(7, 0):5.2f} "
              f"{float(results.get('score', 0)):6.2f}   {first}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=[], choices=list(HANDINS))
    parser.add_argument("--code", type=Path, default=None, help="grade with the grader of this checkout")
    args = parser.parse_args()
    main(args.only, args.code)

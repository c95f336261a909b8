"""Grading a class on Dask: the same class of 24 hand-ins built from source/ (correct variants from
the catalogue, realistic bugs from the catalogue, two hostile hand-ins) graded by
``python -m autograder batch`` with 1 worker and with 2 workers, in the same run; ``nbgrader
autograde`` on a few of the same hand-ins for the ratio; and where one hand-in's time goes.

    .venv/bin/python benchmarks/bench_batch.py [--size 24] [--nbgrader 2] [--skip-nbgrader]

Each batch is the command a person runs, as a fresh process (its LocalCluster, the workers' grader
and TensorFlow import included), with ``--no-gradebook`` so the repository's gradebook is left alone.
Goals (issue 9): 2 workers >= 1.8x faster than 1; a class of 100 in <= 12 min on 2 cores; warm, an
untouched release grades in <= 3 s and a full solution in <= 10 s of one core.
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))     # tests.test_catalogue: the catalogue's variants and bugs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autograder.course import ROOT  # noqa: E402

# Hostile hand-ins: each stalls or attacks in its own way.
HOSTILE = {
    "infinite-loop-at-import": {"p1_conv2d": "while True:\n    pass\n"},
    "sleeps-in-fit": {"p7_classifier": "import time\nclass Scratch2dCNNClassifier:\n"
                      "    def __init__(self, **kw): pass\n"
                      "    def fit(self, X, y):\n        time.sleep(10_000)\n"
                      "    def predict(self, X):\n        time.sleep(10_000)\n"},
    "memory-bomb": {"p4_maxpool": "import numpy as np\n_hog = [np.ones(10**8) for _ in range(100)]\n"},
    "kills-parent": {"p6_flatten": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                     "os.kill(1, signal.SIGKILL)\n"},
    "fork-bomb": {"p3_output_size": "import os\nfor _ in range(10_000):\n    try:\n        os.fork()\n"
                  "    except OSError:\n        pass\n"},
}


HOSTILE_IN_CLASS = ("infinite-loop-at-import", "fork-bomb")


def build_class(folder: Path, size: int) -> dict[str, str]:
    """``size`` hand-ins: two hostile, the rest alternately a correct variant and a bug of the
    catalogue (the tests' own, tests/test_catalogue.py; loops-based and known-misjudged ones left out)."""
    from autograder.assignment.solutions import make_submission
    from tests.test_catalogue import BUGS, CORRECT

    variants = [v for v in CORRECT if not v.misjudged and "loops" not in v.name]
    bugs = [b for b in BUGS if not b.missed]
    kinds = {}
    for i in range(size - len(HOSTILE_IN_CLASS)):
        pick = variants[(i // 2) % len(variants)] if i % 2 == 0 else bugs[(i // 2) % len(bugs)]
        name = f"s{i:02d}-{'ok' if i % 2 == 0 else 'bug'}-{pick.name}"
        make_submission(folder / name, overrides=pick.overrides(), patches=list(pick.patches))
        kinds[name] = "correct" if i % 2 == 0 else "bug"
    for h in HOSTILE_IN_CLASS:
        make_submission(folder / f"z-hostile-{h}", overrides=HOSTILE[h])
        kinds[f"z-hostile-{h}"] = "hostile"
    return kinds


def batch(folder: Path, out: Path, workers: int) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "batch", str(folder), "--out", str(out), "-q",
                    "--no-gradebook", "--workers", str(workers)], cwd=ROOT, check=True)
    return time.perf_counter() - t


def scores(out: Path) -> dict[str, str]:
    with open(out / "grades.csv", newline="") as f:
        return {r["student"]: r["autograded"] for r in csv.DictReader(f)}


def cpu_seconds() -> float:
    """This process's and its reaped children's (the sandboxes') user + system CPU seconds."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def breakdown(tmp: Path) -> None:
    """A warm grader in this process: an untouched release and a full solution, wall and CPU; the
    sandbox's start-up and its TensorFlow import; Problem 7's and Problem 8's checks (their fits)."""
    from autograder.assignment.solutions import make_submission
    from autograder.grading.grader import Grader
    from autograder.grading.hidden import hidden_paths
    from autograder.sandbox.host import Cell, Sandbox

    def start(cells: str) -> float:
        t = time.perf_counter()
        box = Sandbox([Cell("setup", cells)], label="bench", hidden=hidden_paths())
        box._ensure_started()                      # spawn the child and run the cells
        took = time.perf_counter() - t
        box.close()
        return took

    start("pass")                                  # warm the file cache
    bare = min(start("pass") for _ in range(3))
    tf = min(start("import tensorflow") for _ in range(2)) - bare
    grader = Grader()
    full = make_submission(tmp / "full")
    untouched = make_submission(tmp / "untouched", solved=False)
    grader.grade(full, student="warm-up")          # TensorFlow imported here, data loaded
    for name, path in (("untouched release", untouched), ("full solution", full)):
        c, t = cpu_seconds(), time.perf_counter()
        result = grader.grade(path, student=name)
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        goal = 3 if "untouched" in name else 10
        print(f"warm, {name:<18} {wall:6.1f} s wall, {cpu:6.1f} s CPU (grader + sandboxes)   goal <= {goal} s "
              f"of one core: {'met' if cpu <= goal else 'NOT met'}", flush=True)
        if name == "full solution":
            by = {}
            for ch in result.checks:
                by[ch.problem] = by.get(ch.problem, 0.0) + ch.duration
            print(f"  sandbox start-up {bare:.2f} s, TensorFlow import in a sandbox {tf:.2f} s (the 02_keras "
                  f"sandbox pays it), Problem 7 checks {by.get(7, 0):.1f} s (the fit on 2,000 images), Problem 8 "
                  f"checks {by.get(8, 0):.1f} s (LeNet's fit), every other check {sum(v for k, v in by.items() if k not in (7, 8)):.1f} s",
                  flush=True)


def main(size: int = 24, nbgrader: int = 2, skip_nbgrader: bool = False) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cnn2d-bench-batch-"))
    try:
        kinds = build_class(tmp / "class", size)
        print(f"a class of {size}: {sum(k == 'correct' for k in kinds.values())} correct variants, "
              f"{sum(k == 'bug' for k in kinds.values())} with a bug, {len(HOSTILE_IN_CLASS)} hostile "
              f"({', '.join(HOSTILE_IN_CLASS)})", flush=True)
        t1 = batch(tmp / "class", tmp / "out-1", 1)
        print(f"batch --workers 1: {t1:7.1f} s   {t1 / size:5.1f} s per hand-in", flush=True)
        t2 = batch(tmp / "class", tmp / "out-2", 2)
        print(f"batch --workers 2: {t2:7.1f} s   {t2 / size:5.1f} s per hand-in   speedup {t1 / t2:.2f}x "
              f"(goal >= 1.8x: {'met' if t1 / t2 >= 1.8 else 'NOT met'})", flush=True)
        hundred = t2 / size * 100 / 60
        print(f"a class of 100 on 2 cores, at that rate: {hundred:.1f} min (goal <= 12 min: "
              f"{'met' if hundred <= 12 else 'NOT met'})", flush=True)
        same = scores(tmp / "out-1") == scores(tmp / "out-2")
        print(f"1 and 2 workers gave the same points to every hand-in: {same}", flush=True)
        if not skip_nbgrader and nbgrader:
            from autograder.nbgrader.autograde import autograde, prepare_course

            course = prepare_course(tmp / "course")
            names = [n for n in sorted(kinds) if kinds[n] != "hostile"][:nbgrader]
            t = time.perf_counter()
            for n in names:
                autograde(tmp / "class" / n, n.replace("-", "_"), course, prepared=True)
            per = (time.perf_counter() - t) / len(names)
            print(f"nbgrader autograde: {per:7.1f} s per hand-in ({len(names)} of the same class, one after the "
                  f"other, as it grades)   nbgrader / batch --workers 2 = {per / (t2 / size):.1f}", flush=True)
        breakdown(tmp / "breakdown")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=24, help="hand-ins in the class (default 24)")
    ap.add_argument("--nbgrader", type=int, default=2, help="hand-ins nbgrader autograde grades for the ratio (default 2)")
    ap.add_argument("--skip-nbgrader", action="store_true")
    main(**vars(ap.parse_args()))

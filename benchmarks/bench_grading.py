"""Grading speed: one complete, correct submission end to end, by the CLI and by ``nbgrader autograde``,
in the same run; and a batch of 20 submissions, all honest against 5 of them hostile.

    .venv/bin/python benchmarks/bench_grading.py [--skip-nbgrader] [--skip-batch]

The CLI is timed as a fresh process (``python -m autograder grade``), TensorFlow import included,
the way one Gradescope run pays for it. nbgrader is timed on ``nbgrader autograde`` alone, after
``generate_assignment`` has filled its gradebook. Goal: the CLI grades in <= 30 s wall on 2 cores.
The batch runs in one process (``python -m autograder batch``): hostile submissions must not stall
it beyond their own limits.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.course import ROOT
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Five hostile submissions for the batch: each stalls or attacks in its own way.
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


def cli_grade(submission: Path, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "grade", str(submission), "--out", str(out), "-q"],
                   cwd=ROOT, check=True)
    return time.perf_counter() - t


def batch(folder: Path, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "batch", str(folder), "--out", str(out), "-q"],
                   cwd=ROOT, check=True)
    return time.perf_counter() - t


def main(skip_nbgrader=False, skip_batch=False, batch_size=20):
    from autograder.nbgrader.autograde import autograde, prepare_course
    from autograder.assignment.solutions import make_submission

    tmp = Path(tempfile.mkdtemp(prefix="cnn2d-bench-"))
    try:
        sub = make_submission(tmp / "subs" / "alice")
        t_cli = cli_grade(sub, tmp / "out-cli")
        print(f"CLI grade, one full solution (fresh process):   {t_cli:6.1f} s   goal <= 30 s: "
              f"{'met' if t_cli <= 30 else 'NOT met'}", flush=True)
        if not skip_nbgrader:
            course = prepare_course(tmp / "course")
            t = time.perf_counter()
            points = autograde(sub, "alice", course, prepared=True)
            t_nb = time.perf_counter() - t
            print(f"nbgrader autograde, same submission:            {t_nb:6.1f} s   "
                  f"({sum(points.values()):g} points)   nbgrader/CLI = {t_nb / t_cli:.2f}", flush=True)
        if not skip_batch:
            honest, mixed = tmp / "honest", tmp / "mixed"
            for i in range(batch_size):
                shutil.copytree(sub, honest / f"student{i:02d}")
                if i < len(HOSTILE):
                    name = list(HOSTILE)[i]
                    make_submission(mixed / f"student{i:02d}-{name}", overrides=HOSTILE[name])
                else:
                    shutil.copytree(sub, mixed / f"student{i:02d}")
            t_h = batch(honest, tmp / "out-honest")
            t_m = batch(mixed, tmp / "out-mixed")
            print(f"batch of {batch_size}, all honest:                       {t_h:6.1f} s", flush=True)
            print(f"batch of {batch_size}, {len(HOSTILE)} hostile:                        {t_m:6.1f} s   "
                  f"(mixed/honest = {t_m / t_h:.2f})", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-nbgrader", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--batch-size", type=int, default=20)
    main(**vars(ap.parse_args()))

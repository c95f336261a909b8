"""Grading speed: one complete, correct submission end to end, by the CLI and by ``nbgrader autograde``,
in the same run. (A class, on 1 and 2 workers: benchmarks/bench_batch.py.)

    .venv/bin/python benchmarks/bench_grading.py [--skip-nbgrader]

The CLI is timed as a fresh process (``python -m autograder grade``), TensorFlow import included,
the way one Gradescope run pays for it. nbgrader is timed on ``nbgrader autograde`` alone, after
``generate_assignment`` has filled its gradebook. Goal: the CLI grades in <= 30 s wall on 2 cores.
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

def cli_grade(submission: Path, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "grade", str(submission), "--out", str(out), "-q"],
                   cwd=ROOT, check=True)
    return time.perf_counter() - t


def main(skip_nbgrader=False):
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-nbgrader", action="store_true")
    main(**vars(ap.parse_args()))

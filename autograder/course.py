"""The course's constants and the instructor's settings, read from one place each.

    from autograder import course
    course.ROOT, course.ASSIGNMENT, course.RELEASE_DIR
    course.settings().mnist          # c.GradingData.mnist in nbgrader_config.py

Paths follow the repository layout (the package is installed editable from it). The instructor's
settings live in ``nbgrader_config.py``, the file nbgrader itself reads: the course id, the gradebook
URL and where the grading data comes from. It is read with traitlets, as nbgrader reads it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "cnn2d"
TITLE = "Convolutional neural networks from scratch"  # the course's name, heading the student's feedback
SOURCE_DIR = ROOT / "source" / ASSIGNMENT
RELEASE_DIR = ROOT / "release" / ASSIGNMENT
CONFIG_FILE = ROOT / "nbgrader_config.py"
CHECKS_DIR = Path(__file__).resolve().parent / "checks"   # the hidden checks (pytest modules)


@dataclass(frozen=True)
class Settings:
    course_id: str
    db_url: str
    mnist: str          # "auto" | "online" | "offline" | a mnist.npz path (see nbgrader_config.py)
    cell_seconds: int   # nbgrader's per-cell limit when it runs a notebook (c.Execute.timeout)


@functools.cache
def settings(config_file: Path = CONFIG_FILE) -> Settings:
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(Path(config_file).name, path=str(Path(config_file).parent)).load_config()
    directory, data = config.get("CourseDirectory", {}), config.get("GradingData", {})
    return Settings(course_id=str(directory.get("course_id", "cnn2d-course")),
                    db_url=str(directory.get("db_url", f"sqlite:///{ROOT / 'gradebook.db'}")),
                    mnist=str(data.get("mnist", "auto")),
                    cell_seconds=int(config.get("Execute", {}).get("timeout", 600)))


# ----------------------------------------------------------------------------- time limits
# Every time limit of the grader, in seconds: the one home. ``sandbox.limits.Limits`` takes its
# defaults from here, the checks of Problems 7 and 8 read FIT_SECONDS and PREDICT_SECONDS, and
# tests/test_course.py fails if the notebooks' text, ``--help`` or docs/ state another value.
# Training is budgeted in the sandbox's CPU time, not wall time, so that a grade does not depend on
# how busy the grading machine is (parallel workers make a busy machine the normal case): the
# reference fit took 8 s alone and 75 s beside other work, in wall time, and the same CPU time.
# A wall cap of WALL_FACTOR times the budget still ends code that sleeps or blocks.
CALL_SECONDS = 10.0            # one call into student code
TRAINING_CAP_SECONDS = 300.0   # the most a check may raise one call's limit to (training)
FIT_SECONDS = 120.0            # Problem 7's and Problem 8's fit: CPU seconds of the sandbox
PREDICT_SECONDS = 30.0         # their predict / evaluate on the held-out images: CPU seconds
WALL_FACTOR = 4.0              # a CPU-budgeted call's wall cap, in multiples of its CPU seconds
# Problem 7's ladder below its first step (checks/check_p07_classifier.py): (fit, predict) CPU seconds of
# steps 2 (500 images), 3 (100 images) and 4 (10 images); and each of the probe's timed fits before step 1.
LADDER_SECONDS = {2: (60.0, 20.0), 3: (60.0, 15.0), 4: (45.0, 10.0)}
PROBE_SECONDS = 6.0
CELLS_SECONDS = 60.0           # running one answer cell (a notebook's answer cells run one by one)
START_SECONDS = 60.0           # a sandbox child's start-up, before any student code
SUBMISSION_SECONDS = 600.0     # every call of one submission together, split between its notebooks:
# each notebook's sandbox has its own share of it, so a hang in one notebook never costs another's points
# (the shares add up to 1: the submission's limit holds without a second clock).
NOTEBOOK_SHARES = {"01_scratch_cnn": 0.6, "02_keras": 0.3, "03_theory": 0.1}
CPU_SECONDS = 900              # a sandbox child's CPU time over its whole life (RLIMIT_CPU)
# (The per-cell limit of nbgrader's own runs, autograde and validate, is the instructor's setting:
# c.Execute.timeout in nbgrader_config.py, read as settings().cell_seconds.)

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
SOURCE_DIR = ROOT / "source" / ASSIGNMENT
RELEASE_DIR = ROOT / "release" / ASSIGNMENT
CONFIG_FILE = ROOT / "nbgrader_config.py"


@dataclass(frozen=True)
class Settings:
    course_id: str
    db_url: str
    mnist: str          # "auto" | "online" | "offline" | a mnist.npz path (see nbgrader_config.py)


@functools.cache
def settings(config_file: Path = CONFIG_FILE) -> Settings:
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(Path(config_file).name, path=str(Path(config_file).parent)).load_config()
    directory, data = config.get("CourseDirectory", {}), config.get("GradingData", {})
    return Settings(course_id=str(directory.get("course_id", "cnn2d-course")),
                    db_url=str(directory.get("db_url", f"sqlite:///{ROOT / 'gradebook.db'}")),
                    mnist=str(data.get("mnist", "auto")))

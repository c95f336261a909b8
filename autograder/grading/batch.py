"""Grade a class: every sub-folder, zip or notebook of a folder, one after the other in this
process (the release is read and TensorFlow imported once). A submission that fails in any way
is recorded and the batch goes on; a broken grader stops it (nobody gets a score from it).
Writes ``out/<student>/results.json`` + feedback, ``out/grades.csv`` and ``out/batch.json``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from autograder.assignment.submission import CannotGrade
from autograder.grading.broken import GraderBroken
from autograder.grading.grader import Grader
from autograder.results.model import GradingResult
from autograder.results.table import grades_csv
from autograder.sandbox.limits import Limits

BATCH_FILE = "batch.json"


def hand_ins(folder: Path) -> dict[str, Path]:
    """The class's hand-ins by student: each sub-folder (nbgrader's ``submitted/<student>/``
    included), zip or notebook of ``folder``, named by the folder or the file's stem."""
    entries = sorted(p for p in Path(folder).iterdir() if not p.name.startswith("."))
    return {(p.stem if p.is_file() else p.name): p for p in entries}


def grade_batch(folder: Path, out: Path, limits: Limits | None = None, progress: bool = True,
                shard: tuple[int, int] = (0, 1)) -> tuple[list[GradingResult], dict[str, str]]:
    """``shard=(k, n)`` grades every n-th submission starting at k, to spread a class over machines.
    Returns the results and, by student, why a submission could not be graded."""
    from tqdm import tqdm

    entries = list(hand_ins(folder).items())[shard[0]::shard[1]]
    grader = Grader(limits=limits)
    results, failures = [], {}
    out.mkdir(parents=True, exist_ok=True)
    others = [Path(folder).resolve(), Path(out).resolve()]  # the class's hand-ins and results
    for name, entry in tqdm(entries, desc="grading", unit="submission", disable=not progress, file=sys.stderr):
        try:
            results.append(grader.grade(entry, out / name, student=name, hidden=others))
        except CannotGrade as e:
            failures[name] = str(e)
        except GraderBroken:  # the same for everyone: stop
            raise
        except Exception as e:  # a grader bug must not cost the rest of the class their grades
            failures[name] = f"internal error: {type(e).__name__}: {e}"
    grades_csv(out / "grades.csv", results, failures)
    # Where the hand-ins are, for the class report's similarity section (`python -m autograder report OUT`).
    (out / BATCH_FILE).write_text(json.dumps({"submissions": str(Path(folder).resolve())}) + "\n")
    return results, failures

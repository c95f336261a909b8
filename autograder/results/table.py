"""A class's scores per problem: one table, built by ``score_table`` and rendered twice, as grades.csv
(``grades_csv``) and as the text the command line prints (``console_table``)."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autograder.results.model import GradingResult

ABSENT = (0, 0, False)   # a problem this submission has no check of: no score, no points, not hand-graded


@dataclass(frozen=True)
class Row:
    student: str
    cells: list[tuple[float, float, bool]]   # per problem of the table: (score, possible, pending)
    total: float
    possible: float
    execution_time: float


@dataclass(frozen=True)
class ScoreTable:
    problems: list[int]          # every problem any submission has a check of, in order
    rows: list[Row]              # one per graded submission, in the order given


def score_table(results: Sequence[GradingResult]) -> ScoreTable:
    problems = sorted({p for r in results for p in r.by_problem()})
    rows = []
    for r in results:
        by_problem = r.by_problem()
        rows.append(Row(r.student, [by_problem.get(p, ABSENT) for p in problems], r.total, r.possible,
                        r.execution_time))
    return ScoreTable(problems, rows)


def grades_csv(path: Path, results: Sequence[GradingResult], failures: dict[str, str]) -> Path:
    """One line per submission: the graded ones, then those that could not be graded (``failures``:
    student -> why), with no score so that nobody mistakes them for a grade of 0."""
    table = score_table(results)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", *[f"problem_{p}" for p in table.problems], "autograded", "possible", "status"])
        for r in table.rows:
            w.writerow([r.student, *[round(score, 4) for score, _, _ in r.cells], round(r.total, 4), r.possible,
                        "graded"])
        for name, why in failures.items():
            w.writerow([name, *[""] * len(table.problems), "", "", f"not graded: {why}"])
    return Path(path)


def console_table(results: Sequence[GradingResult]) -> str:
    """The scores as fixed-width text, each line ending in a newline; "" when there are no results.
    Hand-graded problems show "hand"; the last line is what each problem is out of."""
    if not results:
        return ""
    table = score_table(results)
    width = max(12, *(len(r.student) for r in table.rows))
    head = f"{'submission':<{width}} " + " ".join(f"{'P' + str(p):>6}" for p in table.problems) + "   total   time"
    lines = [head, "-" * len(head)]
    for r in table.rows:
        cells = [f"{'hand':>6}" if pending else f"{score:>6.4g}" for score, _, pending in r.cells]
        lines.append(f"{r.student:<{width}} " + " ".join(cells)
                     + f"  {r.total:>4.4g}/{r.possible:g} {r.execution_time:>5.1f}s")
    lines.append(f"{'(out of)':<{width}} " + " ".join(f"{possible:>6g}" for _, possible, _ in table.rows[0].cells))
    return "\n".join(lines) + "\n"

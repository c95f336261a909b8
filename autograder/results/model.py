"""What a grading run found, as plain data: one ``CheckResult`` per check, one ``GradingResult`` per
submission, and the sums every renderer shows. No rendering and no files here.

Internally a check is passed | partial | failed | pending (pending = a hand-graded written answer,
Problems 9 and 11): pending checks count towards ``pending``, never towards ``total`` or ``possible``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from autograder.assignment.metadata import problem_of

PROBLEM_NAME = re.compile(r"Problem (\d+):")   # a check's name begins with its problem
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")   # Gradescope's, for ``visibility``
NOT_GRADED = ("This submission could not be graded: the autograder's own set-up is broken. This is not your "
              "fault and nothing you handed in was judged. You do not need to change or resubmit your work: "
              "your instructor re-runs the autograder once it is fixed.")


@dataclass
class CheckResult:
    problem: int
    name: str                  # "Problem 1: forward matches tf.nn.conv2d"
    score: float
    max_score: float
    status: str                # passed | failed | partial | pending
    output: str = ""           # student-facing: what went wrong and what to look at
    visibility: str = "visible"
    duration: float = 0.0

    @property
    def full_marks(self) -> bool:
        return self.status in ("passed", "partial") and self.score >= self.max_score


@dataclass
class GradingResult:
    student: str
    checks: list[CheckResult]
    run_id: str
    execution_time: float = 0.0
    findings: list[str] = field(default_factory=list)        # instructor and student: integrity notes
    cell_errors: dict[str, dict] = field(default_factory=dict)  # "notebook/cell" -> error
    student_output: dict[str, str] = field(default_factory=dict)
    sandbox: dict[str, dict] = field(default_factory=dict)    # per notebook: isolation, restarts, failures
    manual_answers: dict[str, str] = field(default_factory=dict)
    digest: dict = field(default_factory=dict)    # what was graded with what (a batch's resume key)
    isolation: str = ""                            # root, bubblewrap or none (sandbox.child.isolation_mode)

    @classmethod
    def from_results_json(cls, data: dict, pending: Sequence[CheckResult] = ()) -> "GradingResult":
        """A graded results.json (``results.gradescope.gradescope_json``) read back, for tables and
        reports: each test as a check (its problem from the name, "Problem N: ..."). results.json
        holds no hand-graded checks: pass them as ``pending`` (rebuilt from the release)."""
        extra = data.get("extra_data") or {}
        checks = []
        for t in data.get("tests") or []:
            name, score, max_score = str(t.get("name", "")), float(t.get("score") or 0), float(t.get("max_score") or 0)
            m = PROBLEM_NAME.match(name)
            checks.append(CheckResult(int(m.group(1)) if m else 0, name, score, max_score,
                                      "passed" if score >= max_score else "partial" if score > 0 else "failed",
                                      str(t.get("output") or ""), str(t.get("visibility") or "visible")))
        return cls(student=str(extra.get("student") or ""), checks=[*checks, *pending],
                   run_id=str(extra.get("run_id") or ""), execution_time=float(data.get("execution_time") or 0),
                   findings=list(extra.get("findings") or []), cell_errors=dict(extra.get("cell_errors") or {}),
                   sandbox=dict(extra.get("sandbox") or {}), manual_answers=dict(extra.get("manual_answers") or {}),
                   digest=dict(extra.get("digest") or {}), isolation=str(extra.get("isolation") or ""))

    @property
    def total(self) -> float:
        return sum(c.score for c in self.checks if c.status != "pending")

    @property
    def possible(self) -> float:
        return sum(c.max_score for c in self.checks if c.status != "pending")

    @property
    def pending(self) -> float:
        return sum(c.max_score for c in self.checks if c.status == "pending")

    def by_problem(self) -> dict[int, tuple[float, float, bool]]:
        """problem -> (score, possible, pending)."""
        out: dict[int, list] = {}
        for c in self.checks:
            s = out.setdefault(c.problem, [0.0, 0.0, False])
            s[0] += c.score
            s[1] += c.max_score
            s[2] = s[2] or c.status == "pending"
        return {k: tuple(v) for k, v in sorted(out.items())}

    def written_answers(self) -> list[tuple[int, str, str]]:
        """(problem, grade_id, text) per hand-graded problem; text is "" when there is no answer."""
        out, used = [], set()
        for c in self.checks:
            if c.status == "pending":
                gid = next((g for g in self.manual_answers if (problem_of(g) or 0) == c.problem and g not in used), "")
                used.add(gid)
                out.append((c.problem, gid, self.manual_answers.get(gid, "")))
        out += [(problem_of(g) or 0, g, t) for g, t in self.manual_answers.items() if g not in used]
        return out

    def summary_line(self) -> str:
        note = self.hand_note()
        return f"Autograded score: {self.total:g} / {self.possible:g}." + (f" {note}" if note else "")

    def hand_note(self) -> str:
        hand = [p for p, (_, _, pend) in self.by_problem().items() if pend]
        return f"{self.pending:g} more points are graded by hand (Problems {join_and(hand)})." if hand else ""


def join_and(items) -> str:
    """"9", "9 and 11", "2, 9 and 11"."""
    items = [str(i) for i in items]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)



"""Grade one submission: start a sandbox per notebook, run the checks against them, and put the
outcome together as a ``GradingResult``.

    grader = Grader()                                   # reads release/, imports nothing heavy yet
    result = grader.grade("submissions/alice", out_dir="out/alice")
    print(result.total, "/", result.possible)

The student's code runs only in the sandboxes; the checks, the oracles, the expected values, the
held-out labels and the grade stay in this process.
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path

from autograder import course
from autograder.assignment.spec import Assignment
from autograder.assignment.submission import Submission
from autograder.grading.hidden import hidden_paths
from autograder.grading.plugin import notebook_of, run_check_modules
from autograder.results.files import write_result
from autograder.results.model import CheckResult, GradingResult
from autograder.grading.broken import GraderBroken
from autograder.sandbox.child import IsolationUnavailable, isolation_mode
from autograder.sandbox.host import Sandbox
from autograder.sandbox.limits import Budget, Limits
from autograder.sandbox.proxy import UnavailableStudent


class Grader:
    """One per process: the release is read once, TensorFlow (in the oracles) is imported once."""

    def __init__(self, release_dir: Path = course.RELEASE_DIR, limits: Limits | None = None):
        self.assignment = Assignment.from_release(release_dir)
        self.limits = limits or Limits()
        try:  # fail closed: no sandbox without the isolation it promises, unless --no-isolation
            self.isolation = isolation_mode(self.limits.jail)
        except IsolationUnavailable as e:
            raise GraderBroken(e.reason, e.fix) from None

    def grade(self, path: Path, out_dir: Path | None = None, student: str | None = None,
              hidden: list[Path] = (), select: list[str] | None = None) -> GradingResult:
        """Grade one submission. ``hidden``: more paths its sandboxes must not see (the rest of
        the class). ``select`` names check modules to run (default: all); notebooks no selected
        check needs get no sandbox."""
        t0 = time.monotonic()
        submission = Submission.load(Path(path), self.assignment, student)
        if out_dir is not None:  # made before any sandbox starts, so it is hidden like the rest
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        unseen = hidden_paths([Path(path).resolve().parent, *([Path(out_dir).resolve()] if out_dir else []), *hidden])
        needed = {notebook_of(m) for m in select} if select else None
        boxes: dict[str, Sandbox] = {}
        for name, program in submission.programs.items():
            if program.ok and (needed is None or name in needed):
                boxes[name] = Sandbox(program.cells, limits=self.limits, label=name, hidden=unseen,
                                      support_files=self.assignment.support_files,
                                      budget=Budget.for_notebook(self.limits, name))
                boxes[name].start_in_background()

        def student_for(notebook: str):
            if notebook in boxes:
                return boxes[notebook].student()
            program = submission.programs.get(notebook)
            return UnavailableStudent(program.why_not if program else f"{notebook}.ipynb is not part of the assignment")

        try:
            checks, _ = run_check_modules(student_for, select)
        finally:
            reports = {name: box.close() for name, box in boxes.items()}
        if select is None:
            checks += self._manual(submission)
        result = GradingResult(
            student=submission.student, checks=checks, run_id=secrets.token_hex(8),
            findings=[str(f) for f in submission.findings],
            cell_errors={f"{nb}/{cell}": err for nb, r in reports.items() for cell, err in r.cell_errors.items()},
            student_output={nb: r.output + (f"\n[... {r.output_dropped:,} more bytes not kept]" if r.output_dropped else "")
                            for nb, r in reports.items()},
            sandbox={nb: {"isolation": r.isolation, "restarts": r.restarts, "failures": r.failures}
                     for nb, r in reports.items()},
            manual_answers=submission.manual_answers, isolation=self.isolation)
        result.execution_time = time.monotonic() - t0
        if out_dir is not None:
            write_result(result, Path(out_dir))  # every sandbox is closed by now
        return result

    def _manual(self, submission: Submission) -> list[CheckResult]:
        """Problems 9 and 11: graded by hand, reported as pending with the student's text."""
        out = []
        for notebook, spec in self.assignment.manual_cells():
            text = submission.manual_answers.get(spec.grade_id, "")
            out.append(CheckResult(spec.problem or 0, f"Problem {spec.problem}: written answer (graded by hand)",
                                   0.0, spec.points, "pending",
                                   ("Your answer, for the instructor:\n\n" + text[:4000]) if text
                                   else "No answer was given."))
        return out

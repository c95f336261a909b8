"""Gradescope's results.json, as a dict: for a graded submission and for one the grader could not grade.

Its tests are the autograded checks only, each ``passed`` (full marks) or ``failed`` (partial credit is
in ``score``). Hand-graded problems are no tests: the instructor grades them as manual questions; their
text is in ``output`` and ``extra_data``.
"""
from __future__ import annotations

from autograder.results.model import NOT_GRADED, CheckResult, GradingResult, join_and

ANSWER_CHARS_IN_OUTPUT = 3000     # per written answer, in results.json's top-level output


def gradescope_json(result: GradingResult) -> dict:
    return {
        "score": round(result.total, 4),
        "execution_time": round(result.execution_time, 2),
        "output": result.summary_line() + _answers_text(result),
        "tests": [_test(c) for c in result.checks if c.status != "pending"],
        "extra_data": {"graded": True, "run_id": result.run_id, "student": result.student,
                       "possible": result.possible, "pending_manual_points": result.pending,
                       "findings": result.findings, "cell_errors": result.cell_errors, "sandbox": result.sandbox,
                       "manual_answers": result.manual_answers, "digest": result.digest,
                       "isolation": result.isolation},
    }


def not_graded_json(reason: str, fix: str, student: str = "", run_id: str = "") -> dict:
    """No score at all, so that nobody mistakes it for a grade of 0."""
    return {"execution_time": 0, "output": f"{NOT_GRADED}\n\nFor the instructor:\nReason: {reason}\nFix: {fix}",
            "tests": [],
            "extra_data": {"graded": False, "reason": reason, "fix": fix, "run_id": run_id, "student": student}}


def _test(c: CheckResult) -> dict:
    return {"name": c.name, "score": round(c.score, 4), "max_score": c.max_score,
            "status": "passed" if c.full_marks else "failed",
            "output": c.output, "visibility": c.visibility}


def _answers_text(result: GradingResult) -> str:
    answers = result.written_answers()
    if not answers:
        return ""
    parts = [f"\n\nWritten answers (graded by hand, Problems {join_and(sorted({p for p, _, _ in answers}))}):"]
    for problem, gid, text in answers:
        text = text.strip()
        if len(text) > ANSWER_CHARS_IN_OUTPUT:
            text = text[:ANSWER_CHARS_IN_OUTPUT] + f"\n[... {len(text) - ANSWER_CHARS_IN_OUTPUT:,} more " \
                   "characters, in extra_data.manual_answers and feedback.html]"
        parts.append(f"\n--- Problem {problem}" + (f" ({gid})" if gid else "") + " ---\n"
                     + (text or "(no answer given)"))
    return "\n".join(parts)

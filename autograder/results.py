"""Results as data: one ``CheckResult`` per check, one ``GradingResult`` per submission, and the
files written from it (Gradescope's ``results.json``, the student's ``feedback.md``/``.html``)."""
from __future__ import annotations

import html
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


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

    def to_gradescope(self) -> dict:
        return {"name": self.name, "score": round(self.score, 4), "max_score": self.max_score,
                "status": "passed" if self.status == "passed" else ("pending" if self.status == "pending" else "failed"),
                "output": self.output, "visibility": self.visibility}


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

    def public_view(self) -> "GradingResult":
        """What a student may see before grades are published: only the visible checks."""
        return GradingResult(self.student, [c for c in self.checks if c.visibility == "visible"], self.run_id,
                             self.execution_time, self.findings, self.cell_errors, self.student_output)

    # --- files
    def to_gradescope(self) -> dict:
        return {
            "score": round(self.total, 4),
            "execution_time": round(self.execution_time, 2),
            "output": self.summary_line(),
            "tests": [c.to_gradescope() for c in self.checks],
            "extra_data": {"run_id": self.run_id, "student": self.student, "possible": self.possible,
                           "pending_manual_points": self.pending, "findings": self.findings,
                           "cell_errors": self.cell_errors, "sandbox": self.sandbox,
                           "manual_answers": self.manual_answers},
        }

    def summary_line(self) -> str:
        line = f"Autograded score: {self.total:g} / {self.possible:g}."
        if self.pending:
            line += f" {self.pending:g} more points are graded by hand (Problems " + \
                ", ".join(str(p) for p, (_, _, pend) in self.by_problem().items() if pend) + ")."
        return line

    def feedback_markdown(self) -> str:
        lines = [f"# Feedback: Convolutional neural networks from scratch", "",
                 f"Student: `{self.student}` · run `{self.run_id}` · graded in {self.execution_time:.1f} s", "",
                 f"**{self.summary_line()}**", "", "| Problem | Score | |", "|---|---|---|"]
        for p, (score, possible, pending) in self.by_problem().items():
            mark = "graded by hand" if pending else ("✓" if score >= possible else "")
            lines.append(f"| {p} | {score:g} / {possible:g} | {mark} |")
        lines.append("")
        if self.findings:
            lines += ["## About your hand-in", ""] + [f"- {f}" for f in self.findings] + [""]
        if self.cell_errors:
            lines += ["## Answer cells that raised an error", ""]
            for where, err in self.cell_errors.items():
                lines += [f"**{where}**: `{err.get('type')}: {err.get('message', '')[:300]}`", "",
                          "```", err.get("traceback", "").strip()[-1500:], "```", ""]
        lines += ["## Checks", ""]
        for c in self.checks:
            icon = {"passed": "✓", "partial": "◐", "pending": "…"}.get(c.status, "✗")
            lines.append(f"### {icon} {c.name} ({c.score:g} / {c.max_score:g})")
            if c.output:
                lines += ["", "```", c.output.strip(), "```"]
            lines.append("")
        shown = {k: v for k, v in self.student_output.items() if v.strip()}
        if shown:
            lines += ["## What your code printed", ""]
            for nb, text in shown.items():
                lines += [f"**{nb}**", "", "```", text[-3000:], "```", ""]
        return "\n".join(lines)

    def feedback_html(self) -> str:
        try:
            from nbconvert.filters.markdown import markdown2html
            body = markdown2html(self.feedback_markdown())
        except Exception:  # nbconvert missing or its markdown renderer broken: plain text still reads
            body = "<pre>" + html.escape(self.feedback_markdown()) + "</pre>"
        return ("<!doctype html><meta charset='utf-8'><title>Feedback</title><style>body{font:15px/1.5 "
                "system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}pre{background:#f6f6f6;"
                "padding:.6em;overflow:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
                "padding:.2em .6em}</style>\n" + body)

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write results.json and the feedback atomically. Called only after every sandbox is gone,
        so whatever a sandbox may have planted in ``out_dir`` is replaced, never read."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {"results.json": json.dumps(self.to_gradescope(), indent=2, allow_nan=False),
                 "feedback.md": self.feedback_markdown(), "feedback.html": self.feedback_html()}
        written = {}
        for name, text in files.items():
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, out_dir / name)
            written[name] = out_dir / name
        return written

    @staticmethod
    def read_results(path: Path, run_id: str) -> dict:
        """Read a results.json back, refusing one this run did not write."""
        data = json.loads(Path(path).read_text())
        if data.get("extra_data", {}).get("run_id") != run_id:
            raise ValueError(f"{path} was not written by run {run_id}")
        return data


"""The files a grading run leaves in a submission's output folder, written atomically and read back:
results.json (Gradescope's), feedback.md and feedback.html (the student's)."""
from __future__ import annotations

import html
import json
import os
import tempfile
from pathlib import Path

from autograder.results.feedback import feedback_html, feedback_markdown, not_graded_html, not_graded_markdown
from autograder.results.gradescope import gradescope_json, not_graded_json
from autograder.results.model import GradingResult


def write_result(result: GradingResult, out_dir: Path) -> dict[str, Path]:
    """Write results.json and the feedback atomically. Called only after every sandbox is gone,
    so whatever a sandbox may have planted in ``out_dir`` is replaced, never read."""
    markdown = feedback_markdown(result)
    try:
        page = feedback_html(result)
    except Exception:  # the HTML must never cost the student their results.json
        page = "<!doctype html><meta charset='utf-8'><title>Feedback</title><pre style='white-space:" \
               "pre-wrap;overflow-wrap:anywhere'>" + html.escape(markdown) + "</pre>"
    return _write_files(out_dir, {"results.json": json.dumps(gradescope_json(result), indent=2, allow_nan=False),
                                  "feedback.md": markdown, "feedback.html": page})


def read_result(path: Path, run_id: str) -> dict:
    """Read a results.json back, refusing one this run did not write."""
    data = json.loads(Path(path).read_text())
    if data.get("extra_data", {}).get("run_id") != run_id:
        raise ValueError(f"{path} was not written by run {run_id}")
    return data


def write_not_graded(out_dir: Path, reason: str, fix: str, student: str = "", run_id: str = "") -> dict[str, Path]:
    """The grader's own environment is broken (data missing, TensorFlow failing, a check module not
    loading): say so, with no score at all, so that nobody mistakes it for a grade of 0."""
    data = not_graded_json(reason, fix, student, run_id)
    return _write_files(out_dir, {"results.json": json.dumps(data, indent=2, allow_nan=False),
                                  "feedback.md": not_graded_markdown(reason, fix, student, run_id),
                                  "feedback.html": not_graded_html(reason, fix, student, run_id)})


def _write_files(out_dir: Path, files: dict[str, str]) -> dict[str, Path]:
    """Each file written to a temporary name in ``out_dir`` and renamed: readers see old or new, never half."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    # results.json last: a rerun takes a current results.json for "graded", so the feedback beside
    # it must be this run's already (a grader killed between two renames leaves the old one).
    for name, text in sorted(files.items(), key=lambda item: item[0] == "results.json"):
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out_dir / name)
        written[name] = out_dir / name
    return written

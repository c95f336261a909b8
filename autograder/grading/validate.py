"""What is unfinished, per problem: the student's Validate button from the command line. nbgrader's
own validator runs each notebook in the course kernel (a separate process) and reports the cells
that fail; each failure is named by its problem, read against the release."""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from autograder import course
from autograder.assignment.spec import Assignment
from autograder.assignment.submission import Submission, find_notebooks
from autograder.sandbox.limits import Limits


def validate_submission(path: Path, limits: Limits | None = None, release_dir: Path = course.RELEASE_DIR) -> int:
    """What is unfinished, per problem: nbgrader's own validator (the student's Validate button: it
    runs the notebook in the course kernel, a separate process, and reports failing visible tests),
    read against the release so that each failure is named by its problem. Exit 0 only when every
    answer cell runs and every visible test passes. ``limits`` is accepted for the CLI's sake."""
    from nbgrader.validator import Validator
    from traitlets.config import Config

    assignment = Assignment.from_release(release_dir)
    path = Path(path)
    submission = Submission.load(path, assignment)
    for f in submission.findings:
        print(f"note: {f}")
    files = {path.stem: path} if path.suffix == ".ipynb" else find_notebooks(path, assignment, [])
    config = Config()
    config.Execute.timeout = course.settings().cell_seconds
    unfinished = 0
    for name, program in submission.programs.items():
        if path.suffix == ".ipynb" and name not in files:
            continue   # one notebook was asked for
        print(f"\n== {name}.ipynb")
        if not program.ok:
            print(f"   cannot run: {program.why_not}")
            unfinished += 1
            continue
        by_source: dict[str, list] = {}   # the release's cells by source (two written answers share theirs)
        for c in assignment.notebooks[name].cells:
            by_source.setdefault(c.source.strip(), []).append(c)
        with tempfile.TemporaryDirectory(prefix="cnn2d-validate-") as tmp:
            for support in assignment.support_files:
                shutil.copy(support, tmp)
            shutil.copy(files[name], Path(tmp) / f"{name}.ipynb")
            results = Validator(config=config).validate(str(Path(tmp) / f"{name}.ipynb"))
        failed: dict[str, str] = {}
        for cell in results.get("failed", []) + results.get("changed", []) + results.get("type_changed", []):
            same = by_source.get(cell["source"].strip())
            spec = same.pop(0) if same else None
            number = spec.problem if spec else None
            if number is None:
                m = re.search(r"Problem (\d+)", cell["source"])
                number = int(m.group(1)) if m else None
            label = f"Problem {number}" if number else "a locked cell"
            if spec is not None and spec.kind == "manual":
                failed.setdefault(label, "written answer missing")
                continue
            error = _last_error_line(cell.get("raw_error", "")) if "raw_error" in cell else "this cell was changed"
            failed.setdefault(label, error)
        problems = sorted({c.problem for c in assignment.notebooks[name].cells if c.problem})
        for number in problems:
            error = failed.pop(f"Problem {number}", None)
            if error is None:
                print(f"   Problem {number:<3} done: its visible tests pass")
            elif error == "written answer missing":
                print(f"   Problem {number:<3} unfinished: the written answer is still empty (graded by hand)")
            elif "NotImplementedError" in error:
                print(f"   Problem {number:<3} unfinished: your answer still raises NotImplementedError")
            else:
                print(f"   Problem {number:<3} visible tests fail: {error}")
        for label, error in failed.items():
            print(f"   {label}: {error}")
        unfinished += len(results.get("failed", [])) + len(results.get("changed", []))
    print("\nSuccess: every answer cell runs and every visible test passes." if unfinished == 0 else
          "\nNot finished yet: see the problems above (the hidden tests run only when you are graded).")
    return 0 if unfinished == 0 else 1


def _last_error_line(traceback_text: str) -> str:
    """The exception line of a traceback (ANSI colours removed), shortened."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", traceback_text).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line) or line.startswith("You did not"):
            return line[:300]
    return (lines[-1] if lines else "failed")[:300]

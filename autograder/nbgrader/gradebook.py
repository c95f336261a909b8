"""Record graded submissions in nbgrader's gradebook, through nbgrader's own ``Gradebook`` API, so that
Formgrader shows the grader's points and asks only for the written answers (Problems 9 and 11).

    n = record(course.ROOT, [(result_or_results_json_dict, Path("submissions/alice")), ...])

Per submission: the student (``update_or_create_student``), the submission of ``cnn2d``
(``update_or_create_submission``: updated in place on a regrade) and, per autograded grade cell
(``pN_tests``), ``Grade.auto_score`` = the sum of the scores of that cell's checks: a check belongs
to the test cell of its problem, and where a problem has two (Problem 3: ``p3_tests`` in
01_scratch_cnn, ``p3_keras_tests`` in 02_keras) to the one of the notebook its check module names.
The visible tests (graded cells worth 0 points) get 0, as nbgrader gives them. Manual cells keep
``auto_score=None`` (Formgrader asks for them); a manual score already given is never touched.
The submitted notebooks are copied, outputs cleared by nbgrader's ``ClearOutput`` and cell metadata
kept, to ``<course_root>/autograded/<student>/cnn2d/``, which Formgrader renders.

The submission's timestamp is the one nbgrader compares with: ``submitted/<student>/cnn2d/timestamp.txt``
of the course when that folder exists (none there: none), else the hand-in's own timestamp.txt,
else the newest notebook's modification time (UTC) -- never "now".

A gradebook without the assignment is first populated as ``nbgrader generate_assignment`` does it:
the source notebooks through nbgrader's LockCells, ClearSolutions, ClearOutput, CheckCellMetadata,
ComputeChecksums and SaveCells, configured by nbgrader_config.py (so a later ``nbgrader autograde``
restores the hidden tests from it). One writer: call this from the client process only.
"""
from __future__ import annotations

import ast
import datetime
import os
import re
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path

import nbformat

from autograder import course
from autograder.assignment.spec import Assignment
from autograder.results.model import PROBLEM_NAME, GradingResult

NO_RESPONSE = "No response."


def record(course_root: Path, items: list[tuple[GradingResult | dict, Path]], db_url: str | None = None) -> int:
    """Record each (result or its results.json dict, submission folder); returns how many were recorded
    (a result the grader could not grade, ``extra_data.graded`` false, is skipped)."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    course_root = Path(course_root)
    settings = course.settings()
    db_url = db_url or settings.db_url
    spec = Assignment.from_release(course.RELEASE_DIR)
    populate(db_url, settings.course_id, spec)
    route = _router(spec)
    recorded = 0
    with Gradebook(db_url, settings.course_id) as gb:
        for result, folder in items:
            student, graded, checks, answers = _read(result, Path(folder))
            if not graded:
                continue
            if not _safe_id(student):
                warnings.warn(f"not recorded: {student!r} is no usable nbgrader student id")
                continue
            cells: dict[tuple[str, str], float] = defaultdict(float)
            for problem, name, score in checks:
                cell = route(problem, name)
                if cell is None:
                    warnings.warn(f"{student}: no test cell for the check {name!r}; not recorded")
                    continue
                cells[cell] += score
            gb.update_or_create_student(student)   # no fields given: an existing student is left as is
            timestamp = _timestamp(course_root, student, Path(folder))
            with warnings.catch_warnings():   # SQLAlchemy 2's autoflush notes on nbgrader's own add_submission
                warnings.filterwarnings("ignore", message="Object of type <Submitted", category=SAWarning)
                gb.update_or_create_submission(course.ASSIGNMENT, student, timestamp=timestamp)
            present = _copy_notebooks(Path(folder), course_root / "autograded" / student / course.ASSIGNMENT,
                                      spec, timestamp)
            for nb_name, nb in spec.notebooks.items():
                for c in nb.cells:
                    if c.kind not in ("test", "visible", "manual"):
                        continue
                    grade = gb.find_grade(c.grade_id, nb_name, course.ASSIGNMENT, student)
                    if c.kind == "manual":
                        _manual(gb, grade, c, nb_name, student, nb_name in present, answers.get(c.grade_id))
                        continue
                    grade.auto_score = round(cells.get((nb_name, c.grade_id), 0.0), 4) if c.kind == "test" else 0.0
                    grade.needs_manual_grade = grade.manual_score is not None   # nbgrader's SaveAutoGrades rule
            gb.db.commit()
            recorded += 1
    return recorded


def populate(db_url: str, course_id: str, spec: Assignment, source_dir: Path = course.SOURCE_DIR) -> list[str]:
    """Put the assignment and every notebook whose grade cells the gradebook lacks into it, as
    ``nbgrader generate_assignment`` does; returns the notebooks populated."""
    from nbgrader.api import Gradebook, MissingEntry

    todo = []
    with Gradebook(db_url, course_id) as gb:
        gb.update_or_create_assignment(course.ASSIGNMENT)
        for name, nb in spec.notebooks.items():
            want = {c.grade_id for c in nb.cells if c.kind in ("test", "visible", "manual")}
            try:
                have = {c.name for c in gb.find_notebook(name, course.ASSIGNMENT).grade_cells}
            except MissingEntry:
                have = None
            if have != want:
                todo.append(name)
    if not todo:
        return []
    from nbgrader.preprocessors import (CheckCellMetadata, ClearOutput, ClearSolutions, ComputeChecksums,
                                        LockCells, SaveCells)
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(course.CONFIG_FILE.name, path=str(course.CONFIG_FILE.parent)).load_config()
    for name in todo:   # SaveCells opens its own Gradebook: ours is closed by now (SQLite has one writer)
        nb = nbformat.read(Path(source_dir) / f"{name}.ipynb", as_version=4)
        resources = {"nbgrader": {"notebook": name, "assignment": course.ASSIGNMENT, "db_url": db_url}}
        for step in (LockCells, ClearSolutions, ClearOutput, CheckCellMetadata, ComputeChecksums, SaveCells):
            nb, resources = step(config=config).preprocess(nb, resources)
    return todo


def _manual(gb, grade, cell, notebook: str, student: str, present: bool, answer: str | None) -> None:
    """A written answer: no autograded score (Formgrader asks for it), a manual one kept. A notebook not
    handed in scores 0 with nothing to grade, as nbgrader's autograde does."""
    if grade.manual_score is None:
        grade.auto_score = None if present else 0.0
        grade.needs_manual_grade = present
    comment = gb.find_comment(cell.grade_id, notebook, course.ASSIGNMENT, student)
    unanswered = not present or (answer is not None and answer.strip() in ("", cell.source.strip()))
    comment.auto_comment = NO_RESPONSE if unanswered else None


def _read(result: GradingResult | dict, folder: Path) -> tuple[str, bool, list[tuple[int | None, str, float]], dict]:
    """(student, graded, [(problem, check name, score)] of the autograded checks, written answers)."""
    if isinstance(result, GradingResult):
        checks = [(c.problem, c.name, float(c.score)) for c in result.checks if c.status != "pending"]
        return result.student or folder.name, True, checks, dict(result.manual_answers)
    extra = result.get("extra_data") or {}
    checks = []
    for test in result.get("tests") or []:
        m = PROBLEM_NAME.match(str(test.get("name", "")))
        checks.append((int(m.group(1)) if m else None, str(test.get("name", "")), float(test.get("score") or 0)))
    return (str(extra.get("student") or folder.name), bool(extra.get("graded", True)), checks,
            dict(extra.get("manual_answers") or {}))


def _router(spec: Assignment):
    """(problem, check name) -> (notebook, grade_id) of the test cell the check's points belong to."""
    cells: dict[int | None, list[tuple[str, str]]] = defaultdict(list)
    for notebook, c in spec.test_cells():
        cells[c.problem].append((notebook, c.grade_id))
    owners = check_notebooks()

    def route(problem: int | None, name: str) -> tuple[str, str] | None:
        options = cells.get(problem, [])
        if len(options) > 1:
            mine = [o for o in options if o[0] == owners.get(name)]
            if not mine:
                warnings.warn(f"the check {name!r} is in no current check module: counted in {options[0][1]}")
            options = mine or options
        return options[0] if options else None
    return route


def check_notebooks(checks_dir: Path = course.CHECKS_DIR) -> dict[str, str]:
    """"Problem N: <check name>" -> the notebook of its check module (its NOTEBOOK), read without
    importing the modules (they import TensorFlow)."""
    out = {}
    for path in sorted(Path(checks_dir).glob("check_p*.py")):
        tree = ast.parse(path.read_text())
        consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                  and isinstance(n.value, ast.Constant) for t in n.targets if isinstance(t, ast.Name)}
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            for d in fn.decorator_list:
                if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "check":
                    name = next((k.value.value for k in d.keywords if k.arg == "name"
                                 and isinstance(k.value, ast.Constant)), fn.name)
                    out[f"Problem {consts.get('PROBLEM')}: {name}"] = consts.get("NOTEBOOK")
    return out


def _timestamp(course_root: Path, student: str, folder: Path) -> datetime.datetime | None:
    """The submission time, naive UTC as nbgrader stores it (see the module's docstring)."""
    from nbgrader.utils import parse_utc

    formgrader = course_root / "submitted" / student / course.ASSIGNMENT
    for where in (formgrader, folder):
        stamp = where / "timestamp.txt"
        if stamp.is_file():
            try:
                return parse_utc(stamp.read_text().strip())
            except (ValueError, OverflowError):
                warnings.warn(f"{stamp}: not a timestamp nbgrader reads; ignored")
        if where == formgrader and where.is_dir():
            return None   # what Formgrader compares the gradebook's timestamp with
    mtimes = [p.stat().st_mtime for p in folder.glob("*.ipynb")]
    if not mtimes:
        return None
    return datetime.datetime.fromtimestamp(max(mtimes), datetime.timezone.utc).replace(tzinfo=None)


def _copy_notebooks(folder: Path, dest: Path, spec: Assignment, timestamp) -> set[str]:
    """The hand-in's assignment notebooks, outputs cleared, into ``dest`` (notebooks of an earlier
    hand-in that this one lacks are removed); returns the notebooks copied."""
    from nbgrader.preprocessors import ClearOutput

    dest.mkdir(parents=True, exist_ok=True)
    copied = set()
    for name in spec.notebooks:
        src, target = folder / f"{name}.ipynb", dest / f"{name}.ipynb"
        try:
            nb = nbformat.read(src, as_version=4) if src.is_file() else None
        except Exception as e:  # an unreadable hand-in: nothing for Formgrader to show
            warnings.warn(f"{src}: not a readable notebook ({type(e).__name__}); not copied")
            nb = None
        if nb is None:
            target.unlink(missing_ok=True)
            continue
        nb, _ = ClearOutput().preprocess(nb, {})
        _write_atomic(target, nbformat.writes(nb))
        copied.add(name)
    if timestamp is not None:
        _write_atomic(dest / "timestamp.txt", f"{timestamp.isoformat(' ')} UTC\n")
    return copied


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _safe_id(student: str) -> bool:
    return 0 < len(student) <= 128 and student not in (".", "..") and not re.search(r"[/\\\x00]", student)

"""Final grades for the LMS: the autograded points (a batch's ``OUT/<student>/results.json`` and
``OUT/grades.csv``) plus the hand-graded written answers (Problems 9 and 11) from nbgrader's gradebook
(``Grade.manual_score`` as Formgrader sets it, else ``Grade.score``), one row per student.

    rows = export(Path("out"), Path("grades-final.csv"))                        # plain
    rows = export(Path("out"), Path("canvas.csv"), fmt="canvas", roster=Path("roster.csv"))

Students: every folder of ``results_dir`` with a results.json, every row of its grades.csv, and every
student with a submission of ``cnn2d`` in the gradebook (their autograded points then come from the
gradebook's test cells). ``status`` is ``graded``; ``not graded: <why>`` (grades.csv or results.json:
the grader could not grade it; no total); or ``manual grading missing`` (a written answer without a
manual score).

``plain`` columns: ``<id_column>``, ``problem_1`` .. ``problem_11`` (points; Problems 9 and 11 the
manual ones, empty until graded), ``autograded``, ``manual``, ``total`` (autograded + manual so far),
``out_of`` (100), ``status``. With ``roster`` (a CSV with a ``student`` column, nbgrader's id), the
first column holds the roster's ``<id_column>`` value instead of nbgrader's id.

``canvas`` columns, the form of Canvas's gradebook import (Grades > Import,
https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807):
``Student,ID,SIS User ID,SIS Login ID,Section`` and ``CNN from scratch (cnn2d)`` with the total.
Canvas matches a row by ``ID``, ``SIS User ID`` or ``SIS Login ID``: taken from the roster's columns of
those names when given, else ``ID`` = nbgrader's ``Student.lms_user_id`` and ``SIS Login ID`` = the
student id. The total is left empty unless the status is ``graded`` (Canvas skips empty cells, so no
partial grade is posted).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path

from autograder import course
from autograder.assignment.metadata import problem_of
from autograder.assignment.spec import Assignment
from autograder.results.model import PROBLEM_NAME

CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_ASSIGNMENT = f"CNN from scratch ({course.ASSIGNMENT})"
GRADED, MANUAL_MISSING = "graded", "manual grading missing"


def export(results_dir: Path, out: Path, fmt: str = "plain", id_column: str = "student", roster: Path | None = None,
           db_url: str | None = None, course_root: Path | None = None) -> list[dict]:
    """Write the grades to ``out`` (atomically) as ``fmt`` ("plain" or "canvas"); returns the rows written."""
    if fmt not in ("plain", "canvas"):
        raise ValueError(f"unknown format {fmt!r}: plain or canvas")
    spec = Assignment.from_release(course.RELEASE_DIR)
    manual = {c.grade_id: (nb, c) for nb, c in spec.manual_cells()}
    manual_problems = {c.problem for _, c in manual.values()}
    problems = sorted({c.problem for _, c in spec.test_cells()} | manual_problems)
    out_of = sum(c.points for _, c in spec.test_cells()) + sum(c.points for _, c in manual.values())
    auto = _autograded(Path(results_dir), manual_problems)
    book = _gradebook(db_url or _db_url(course_root), spec)
    people = _roster(roster)
    if people and fmt == "plain" and id_column != "student" and id_column not in next(iter(people.values())):
        raise ValueError(f"{roster}: no column {id_column!r} to identify the students by")
    rows = []
    for student in sorted(set(auto) | set(book)):
        points, status = auto.get(student, ({}, None))
        info = book.get(student, {})
        if status is None and "auto" in info:
            points, status = info["auto"], GRADED
        given = info.get("manual", {})
        manual_points = {}
        for gid, (_, cell) in manual.items():
            if given.get(gid) is not None:
                manual_points[cell.problem] = manual_points.get(cell.problem, 0.0) + given[gid]
        missing = any(given.get(gid) is None for gid in manual)
        if status == GRADED and missing:
            status = MANUAL_MISSING
        graded = not str(status).startswith("not graded")
        autograded = round(sum(points.values()), 4) if graded else None
        manual_total = round(sum(manual_points.values()), 4) if manual_points else (None if missing else 0.0)
        total = round((autograded or 0) + (manual_total or 0), 4) if graded else None
        row = {id_column: people.get(student, {}).get(id_column) or student}
        for p in problems:
            value = manual_points.get(p) if p in manual_problems else (points.get(p, 0.0) if graded else None)
            row[f"problem_{p}"] = _num(value)
        row.update(autograded=_num(autograded), manual=_num(manual_total), total=_num(total), out_of=_num(out_of),
                   status=status)
        if fmt == "canvas":
            row = _canvas_row(student, row, people.get(student, {}), info)
        rows.append(row)
    header = CANVAS_COLUMNS + [CANVAS_ASSIGNMENT] if fmt == "canvas" else \
        [id_column, *[f"problem_{p}" for p in problems], "autograded", "manual", "total", "out_of", "status"]
    _write_csv(Path(out), header, rows)
    return rows


def _canvas_row(student: str, row: dict, person: dict, info: dict) -> dict:
    name = " ".join(x for x in (info.get("first_name"), info.get("last_name")) if x)
    return {"Student": person.get("Student") or name or student,
            "ID": person.get("ID") or info.get("lms_user_id") or "",
            "SIS User ID": person.get("SIS User ID") or "",
            "SIS Login ID": person.get("SIS Login ID") or student,
            "Section": person.get("Section") or "",
            CANVAS_ASSIGNMENT: row["total"] if row["status"] == GRADED else ""}


def _autograded(results_dir: Path, manual_problems: set) -> dict[str, tuple[dict[int, float], str]]:
    """student -> ({problem: autograded points}, status) from results.json, else grades.csv."""
    out: dict[str, tuple[dict[int, float], str]] = {}
    table = results_dir / "grades.csv"
    if table.is_file():
        with open(table, newline="") as f:
            for r in csv.DictReader(f):
                status = (r.get("status") or "").strip() or GRADED
                points = {int(k.removeprefix("problem_")): float(v) for k, v in r.items()
                          if k and re.fullmatch(r"problem_\d+", k) and v not in ("", None)
                          and int(k.removeprefix("problem_")) not in manual_problems}
                out[r["student"]] = (points, GRADED if status == GRADED else status)
    for path in sorted(results_dir.glob("*/results.json")):
        data = json.loads(path.read_text())
        extra = data.get("extra_data") or {}
        student = path.parent.name
        if extra.get("graded", True) is False:
            out[student] = ({}, f"not graded: {extra.get('reason') or 'the grader could not grade it'}")
            continue
        points: dict[int, float] = {}
        for test in data.get("tests") or []:
            m = PROBLEM_NAME.match(str(test.get("name", "")))
            if m and int(m.group(1)) not in manual_problems:
                points[int(m.group(1))] = points.get(int(m.group(1)), 0.0) + float(test.get("score") or 0)
        out[student] = (points, GRADED)
    return out


def _gradebook(db_url: str, spec: Assignment) -> dict[str, dict]:
    """student -> {"manual": {grade_id: points or None}, "auto": {problem: points}, names, lms_user_id}
    for every student with a submission of the assignment. A SQLite file that does not exist is no
    gradebook (and is not created)."""
    from nbgrader.api import Gradebook, MissingEntry

    if db_url.startswith("sqlite:///") and not Path(db_url.removeprefix("sqlite:///")).is_file():
        return {}
    out, manual_ids = {}, {c.grade_id for _, c in spec.manual_cells()}
    with Gradebook(db_url, course.settings().course_id) as gb:
        try:
            submissions = gb.assignment_submissions(course.ASSIGNMENT)
        except MissingEntry:
            return {}
        for sub in submissions:
            manual, auto = {}, {}
            for nb in sub.notebooks:
                for grade in nb.grades:
                    if grade.cell.name in manual_ids:
                        graded = grade.manual_score is not None or grade.auto_score is not None
                        manual[grade.cell.name] = float(grade.score) if graded else None
                    elif (problem := problem_of(grade.cell.name)) is not None and grade.cell.max_score:
                        auto[problem] = auto.get(problem, 0.0) + float(grade.score)
            s = sub.student
            out[s.id] = {"manual": manual, "auto": auto, "first_name": s.first_name, "last_name": s.last_name,
                         "lms_user_id": s.lms_user_id}
    return out


def _db_url(course_root: Path | None) -> str:
    config = Path(course_root) / "nbgrader_config.py" if course_root else None
    return course.settings(config).db_url if config and config.is_file() else course.settings().db_url


def _roster(path: Path | None) -> dict[str, dict]:
    if path is None:
        return {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if "student" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: the roster needs a 'student' column (nbgrader's student id)")
        return {r["student"].strip(): {k: (v or "").strip() for k, v in r.items() if k} for r in reader}


def _num(value) -> str:
    return "" if value is None else f"{round(float(value), 4):g}"


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)

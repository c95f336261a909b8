"""The gradebook recorder (autograder/nbgrader/gradebook.py) and the LMS export
(autograder/reports/export.py), against a real nbgrader Gradebook on a SQLite file: no mocks, no
grading run (the results are built here, with the release's real problems, points and check names)."""
from __future__ import annotations

import csv
import json

import nbformat
import pytest
from nbgrader.api import Gradebook, SubmittedAssignment

from autograder import course
from autograder.assignment.solutions import make_submission
from autograder.assignment.spec import Assignment
from autograder.nbgrader.gradebook import check_notebooks, record
from autograder.reports.export import CANVAS_ASSIGNMENT, export
from autograder.results.files import write_result
from autograder.results.model import CheckResult, GradingResult
from autograder.results.table import grades_csv

A = course.ASSIGNMENT
COURSE_ID = course.settings().course_id
SPEC = Assignment.from_release(course.RELEASE_DIR)
TESTS = SPEC.test_cells()            # (notebook, CellSpec) of every pN_tests cell
MANUAL = SPEC.manual_cells()         # p9_survey, p11_survey
OWNERS = check_notebooks()
CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "CNN from scratch (cnn2d)"]


def check_name(notebook: str, problem: int) -> str:
    """A real check of that problem and notebook (Problem 3 has checks in two notebooks)."""
    return next(n for n, nb in OWNERS.items() if nb == notebook and n.startswith(f"Problem {problem}:"))


def make_result(student: str, fraction: dict[str, float] | None = None) -> GradingResult:
    """One check per test cell worth that cell's points, scoring ``fraction[grade_id]`` (default 1) of
    them; the written answers pending, as the grader reports them."""
    fraction = fraction or {}
    checks = []
    for nb, c in TESTS:
        f = fraction.get(c.grade_id, 1.0)
        checks.append(CheckResult(c.problem, check_name(nb, c.problem), round(c.points * f, 4), c.points,
                                  "passed" if f == 1 else "partial" if f else "failed"))
    for _, c in MANUAL:
        checks.append(CheckResult(c.problem, f"Problem {c.problem}: written answer (graded by hand)", 0.0,
                                  c.points, "pending"))
    return GradingResult(student, checks, run_id="t" + student)


def cell_scores(result: GradingResult) -> dict[str, float]:
    """grade_id -> the points of its check (what record() must put in Grade.auto_score)."""
    return {c.grade_id: next(k.score for k in result.checks if k.name == check_name(nb, c.problem))
            for nb, c in TESTS}


@pytest.fixture
def class_(tmp_path):
    """Three graded students (alice full marks, bob and carol partial); dave could not be graded."""
    results = [make_result("alice"),
               make_result("bob", {"p1_tests": 0.5, "p3_keras_tests": 0.0, "p7_tests": 0.2}),
               make_result("carol", {"p3_tests": 0.25, "p8_tests": 0.0})]
    out = tmp_path / "out"
    for r in results:
        write_result(r, out / r.student)
    grades_csv(out / "grades.csv", results, {"dave": "no notebooks found in dave.zip"})
    folders = {r.student: make_submission(tmp_path / "submissions" / r.student) for r in results}
    (folders["bob"] / "timestamp.txt").write_text("2026-11-30 17:45:00.000000 UTC")
    return {"root": tmp_path / "course", "db": f"sqlite:///{tmp_path / 'gradebook.db'}", "out": out,
            "results": results, "folders": folders}


def test_record_fills_the_gradebook_and_regrades_in_place(class_):
    s = class_
    alice, bob, carol = s["results"]
    items = [(alice, s["folders"]["alice"]),
             (json.loads((s["out"] / "bob" / "results.json").read_text()), s["folders"]["bob"]),  # a dict too
             (carol, s["folders"]["carol"])]
    assert record(s["root"], items, db_url=s["db"]) == 3

    with Gradebook(s["db"], COURSE_ID) as gb:
        assert {st.id for st in gb.students} == {"alice", "bob", "carol"}
        assignment = gb.find_assignment(A)      # populated from source/, as generate_assignment does
        assert assignment.max_score == 100
        assert {nb.name for nb in assignment.notebooks} == set(SPEC.notebooks)
        assert "BEGIN HIDDEN TESTS" in gb.find_source_cell("p1_tests", "01_scratch_cnn", A).source
        for result in (alice, bob, carol):
            for nb, c in TESTS:
                grade = gb.find_grade(c.grade_id, nb, A, result.student)
                assert grade.auto_score == pytest.approx(cell_scores(result)[c.grade_id]), (result.student, c.grade_id)
                assert grade.needs_manual_grade is False
            for nb, c in MANUAL:
                grade = gb.find_grade(c.grade_id, nb, A, result.student)
                assert grade.auto_score is None and grade.needs_manual_grade is True
            assert gb.find_submission(A, result.student).score == pytest.approx(result.total)
        # Problem 3 has a test cell in two notebooks: each gets its own checks' points
        assert gb.find_grade("p3_tests", "01_scratch_cnn", A, "bob").auto_score == 4
        assert gb.find_grade("p3_keras_tests", "02_keras", A, "bob").auto_score == 0
        assert gb.find_submission(A, "bob").timestamp.isoformat() == "2026-11-30T17:45:00"
        assert gb.find_submission(A, "alice").timestamp is not None
        gb.find_grade("p9_survey", "03_theory", A, "carol").manual_score = 6.0   # Formgrader grades one answer
        gb.db.commit()

    for student in ("alice", "bob", "carol"):
        folder = s["root"] / "autograded" / student / A
        assert sorted(p.stem for p in folder.glob("*.ipynb")) == sorted(SPEC.notebooks)
        nb = nbformat.read(folder / "01_scratch_cnn.ipynb", as_version=4)
        assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
        ids = {c.metadata.nbgrader["grade_id"] for c in nb.cells if "nbgrader" in c.metadata}
        assert ids >= {"p1_tests", "p1_conv2d"}

    carol2 = make_result("carol", {"p1_tests": 0.75})           # a regrade
    assert record(s["root"], [(carol2, s["folders"]["carol"])], db_url=s["db"]) == 1
    with Gradebook(s["db"], COURSE_ID) as gb:
        assert gb.db.query(SubmittedAssignment).filter_by(student_id="carol").count() == 1
        assert len(gb.assignment_submissions(A)) == 3
        assert gb.find_grade("p1_tests", "01_scratch_cnn", A, "carol").auto_score == 15
        assert gb.find_grade("p8_tests", "02_keras", A, "carol").auto_score == 10
        assert gb.find_grade("p9_survey", "03_theory", A, "carol").manual_score == 6.0   # kept


def test_export_adds_the_manual_points(class_, tmp_path):
    s = class_
    alice, bob, carol = s["results"]
    record(s["root"], [(r, s["folders"][r.student]) for r in s["results"]], db_url=s["db"])
    manual = {"alice": {"p9_survey": 7, "p11_survey": 6.5}, "bob": {"p9_survey": 4},      # bob's p11: missing
              "carol": {"p9_survey": 5, "p11_survey": 7}}
    with Gradebook(s["db"], COURSE_ID) as gb:           # as Formgrader saves a manual grade
        for student, scores in manual.items():
            for gid, points in scores.items():
                grade = gb.find_grade(gid, "03_theory", A, student)
                grade.manual_score, grade.needs_manual_grade = points, False
        gb.update_or_create_student("alice", lms_user_id="4711", first_name="Alice", last_name="Liddell")
        gb.db.commit()
    roster = tmp_path / "roster.csv"
    roster.write_text("student,email,SIS User ID,Section\nalice,alice@uni.example,S001,A\n"
                      "bob,bob@uni.example,S002,B\ncarol,carol@uni.example,S003,A\ndave,dave@uni.example,S004,B\n")

    rows = export(s["out"], tmp_path / "final.csv", id_column="email", roster=roster, db_url=s["db"])
    with open(tmp_path / "final.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["email", *[f"problem_{p}" for p in range(1, 12)], "autograded", "manual", "total",
                              "out_of", "status"]
    assert table == rows
    by = {r["email"].split("@")[0]: r for r in table}
    assert set(by) == {"alice", "bob", "carol", "dave"}
    assert {r["out_of"] for r in table} == {"100"}
    expected = {"alice": (alice.total, 13.5, "graded"), "bob": (bob.total, 4, "manual grading missing"),
                "carol": (carol.total, 12, "graded")}
    for student, (auto, hand, status) in expected.items():
        row = by[student]
        assert float(row["autograded"]) == pytest.approx(auto)
        assert float(row["manual"]) == pytest.approx(hand)
        assert float(row["total"]) == pytest.approx(auto + hand)
        assert row["status"] == status
        assert sum(float(row[f"problem_{p}"] or 0) for p in range(1, 12)) == pytest.approx(auto + hand)
    assert by["alice"]["total"] == "99.5" and by["alice"]["problem_9"] == "7" and by["alice"]["problem_3"] == "10"
    assert by["bob"]["problem_11"] == "" and by["bob"]["problem_1"] == "10"
    assert by["dave"]["status"] == "not graded: no notebooks found in dave.zip"
    assert by["dave"]["total"] == "" and by["dave"]["autograded"] == ""

    export(s["out"], tmp_path / "canvas.csv", fmt="canvas", roster=roster, db_url=s["db"])
    with open(tmp_path / "canvas.csv", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == CANVAS_HEADER and CANVAS_ASSIGNMENT == CANVAS_HEADER[-1]
    canvas = {r[3]: dict(zip(lines[0], r)) for r in lines[1:]}   # by SIS Login ID = nbgrader's id
    assert set(canvas) == {"alice", "bob", "carol", "dave"}
    assert canvas["alice"] == {"Student": "Alice Liddell", "ID": "4711", "SIS User ID": "S001",
                               "SIS Login ID": "alice", "Section": "A", CANVAS_ASSIGNMENT: "99.5"}
    assert float(canvas["carol"][CANVAS_ASSIGNMENT]) == pytest.approx(carol.total + 12)
    assert canvas["bob"][CANVAS_ASSIGNMENT] == "" and canvas["dave"][CANVAS_ASSIGNMENT] == ""   # no partial grade

    rows = export(s["out"], tmp_path / "plain.csv", db_url=s["db"])     # no roster: nbgrader's ids
    assert [r["student"] for r in rows] == ["alice", "bob", "carol", "dave"]
    assert not list(tmp_path.glob(".plain.csv.*"))   # written atomically, nothing left behind

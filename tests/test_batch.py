"""Grading a class: the hand-in layouts (one entry per student, nbgrader's ``submitted/``, Gradescope's
export) and a batch that resumes: a rerun grades only what changed.

The batches grade the fast check modules only (``FAST``, one sandbox of 01_scratch_cnn per hand-in,
a few seconds each); the layouts' naming rules are tested without grading.
"""
from __future__ import annotations

import csv
import functools
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from autograder import course
from autograder.__main__ import build_parser
from autograder.assignment.handins import GRADESCOPE_METADATA, content_digest, hand_ins, safe_name
from autograder.assignment.solutions import make_submission
from autograder.assignment.submission import CannotGrade
from autograder.grading import batch as batch_module
from autograder.grading.batch import BatchOutcome, grade_batch, grader_digest
from autograder.results.model import GradingResult

FAST = ["check_p04_maxpool.py", "check_p06_flatten.py"]
BREAK_FLATTEN = ("p6_flatten", "return np.asarray(d_out).reshape(self._shape)", "return np.asarray(d_out)")

METADATA = """\
submission_1:
  :submitters:
  - :name: Alice Adams
    :sid: s1001
    :email: alice@example.edu
  :created_at: 2025-03-01 10:00:00.000000000 -08:00
  :score: !ruby/object:BigDecimal 18:0.0
  :status: processed
submission_2:
  :submitters:
  - :name: Bob Brown
    :email: bob.brown@example.edu
  :created_at: 2025-03-01 11:00:00.000000000 -08:00
"""


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory) -> dict[str, Path]:
    """A solved and an unsolved hand-in, built once (copied by each test)."""
    base = tmp_path_factory.mktemp("hand-ins")
    return {"solved": make_submission(base / "solved"), "unsolved": make_submission(base / "unsolved", solved=False)}


def notebooks_of(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("*.ipynb"))


def rows(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def results_json(out: Path, student: str) -> dict:
    return json.loads((out / student / "results.json").read_text())


# ----------------------------------------------------------------------------- layouts, graded
def test_nbgrader_and_gradescope_layouts_are_read_named_and_graded(notebooks, tmp_path):
    course_dir = tmp_path / "course"
    for student, kind in (("alice", "solved"), ("bob", "unsolved")):
        shutil.copytree(notebooks[kind], course_dir / "submitted" / student / course.ASSIGNMENT)
    (course_dir / "submitted" / "carol" / "another_assignment").mkdir(parents=True)  # no cnn2d: left out
    export = tmp_path / "gradescope_export.zip"
    with zipfile.ZipFile(export, "w") as zf:
        zf.writestr(f"assignment_4242_export/{GRADESCOPE_METADATA}", METADATA)
        for folder, kind in (("submission_1", "solved"), ("submission_2", "unsolved")):
            for nb in notebooks_of(notebooks[kind]):
                zf.write(nb, f"assignment_4242_export/{folder}/{nb.name}")

    assert hand_ins(course_dir) == hand_ins(course_dir / "submitted") == {
        "alice": course_dir / "submitted" / "alice" / course.ASSIGNMENT,
        "bob": course_dir / "submitted" / "bob" / course.ASSIGNMENT}
    nbgrader = grade_batch(course_dir / "submitted", tmp_path / "out-nbgrader", progress=False, select=FAST)
    gradescope = grade_batch(export, tmp_path / "out-gradescope", progress=False, select=FAST)

    for outcome, out, solved, unsolved in ((nbgrader, tmp_path / "out-nbgrader", "alice", "bob"),
                                           (gradescope, tmp_path / "out-gradescope", "s1001", "bob.brown")):
        results, failures = outcome
        assert failures == {} and outcome.skipped == []
        by = {r.student: r for r in results}
        assert set(by) == {solved, unsolved} == set(rows(out))
        assert by[solved].total == by[solved].possible > 0 and by[unsolved].total == 0
        assert {c.problem for c in by[solved].checks} == {4, 6}
        assert results_json(out, solved)["score"] == round(by[solved].total, 4)
        assert results_json(out, solved)["extra_data"]["digest"] == by[solved].digest != {}
    # The export was unpacked into the batch's own temporary folder: gone with it.
    assert not any(p.exists() for p in gradescope.hand_ins.values())


# ----------------------------------------------------------------------------- resume
def test_a_rerun_grades_only_the_changed_and_the_missing(notebooks, tmp_path):
    folder, out = tmp_path / "class", tmp_path / "out"
    for student, kind in (("ann", "solved"), ("ben", "solved"), ("cat", "unsolved")):
        shutil.copytree(notebooks[kind], folder / student)
    first = grade_batch(folder, out, progress=False, select=FAST)
    assert first.failures == {} and first.skipped == []
    run1 = {r.student: r for r in first.results}
    mtimes = {s: (out / s / "results.json").stat().st_mtime_ns for s in run1}

    shutil.rmtree(out / "ann")                                                     # lost
    shutil.rmtree(folder / "ben")
    make_submission(folder / "ben", patches=[BREAK_FLATTEN])                       # changed: Flatten broken
    second = grade_batch(folder, out, progress=False, select=FAST)
    assert second.failures == {} and second.skipped == ["cat"]
    run2 = {r.student: r for r in second.results}
    assert set(run2) == {"ann", "ben", "cat"}
    assert run2["cat"].run_id == run1["cat"].run_id == results_json(out, "cat")["extra_data"]["run_id"]
    assert (out / "cat" / "results.json").stat().st_mtime_ns == mtimes["cat"]
    for s in ("ann", "ben"):
        assert run2[s].run_id != run1[s].run_id
        assert results_json(out, s)["extra_data"]["run_id"] == run2[s].run_id
    assert run2["ann"].total == run1["ann"].total == run1["ann"].possible
    assert run2["ben"].by_problem()[4] == run1["ben"].by_problem()[4]
    assert run2["ben"].by_problem()[6][0] < run1["ben"].by_problem()[6][0]
    table = rows(out)
    assert set(table) == {"ann", "ben", "cat"}
    for s, r in run2.items():
        assert float(table[s]["autograded"]) == round(r.total, 4) and table[s]["status"] == "graded"
        assert float(table[s]["problem_6"]) == round(r.by_problem()[6][0], 4)
    assert float(table["cat"]["autograded"]) == 0 and float(table["ben"]["autograded"]) < float(table["ann"]["autograded"])

    # A check module changed: everyone is graded again (the digest sees a copy of the checks, one line added).
    checks = shutil.copytree(course.CHECKS_DIR, tmp_path / "checks", ignore=shutil.ignore_patterns("__pycache__"))
    with open(checks / FAST[1], "a") as f:
        f.write("\n# a changed check module\n")
    digest = functools.partial(grader_digest, checks_dir=checks)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(batch_module, "grader_digest", digest)
        third = grade_batch(folder, out, progress=False, select=FAST)
    assert third.skipped == [] and {r.run_id for r in third.results}.isdisjoint(r.run_id for r in second.results)
    assert {r.student: r.total for r in third.results} == {s: r.total for s, r in run2.items()}

    # And --regrade grades everyone, up to date or not.
    fourth = grade_batch(folder, out, progress=False, select=FAST, regrade=True)
    assert fourth.skipped == [] and len(fourth.results) == 3
    assert {r.run_id for r in fourth.results}.isdisjoint(r.run_id for r in third.results)
    assert {r.student: r.total for r in fourth.results} == {s: r.total for s, r in run2.items()}
    assert {s: results_json(out, s)["extra_data"]["run_id"] for s in run2} == {r.student: r.run_id for r in fourth.results}


# ----------------------------------------------------------------------------- without grading
def test_gradescope_names_from_the_metadata(notebooks, tmp_path):
    """:sid:, else the email's local part, else :name: (made a folder name); keys with or without the
    colon; a group joined by +; no entry: the submission folder; the metadata's Ruby tags are read."""
    root = tmp_path / "export"
    metadata = METADATA + """\
submission_3:
  submitters:
  - name: José Núñez / 3
submission_4:
  :submitters:
  - {":name": A, ":sid": 7}
  - {":name": B, ":sid": 8}
submission_5:
  :submitters:
  - :name: Alice again
    :sid: s1001
"""
    for n in range(1, 7):
        (root / f"submission_{n}").mkdir(parents=True)
    (root / GRADESCOPE_METADATA).write_text(metadata)
    expected = {"s1001": "submission_1", "bob.brown": "submission_2", "Jose_Nunez_3": "submission_3",
                "7+8": "submission_4", "submission_5": "submission_5", "submission_6": "submission_6"}
    assert hand_ins(root) == {name: root / folder for name, folder in expected.items()}
    assert hand_ins(tmp_path) == hand_ins(root)    # the folder holding the extracted export
    (root / GRADESCOPE_METADATA).write_text("::: not yaml [")
    assert set(hand_ins(root)) == {f"submission_{n}" for n in range(1, 7)}


def test_gradescope_zip_is_unpacked_safely_into_the_workdir(notebooks, tmp_path):
    export = tmp_path / "export.zip"
    nb = notebooks_of(notebooks["solved"])[0]
    with zipfile.ZipFile(export, "w") as zf:
        zf.writestr(GRADESCOPE_METADATA, METADATA)
        zf.write(nb, f"submission_1/{nb.name}")
        zf.writestr("submission_1/run.sh", "rm -rf /")
        zf.writestr("submission_2/answers.pdf", "%PDF")          # no notebook: graded as missing, not lost
        zf.writestr("../escaped.ipynb", "{}")
        zf.writestr("/abs.ipynb", "{}")
    work = tmp_path / "work"
    entries = hand_ins(export, workdir=work)
    assert list(entries) == ["bob.brown", "s1001"] and entries["s1001"].is_relative_to(work)
    assert list(entries["bob.brown"].iterdir()) == []
    assert [p.name for p in entries["s1001"].iterdir()] == [nb.name]
    assert not (tmp_path / "escaped.ipynb").exists() and not list(work.rglob("escaped.ipynb"))
    assert content_digest(entries["s1001"]) == content_digest(hand_ins(export, workdir=work)["s1001"])

    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.write(nb, f"alice/{nb.name}")
    with pytest.raises(CannotGrade, match="no Gradescope export"):
        hand_ins(plain, workdir=tmp_path / "work2")
    assert list((tmp_path / "work2").iterdir()) == []
    (tmp_path / "broken.zip").write_bytes(b"PK not a zip")
    with pytest.raises(CannotGrade, match="not a readable zip"):
        hand_ins(tmp_path / "broken.zip", workdir=tmp_path / "work3")
    with pytest.raises(CannotGrade, match="does not exist"):
        hand_ins(tmp_path / "nowhere")


def test_one_entry_per_student(tmp_path):
    for name in ("alice", "dan/cnn2d", ".git", "__MACOSX"):
        (tmp_path / name).mkdir(parents=True)
    for name in ("bob.zip", "carol.ipynb", "alice.zip", "roster.csv"):
        (tmp_path / name).write_text("x")
    assert hand_ins(tmp_path) == {"alice": tmp_path / "alice", "alice.zip": tmp_path / "alice.zip",
                                  "bob": tmp_path / "bob.zip", "carol": tmp_path / "carol.ipynb",
                                  "dan": tmp_path / "dan" / "cnn2d"}
    assert [safe_name(s) for s in ("..", ".hidden", "a/b", "", "a b@c.d")] == ["", "hidden", "a_b", "", "a_b@c.d"]


def test_digest_is_content_only_and_a_broken_results_json_is_graded_again(notebooks, tmp_path):
    a = shutil.copytree(notebooks["solved"], tmp_path / "a")
    b = shutil.copytree(notebooks["solved"], tmp_path / "b")
    assert content_digest(a) == content_digest(b)
    (b / "notes.txt").write_text("changed")
    assert content_digest(a) != content_digest(b)
    limits = batch_module.Limits()
    assert grader_digest(limits, FAST) == grader_digest(limits, list(reversed(FAST))) != grader_digest(limits)
    other = batch_module.Limits(call_timeout=limits.call_timeout + 1)
    assert grader_digest(other, FAST)["limits"] != grader_digest(limits, FAST)["limits"]

    class FakeGrader:
        def _manual(self, submission):
            return []

    digest = batch_module.batch_digest(a, grader_digest(limits, FAST))
    stored = {"score": 2, "execution_time": 1.5, "tests": [
        {"name": "Problem 4: forward", "score": 2, "max_score": 2, "status": "passed", "output": ""},
        {"name": "Problem 6: backward", "score": 0.5, "max_score": 1, "status": "failed", "output": ""}],
        "extra_data": {"graded": True, "run_id": "r1", "student": "a", "digest": digest}}
    path = tmp_path / "out" / "a" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(stored))
    back = batch_module._up_to_date(path, digest, FakeGrader(), FAST)
    assert isinstance(back, GradingResult) and back.run_id == "r1" and back.digest == digest
    assert back.by_problem() == {4: (2.0, 2.0, False), 6: (0.5, 1.0, False)} and back.execution_time == 1.5
    assert batch_module._up_to_date(path, {**digest, "submission": "other"}, FakeGrader(), FAST) is None
    path.write_text(json.dumps(stored)[:40])                    # half a file: graded again
    assert batch_module._up_to_date(path, digest, FakeGrader(), FAST) is None
    path.write_text(json.dumps({**stored, "extra_data": {**stored["extra_data"], "graded": False}}))
    assert batch_module._up_to_date(path, digest, FakeGrader(), FAST) is None


def test_outcome_unpacks_as_before_and_the_cli_states_the_layouts():
    outcome = BatchOutcome([], {"x": "why"}, ["y"], {})
    results, failures = outcome
    assert (results, failures, outcome.skipped) == ([], {"x": "why"}, ["y"])
    sub = build_parser()._subparsers._group_actions[0].choices["batch"]
    text = " ".join(sub.format_help().split())
    for phrase in ("SUBMISSIONS", "submitted/<student>/cnn2d/", "submission_metadata.yml", "--regrade",
                   "Export Submissions", ":sid:"):
        assert phrase in text, phrase
    assert build_parser().parse_args(["batch", "subs", "--out", "o", "--regrade"]).regrade is True

"""Never a silent zero: when the grader's own environment is at fault, nobody gets a score.

Each case breaks one part of the grader, not of the submission (its data, TensorFlow, a check
module) and grades a correct submission: the CLI exits 3, says what is wrong and names the fix,
and the results.json it leaves has no score.
"""
from __future__ import annotations

import json
import shutil

import pytest

from autograder import course
from autograder.checks import oracles
from autograder.__main__ import EXIT_CANNOT_GRADE, cli
from autograder.grading.broken import GraderBroken
from autograder.grading.data import grading_data


def grade_cli(submission, out, capsys, *extra) -> tuple[int, str]:
    code = cli(["grade", str(submission), "--out", str(out), "-q", *extra])
    return code, capsys.readouterr().err


def assert_not_graded(out, *words):
    data = json.loads((out / "results.json").read_text())
    assert "score" not in data and data["tests"] == [], data
    assert data["extra_data"]["graded"] is False
    for word in words:
        assert word in data["output"], (word, data["output"])
    return data


def test_missing_grading_data_exits_3_with_the_fix(solution_dir, tmp_path, monkeypatch, capsys, request):
    grading_data.cache_clear()   # the session may have loaded it already; and load it again after
    request.addfinalizer(grading_data.cache_clear)
    monkeypatch.setattr(course, "settings", lambda: course.Settings("cnn2d-course", "sqlite://", str(tmp_path / "none.npz"), 600))
    code, err = grade_cli(solution_dir, tmp_path / "out", capsys)
    assert code == EXIT_CANNOT_GRADE
    assert "could not load its MNIST data" in err and "c.GradingData.mnist" in err and "No score" in err
    assert_not_graded(tmp_path / "out", "could not be graded", "MNIST", "c.GradingData.mnist")


def test_tensorflow_failing_to_import_exits_3(grader, solution_dir, tmp_path, monkeypatch):
    def no_tensorflow():
        raise ModuleNotFoundError("No module named 'tensorflow'")

    monkeypatch.setattr(oracles, "tensorflow", no_tensorflow)
    with pytest.raises(GraderBroken) as info:
        grader.grade(solution_dir, tmp_path / "out", select=["check_p01_conv2d.py"])
    assert "tensorflow" in info.value.reason and "requirements.txt" in info.value.fix
    assert not (tmp_path / "out" / "results.json").exists()   # no score written by grade() itself


def test_a_broken_check_module_exits_3(grader, solution_dir, tmp_path, monkeypatch):
    checks = tmp_path / "checks"
    shutil.copytree(course.CHECKS_DIR, checks)
    (checks / "check_p06_flatten.py").write_text("PROBLEM = 6\nNOTEBOOK = '01_scratch_cnn'\ndef check_x(:\n")
    monkeypatch.setattr(course, "CHECKS_DIR", checks)
    with pytest.raises(GraderBroken) as info:
        grader.grade(solution_dir, select=["check_p06_flatten.py"])
    assert "could not be loaded" in info.value.reason and "--collect-only" in info.value.fix


def test_student_import_errors_are_the_students(grader, submission, tmp_path):
    """An ImportError raised by the student's own code is theirs: graded, with a message, no exit 3."""
    sub = submission(overrides={"p6_flatten": "import not_a_module_anywhere\n\nclass Flatten:\n    pass\n"})
    result = grader.grade(sub, select=["check_p06_flatten.py"])
    assert result.total == 0 and result.possible == 4
    assert any("not_a_module_anywhere" in (c.output + str(result.cell_errors)) for c in result.checks)

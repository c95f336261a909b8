"""The grader end to end on honest submissions: the full solution, the untouched release, the
command line, the results file and the feedback."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autograder.course import RELEASE_DIR, ROOT
from autograder.results.files import read_result, write_result
from autograder.results.gradescope import gradescope_json
from autograder.assignment.spec import Assignment
from tests.conftest import modules_of

RELEASE = RELEASE_DIR


def test_full_solution_gets_every_autograded_point(full_result):
    failed = [f"{c.name}: {c.output}" for c in full_result.checks
              if c.status not in ("passed", "pending")]
    assert not failed, "\n".join(failed)
    assert full_result.total == full_result.possible == 86


def test_points_match_the_notebooks_test_cells(full_result):
    """Per problem part, the checks' points add up to the points of its nbgrader test cell."""
    assignment = Assignment.from_release(RELEASE)
    cell_points: dict[int, float] = {}
    for _, spec in assignment.test_cells():
        cell_points[spec.problem] = cell_points.get(spec.problem, 0) + spec.points
    check_points = {p: possible for p, (_, possible, pending) in full_result.by_problem().items() if not pending}
    assert check_points == cell_points
    manual = {spec.problem: spec.points for _, spec in assignment.manual_cells()}
    assert manual == {9: 7, 11: 7}
    assert {c.problem: c.max_score for c in full_result.checks if c.status == "pending"} == manual


def test_every_check_is_named_by_its_problem(full_result):
    for c in full_result.checks:
        assert c.name.startswith(f"Problem {c.problem}: "), c.name


def test_untouched_release_gets_zero_and_says_not_implemented(grader, submission, tmp_path, full_result):
    result = grader.grade(submission(solved=False), tmp_path / "out")
    assert result.total == 0
    auto = [c for c in result.checks if c.status != "pending"]
    assert [c.name for c in auto] == [c.name for c in full_result.checks if c.status != "pending"]
    assert sum(c.max_score for c in auto) == 86
    for c in auto:
        assert c.status == "failed"
        assert "Not implemented" in c.output or "not defined" in c.output, f"{c.name}: {c.output}"
    assert all(c.output == "No answer was given." for c in result.checks if c.status == "pending")


def test_results_json_is_gradescope_format(full_result, tmp_path):
    files = write_result(full_result, tmp_path)
    data = json.loads(files["results.json"].read_text())
    assert set(data) >= {"score", "execution_time", "output", "tests"}
    assert data["score"] == 86
    for t in data["tests"]:
        assert set(t) >= {"name", "score", "max_score", "status", "output", "visibility"}
        assert t["name"].startswith("Problem ")
        assert t["status"] == "passed" and t["score"] == t["max_score"], t
    # Only autograded checks are tests: Problems 9 and 11 are manual questions on Gradescope.
    assert not any(t["name"].startswith(("Problem 9:", "Problem 11:")) for t in data["tests"])
    assert sum(t["max_score"] for t in data["tests"]) == 86
    assert data["extra_data"]["graded"] is True and data["extra_data"]["pending_manual_points"] == 14
    assert read_result(files["results.json"], full_result.run_id)["score"] == 86
    with pytest.raises(ValueError):
        read_result(files["results.json"], "not-this-run")
    html = files["feedback.html"].read_text()
    assert "Problem 1" in html and "<table" in html


def test_cli_grades_and_separates_could_not_grade(solution_dir, tmp_path):
    env_cmd = [sys.executable, "-m", "autograder"]
    out = tmp_path / "out"
    # Only the theory notebook, to keep the test short: a single notebook is a valid PATH.
    proc = subprocess.run([*env_cmd, "grade", str(solution_dir / "03_theory.ipynb"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "results.json").read_text())
    p10 = [t for t in data["tests"] if t["name"].startswith("Problem 10:")]
    assert p10 and all(t["status"] == "passed" for t in p10)
    assert (out / "feedback.md").exists()
    proc = subprocess.run([*env_cmd, "grade", str(tmp_path / "nope"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 3 and "does not exist" in proc.stderr
    proc = subprocess.run([*env_cmd, "grade", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "results.json" in proc.stdout and "--call-timeout" in proc.stdout


def test_manual_answers_are_pending_and_carried_to_the_instructor(full_result):
    pending = [c for c in full_result.checks if c.status == "pending"]
    assert {c.problem for c in pending} == {9, 11}
    assert all(c.score == 0 and "Your answer" in c.output for c in pending)
    assert set(full_result.manual_answers) == {"p9_survey", "p11_survey"}
    # In results.json they are no tests; their text reaches the instructor in output and extra_data.
    data = gradescope_json(full_result)
    assert data["extra_data"]["manual_answers"] == full_result.manual_answers
    assert "Written answers (graded by hand, Problems 9 and 11):" in data["output"]
    for gid, text in full_result.manual_answers.items():
        assert text.strip() and text.strip()[:200] in data["output"], gid


def test_validate_names_what_is_unfinished(submission, tmp_path):
    """`python -m autograder validate` reads nbgrader's validator per problem: a submission with only
    Problem 1 solved is not reported like an untouched one."""
    from autograder.assignment.solutions import source_solutions

    p1 = submission(solved=False, overrides={"p1_conv2d": source_solutions()["01_scratch_cnn"]["p1_conv2d"]})
    proc = subprocess.run([sys.executable, "-m", "autograder", "validate", str(p1 / "03_theory.ipynb")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Problem 10  unfinished: your answer still raises NotImplementedError" in proc.stdout
    assert "Problem 9   unfinished: the written answer is still empty" in proc.stdout
    assert "Success" not in proc.stdout
    broken = submission(overrides={"p10_answers": "conv_layer_answers = {'a': (1, 2}"})
    proc = subprocess.run([sys.executable, "-m", "autograder", "validate", str(broken / "03_theory.ipynb")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 1 and "Problem 10  visible tests fail" in proc.stdout, proc.stdout
    assert "Problem 9   done" in proc.stdout


def test_selected_modules_only_start_needed_sandboxes(grader, solution_dir):
    result = grader.grade(solution_dir, select=modules_of("03_theory"))
    assert set(result.sandbox) == {"03_theory"}
    assert result.total == result.possible == 6

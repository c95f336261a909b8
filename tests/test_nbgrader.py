"""nbgrader autograde and the CLI give the same autograded points: the hidden test cells of source/
call the same checks (through autograder.nbgrader.bridge) that the CLI runs in its harness."""
from __future__ import annotations

import re

import pytest

from autograder.nbgrader.autograde import autograde, prepare_course
from autograder.assignment.solutions import BUGGY_OVERRIDES, make_submission
from tests.conftest import scores


def per_problem(points: dict[str, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for grade_id, p in points.items():
        problem = int(re.match(r"p(\d+)_", grade_id).group(1))
        out[problem] = out.get(problem, 0) + p
    return out


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return prepare_course(tmp_path_factory.mktemp("nbgrader") / "course")


# The full solution's nbgrader total (86 of 86, so every problem at full marks, as with the CLI) is
# checked where a person reaches it: tests/test_readme.py (the README's commands) and
# tests/test_browser.py (Formgrader). Here the partial credit of a buggy submission must agree too.
@pytest.mark.parametrize("name, overrides", [("three-bugs", BUGGY_OVERRIDES)])
def test_nbgrader_autograde_agrees_with_the_cli(name, overrides, course, grader, tmp_path):
    sub = make_submission(tmp_path / name, overrides=overrides)
    nb_points = per_problem(autograde(sub, name.replace("-", ""), course, prepared=True))
    cli = grader.grade(sub, tmp_path / "out", student=name)
    cli_points = {p: s for p, s in scores(cli).items() if p not in (9, 11)}
    assert nb_points == pytest.approx(cli_points, abs=1e-3), (nb_points, cli_points)
    if overrides:
        assert cli.total < cli.possible
        assert {p for p, s in cli_points.items() if s < cli.by_problem()[p][1]} == {3, 5, 10}
    else:
        assert sum(nb_points.values()) == pytest.approx(86)

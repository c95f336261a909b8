"""A student's notebook is more than its answer cells: every correct line counts, wherever it is.

The grader runs the setup cells, the answer cells and every code cell of the student's own (added, or
a release cell they changed), in notebook order, one top-level statement at a time; a line that hangs
or ends the sandbox cuts its cell there and keeps what the lines above it defined. So:

* a helper or an import in a cell the student added is there for the answer that uses it;
* a slow test call left at the end of an answer cell costs nothing of what the cell defined;
* an added cell that hangs costs only itself;
* an added cell that redefines an answer badly after a correct one wins, as in Jupyter;

and ``nbgrader autograde``, which runs every cell, gives the same points as the CLI on such a hand-in
(``test_nbgrader_autograde_and_the_cli_agree_on_a_notebook_with_cells_of_its_own``).
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import pytest

from autograder.assignment import metadata
from autograder.assignment.solutions import make_submission
from autograder.grading.grader import Grader
from autograder.results.feedback import feedback_markdown
from autograder.sandbox.limits import Limits
from tests.conftest import FIXTURES, modules_of, scores

NB1 = "01_scratch_cnn"
P7 = "check_p07_classifier.py"
# The per-cell limit is small here, so that a slow call or a hang costs seconds; SLOW outlasts it.
LIMITS = Limits(exec_timeout=8)
SLOW = 12

# A correct Conv2d (the catalogue's sliding-window variant) whose import and padding helper live in
# cells the student added above the answer cell.
WINDOWS = (FIXTURES / "catalogue" / "correct" / "conv_sliding_window_view.py").read_text()
IMPORT = "from numpy.lib.stride_tricks import sliding_window_view"
PAD = "np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))"
# (It takes the solution classifier's rng= too, so that Problem 7 trains the same in both modes.)
CONV_USING_OWN_CELLS = (WINDOWS.replace(IMPORT + "\n", "").replace(PAD, "pad_input(x, p)")
                        .replace("stride=1, padding=0):", "stride=1, padding=0, rng=None):")
                        .replace("np.random.standard_normal(", "(rng or np.random).standard_normal("))
OWN_IMPORT = f"# my imports\n{IMPORT}\n"
OWN_HELPER = "def pad_input(x, p):\n    \"\"\"Zero padding on H and W.\"\"\"\n    return " + PAD + "\n"
SLOW_TAIL = f"\n\n# my own check, left at the end of the cell\nimport time\ntime.sleep({SLOW})\n"
HANGS = "# trying things out\nwhile True:\n    pass\n"
BAD_FLATTEN = ("# a second try, after the answer: the last definition wins, as in Jupyter\n"
               "class Flatten:\n    def forward(self, x):\n        self.shape = x.shape\n"
               "        return x.reshape(x.shape[0], -1, order='F')\n\n"
               "    def backward(self, d_out):\n        return d_out.reshape(self.shape, order='F')\n")


def add_cells(folder: Path, notebook: str, after: dict[str, list[str]]) -> None:
    """Insert code cells without nbgrader metadata after the cells with these grade_ids."""
    path = folder / f"{notebook}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        for k, source in enumerate(after.get(metadata.grade_id(cell) or "", [])):
            new = nbformat.v4.new_code_cell(source)
            new["id"] = f"own-{metadata.grade_id(cell)}-{k}"
            cells.append(new)
    nb.cells = cells
    nbformat.write(nb, path)


def hand_in(dest: Path, *, conv=False, slow_tail=False, hang: str | None = None, bad_flatten=False) -> Path:
    from autograder.assignment.solutions import source_solutions
    overrides = {}
    if conv:
        overrides["p1_conv2d"] = CONV_USING_OWN_CELLS
    if slow_tail:
        overrides["p7_classifier"] = source_solutions()[NB1]["p7_classifier"] + SLOW_TAIL
    folder = make_submission(dest, overrides=overrides)
    after: dict[str, list[str]] = {}
    if conv:
        after["p1_statement"] = [OWN_IMPORT, OWN_HELPER]
    if hang:
        after.setdefault("p3_tests", []).append(hang)
    if bad_flatten:
        after.setdefault("p6_flatten", []).append(BAD_FLATTEN)   # before the test cell: nbgrader grades it there
    add_cells(folder, NB1, after)
    return folder


@pytest.fixture(scope="module")
def own_grader() -> Grader:
    return Grader(limits=LIMITS)


def grade(grader, folder, select):
    result = grader.grade(folder, student=folder.name, select=select)
    return result, scores(result), feedback_markdown(result)


def test_a_helper_and_an_import_in_added_cells_count(own_grader, tmp_path):
    result, points, text = grade(own_grader, hand_in(tmp_path / "helper", conv=True), modules_of(NB1)[:2])
    assert points[1] == 20 and points[2] == 5, text
    assert "NameError" not in text
    assert re.search(r"2 code cell\(s\) of your own were run, in notebook order .*your cell after 'p1_statement'", text)


def test_a_slow_call_at_the_end_of_the_answer_cell_keeps_what_the_cell_defined(own_grader, tmp_path):
    result, points, text = grade(own_grader, hand_in(tmp_path / "slow-tail", slow_tail=True), [P7])
    assert points[7] == 15, text
    err = result.cell_errors[f"{NB1}/p7_classifier"]
    assert err["type"] == "CellTimeout"
    # The feedback names the line that was cut short (the sleep, the cell's last), and says the class above it was kept.
    from autograder.assignment.solutions import source_solutions
    line = len((source_solutions()[NB1]["p7_classifier"] + SLOW_TAIL).rstrip("\n").splitlines())
    assert err["line"] == line
    assert re.search(rf"p7_classifier\*\*: CellTimeout: line {line} did not finish within the cell's 8 s .*the lines "
                     r"above it ran and what they defined is kept; the rest of the cell was not run", text), text


@pytest.mark.parametrize("hang", [HANGS, "import os\nos._exit(1)\n"], ids=["loops", "exits"])
def test_an_added_cell_that_hangs_or_crashes_costs_only_itself(own_grader, tmp_path, hang):
    result, points, text = grade(own_grader, hand_in(tmp_path / "hangs", hang=hang), modules_of(NB1))
    assert points == {1: 20, 2: 5, 3: 4, 4: 10, 5: 6, 6: 4}, text
    (where, err), = result.cell_errors.items()
    assert where == f"{NB1}/your cell after 'p3_tests'" and err["type"] in ("CellTimeout", "CellCrash")
    assert re.search(r"your cell after 'p3_tests'\*\*: Cell(Timeout|Crash): line \d+ ", text), text


def test_an_added_cell_that_redefines_an_answer_badly_wins_as_in_jupyter(own_grader, tmp_path):
    result, points, text = grade(own_grader, hand_in(tmp_path / "redefined", bad_flatten=True), modules_of(NB1))
    assert points[6] < 4 and {p: points[p] for p in (1, 2, 3, 4, 5)} == {1: 20, 2: 5, 3: 4, 4: 10, 5: 6}, text
    assert re.search(r"Problem 6: .*order", text, re.I), text


def test_nbgrader_autograde_and_the_cli_agree_on_a_notebook_with_cells_of_its_own(own_grader, tmp_path):
    """All of the above in one hand-in (the hang is a sleep that outlasts the CLI's per-cell limit,
    so that nbgrader, whose cells may take 600 s, finishes it): nbgrader autograde runs every cell,
    the CLI runs the student's cells; both give the same points on every autograded problem."""
    from autograder.nbgrader.autograde import autograde
    from tests.test_nbgrader import per_problem

    folder = hand_in(tmp_path / "own-cells", conv=True, slow_tail=True, bad_flatten=True,
                     hang=f"import time\ntime.sleep({SLOW + 8})\n")
    cli = own_grader.grade(folder, student="owncells")
    cli_points = {p: s for p, s in scores(cli).items() if p not in (9, 11)}
    nb_points = per_problem(autograde(folder, "owncells", tmp_path / "course"))
    assert nb_points == pytest.approx(cli_points, abs=1e-3), (nb_points, cli_points)
    assert cli_points[1] == 20 and cli_points[7] == 15 and cli_points[6] < 4, cli_points
    assert {f"{NB1}/p7_classifier", f"{NB1}/your cell after 'p3_tests'"} <= set(cli.cell_errors)


# ----------------------------------------------------------------------------- a hang costs only what depends on it
# Each notebook's sandbox has its own share of the submission's time, counted only while it runs
# (course.NOTEBOOK_SHARES; docs/design.md; that a hang uses up only its own share is shown in
# tests/test_sandbox.py). Here the submission has 150 s: 01_scratch_cnn 90 s, 02_keras 45 s,
# 03_theory 15 s; Problems 8 and 10 are checked after the hang, in shares of their own.
SHARED = Limits(call_timeout=3, exec_timeout=8, max_call_timeout=60, wall_factor=2, submission_timeout=150)


@pytest.mark.parametrize("scenario, hogs", [("sleep-past-budget-in-fit", 0), ("conv-forward-ignores-sigterm", 2)],
                         ids=["fit-sleeps-quiet", "forward-ignores-sigterm-beside-two-cpu-hogs"])
def test_a_hang_in_one_notebook_costs_no_other_notebooks_points(scenario, hogs, solution_dir, tmp_path):
    import subprocess
    import sys
    from tests.test_hostile import BY_NAME, build

    folder = build(BY_NAME[scenario], solution_dir, tmp_path / scenario)
    hog = [sys.executable, "-c", "while True: pass"]
    running = [subprocess.Popen(hog, start_new_session=True) for _ in range(hogs)]
    try:
        result = Grader(limits=SHARED).grade(folder, student=scenario)
    finally:
        for p in running:
            p.kill()
            p.wait()
    points, text = scores(result), feedback_markdown(result)
    # Problems 3 (both parts) to 6 share no code with the hang, nor do 8 and 10 (other notebooks).
    assert {p: points[p] for p in (3, 4, 5, 6, 8, 10)} == {3: 10, 4: 10, 5: 6, 6: 4, 8: 10, 10: 6}, text
    assert points[7] == 0
    assert "02_keras.ipynb (its share" not in text and "03_theory.ipynb (its share" not in text
    hang = {"sleep-past-budget-in-fit": r"`Scratch2dCNNClassifier\.fit` did not finish within \d+ s of wall time "
                                        r"\(it waited or slept",
            "conv-forward-ignores-sigterm": r"`Conv2d\.forward` stopped the sandbox"}[scenario]
    assert re.search(hang, text), text   # the hang is named where it costs points

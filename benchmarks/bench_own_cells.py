"""Every correct line counts, and a hang costs only its own notebook: the hand-ins of issue 17, graded
whole by the CLI's grader with the default limits (one ``Grader``, as a worker keeps it).

    .venv/bin/python benchmarks/bench_own_cells.py

* helper-in-added-cell: a correct ``Conv2d`` whose import (``sliding_window_view``) and padding helper
  live in cells the student added (issue 17: 48 / 86 before, NameError on every check of 1, 2, 7);
* 75s-check-ending-p7-cell: the full solution with a 75 s call left at the end of Problem 7's answer
  cell (issue 17: 0 / 15 on Problem 7 before, "Scratch2dCNNClassifier is not defined ... CellTimeout");
* fit-sleeps / forward-ignores-sigterm: the hostile catalogue's hangs (tests/fixtures/hostile), which
  cost Problems 8 and 10 before (0 of 16: "the time budget of 600 s for the whole submission is used up").

Prints each hand-in's points by problem and its grading time (wall, as ``execution_time``).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.assignment.solutions import make_submission  # noqa: E402
from autograder.grading.grader import Grader  # noqa: E402
from tests.conftest import scores  # noqa: E402


def main() -> None:
    import tests.test_own_cells as own
    from tests.test_hostile import BY_NAME, build

    own.SLOW_TAIL = "\n\n# my own check, left at the end of the cell\nimport time\ntime.sleep(75)\n"
    work = Path(tempfile.mkdtemp(prefix="bench-own-cells-"))
    solution = make_submission(work / "solution")
    hand_ins = {
        "helper-in-added-cell": own.hand_in(work / "helper", conv=True),
        "75s-check-ending-p7-cell": own.hand_in(work / "slow-tail", slow_tail=True),
        "fit-sleeps": build(BY_NAME["sleep-past-budget-in-fit"], solution, work / "fit-sleeps"),
        "forward-ignores-sigterm": build(BY_NAME["conv-forward-ignores-sigterm"], solution, work / "sigterm"),
    }
    grader = Grader()
    print(f"{'hand-in':<26}{'total':>8}  {'P7':>5}  {'P8+P10':>7}  {'seconds':>8}  points by problem", flush=True)
    for name, folder in hand_ins.items():
        t0 = time.monotonic()
        result = grader.grade(folder, student=name)
        points = scores(result)
        print(f"{name:<26}{result.total:>5g}/{result.possible:g}  {points[7]:>5g}  {points[8] + points[10]:>5g}/16"
              f"  {time.monotonic() - t0:>8.0f}  {points}", flush=True)


if __name__ == "__main__":
    main()

"""Does Validate predict the grade? Its catch rate and its false alarms over the project's catalogue.

    .venv/bin/python benchmarks/bench_validate.py [--workers 2] [--nbgrader 2] [--only NAME ...]

The catalogue is tests/test_catalogue.py: ``BUGS`` (each loses hidden points on its problem, which
that test asserts) and ``CORRECT`` (each gets full marks), plus the source solution of each notebook.
For every entry this runs, in a fresh Python process, what ``nbgrader validate`` evaluates for the
visible tests: the notebook's setup cell, its answer cells (the source solution with the entry's
cells or patches) and its visible-test cells, in notebook order, each cell's error caught as in a
kernel, with ``NBGRADER_EXECUTION`` set (so ``FAST`` is on, as in Validate) and the offline MNIST. A
visible-test cell fails when it raises or writes to stderr (nbgrader counts both). The cells
nbgrader validate also runs (data loading, demos) define nothing the visible tests use, so they are
left out; ``--nbgrader N`` runs the real ``nbgrader validate`` on N entries (bugs and correct ones)
and checks that it names the same problems.

* catch rate: the bugs whose own problem's visible cell fails, over all the bugs (goal >= 95%);
* false alarms: the correct entries on which some visible cell of their notebook fails (goal 0%).

A bug's entry runs only its own problem's visible cell and stops after it (every visible cell stands
alone, so the others cannot change whether that problem is named). tests/test_validate.py asserts
both goals with this module's ``measure``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.assignment import metadata  # noqa: E402
from autograder.assignment.solutions import make_submission, source_solutions  # noqa: E402
from autograder.course import SOURCE_DIR  # noqa: E402

GOAL_CATCH, GOAL_FALSE_ALARMS = 0.95, 0.0
# Run through the real nbgrader validate first (--nbgrader): the stride bug the issue names, a loop-based
# correct Conv2d.
NBGRADER_FIRST = ("stride_ignored_in_backward", "conv_loops", "lenet_no_softmax", "conv_float32")
NAMED = re.compile(r"^    # Problem (\d+), visible tests\b", re.M)

# The child: for each entry given on stdin, runs its cells in a fresh namespace, in order, each
# cell's exception caught (the rest of the cell skipped, as in Jupyter), and reports every visible
# cell's outcome as JSON. Entries of 02_keras share a child (TensorFlow is imported once per child,
# ten seconds each time); every other entry has a child of its own.
CHILD = r"""
import contextlib, io, json, sys, traceback
jobs = json.loads(sys.stdin.read())
for job in jobs:
    if job["folder"] not in sys.path:
        sys.path.insert(0, job["folder"])
    namespace = {"__name__": "__main__"}
    results = []
    for gid, kind, code in job["cells"]:
        err = io.StringIO()
        failure = ""
        with contextlib.redirect_stderr(err):
            try:
                exec(compile(code, f"<{gid}>", "exec"), namespace)
            except BaseException as exc:
                failure = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if kind == "visible":
            if not failure and err.getvalue().strip():
                failure = "stderr: " + err.getvalue().strip()
            results.append({"cell": gid, "failure": failure[-1500:]})
        if job.get("stop") == gid:
            break
    print("@@RESULT@@" + json.dumps({"name": job["name"], "results": results}), flush=True)
"""


@dataclass
class Entry:
    name: str
    kind: str                       # "bug" or "correct"
    notebook: str
    problem: int | None             # a bug's problem
    answers: dict                   # grade_id -> the answer cell's code
    overrides: dict = field(default_factory=dict)
    patches: tuple = ()
    cells: frozenset = frozenset()  # the answer cells the entry changes


@dataclass
class Outcome:
    entry: Entry
    failed: dict                    # visible cell grade_id -> its failure ("" cells passed)
    seconds: float

    @property
    def named(self) -> set[int]:
        return {problem_of(gid) for gid, why in self.failed.items() if why}


def problem_of(grade_id: str) -> int:
    return int(re.match(r"p(\d+)_", grade_id).group(1))


def cells_of(notebook: str) -> list[tuple[str, str, str]]:
    """(grade_id, kind, source) of the setup, answer and visible cells of a source notebook (in
    $BENCH_VALIDATE_SOURCE if set: an older copy of source/cnn2d, for a before/after figure)."""
    folder = Path(os.environ.get("BENCH_VALIDATE_SOURCE", SOURCE_DIR))
    nb = nbformat.read(folder / f"{notebook}.ipynb", as_version=4)
    out = []
    for cell in nb.cells:
        gid = metadata.grade_id(cell) or ""
        if cell.cell_type != "code":
            continue
        if gid.startswith("setup"):
            out.append((gid, "setup", cell.source))
        elif metadata.is_solution(cell):
            out.append((gid, "answer", cell.source))
        elif gid.endswith("_visible"):
            out.append((gid, "visible", cell.source))
    return out


def catalogue() -> list[Entry]:
    from tests.test_catalogue import BUGS, CORRECT, NOTEBOOK_OF

    solutions = source_solutions()
    entries = [Entry(f"solution_{nb}", "correct", nb, None, {}, cells=frozenset(solutions[nb]))
               for nb in solutions]
    for bug in BUGS:
        if bug.missed:               # the hidden checks do not catch it yet: it loses no points
            continue
        nb = NOTEBOOK_OF[next(iter(bug.cells))]
        entries.append(Entry(bug.name, "bug", nb, bug.problem, {}, bug.overrides(), tuple(bug.patches),
                             frozenset(bug.cells)))
    for v in CORRECT:
        nb = NOTEBOOK_OF[next(iter(v.cells))]
        entries.append(Entry(v.name, "correct", nb, None, {}, v.overrides(), tuple(v.patches),
                             frozenset(v.cells)))
    for e in entries:
        answers = dict(solutions[e.notebook])
        answers.update(e.overrides)
        for gid, old, new in e.patches:
            if old not in answers.get(gid, ""):
                raise ValueError(f"{e.name}: patch for {gid}: {old!r} does not occur in the solution")
            answers[gid] = answers[gid].replace(old, new)
        e.answers = answers
    return entries


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBGRADER", "PYTEST"))}
    env.update(NBGRADER_EXECUTION="validate", MNIST_PATH=env.get("MNIST_PATH", "offline"),
               TF_CPP_MIN_LOG_LEVEL="3", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MPLBACKEND="Agg", PYTHONWARNINGS="default")
    env.pop("CNN2D_FAST", None)
    return env


def job(entry: Entry) -> dict:
    """The cells of the entry's notebook to run: setup, answers (the entry's), visible tests. A bug's
    are its problem's visible cells only, and stop after them; a correct entry's visible cells are those of the problems
    tests/test_catalogue.py grades it on (Problem 7, which trains, only when the entry changes the
    classifier's cell: the source classifier calls Conv2d with the stub's ``rng=`` keyword, which
    the correct Conv2d variants, written whole, leave out)."""
    cells = []
    for gid, kind, code in cells_of(entry.notebook):
        if kind == "visible" and entry.kind == "correct" and problem_of(gid) == 7 \
                and "p7_classifier" not in entry.cells:
            continue
        if kind == "visible" and entry.kind == "bug" and problem_of(gid) != entry.problem:
            continue                 # each visible cell stands alone: the others cannot change this one
        cells.append((gid, kind, entry.answers.get(gid, code) if kind == "answer" else code))
    stop = ""
    if entry.kind == "bug":
        visible = [gid for gid, kind, _ in cells if kind == "visible" and problem_of(gid) == entry.problem]
        stop = visible[-1] if visible else ""
    return {"name": entry.name, "folder": str(SOURCE_DIR), "cells": cells, "stop": stop}


def run(entries: list[Entry], timeout: float = 900) -> list[Outcome]:
    """The entries' cells in one fresh process, each entry in a fresh namespace."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps([job(e) for e in entries]),
                          capture_output=True, text=True, cwd=SOURCE_DIR, env=child_env(), timeout=timeout)
    seconds = (time.perf_counter() - started) / len(entries)
    found = {}
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            r = json.loads(line[len("@@RESULT@@"):])
            found[r["name"]] = {x["cell"]: x["failure"] for x in r["results"]}
    died = {"(process)": f"the child died (exit {proc.returncode}): {proc.stderr[-1500:]}"}
    return [Outcome(e, found.get(e.name, died), seconds) for e in entries]


def caught(outcome: Outcome) -> bool:
    return outcome.entry.problem in outcome.named


def false_alarm(outcome: Outcome) -> bool:
    return bool(outcome.named) or "(process)" in outcome.failed


def measure(workers: int = 2, only: list[str] | None = None) -> list[Outcome]:
    entries = [e for e in catalogue() if not only or e.name in only]
    keras = [e for e in entries if e.notebook == "02_keras"]
    groups = [[e] for e in entries if e.notebook != "02_keras"]
    groups += [keras[i::workers] for i in range(workers) if keras[i::workers]]
    groups.sort(key=lambda g: -len(g))           # the long keras groups first
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = [o for outcomes in pool.map(run, groups) for o in outcomes]
    order = {e.name: i for i, e in enumerate(entries)}
    return sorted(done, key=lambda o: order[o.entry.name])


def figures(outcomes: list[Outcome]) -> dict:
    bugs = [o for o in outcomes if o.entry.kind == "bug"]
    correct = [o for o in outcomes if o.entry.kind == "correct"]
    missed = [o for o in bugs if not caught(o)]
    alarms = [o for o in correct if false_alarm(o)]
    return {"bugs": len(bugs), "caught": len(bugs) - len(missed), "missed": missed,
            "correct": len(correct), "alarms": alarms,
            "catch_rate": (len(bugs) - len(missed)) / len(bugs) if bugs else 1.0,
            "false_alarm_rate": len(alarms) / len(correct) if correct else 0.0}


# ----------------------------------------------------------------------------- real nbgrader validate
def nbgrader_validate(entry: Entry, folder: Path) -> set[int]:
    """The problems real ``nbgrader validate`` names for the entry's notebook, run as a student runs
    it (tests/test_validate.py's environment)."""
    from tests.test_validate import named_problems, validate

    sub = make_submission(folder / entry.name, overrides={g: entry.answers[g] for g in entry.answers})
    return named_problems(validate(sub / f"{entry.notebook}.ipynb"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nbgrader", type=int, default=2, help="entries also run through nbgrader validate")
    parser.add_argument("--only", nargs="*", help="entry names")
    args = parser.parse_args()
    started = time.perf_counter()
    outcomes = measure(args.workers, args.only)
    f = figures(outcomes)
    print(f"{'entry':44}{'kind':9}{'problem':>8}  {'named':14}{'s':>6}  verdict")
    for o in outcomes:
        e = o.entry
        verdict = ("caught" if caught(o) else "MISSED") if e.kind == "bug" else \
            ("FALSE ALARM" if false_alarm(o) else "success")
        named = ",".join(map(str, sorted(o.named))) or "-"
        print(f"{e.name:44}{e.kind:9}{e.problem or '':>8}  {named:14}{o.seconds:6.1f}  {verdict}")
    print(f"\ncatch rate: {f['caught']}/{f['bugs']} = {f['catch_rate']:.1%} (goal >= {GOAL_CATCH:.0%})")
    print(f"false alarms: {len(f['alarms'])}/{f['correct']} = {f['false_alarm_rate']:.1%} (goal 0%)")
    for o in f["missed"]:
        print(f"  missed {o.entry.name} (Problem {o.entry.problem}): named {sorted(o.named) or 'nothing'}")
    for o in f["alarms"]:
        why = next((w for w in o.failed.values() if w), "")
        print(f"  false alarm {o.entry.name}: {why[-600:]}")
    print(f"{len(outcomes)} entries in {time.perf_counter() - started:.0f} s with {args.workers} workers")
    if args.nbgrader:
        first = sorted(outcomes, key=lambda o: o.entry.name not in NBGRADER_FIRST)
        picks = [o for o in first if o.entry.kind == "bug"][: (args.nbgrader + 1) // 2] + \
                [o for o in first if o.entry.kind == "correct"][: args.nbgrader // 2 or 1]
        with tempfile.TemporaryDirectory(prefix="bench-validate-", dir=ROOT / "build") as tmp:
            for o in picks:
                real = nbgrader_validate(o.entry, Path(tmp))
                # a bug's proxy runs only its own problem's visible cell: compare on that problem; a
                # correct entry's on the problems it runs (Problem 7 only if it changes the classifier)
                if o.entry.kind == "bug":
                    same = (o.entry.problem in real) == caught(o)
                else:
                    same = real - ({7} if "p7_classifier" not in o.entry.cells else set()) == o.named
                print(f"nbgrader validate {o.entry.name}: names {sorted(real)}; the proxy {sorted(o.named)}"
                      f": {'agrees' if same else 'DISAGREES'}")
    return 0 if f["catch_rate"] >= GOAL_CATCH and not f["alarms"] else 1


if __name__ == "__main__":
    sys.exit(main())

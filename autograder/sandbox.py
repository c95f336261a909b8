"""The harness side of the sandbox: start a child process that runs a student's answer cells, talk
to it through a proxy, enforce its limits, and kill everything it started when done.

    box = Sandbox(cells, limits=Limits(), label="01_scratch_cnn")
    student = box.namespace()
    layer = student.Conv2d(1, 2, 3)        # runs in the child, returns a RemoteObject
    y = layer.forward(np.ones((1, 1, 5, 5)))  # a plain np.ndarray, decoded with allow_pickle=False
    box.close()

Every call has a time limit; a call that times out, a child that dies or that breaks the wire
format fails that call with a clear exception, and the next call starts a fresh child (the cells
run again). The child runs ``sandbox_worker.py`` as its whole program; see there for the wire format.
"""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, asdict
from pathlib import Path

import numpy as np

from autograder import sandbox_worker as wire

WORKER_SOURCE = Path(wire.__file__).read_bytes()
ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- errors
class SandboxError(Exception):
    """Something about the student's code stopped a check. ``str()`` is student-facing."""


class StudentError(SandboxError):
    """The student's code raised an exception."""

    def __init__(self, exc_type: str, message: str, traceback: str = ""):
        self.exc_type, self.message, self.student_traceback = exc_type, message, traceback
        super().__init__(f"{exc_type}: {message}" if message else exc_type)


class NotImplementedAnswer(StudentError):
    """The answer still raises NotImplementedError."""


class MissingAnswer(StudentError):
    """A name the check needs is not defined by the answer cells."""


class SandboxTimeout(SandboxError):
    """A call ran past its time limit (or the submission's whole budget is spent)."""


class SandboxCrash(SandboxError):
    """The child died, or sent something that is not a well-formed reply."""


# ----------------------------------------------------------------------------- limits
@dataclass
class Limits:
    """What one sandbox may use. Defaults suit one student's cnn2d notebooks on 2 cores."""

    call_timeout: float = 10.0           # wall seconds for one call into student code
    max_call_timeout: float = 300.0      # cap on the longer limits checks ask for (training)
    exec_timeout: float = 60.0           # wall seconds to run a notebook's answer cells
    submission_timeout: float = 600.0    # wall seconds for all calls of one submission
    cpu_seconds: int = 900               # RLIMIT_CPU for the child's lifetime
    memory_bytes: int = 4 << 30          # RLIMIT_AS (TensorFlow needs ~2.5 GiB of address space)
    max_processes: int = 512             # RLIMIT_NPROC (threads count); enforced for a non-root uid
    max_file_bytes: int = 64 << 20       # RLIMIT_FSIZE
    max_open_files: int = 256            # RLIMIT_NOFILE
    max_output_bytes: int = 64 << 10     # of the student's stdout+stderr, kept for the report
    max_message_bytes: int = 64 << 20    # the largest reply the harness reads
    max_restarts: int = 6                # fresh children after failures, per sandbox
    scratch_bytes: int = 256 << 20       # as root: each private tmpfs over /tmp, /var/tmp, /dev/shm
    isolate: bool = True                 # namespaces, masks and a dedicated uid when run as root

    def rlimits(self) -> dict[str, int]:
        return {"RLIMIT_CPU": self.cpu_seconds, "RLIMIT_AS": self.memory_bytes,
                "RLIMIT_NPROC": self.max_processes, "RLIMIT_FSIZE": self.max_file_bytes,
                "RLIMIT_NOFILE": self.max_open_files, "RLIMIT_CORE": 0}

    def as_dict(self) -> dict:
        return asdict(self)


class Budget:
    """The wall-clock budget one submission's sandboxes share."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()


# ----------------------------------------------------------------------------- uids
_uid_lock = threading.Lock()
_uid_next = [0]


def _uid_in_use(uid: int) -> bool:
    """Whether a live process (zombies aside: they hold nothing and init reaps them) has ``uid``."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    with open(f"/proc/{pid}/stat", "rb") as f:
                        if f.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                            return True
            except (OSError, IndexError):
                pass
    return False


def allocate_uid() -> int:
    """A uid no process uses, unique to this harness process: each sandbox gets its own, so
    'kill every process of this uid' reaches exactly that sandbox and whatever it forked."""
    with _uid_lock:
        while True:
            _uid_next[0] += 1
            uid = 200_000 + (os.getpid() % 50_000) * 64 + (_uid_next[0] % 64)
            if not _uid_in_use(uid):
                return uid


_KILL = shutil.which("kill") or "/bin/kill"


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid``, repeatedly until none is left (a fork bomb races us)."""
    for _ in range(20):
        if not _uid_in_use(uid):
            return
        # kill(-1) from a process of that uid: every process it may signal, i.e. all of that uid.
        subprocess.run([_KILL, "-9", "-1"],
                       user=uid, group=uid, extra_groups=[], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        time.sleep(0.02)


# ----------------------------------------------------------------------------- what the sandbox sees
SYSTEM_ROOTS = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys",
                "tmp", "usr", "var", "nix", "snap"}


def _installation_paths() -> list[str]:
    """The interpreter's own folders (prefix, base prefix, stdlib, site-packages): bound back into the
    sandbox's view; never the repository or anything else on the harness's sys.path."""
    roots = [os.path.realpath(p) for p in {sys.prefix, sys.base_prefix}]
    paths = {sys.prefix, sys.base_prefix}
    for p in sys.path[1:]:
        if p and any(os.path.realpath(p) == r or os.path.realpath(p).startswith(r + os.sep) for r in roots):
            paths.add(p)
    return sorted(paths)


def _covered_roots() -> list[str]:
    """Top-level folders that are not the operating system's (/work, /home, /root, /opt, /srv, a data
    mount ...): the sandbox sees them empty, apart from the Python installation bound back in."""
    return sorted(str(p) for p in Path("/").iterdir()
                  if p.name not in SYSTEM_ROOTS and p.is_dir() and not p.is_symlink())


# ----------------------------------------------------------------------------- the sandbox
@dataclass
class Cell:
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
                 hide: list[str] | None = None, support_files: list[Path] | None = None,
                 budget: Budget | None = None):
        self.cells = cells
        self.limits = limits or Limits()
        self.label = label
        self.hide = hide or []
        self.support_files = support_files or []
        self.budget = budget or Budget(self.limits.submission_timeout)
        self.report = SandboxReport(label)
        self.generation = 0
        self.proc: subprocess.Popen | None = None
        self.uid: int | None = None
        self.workdir: str | None = None
        self._lock = threading.RLock()
        self._out_thread: threading.Thread | None = None
        self._out = bytearray()
        self._starting: threading.Thread | None = None
        self._started = threading.Event()    # the background start is over (ok or not)
        self._released = threading.Event()   # the child the background thread started is gone
        self._start_error: BaseException | None = None
        self._extra_timeout: float | None = None
        self._broken: str | None = None
        self._codec = wire.Codec(make_ref=self._encode_ref, resolve_ref=self._decode_ref)

    # --- life cycle
    def start_in_background(self) -> None:
        """Start the child (and run the cells) in a thread, so several start at once. The thread
        then waits until that child is killed: the child asks for SIGKILL when its parent ends
        (PR_SET_PDEATHSIG), and for the kernel its parent is the *thread* that started it."""
        def run():
            try:
                self._ensure_started()
            except BaseException as e:  # reported on first use
                self._start_error = e
            finally:
                self._started.set()
            self._released.wait()
        self._starting = threading.Thread(target=run, daemon=True)
        self._starting.start()

    def _ensure_started(self) -> None:
        if self._starting is not None and threading.current_thread() is not self._starting:
            self._started.wait()
            self._starting = None
            if self._start_error is not None:
                err, self._start_error = self._start_error, None
                raise err
        with self._lock:
            if self.proc is not None:
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
        as_root = os.geteuid() == 0 and self.limits.isolate
        self.uid = allocate_uid() if as_root else None
        self.workdir = tempfile.mkdtemp(prefix="cnn2d-sandbox-")
        # The worker's own program travels as a file in its folder: the sandbox may not be able to
        # read the autograder package (masked), and a file keeps `ps` readable (unlike `-c SOURCE`).
        worker = os.path.join(self.workdir, "_sandbox_worker.py")
        with open(worker, "wb") as f:
            f.write(WORKER_SOURCE)
        os.chmod(worker, 0o444)
        for f in self.support_files:
            (Path(self.workdir) / f.name).write_bytes(f.read_bytes())
        if self.uid is not None:
            for p in [self.workdir, *[os.path.join(self.workdir, f.name) for f in self.support_files]]:
                os.chown(p, self.uid, self.uid)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        config = {"rfd": to_child_r, "wfd": from_child_w, "limits": self.limits.rlimits(),
                  "uid": self.uid, "gid": self.uid, "hide": self.hide if self.limits.isolate else [],
                  "namespaces": self.limits.isolate, "workdir": self.workdir,
                  "scratch_bytes": self.limits.scratch_bytes if self.limits.isolate else 0,
                  "expose": _installation_paths(), "cover": _covered_roots() if self.limits.isolate else []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0",
               # One BLAS thread per sandbox: several sandboxes and the harness share the cores, and
               # spinning OpenBLAS threads made a 4 s fit take 80 s on a busy 2-core machine.
               "OMP_NUM_THREADS": os.environ.get("CNN2D_SANDBOX_THREADS", "1"),
               "OPENBLAS_NUM_THREADS": os.environ.get("CNN2D_SANDBOX_THREADS", "1"),
               "MKL_NUM_THREADS": os.environ.get("CNN2D_SANDBOX_THREADS", "1")}
        import json

        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", worker, json.dumps(config)],
            pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, cwd=self.workdir, start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self._w, self._r = to_child_w, from_child_r
        os.set_blocking(self._w, False)
        os.set_blocking(self._r, False)
        self._out_thread = threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True)
        self._out_thread.start()
        self.generation += 1
        header, _ = self._receive(time.monotonic() + min(60.0, max(self.budget.remaining(), 1.0)))
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

    def _drain(self, stream) -> None:
        limit = self.limits.max_output_bytes
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                return
            keep = max(0, limit - len(self._out))
            self._out += chunk[:keep]
            self.report.output_dropped += len(chunk) - min(keep, len(chunk))

    def kill(self) -> None:
        """Kill the child and everything it started; wait for it."""
        self._released.set()  # the background starter may end now (see start_in_background)
        with self._lock:
            proc, self.proc = self.proc, None
            if proc is None:
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            if self.uid is not None:
                kill_uid(self.uid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            for fd in (self._w, self._r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self._out_thread is not None:
                self._out_thread.join(timeout=2)
            if self.workdir:
                subprocess.run(["rm", "-rf", "--one-file-system", self.workdir], check=False)
                self.workdir = None

    def close(self) -> SandboxReport:
        if self._starting is not None:
            self._started.wait()
        self.kill()
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        self.report.output = self._out.decode("utf-8", errors="replace")
        return self.report

    def _fail(self, exc: SandboxError) -> SandboxError:
        """A call broke the child: note it, kill it, and let the next call start afresh."""
        self.report.failures.append(str(exc)[:300])
        self.kill()
        self.report.restarts += 1
        return exc

    # --- the wire
    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            _, ready, _ = select.select([], [self._w], [], left)
            if ready:
                view = view[os.write(self._w, view):]

    def _read_exact(self, n: int, deadline: float) -> bytes:
        chunks, left = [], n
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._r], [], [], wait)
            if not ready:
                continue
            chunk = os.read(self._r, min(left, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _receive(self, deadline: float):
        try:
            header, arrays = wire.receive_message(lambda n: self._read_exact(n, deadline),
                                                  self.limits.max_message_bytes)
        except TimeoutError:
            raise self._fail(SandboxTimeout("timed out")) from None
        except EOFError:
            raise self._fail(SandboxCrash(self._death_message())) from None
        except wire.ProtocolError as e:
            raise self._fail(SandboxCrash(f"the sandbox sent a malformed reply ({e})")) from None
        return header, arrays

    def _death_message(self) -> str:
        proc = self.proc
        code = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=2)
        if code is None:
            return "the sandbox closed its connection"
        if code < 0:
            sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            why = {"SIGKILL": " (killed: the memory or process limit, or a kill)",
                   "SIGXCPU": " (the CPU-time limit)", "SIGXFSZ": " (the file-size limit)",
                   "SIGSEGV": " (a crash in native code, often the memory limit)"}.get(sig, "")
            return f"the sandbox process died from {sig}{why}"
        return f"the sandbox process exited with status {code} (sys.exit or os._exit in your code?)"

    def _request(self, header: dict, arrays: list, timeout: float, what: str) -> dict:
        remaining = self.budget.remaining()
        if remaining <= 0:
            raise SandboxTimeout(f"the time budget of {self.budget.seconds:.0f} s for the whole submission "
                                 "is used up, so this check was not run")
        timeout = min(timeout, remaining)
        deadline = time.monotonic() + timeout
        with self._lock:
            try:
                wire.send_message(lambda b: self._write(b, deadline), header, arrays)
            except TimeoutError:
                raise self._fail(SandboxTimeout(f"{what} did not finish within {timeout:.0f} s")) from None
            except OSError:
                raise self._fail(SandboxCrash(self._death_message())) from None
            try:
                reply, out_arrays = self._receive(deadline)
            except SandboxTimeout:
                raise SandboxTimeout(f"{what} did not finish within {timeout:.0f} s: look for an infinite "
                                     "loop or a loop that is far too slow") from None
        if reply.get("ok") is True:
            reply["_arrays"] = out_arrays
            return reply
        err = reply.get("error")
        if not isinstance(err, dict):
            raise self._fail(SandboxCrash("the sandbox sent a malformed reply"))
        etype, msg, tb = (str(err.get("type", "Exception"))[:100], str(err.get("message", ""))[:2000],
                          str(err.get("traceback", ""))[:4000])
        if reply.get("missing") is True:
            raise MissingAnswer(etype, msg, tb)
        cls = NotImplementedAnswer if etype == "NotImplementedError" else StudentError
        raise cls(etype, msg, tb)

    # --- values
    def _encode_ref(self, value) -> dict:
        if isinstance(value, RemoteObject) and object.__getattribute__(value, "_sandbox") is self:
            return {"__ref__": object.__getattribute__(value, "_ref")}
        raise TypeError(f"cannot send a {type(value).__name__} to the sandbox")

    def _decode_ref(self, o: dict) -> RemoteObject:
        return RemoteObject(self, int(o["__ref__"]), str(o.get("type", "object"))[:100],
                            bool(o.get("callable", False)), self.generation, str(o.get("name") or "")[:100])

    def call(self, op: str, ref: int | None, name: str | None, args=(), kwargs=None,
             timeout: float | None = None, label: str = ""):
        self._ensure_started()
        (enc_args, enc_kwargs), arrays = self._codec.encode([list(args), dict(kwargs or {})])
        limit = timeout or self._extra_timeout or self.limits.call_timeout
        what = f"`{name or label}`" if name or label else "the call"
        reply = self._request({"op": op, "ref": ref, "name": name, "args": enc_args, "kwargs": enc_kwargs},
                              arrays, limit, what)
        try:
            return self._codec.decode(reply.get("value"), reply["_arrays"])
        except wire.ProtocolError as e:
            raise self._fail(SandboxCrash(f"the sandbox sent a malformed reply ({e})")) from None

    def namespace(self) -> "StudentNamespace":
        return StudentNamespace(self)

    @contextlib.contextmanager
    def time_limit(self, seconds: float):
        old, self._extra_timeout = self._extra_timeout, min(float(seconds), self.limits.max_call_timeout)
        try:
            yield
        finally:
            self._extra_timeout = old


# ----------------------------------------------------------------------------- the proxy
class RemoteObject:
    """A handle on an object that lives in the sandbox. Attribute reads, writes and calls run there."""

    __slots__ = ("_sandbox", "_ref", "_type", "_callable", "_generation", "_name")

    def __init__(self, sandbox: Sandbox, ref: int, type_name: str, is_callable: bool, generation: int,
                 name: str = ""):
        for k, v in (("_sandbox", sandbox), ("_ref", ref), ("_type", type_name),
                     ("_callable", is_callable), ("_generation", generation), ("_name", name)):
            object.__setattr__(self, k, v)

    def _live(self) -> Sandbox:
        box = object.__getattribute__(self, "_sandbox")
        if box.generation != object.__getattribute__(self, "_generation") or box.proc is None:
            raise SandboxCrash("this object was lost when the sandbox restarted after an earlier failure")
        return box

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._live().call("getattr", object.__getattribute__(self, "_ref"), name)

    def __setattr__(self, name: str, value) -> None:
        self._live().call("setattr", object.__getattribute__(self, "_ref"), name, (value,))

    def __call__(self, *args, **kwargs):
        return self._live().call("call", object.__getattribute__(self, "_ref"), None, args, kwargs,
                                 label=object.__getattribute__(self, "_name"))

    def __repr__(self) -> str:
        return f"<student object: {object.__getattribute__(self, '_type')}>"


class StudentNamespace:
    """``student.Name`` is the name from the answer cells; see ``RemoteObject`` for what comes back."""

    def __init__(self, sandbox: Sandbox):
        object.__setattr__(self, "_sandbox", sandbox)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        box = object.__getattribute__(self, "_sandbox")
        try:
            return box.call("getattr", None, name)
        except MissingAnswer as e:
            raise MissingAnswer(e.exc_type, _missing_message(name, box.report.cell_errors)) from None

    def time_limit(self, seconds: float):
        """``with student.time_limit(90): clf.fit(X, y)`` raises the per-call limit inside the block."""
        return object.__getattribute__(self, "_sandbox").time_limit(seconds)

    @property
    def cell_errors(self) -> dict[str, dict]:
        return object.__getattribute__(self, "_sandbox").report.cell_errors


def _missing_message(name: str, cell_errors: dict[str, dict]) -> str:
    msg = f"`{name}` is not defined by your answer cells"
    if cell_errors:
        first = next(iter(cell_errors.items()))
        msg += (f"; note that the answer cell '{first[0]}' raised {first[1].get('type')}: "
                f"{first[1].get('message', '')[:300]}")
    return msg


# ----------------------------------------------------------------------------- in-process twin
class LocalNamespace:
    """The same interface over a namespace in this process (nbgrader's kernel). Every value makes
    the same round trip through the codec, so checks see exactly what they would see remotely."""

    def __init__(self, namespace: dict):
        object.__setattr__(self, "_ns", namespace)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        ns = object.__getattribute__(self, "_ns")
        if name not in ns:
            raise MissingAnswer("NameError", f"`{name}` is not defined by your answer cells")
        return _wrap_value(ns[name])

    def time_limit(self, seconds: float):
        return contextlib.nullcontext()

    @property
    def cell_errors(self) -> dict:
        return {}


_local_codec = wire.Codec(make_ref=lambda obj: {"__ref__": 0, "obj": obj}, resolve_ref=None)


def _wrap_value(value):
    try:
        enc, arrays = _local_codec.encode(value)
    except ValueError as e:
        raise StudentError("ValueError", str(e)) from None
    return _decode_local(enc, arrays)


def _decode_local(o, arrays):
    if isinstance(o, list):
        return [_decode_local(x, arrays) for x in o]
    if isinstance(o, dict):
        if "__nd__" in o:
            return np.array(arrays[o["__nd__"]], copy=True)
        if "__tuple__" in o:
            return tuple(_decode_local(x, arrays) for x in o["__tuple__"])
        if "__dict__" in o:
            return {k: _decode_local(v, arrays) for k, v in o["__dict__"].items()}
        if "__ref__" in o:
            return _LocalObject(o["obj"])
    return o


def _unwrap(value):
    if isinstance(value, _LocalObject):
        return object.__getattribute__(value, "_obj")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


def _student_call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as e:
        raise NotImplementedAnswer("NotImplementedError", str(e)) from None
    except Exception as e:
        import traceback

        raise StudentError(type(e).__name__, str(e)[:2000], "".join(traceback.format_exception(e))[-4000:]) from None


class _LocalObject:
    __slots__ = ("_obj",)

    def __init__(self, obj):
        object.__setattr__(self, "_obj", obj)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        obj = object.__getattribute__(self, "_obj")
        return _wrap_value(_student_call(getattr, obj, name))

    def __setattr__(self, name: str, value) -> None:
        _student_call(setattr, object.__getattribute__(self, "_obj"), name, _unwrap(value))

    def __call__(self, *args, **kwargs):
        obj = object.__getattribute__(self, "_obj")
        return _wrap_value(_student_call(obj, *_unwrap(args), **_unwrap(kwargs)))

    def __repr__(self) -> str:
        return f"<student object: {type(object.__getattribute__(self, '_obj')).__name__}>"

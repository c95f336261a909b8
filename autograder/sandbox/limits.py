"""What one sandbox may use, and the time budget of each notebook's sandbox.

Each limit is declared once, with its default and its help; the CLI's ``--help`` is written from
these declarations (``describe()``). The time limits' values live in ``autograder.course``.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field, fields

from autograder import course


def _limit(default, help: str, flag: str = ""):
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass
class Limits:
    """Defaults suit one student's cnn2d notebooks on 2 cores."""

    call_timeout: float = _limit(course.CALL_SECONDS, "wall seconds for one call into student code", "--call-timeout")
    max_call_timeout: float = _limit(course.TRAINING_CAP_SECONDS, "the most a check may raise one call's limit to (training)")
    wall_factor: float = _limit(course.WALL_FACTOR, "a training call's limit is CPU seconds of the sandbox; its wall cap "
                                "is this many times that (code that sleeps or blocks)")
    exec_timeout: float = _limit(course.CELLS_SECONDS, "wall seconds to run one cell (an answer cell or one of the "
                                 "student's own; the line running then is cut, the lines above it kept)")
    start_timeout: float = _limit(course.START_SECONDS, "wall seconds for a sandbox to start, before any student code")
    submission_timeout: float = _limit(course.SUBMISSION_SECONDS, "wall seconds for all calls of one submission, "
                                       "each notebook with its own share (" + ", ".join(
                                           f"{nb[:2]} {share:.0%}" for nb, share in course.NOTEBOOK_SHARES.items()) + ")",
                                       "--submission-timeout")
    cpu_seconds: int = _limit(course.CPU_SECONDS, "CPU seconds of a sandbox process's whole life (RLIMIT_CPU)")
    memory_bytes: int = _limit(4 << 30, "address space of a sandbox process (RLIMIT_AS; TensorFlow needs ~2.5 GiB)",
                               "--memory-mb")
    sandbox_memory_bytes: int = _limit(6 << 30, "memory of all of a sandbox's processes together (a cgroup's limit "
                                       "where the grader may make one, else a watchdog of the grader)")
    max_processes: int = _limit(512, "processes and threads (RLIMIT_NPROC), enforced for the sandbox's own uid")
    max_file_bytes: int = _limit(64 << 20, "bytes per file written (RLIMIT_FSIZE)")
    max_open_files: int = _limit(256, "open files (RLIMIT_NOFILE)")
    max_output_bytes: int = _limit(64 << 10, "bytes of the student's printed output kept for the report")
    max_message_bytes: int = _limit(64 << 20, "bytes of the largest reply the grader reads")
    max_restarts: int = _limit(6, "fresh sandboxes per failing callable (4 times that per notebook)")
    scratch_bytes: int = _limit(256 << 20, "as root: size of each private tmpfs over /tmp, /var/tmp, /dev/shm")
    jail: bool = _limit(True, "namespaces, masks and a dedicated uid as root (off: --no-isolation)", "--no-isolation")

    def rlimits(self) -> dict[str, int]:
        return {"RLIMIT_CPU": self.cpu_seconds, "RLIMIT_AS": self.memory_bytes,
                "RLIMIT_NPROC": self.max_processes, "RLIMIT_FSIZE": self.max_file_bytes,
                "RLIMIT_NOFILE": self.max_open_files, "RLIMIT_CORE": 0}

    @classmethod
    def describe(cls) -> str:
        """One line per limit, with its default and its flag: the text of ``--help``."""
        lines = []
        for f in fields(cls):
            value = f.default
            if f.name.endswith("_bytes"):
                shown = f"{value >> 20} MiB" if value >= 1 << 20 else f"{value >> 10} KiB"
            elif f.name.endswith(("_timeout", "_seconds")):
                shown = f"{value:g} s"
            else:
                shown = str(value)
            flag = f" ({f.metadata['flag']})" if f.metadata["flag"] else ""
            lines.append(f"  {f.metadata['help']}: {shown}{flag}")
        return "\n".join(lines)


class Deadline:
    """When one call into student code must end. ``Deadline(10)``: 10 wall seconds from now.
    ``Deadline(120, clock=child.cpu_seconds, wall_factor=4)``: 120 seconds of the sandbox's CPU time
    (``clock()``: seconds, read from /proc) or 480 wall seconds, whichever comes first, so that a
    busy machine, which slows the call's wall time but not its CPU time, costs no points.
    ``left()`` is what the wire waits for; with a CPU clock it is at most ``POLL`` at a time."""

    POLL = 0.25

    def __init__(self, seconds: float, clock=None, wall_factor: float = 1.0, wall_cap: float | None = None):
        self.seconds, self.clock = seconds, clock
        wall = seconds * (wall_factor if clock else 1.0)
        self.wall = min(wall, wall_cap) if wall_cap is not None else wall
        self.wall_end = time.monotonic() + self.wall
        self.cpu_start = clock() if clock else 0.0
        self.used = 0.0              # CPU seconds at the last look; kept, as the sandbox is gone by the message
        self._looked = time.monotonic()

    def left(self) -> float:
        now = time.monotonic()
        wall = self.wall_end - now
        if self.clock is None or wall <= 0:
            return wall
        if now - self._looked >= self.POLL:      # the clock scans /proc: at most once per POLL, not per chunk
            self.used, self._looked = self.clock() - self.cpu_start, now
        return min(wall, self.seconds - self.used, self.POLL)

    def why(self) -> str:
        """How the call ran out, for the student: "within N s of CPU time" or "within N s"."""
        if self.clock is None:
            return f"within {self.seconds:.0f} s"
        if self.used >= self.seconds:
            return f"within {self.seconds:.0f} s of CPU time (its limit; a busy grading machine does not count)"
        return f"within {self.wall:.0f} s of wall time (it waited or slept: it used {self.used:.0f} s of CPU time)"


class Budget:
    """The wall time one notebook's sandbox may spend (``what`` names it): its share of the
    submission's time. Only time spent in the sandbox counts (starting it, running its cells, the
    checks' calls into it, all inside ``spending()``), not the time it waits while the checks of
    another notebook run, so a hang in one notebook costs none of another's share."""

    def __init__(self, seconds: float, what: str = "the whole submission"):
        self.seconds, self.what = seconds, what
        self.spent = 0.0
        self._since: float | None = None   # when the current spending began
        self._depth = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def spending(self):
        """Count the block's wall time (nested blocks once)."""
        with self._lock:
            if self._depth == 0:
                self._since = time.monotonic()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self.spent += time.monotonic() - self._since
                    self._since = None

    def remaining(self) -> float:
        with self._lock:
            running = time.monotonic() - self._since if self._since is not None else 0.0
            return self.seconds - self.spent - running

    @classmethod
    def for_notebook(cls, limits: "Limits", notebook: str) -> "Budget":
        """``notebook``'s share (``course.NOTEBOOK_SHARES``) of ``limits.submission_timeout``."""
        share = course.NOTEBOOK_SHARES.get(notebook, 1.0 / max(len(course.NOTEBOOK_SHARES), 1))
        return cls(limits.submission_timeout * share, f"{notebook}.ipynb (its share of the submission's "
                                                      f"{limits.submission_timeout:.0f} s)")

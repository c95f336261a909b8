"""One sandbox child process: its working folder, its own uid (as root), its pipes, its printed
output, and killing it with everything it started. Timeouts are the caller's deadlines.

The child runs ``worker.py`` (with its siblings ``wire.py`` and ``jail.py``) as its whole program,
copied into its folder: the child may not be able to read the ``autograder`` package (masked), and
a file keeps ``ps`` readable (unlike ``-c SOURCE``).
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from autograder.sandbox import jail, wire, worker
from autograder.sandbox.memory import MemoryCap, processes
from autograder.sandbox.limits import Limits

HERE = Path(__file__).resolve().parent
PROGRAM = {copy: (HERE / original).read_bytes() for copy, original in worker.FILES.items()}
MAIN = "_sandbox_worker.py"


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
    """A uid no process uses, unique to this grader process: each sandbox gets its own, so
    'kill every process of this uid' reaches exactly that sandbox and whatever it forked."""
    with _uid_lock:
        while True:
            _uid_next[0] += 1
            uid = 200_000 + (os.getpid() % 50_000) * 64 + (_uid_next[0] % 64)
            if not _uid_in_use(uid):
                return uid


_KILL = shutil.which("kill") or "/bin/kill"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


# ----------------------------------------------------------------------------- what the child sees
SYSTEM_ROOTS = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys",
                "tmp", "usr", "var", "nix", "snap"}


def installation_paths() -> list[str]:
    """The interpreter's own folders (prefix, base prefix, stdlib, site-packages): bound back into the
    child's view; never the repository or anything else on the grader's sys.path."""
    roots = [os.path.realpath(p) for p in {sys.prefix, sys.base_prefix}]
    paths = {sys.prefix, sys.base_prefix}
    for p in sys.path[1:]:
        if p and any(os.path.realpath(p) == r or os.path.realpath(p).startswith(r + os.sep) for r in roots):
            paths.add(p)
    return sorted(paths)


def hidden_roots() -> list[str]:
    """Top-level folders that are not the operating system's (/work, /home, /root, /opt, /srv, a data
    mount ...): the child sees them empty, apart from the Python installation bound back in."""
    return sorted(str(p) for p in Path("/").iterdir()
                  if p.name not in SYSTEM_ROOTS and p.is_dir() and not p.is_symlink())


# ----------------------------------------------------------------------------- without root: bubblewrap
BWRAP = "bwrap"


class IsolationUnavailable(RuntimeError):
    """Neither root nor an unprivileged user namespace: untrusted code cannot be isolated here.
    ``fix`` says what the instructor can do."""

    def __init__(self, reason: str, fix: str):
        super().__init__(f"{reason}\nFix: {fix}")
        self.reason, self.fix = reason, fix


def isolation_mode(isolate: bool = True) -> str:
    """How sandboxes are isolated on this machine: ``root`` (the grader is root: ``jail.py`` sets up
    the namespaces and masks and drops to a fresh uid), ``bubblewrap`` (not root: ``bwrap`` builds
    the same view in unprivileged user, PID, mount, network and IPC namespaces) or ``none``
    (``--no-isolation``). Raises ``IsolationUnavailable``, naming the fix, when isolation is asked
    for and neither works: the grader then refuses to grade (fail closed)."""
    if not isolate:
        return "none"
    if os.geteuid() == 0:
        return "root"
    return _probe_bubblewrap()


@functools.lru_cache(maxsize=None)  # once per process; a failed probe raises, so it is not kept
def _probe_bubblewrap() -> str:
    fix = ("install bubblewrap and allow unprivileged user namespaces (above), or grade in a container or as root "
           "(as Gradescope does), or, for code you trust, pass --no-isolation")
    path = shutil.which(BWRAP)
    if path is None:
        raise IsolationUnavailable("student code cannot be isolated here: the grader is not root and bubblewrap "
                                   "(bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap; Fedora: "
                                   "dnf install bubblewrap)", fix)
    probe = subprocess.run([path, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise IsolationUnavailable(
            "student code cannot be isolated here: bubblewrap could not create unprivileged namespaces "
            f"({probe.stderr.strip()[:300] or probe.returncode}). The kernel settings that allow them: "
            "sysctl kernel.unprivileged_userns_clone=1 (Debian kernels), user.max_user_namespaces > 0, and on "
            "Ubuntu 24.04+ kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap", fix)
    return "bubblewrap"


def bubblewrap_argv(config: dict, hidden: list[str]) -> list[str]:
    """The ``bwrap`` command line that gives an unprivileged sandbox the view a root sandbox gets
    from ``jail.py``: the system read-only; every top-level folder that is not the system's
    (``hidden_roots``) empty, with the Python installation bound back; each hidden path (the checks,
    the data, the output folders) masked; fresh size-capped tmpfs over the scratch folders; its own
    ``/proc`` (of a new PID namespace: no process of the grader is visible) and a minimal ``/dev``;
    no network, no IPC, no further user namespaces; its working folder the one writable host folder
    (removed with the sandbox). Order matters: bwrap applies these in turn, later over earlier."""
    workdir = os.path.realpath(config["workdir"])
    size = int(config.get("scratch_bytes") or 256 << 20)
    argv = [BWRAP, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--as-pid-1",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    covers = [r for r in (os.path.realpath(r) for r in config.get("hidden_roots", []))
              if not (workdir == r or workdir.startswith(r + os.sep))]
    for root in jail.outermost(covers):
        argv += ["--perms", "0755", "--size", str(64 << 10), "--tmpfs", root]
    scratch = [d for d in dict.fromkeys(os.path.realpath(d) for d in jail.SCRATCH_DIRS) if os.path.isdir(d)]
    for folder in scratch:
        argv += ["--perms", "1777", "--size", str(size), "--tmpfs", folder]
    gone = [*covers, *scratch]
    under = lambda p: any(p == g or p.startswith(g + os.sep) for g in gone)  # noqa: E731
    for path in jail.outermost(os.path.realpath(p) for p in hidden if os.path.lexists(p)):
        if under(path):
            continue  # already inside an empty folder
        if os.path.isdir(path):
            argv += ["--perms", "0555", "--size", "4096", "--tmpfs", path, "--remount-ro", path]
        else:
            argv += ["--ro-bind", "/dev/null", path]
    for path in jail.outermost(os.path.realpath(p) for p in config.get("installation", []) if os.path.isdir(p)):
        if under(path):
            argv += ["--ro-bind", path, path]
    argv += ["--bind", workdir, workdir, "--chdir", workdir, "--"]
    return argv


# ----------------------------------------------------------------------------- the process
class Output:
    """The student's printed output, over every child of one sandbox, up to ``limit`` bytes."""

    def __init__(self, limit: int):
        self.limit, self.kept, self.dropped = limit, bytearray(), 0

    def drain(self, stream) -> None:
        while True:
            chunk = stream.read1(65536)
            if not chunk:
                return
            keep = max(0, self.limit - len(self.kept))
            self.kept += chunk[:keep]
            self.dropped += len(chunk) - min(keep, len(chunk))

    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


class Child:
    """Started by ``start``; ``send``/``receive`` raise TimeoutError (a deadline: a ``time.monotonic()``
    value or a ``limits.Deadline``), EOFError or OSError
    (the child is gone) and ``wire.ProtocolError`` (a malformed reply); ``kill`` is idempotent."""

    def __init__(self, limits: Limits, hidden: list[str], support_files: list[Path], output: Output):
        self.limits, self.hidden, self.support_files, self.output = limits, hidden, support_files, output
        self.mode = isolation_mode(limits.jail)
        self.uid = allocate_uid() if self.mode == "root" else None
        self.workdir = tempfile.mkdtemp(prefix="cnn2d-sandbox-")
        self.cap = MemoryCap(limits.sandbox_memory_bytes)
        self.proc: subprocess.Popen | None = None
        self._drainer: threading.Thread | None = None

    def start(self, deadline: float) -> dict:
        """Spawn the child; return its first message (``ok``, ``isolation`` or ``error``)."""
        for name, data in PROGRAM.items():
            path = os.path.join(self.workdir, name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o444)
        for f in self.support_files:
            (Path(self.workdir) / f.name).write_bytes(f.read_bytes())
        if self.uid is not None:
            for p in [self.workdir, *[os.path.join(self.workdir, f.name) for f in self.support_files]]:
                os.chown(p, self.uid, self.uid)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        isolate = self.limits.jail
        config = {"rfd": to_child_r, "wfd": from_child_w, "limits": self.limits.rlimits(),
                  "uid": self.uid, "gid": self.uid, "hidden": self.hidden if isolate else [], "jail": isolate,
                  "workdir": self.workdir, "scratch_bytes": self.limits.scratch_bytes if isolate else 0,
                  "installation": installation_paths(), "hidden_roots": hidden_roots() if isolate else []}
        threads = os.environ.get("CNN2D_SANDBOX_THREADS", "1")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0",
               # One BLAS thread per sandbox: several sandboxes and the grader share the cores, and
               # spinning OpenBLAS threads made a 4 s fit take 80 s on a busy 2-core machine.
               "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        argv = [sys.executable, "-I", "-B", os.path.join(self.workdir, MAIN)]
        if self.mode == "bubblewrap":
            config["outer"] = ["bubblewrap: own user, PID (own /proc), mount, network and IPC namespaces; "
                               "no network; the system read-only", f"{len(self.hidden)} paths masked",
                               "private scratch " + ", ".join(jail.SCRATCH_DIRS)]
            config["hidden"] = []  # bwrap masks them
            argv = bubblewrap_argv(config, self.hidden) + argv
        argv = self.cap.enter_argv() + argv  # outermost: whatever it starts (bwrap's processes too) is inside
        self.proc = subprocess.Popen(
            [*argv, json.dumps(config)],
            pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, cwd=self.workdir, start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self._w, self._r = to_child_w, from_child_r
        os.set_blocking(self._w, False)
        os.set_blocking(self._r, False)
        self._drainer = threading.Thread(target=self.output.drain, args=(self.proc.stdout,), daemon=True)
        self._drainer.start()
        header, _ = self.receive(deadline)
        if isinstance(header.get("isolation"), list):
            header["isolation"].append(self.cap.describe())
        proc = self.proc
        self.cap.watch(lambda: processes(proc.pid, self.uid), lambda: self._signal_all(proc))
        return header

    def send(self, header: dict, arrays: list, deadline) -> None:
        wire.send_message(lambda b: wire.write_all(self._w, b, deadline), header, arrays)

    def receive(self, deadline) -> tuple[dict, list]:
        reply = wire.receive_message(lambda n: wire.read_exact(self._r, n, deadline), self.limits.max_message_bytes)
        if self.cap.tripped():  # the kernel killed a forked child over the cap, and the rest replied
            self._signal_all(self.proc)
            raise EOFError("over the memory cap")
        return reply

    def _signal_all(self, proc) -> None:
        """SIGKILL the sandbox's processes; waits for nothing (the memory watchdog calls it too)."""
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        for pid in self.cap.members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self.uid is not None:
            kill_uid(self.uid)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the sandbox's processes: its session's (``start_new_session``)
        live processes, and what their reaped children used. 0 once it is gone."""
        proc = self.proc
        if proc is None:
            return 0.0
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == proc.pid:                      # the session id (stat field 6)
                total += sum(int(x) for x in fields[11:15])    # utime stime cutime cstime
        return total / _CLOCK_TICKS

    def death_message(self) -> str:
        if self.cap.tripped():
            return self.cap.message()
        code = None
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(timeout=2)
        if code is None:
            return "the sandbox closed its connection"
        if self.mode == "bubblewrap" and code > 128 and code - 128 in signal.valid_signals():
            code = 128 - code  # bwrap exits with 128 + the signal that killed the sandbox, as a shell does
        if code < 0:
            sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            why = {"SIGKILL": " (killed: the memory or process limit, or a kill)",
                   "SIGXCPU": " (the CPU-time limit)", "SIGXFSZ": " (the file-size limit)",
                   "SIGSEGV": " (a crash in native code, often the memory limit)"}.get(sig, "")
            return f"the sandbox process died from {sig}{why}"
        return f"the sandbox process exited with status {code} (sys.exit or os._exit in your code?)"

    def kill(self) -> None:
        """Kill the child and everything it started; wait for it; remove its folder."""
        proc, self.proc = self.proc, None
        if proc is not None:
            self._signal_all(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            for fd in (self._w, self._r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self._drainer is not None:
                self._drainer.join(timeout=2)
        self.cap.close()
        if self.workdir:
            subprocess.run(["rm", "-rf", "--one-file-system", self.workdir], check=False)
            self.workdir = None

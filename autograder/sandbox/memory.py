"""The memory of a whole sandbox: all of its processes together, forked children included.
``RLIMIT_AS`` binds one process at a time, so four children of 1 GiB each pass a 2 GiB limit; this
cap does not. Used by ``child.Child``:

    cap = MemoryCap(2 << 30)          # a cgroup where the grader may make one, else a watchdog
    argv = cap.enter_argv() + argv    # the child joins the cgroup before it runs anything
    cap.watch(pids, stop)             # after the start: stop() the sandbox once the cap is crossed
    cap.tripped()                     # whether it was (the kernel's OOM kill or the watchdog)
    cap.close()

How, in order of preference (``MemoryCap.how``):

- **cgroup v2**: a leaf under the nearest ancestor of the grader's own cgroup that has the memory
  controller enabled for its children and that the grader may write: as root, the root cgroup or a
  systemd slice; as a user, the cgroup systemd delegates to a user session (``user@UID.service``).
  ``memory.max`` is the cap, ``memory.swap.max`` 0, ``memory.oom.group`` 1 (the kernel kills the
  whole sandbox at once); ``memory.events`` counts the kills.
- **cgroup v1** (the memory hierarchy of an older or hybrid system), as root: a leaf beside the
  grader's own; ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes`` where swap is
  accounted); ``memory.oom_control`` counts the kills. The kernel kills the largest process; the
  watchdog then stops the rest.
- **watchdog** (no cgroup the grader may write, e.g. a user on a system without delegation): a
  thread of the grader adds up the sandbox's resident memory (its proportional share, so pages a
  fork shares are counted once) every ``POLL`` seconds and stops the sandbox above the cap. It may
  overshoot by what the sandbox allocates within one poll.

Files in the sandbox's private tmpfs count against a cgroup's cap, not against the watchdog's
(those are bounded by their own size, ``Limits.scratch_bytes``).
"""
from __future__ import annotations

import contextlib
import itertools
import os
import threading
from pathlib import Path

POLL = 0.25
PREFIX = "cnn2d-sandbox-"
_serial = itertools.count()
_swept: set[str] = set()


def _mounts() -> dict[str, tuple[str, str]]:
    """cgroup mounts: {"2": (mount point, root)} for cgroup2, {"memory": ...} for the v1 hierarchy."""
    found = {}
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, kind = left.split(), right.split()
            if len(fields) < 5 or len(kind) < 3:
                continue
            root, point = fields[3], fields[4].replace("\\040", " ")
            if kind[0] == "cgroup2":
                found.setdefault("2", (point, root))
            elif kind[0] == "cgroup" and "memory" in kind[2].split(","):
                found.setdefault("memory", (point, root))
    return found


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per hierarchy: {"2": "/user.slice/...", "memory": "/..."}."""
    own = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in (controllers.split(",") if controllers else ["2"]):
                own[name] = path
    return own


def _inside(mount: tuple[str, str], path: str) -> Path:
    point, root = mount
    rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
    return Path(point) / ("" if rel == "." else rel)


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK) and os.access(folder / "cgroup.procs", os.W_OK)


def v2_parent(mount: tuple[str, str], own: str) -> Path | None:
    """The nearest folder, from the grader's own cgroup up, whose children may have a memory limit
    (``memory`` in its ``cgroup.subtree_control``) and where the grader may make one; None if none."""
    folder = _inside(mount, own)
    top = Path(mount[0])
    while True:
        with contextlib.suppress(OSError):
            if "memory" in (folder / "cgroup.subtree_control").read_text().split() and _writable(folder):
                return folder
        if folder == top or top not in folder.parents:
            return None
        folder = folder.parent


def _sweep(parent: Path) -> None:
    """Remove leaves left by graders that died (their pid is in the name); once per parent and process."""
    if str(parent) in _swept:
        return
    _swept.add(str(parent))
    for leaf in parent.glob(PREFIX + "*"):
        pid = leaf.name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(OSError):
                leaf.rmdir()


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


class MemoryCap:
    """A cap of ``limit`` bytes on all processes of one sandbox together (see the module docstring)."""

    def __init__(self, limit: int):
        self.limit = int(limit)
        self.how, self.leaf, self._counter = "watchdog", None, None
        self._over = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.limit > 0:
            with contextlib.suppress(OSError):
                self._make_cgroup()

    def _make_cgroup(self) -> None:
        mounts, own = _mounts(), _own_cgroups()
        name = f"{PREFIX}{os.getpid()}-{next(_serial)}"
        parent = v2_parent(mounts["2"], own.get("2", "/")) if "2" in mounts and "2" in own else None
        if parent is not None:
            group = parent / "cnn2d-sandboxes"          # no processes of its own: it may pass memory on
            group.mkdir(exist_ok=True)
            if "memory" not in (group / "cgroup.subtree_control").read_text().split():
                (group / "cgroup.subtree_control").write_text("+memory")
            _sweep(group)
            leaf = group / name
            leaf.mkdir()
            if not _write(leaf / "memory.max", str(self.limit)):
                leaf.rmdir()
                return
            _write(leaf / "memory.swap.max", "0")
            _write(leaf / "memory.oom.group", "1")
            self.how, self.leaf, self._counter = "cgroup v2", leaf, ("memory.events", "oom_kill")
            return
        if "memory" in mounts and "memory" in own:
            parent = _inside(mounts["memory"], own["memory"])
            if not _writable(parent):
                return
            _sweep(parent)
            leaf = parent / name
            leaf.mkdir()
            if not _write(leaf / "memory.limit_in_bytes", str(self.limit)):
                leaf.rmdir()
                return
            _write(leaf / "memory.memsw.limit_in_bytes", str(self.limit))   # where swap is accounted
            self.how, self.leaf, self._counter = "cgroup v1", leaf, ("memory.oom_control", "oom_kill")

    def describe(self) -> str:
        """For the isolation report (results.json)."""
        if self.limit <= 0:
            return "memory of all processes together: not capped"
        how = {"watchdog": "a watchdog of the grader, every 0.25 s"}.get(self.how, f"{self.how} memory limit")
        return f"all processes together capped at {self.limit >> 20} MiB of memory ({how})"

    def message(self) -> str:
        return (f"the sandbox's processes together used more than its memory cap of {self.limit >> 20} MiB "
                "(forked children count too), so it was stopped")

    def enter_argv(self) -> list[str]:
        """A prefix for the child's command line that moves it into the cgroup before it runs anything
        (so everything it forks, bubblewrap's processes too, is inside); [] for the watchdog."""
        if self.leaf is None:
            return []
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.leaf / "cgroup.procs")]

    def _kills(self) -> int:
        if self.leaf is None:
            return 0
        name, key = self._counter
        with contextlib.suppress(OSError, ValueError):
            for line in (self.leaf / name).read_text().splitlines():
                field, _, value = line.partition(" ")
                if field == key:
                    return int(value)
        return 0

    def tripped(self) -> bool:
        """Whether the sandbox went over the cap (read now: the kernel may have just killed one)."""
        if not self._over and self._kills() > 0:
            self._over = True
        return self._over

    def members(self) -> list[int]:
        """The cgroup's processes (none for the watchdog)."""
        if self.leaf is None:
            return []
        with contextlib.suppress(OSError):
            return [int(p) for p in (self.leaf / "cgroup.procs").read_text().split()]
        return []

    def watch(self, pids, stop) -> None:
        """Poll in a thread: call ``stop()`` (which only signals processes) once the cap is crossed.
        ``pids()``: the sandbox's processes, for the watchdog."""
        if self.limit <= 0 or self._thread is not None:
            return

        def loop():
            while not self._stop.wait(POLL):
                crossed = self.tripped() if self.leaf is not None else over(pids(), self.limit)
                if crossed:
                    self._over = True
                    stop()
                    return

        self._thread = threading.Thread(target=loop, name="memory-cap", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching; remove the cgroup (its processes are gone: ``Child.kill`` waited for them)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        leaf, self.leaf = self.leaf, None
        if leaf is not None:
            for _ in range(50):
                try:
                    leaf.rmdir()
                    return
                except FileNotFoundError:
                    return
                except OSError:           # EBUSY: a process not yet reaped
                    threading.Event().wait(0.02)


def processes(root: int, uid: int | None = None) -> set[int]:
    """The live processes of a sandbox: ``root`` (its first process) and everything it started
    (bubblewrap's PID namespace reparents orphans inside it), and as root every process of its ``uid``."""
    parents, found = {}, set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    parents[int(pid)] = int(f.read().rsplit(b")", 1)[1].split()[1])
                if uid is not None and os.stat(f"/proc/{pid}").st_uid == uid:
                    found.add(int(pid))
            except (OSError, IndexError, ValueError):
                pass
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    todo, seen = [root], set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    return found | seen


def over(pids, limit: int) -> bool:
    """Whether the processes ``pids`` hold more than ``limit`` bytes: their resident memory is the
    cheap first look; only above the cap is their proportional share read (smaps_rollup's Pss,
    where a page a fork shares counts once), so a fork that has touched nothing is not counted twice."""
    page = os.sysconf("SC_PAGE_SIZE")
    pids = list(pids)
    rss = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/statm") as f:
                rss += int(f.read().split()[1]) * page
    if rss <= limit:
        return False
    pss, seen = 0, False
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) << 10
                        seen = True
                        break
    return pss > limit if seen else True

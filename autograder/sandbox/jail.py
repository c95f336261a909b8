"""Child isolation: what a sandbox child does to itself before any student code runs (runs in
the child; a copy of this file sits beside ``worker.py``).

Order matters, and ``worker.main`` keeps it: the rlimits first (they bind everything after), then
``enter``: the namespaces and the mounts (as root), then the drop to the sandbox's uid, then the
death signal (a uid change clears it). Without root, bubblewrap has built the same view before this
program starts (``child.bubblewrap_argv``); ``enter`` then only reports it and sets what a user may.
"""
from __future__ import annotations

import os
import sys

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWIPC = 0x00020000, 0x10000000, 0x40000000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 1, 2, 4, 4096, 8192, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE = 1, 38, 4


def _libc():
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes

        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def outermost(paths) -> list[str]:
    """``paths`` sorted, each once, without those inside another of them (the child's masks and
    binds of a folder cover what is inside it; bubblewrap's command line uses it too)."""
    paths = sorted(dict.fromkeys(paths))
    return [p for p in paths if not any(p.startswith(q.rstrip(os.sep) + os.sep) for q in paths if q != p)]


def _hide_roots(libc, paths: list[str], workdir: str | None, roots: list[str] = ()) -> None:
    """Lay an open, empty tmpfs over every folder of ``roots`` (the top-level folders that are not the
    system's: other checkouts, home folders, data) and over any ancestor of ``paths`` that is closed to
    others (e.g. a pyenv under a 0700 /root), then bind ``paths`` (the Python installation) back into
    it. Inside the mount namespace the sandbox sees the system, its interpreter and its own folders,
    and nothing else of the machine's: no other checkout of the checks, no copy of the data."""
    real = outermost(os.path.realpath(p) for p in paths if os.path.isdir(p))
    here = os.path.realpath(workdir) if workdir else ""
    covers = {c for c in (os.path.realpath(c) for c in roots)
              if c != "/" and os.path.isdir(c) and not (here == c or here.startswith(c + os.sep))}
    closed: dict[str, list[str]] = {}
    for path in real:
        parts = path.split(os.sep)
        for i in range(2, len(parts) + 1):
            ancestor = os.sep.join(parts[:i])
            if ancestor in covers or (os.path.isdir(ancestor) and not os.stat(ancestor).st_mode & 0o001):
                closed.setdefault(ancestor, []).append(path)
                break
    for c in sorted(covers):
        if not any(c == a or c.startswith(a + os.sep) for a in closed):
            closed[c] = []
    if not closed or not workdir:
        return
    stage = os.path.join(workdir, ".stage")
    os.makedirs(stage, exist_ok=True)
    _check(libc.mount(b"tmpfs", stage.encode(), b"tmpfs", 0, b"size=4k,mode=0700"), "stage")
    for i, (ancestor, needed) in enumerate(closed.items()):
        staged = []
        for j, path in enumerate(needed):
            tmp = os.path.join(stage, f"{i}-{j}")  # unique over all ancestors
            os.makedirs(tmp)
            _check(libc.mount(path.encode(), tmp.encode(), None, MS_BIND | MS_REC, None), f"stage {path}")
            staged.append((tmp, path))
        _check(libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64k,mode=0755"),
               f"open {ancestor}")
        for tmp, path in staged:
            os.makedirs(path, exist_ok=True)
            _check(libc.mount(tmp.encode(), path.encode(), None, MS_MOVE, None), f"expose {path}")
    libc.umount2(stage.encode(), 2)  # MNT_DETACH
    os.rmdir(stage)


SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # world-writable on most systems


def _private_scratch(libc, config: dict) -> list[str]:
    """Lay a fresh, size-capped tmpfs over each world-writable scratch folder, seen only inside this
    sandbox's mount namespace. What the student writes there is bounded (disk and RAM: a tmpfs in
    /dev/shm is memory that no RLIMIT_AS counts), cannot be left behind for anyone else (a later
    sandbox, a later student's output folder) and is freed when the sandbox's last process dies.
    The sandbox's own working folder, if it lives in one of them, is recreated inside with its files;
    the parts of this interpreter's installation that live in one (a virtualenv in /tmp) are bound
    back. Only those count: the child runs `python -I`, so the harness's own sys.path entries (its
    script folder, PYTHONPATH) are never imported here and must not keep a folder shared."""
    size = int(config.get("scratch_bytes") or 0)
    if size <= 0:
        return []
    workdir = config.get("workdir")
    needed = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
                                            *sys.path[1:])  # sys.path[0] is the working folder
              if p and os.path.isdir(p)}
    saved = {}
    if workdir and os.path.isdir(workdir):
        for name in os.listdir(workdir):  # the worker and the release's support files: a few small files
            path = os.path.join(workdir, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    saved[name] = (f.read(), os.stat(path).st_mode & 0o777)
    covered = []
    for folder in dict.fromkeys(os.path.realpath(p) for p in SCRATCH_DIRS):
        if not os.path.isdir(folder) or folder in needed:
            continue
        inside = outermost(p for p in needed if p.startswith(folder + os.sep))
        handles = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in inside}  # reachable once covered
        try:
            _check(libc.mount(b"tmpfs", folder.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                              f"size={size},mode=1777".encode()), f"scratch {folder}")
            for path, fd in handles.items():
                os.makedirs(path, exist_ok=True)
                _check(libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None),
                       f"keep {path}")
        finally:
            for fd in handles.values():
                os.close(fd)
        covered.append(folder)
    if workdir and not os.path.isdir(workdir):
        os.makedirs(workdir, mode=0o700)
        for name, (data, mode) in saved.items():
            path = os.path.join(workdir, name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, mode)
        uid, gid = config.get("uid"), config.get("gid")
        if uid is not None:
            for path in [workdir, *(os.path.join(workdir, n) for n in saved)]:
                os.chown(path, uid, gid)
    return covered


def apply_limits(limits: dict) -> None:
    import resource

    for name, value in limits.items():
        res = getattr(resource, name)
        soft, hard = resource.getrlimit(res)
        want = int(value)
        if hard != resource.RLIM_INFINITY and want > hard:
            want = hard
        resource.setrlimit(res, (want, want))


def enter(config: dict) -> list[str]:
    """Namespaces, masks and the drop of privileges. Returns what was achieved, for the report."""
    done = list(config.get("outer", []))  # what bubblewrap did before this program started
    libc = _libc()
    uid, gid = config.get("uid"), config.get("gid")
    hidden = outermost(p for p in config.get("hidden", []) if os.path.lexists(p))  # inside a mask: hidden with it
    if os.geteuid() == 0 and config.get("jail", True):
        try:
            _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
            _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
            done.append("network and IPC namespace (no network, no shared memory left behind)")
            for path in hidden:
                target = path.encode()
                if os.path.isdir(path) and not os.path.islink(path):
                    _check(libc.mount(b"tmpfs", target, b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
                                      b"size=4k,mode=0555"), f"mask {path}")
                else:
                    _check(libc.mount(b"/dev/null", target, None, MS_BIND, None), f"mask {path}")
            if hidden:
                done.append(f"{len(hidden)} paths masked")
            scratch = _private_scratch(libc, config)
            if scratch:
                done.append("private scratch " + ", ".join(scratch))
            _hide_roots(libc, config.get("installation", []), config.get("workdir"), config.get("hidden_roots", []))
        except OSError as e:
            # Fail closed: as root we promised masks; without them the checks would be readable.
            raise RuntimeError(f"could not isolate the sandbox: {e}") from None
    if config.get("jail", True):
        try:  # the OOM killer takes sandbox processes first; without privileges they cannot undo it
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
            done.append("first in line for the OOM killer")
        except OSError:
            pass
    if os.geteuid() == 0 and uid is not None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        done.append(f"runs as uid {uid}")
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # after the uid change, which clears it
    if os.getppid() == 1 and not config.get("outer"):  # the harness is already gone (in bwrap's PID
        os._exit(1)                                      # namespace, pid 1 is bwrap's init)
    return done

"""The sandbox side: runs a student's answer cells in a child process and serves the harness.

This file is the whole program of the child. The harness copies it into the sandbox's
working folder and starts ``python -I _sandbox_worker.py <config json>``, so the child needs nothing
from the ``autograder`` package, whose files (with the hidden checks) it may not be able to read.
The harness also imports this file as a module, for the wire format below: the two sides
share one codec.

Wire format, both directions: a message is a frame holding a JSON header, followed by
``header["arrays"]`` frames each holding one ``.npy`` file. A frame is an 8-byte big-endian
length and that many bytes. Arrays are written with ``allow_pickle=False``, so neither side
ever unpickles anything. In JSON, arrays are ``{"__nd__": i}``, tuples ``{"__tuple__": [...]}``,
dicts ``{"__dict__": {...}}`` and objects that are not data ``{"__ref__": id, "type": name,
"callable": bool}``: a handle the harness can call back through.

Start-up order matters: limits first (they bind everything after), then the namespaces and the
mounts (they need root), then the drop to the sandbox user, then the death signal (a uid change
clears it), and only then any student code.
"""
from __future__ import annotations

import io
import json
import os
import struct
import sys
import traceback

import numpy as np

MAX_FRAME = 256 * 1024 * 1024      # the most one frame may hold; the harness sets a lower limit
MAX_DEPTH = 20
MAX_ITEMS = 100_000

_LEN = struct.Struct(">Q")


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message."""


# ----------------------------------------------------------------------------- framing
def _read_exact(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send_message(write, header: dict, arrays: list[np.ndarray] = ()) -> None:
    """``write(bytes)`` writes everything or raises."""
    header = dict(header, arrays=len(arrays))
    frames = [json.dumps(header, allow_nan=True).encode()]
    for a in arrays:
        buf = io.BytesIO()
        np.save(buf, a, allow_pickle=False)
        frames.append(buf.getvalue())
    write(b"".join(_LEN.pack(len(f)) + f for f in frames))


def receive_message(read_exact, limit: int = MAX_FRAME) -> tuple[dict, list[np.ndarray]]:
    """Read one message with ``read_exact(n)``. Strict: only JSON and plain numeric arrays pass,
    and the whole message may hold at most ``limit`` bytes."""
    total = 0

    def frame() -> bytes:
        nonlocal total
        (n,) = _LEN.unpack(read_exact(_LEN.size))
        if total + n > limit:
            raise ProtocolError(f"a message of over {total + n:,} bytes is over the limit of {limit:,} bytes")
        total += n
        return read_exact(n)

    try:
        header = json.loads(frame().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: nesting too deep
        raise ProtocolError(f"the header is not JSON: {e}") from None
    if not isinstance(header, dict) or type(header.get("arrays", 0)) is not int or header.get("arrays", 0) < 0:
        raise ProtocolError("the header is not a JSON object with an array count")
    arrays = []
    for _ in range(header.get("arrays", 0)):
        raw = frame()
        try:
            a = np.load(io.BytesIO(raw), allow_pickle=False)
        except Exception as e:  # any malformed .npy
            raise ProtocolError(f"an array could not be read: {e}") from None
        if type(a) is not np.ndarray or a.dtype.kind not in "biufc":
            raise ProtocolError(f"an array of dtype {a.dtype} is not plain numeric data")
        arrays.append(a)
    return header, arrays


# ----------------------------------------------------------------------------- codec
class Codec:
    """Turns values into JSON + arrays and back. ``make_ref``/``resolve_ref`` say what a handle is
    on each side: the worker keeps the objects, the harness keeps ``RemoteObject``s."""

    def __init__(self, make_ref=None, resolve_ref=None):
        self.make_ref = make_ref
        self.resolve_ref = resolve_ref

    def encode(self, value) -> tuple[object, list[np.ndarray]]:
        arrays: list[np.ndarray] = []
        count = [0]

        def enc(v, depth):
            count[0] += 1
            if depth > MAX_DEPTH or count[0] > MAX_ITEMS:
                raise ValueError("the value is nested too deeply or holds too many items")
            if v is None or isinstance(v, (bool, str)):
                return v
            if isinstance(v, int):
                return int(v)
            if isinstance(v, float):
                return float(v)
            if isinstance(v, np.generic) and v.dtype.kind in "biuf":
                return v.item()
            if isinstance(v, np.ndarray):
                a = np.asarray(v)
                if a.dtype.kind not in "biufc":
                    raise ValueError(f"an array of dtype {a.dtype} cannot be sent, only numbers")
                arrays.append(np.ascontiguousarray(a))
                return {"__nd__": len(arrays) - 1}
            if isinstance(v, tuple):
                return {"__tuple__": [enc(x, depth + 1) for x in v]}
            if isinstance(v, list):
                return [enc(x, depth + 1) for x in v]
            if isinstance(v, dict) and all(isinstance(k, str) for k in v):
                return {"__dict__": {k: enc(x, depth + 1) for k, x in v.items()}}
            if self.make_ref is None:
                raise ValueError(f"a {type(v).__name__} cannot be sent")
            return self.make_ref(v)

        return enc(value, 0), arrays

    def decode(self, obj, arrays: list[np.ndarray]):
        def dec(o, depth):
            if depth > MAX_DEPTH:
                raise ProtocolError("the value is nested too deeply")
            if o is None or isinstance(o, (bool, int, float, str)):
                return o
            if isinstance(o, list):
                return [dec(x, depth + 1) for x in o]
            if isinstance(o, dict) and len(o) >= 1:
                if "__nd__" in o and isinstance(o["__nd__"], int) and 0 <= o["__nd__"] < len(arrays):
                    return arrays[o["__nd__"]]
                if "__tuple__" in o and isinstance(o["__tuple__"], list):
                    return tuple(dec(x, depth + 1) for x in o["__tuple__"])
                if "__dict__" in o and isinstance(o["__dict__"], dict):
                    return {str(k): dec(x, depth + 1) for k, x in o["__dict__"].items()}
                if "__ref__" in o and isinstance(o["__ref__"], int) and self.resolve_ref is not None:
                    return self.resolve_ref(o)
            raise ProtocolError(f"unexpected value in a message: {str(o)[:80]}")

        return dec(obj, 0)


def describe_exception(exc: BaseException, skip_frames: int = 0) -> dict:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    # Keep the student's frames: drop this file's own frames from the top.
    text = "".join(line for line in tb if "sandbox_worker" not in line)
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": text[-4000:]}


# ----------------------------------------------------------------------------- isolation
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


def _expose(libc, paths: list[str], workdir: str | None, cover: list[str] = ()) -> None:
    """Lay an open, empty tmpfs over every folder of ``cover`` (the top-level folders that are not the
    system's: other checkouts, home folders, data) and over any ancestor of ``paths`` that is closed to
    others (e.g. a pyenv under a 0700 /root), then bind ``paths`` (the Python installation) back into
    it. Inside the mount namespace the sandbox sees the system, its interpreter and its own folders,
    and nothing else of the machine's: no other checkout of the checks, no copy of the data."""
    real = sorted(dict.fromkeys(os.path.realpath(p) for p in paths if os.path.isdir(p)))
    real = [p for p in real if not any(p.startswith(q + os.sep) for q in real if q != p)]  # outermost only
    here = os.path.realpath(workdir) if workdir else ""
    covers = {c for c in (os.path.realpath(c) for c in cover)
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
        inside = sorted(p for p in needed if p.startswith(folder + os.sep))
        inside = [p for p in inside if not any(p.startswith(q + os.sep) for q in inside)]  # outermost only
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


def isolate(config: dict) -> list[str]:
    """Namespaces, masks and the drop of privileges. Returns what was achieved, for the report."""
    done = []
    libc = _libc()
    uid, gid = config.get("uid"), config.get("gid")
    hide = []
    for p in sorted(config.get("hide", [])):  # a path inside one already masked is hidden with it
        if os.path.lexists(p) and not any(p.startswith(h.rstrip(os.sep) + os.sep) for h in hide):
            hide.append(p)
    if os.geteuid() == 0 and config.get("namespaces", True):
        try:
            _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
            _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
            done.append("network and IPC namespace (no network, no shared memory left behind)")
            for path in hide:
                target = path.encode()
                if os.path.isdir(path) and not os.path.islink(path):
                    _check(libc.mount(b"tmpfs", target, b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
                                      b"size=4k,mode=0555"), f"mask {path}")
                else:
                    _check(libc.mount(b"/dev/null", target, None, MS_BIND, None), f"mask {path}")
            if hide:
                done.append(f"{len(hide)} paths masked")
            scratch = _private_scratch(libc, config)
            if scratch:
                done.append("private scratch " + ", ".join(scratch))
            _expose(libc, config.get("expose", []), config.get("workdir"), config.get("cover", []))
        except OSError as e:
            # Fail closed: as root we promised masks; without them the checks would be readable.
            raise RuntimeError(f"could not isolate the sandbox: {e}") from None
    if os.geteuid() == 0 and uid is not None:
        try:  # the OOM killer takes sandbox processes first; without privileges they cannot undo it
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
            done.append("first in line for the OOM killer")
        except OSError:
            pass
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        done.append(f"runs as uid {uid}")
    elif os.geteuid() != 0 and config.get("namespaces", True):
        # Unprivileged: a user namespace may still give us a mount and network namespace.
        try:
            real_uid, real_gid = os.getuid(), os.getgid()
            _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET), "unshare")
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            with open("/proc/self/uid_map", "w") as f:
                f.write(f"{real_uid} {real_uid} 1")
            with open("/proc/self/gid_map", "w") as f:
                f.write(f"{real_gid} {real_gid} 1")
            done.append("user+network namespace (no network)")
            for path in hide:
                if os.path.isdir(path) and not os.path.islink(path):
                    _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                                      b"size=4k,mode=0555"), f"mask {path}")
            done.append("paths masked")
        except OSError as e:
            done.append(f"no namespaces: {e}")
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # after the uid change, which clears it
    if os.getppid() == 1:  # the harness is already gone
        os._exit(1)
    return done


# ----------------------------------------------------------------------------- the server
class Worker:
    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd = rfd, wfd
        self.namespace: dict = {"__name__": "__main__", "__builtins__": __builtins__}
        self.objects: dict[int, object] = {}
        self.next_id = 1
        self.codec = Codec(make_ref=self._make_ref, resolve_ref=self._resolve_ref)
        self._shell = None

    def _make_ref(self, obj) -> dict:
        rid = self.next_id
        self.next_id += 1
        self.objects[rid] = obj
        try:
            name = type(obj).__name__ if not isinstance(obj, type) else f"class {obj.__name__}"
        except Exception:
            name = "object"
        ref = {"__ref__": rid, "type": str(name)[:100], "callable": bool(callable(obj))}
        qualname = getattr(obj, "__qualname__", None) if ref["callable"] else None
        if isinstance(qualname, str):
            ref["name"] = qualname[:100]  # for messages: "`Flatten.forward` did not finish"
        return ref

    def _resolve_ref(self, o: dict):
        try:
            return self.objects[o["__ref__"]]
        except KeyError:
            raise ProtocolError(f"unknown handle {o['__ref__']}") from None

    def _target(self, ref):
        return self.namespace if ref is None else self._resolve_ref({"__ref__": ref})

    # --- cells
    def shell(self):
        if self._shell is None:
            from IPython.core.interactiveshell import InteractiveShell
            from traitlets.config import Config

            class SandboxShell(InteractiveShell):
                def enable_gui(self, gui=None):  # no GUI here: %matplotlib inline just picks Agg
                    pass

            cfg = Config()
            cfg.HistoryManager.enabled = False
            self._shell = SandboxShell.instance(config=cfg, user_ns=self.namespace)
        return self._shell

    def run_cell(self, name: str, source: str) -> dict | None:
        try:
            if "%" in source or "!" in source or "?" in source:
                # Magics, shell escapes and help are IPython's syntax: let IPython translate them.
                from IPython.core.inputtransformer2 import TransformerManager

                source = TransformerManager().transform_cell(source)
                if "get_ipython()" in source:
                    self.shell()
                    self.namespace.setdefault("get_ipython", lambda: self._shell)
            code = compile(source, f"<cell {name}>", "exec")
            exec(code, self.namespace)
        except BaseException as exc:  # SystemExit included: a cell may not stop the sandbox
            return describe_exception(exc)
        return None

    # --- requests
    def handle(self, header: dict, arrays: list) -> tuple[dict, list]:
        op = header.get("op")
        if op == "exec":
            errors = {}
            for cell in header["cells"]:
                err = self.run_cell(cell["name"], cell["source"])
                if err:
                    errors[cell["name"]] = err
            return {"ok": True, "errors": errors}, []
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}, []
        args = self.codec.decode(header.get("args", []), arrays)
        kwargs = self.codec.decode(header.get("kwargs", {"__dict__": {}}), arrays)
        target = self._target(header.get("ref"))
        name = header.get("name")
        if op == "getattr":
            if target is self.namespace:
                if name not in self.namespace:
                    return {"ok": False, "missing": True, "error": {
                        "type": "NameError", "message": f"name '{name}' is not defined", "traceback": ""}}, []
                value = self.namespace[name]
            else:
                value = getattr(target, name)
        elif op == "setattr":
            if target is self.namespace:
                self.namespace[name] = args[0]
            else:
                setattr(target, name, args[0])
            value = None
        elif op == "call":
            fn = target if name is None else getattr(target, name)
            value = fn(*args, **kwargs)
        elif op == "release":
            for rid in header.get("refs", []):
                self.objects.pop(rid, None)
            value = None
        else:
            raise ProtocolError(f"unknown operation {op!r}")
        encoded, out_arrays = self.codec.encode(value)
        return {"ok": True, "value": encoded}, out_arrays

    def serve(self) -> None:
        while True:
            try:
                header, arrays = receive_message(lambda n: _read_exact(self.rfd, n))
            except EOFError:
                return
            try:
                reply, out = self.handle(header, arrays)
            except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the student's
                reply, out = {"ok": False, "error": describe_exception(exc)}, []
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:
                pass
            try:
                send_message(lambda b: _write_all(self.wfd, b), reply, out)
            except (ValueError, TypeError) as exc:  # e.g. the value held an array of objects
                send_message(lambda b: _write_all(self.wfd, b), {"ok": False, "error": describe_exception(exc)})


def main(argv: list[str]) -> None:
    config = json.loads(argv[1])
    rfd, wfd = config["rfd"], config["wfd"]
    write = lambda b: _write_all(wfd, b)  # noqa: E731
    try:
        apply_limits(config.get("limits", {}))
        achieved = isolate(config)
    except Exception as e:
        send_message(write, {"ok": False, "error": {"type": "SandboxSetupError", "message": str(e)}})
        return
    workdir = config.get("workdir")
    if workdir:
        os.chdir(workdir)
        sys.path.insert(0, workdir)
        os.environ.update(HOME=workdir, TMPDIR=workdir, MPLCONFIGDIR=workdir)
    os.environ.setdefault("MPLBACKEND", "Agg")
    send_message(write, {"ok": True, "ready": True, "pid": os.getpid(), "isolation": achieved})
    Worker(rfd, wfd).serve()


if __name__ == "__main__":
    main(sys.argv)

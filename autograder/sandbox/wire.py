"""The wire format between the grader and a sandbox child, used by both sides (the child runs a
copy of this file beside ``worker.py``).

A message is a frame holding a JSON header, followed by ``header["arrays"]`` frames each holding
one ``.npy`` file. A frame is an 8-byte big-endian length and that many bytes. Arrays are written
and read with ``allow_pickle=False``, so neither side ever unpickles anything. In JSON, arrays are
``{"__nd__": i}``, tuples ``{"__tuple__": [...]}``, dicts ``{"__dict__": {...}}`` and objects that
are not data ``{"__ref__": id, "type": name, "callable": bool}``: a handle the grader can call
back through. Requests: ``{"op": "exec", "name", "source", "statement": i}`` (one top-level
statement of a cell; the reply gives the cell's statement ``lines`` and the ``error``, if any) and ``{"op": "getattr"|"setattr"|"call",
"ref", "name", "args", "kwargs"}``, each with ``"free": [ref, ...]``, the handles the grader no
longer holds. Replies: ``{"ok": true, ...}`` or ``{"ok": false, "error": {type, message,
traceback}}``.
"""
from __future__ import annotations

import io
import json
import os
import select
import struct
import time

import numpy as np

MAX_FRAME = 256 * 1024 * 1024      # the most one frame may hold; the harness sets a lower limit
MAX_DEPTH = 20
MAX_ITEMS = 100_000

_LEN = struct.Struct(">Q")


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message."""


# ----------------------------------------------------------------------------- framing
def _left(deadline) -> float:
    """Seconds to wait at most before looking again: ``deadline`` is a ``time.monotonic()`` value or
    has ``left()`` (``sandbox.limits.Deadline``, which also watches the sandbox's CPU time)."""
    return deadline - time.monotonic() if isinstance(deadline, (int, float)) else deadline.left()


def read_exact(fd: int, n: int, deadline=None) -> bytes:
    """``n`` bytes from ``fd``. With a ``deadline`` (``_left``; the grader's side, whose fds are
    non-blocking) raises TimeoutError when it passes; EOFError when the pipe closes."""
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = _left(deadline)
            if wait <= 0:
                raise TimeoutError
            if not select.select([fd], [], [], wait)[0]:
                continue
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes, deadline=None) -> None:
    """All of ``data`` to ``fd``; with a ``deadline``, as ``read_exact``."""
    view = memoryview(data)
    while view:
        if deadline is not None:
            wait = _left(deadline)
            if wait <= 0:
                raise TimeoutError
            if not select.select([], [fd], [], wait)[1]:
                continue
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

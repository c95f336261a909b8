"""What the checks hold of a student's work: the ``Student`` protocol (``student.Name`` is a name
the answer cells defined) and ``StudentObject`` handles on the student's objects, in two
implementations that behave alike:

- ``RemoteStudent`` / ``RemoteObject``: the names live in a sandbox child (``host.Sandbox``);
  every attribute read, write and call is a request over the wire;
- ``LocalStudent`` / ``LocalObject``: the in-process twin, over a namespace dict (nbgrader's
  kernel). Every value makes the same round trip through the codec, so a check sees exactly
  what it would see remotely;
- ``UnavailableStudent``: a notebook that cannot run; every name fails with the reason.

Values come back as plain data (numbers, strings, lists, tuples, dicts, ``np.ndarray``) or as a
``StudentObject``. Checks ask a handle its type with ``student_type`` and raise a call's time
limit with ``time_limit``: module functions, so no name of the student's is shadowed.
"""
from __future__ import annotations

import contextlib
import time
import traceback

import numpy as np

from autograder.sandbox import wire
from autograder.sandbox.errors import MissingAnswer, NotImplementedAnswer, SandboxCrash, StudentError


class Student:
    """``student.Name``: the name ``Name`` of the answer cells. Names starting with ``_`` are ours."""

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._lookup(name)

    def _lookup(self, name: str):
        raise NotImplementedError

    def _time_limit(self, seconds: float):
        return contextlib.nullcontext()

    def _cpu_clock(self):
        """A function giving the CPU seconds the student's code has used (None: it cannot tell), or None."""
        return None

    def _cell_errors(self) -> dict[str, dict]:
        """What the student's cells raised or where they were cut, by cell name (none known: {})."""
        return {}


class StudentObject:
    """A handle on one of the student's objects: attribute reads, writes and calls reach it."""

    __slots__ = ()

    def _student_type(self) -> str:
        raise NotImplementedError


def student_type(value) -> str | None:
    """The type name of the object behind a handle (``"class Conv2d"`` for a class, remotely), or
    None when ``value`` is not a handle."""
    if isinstance(value, StudentObject):
        return type(value)._student_type(value)
    return None


def time_limit(student: Student, seconds: float):
    """``with time_limit(student, 120): clf.fit(X, y)`` raises the per-call limit inside the block."""
    return type(student)._time_limit(student, seconds)


def missing_message(name: str, cell_errors: dict[str, dict]) -> str:
    msg = f"`{name}` is not defined by your cells"
    if cell_errors:
        first = next(iter(cell_errors.items()))
        msg += (f"; note that your cell '{first[0]}' stopped with {first[1].get('type')}: "
                f"{first[1].get('message', '')[:300]}")
    return msg


# ----------------------------------------------------------------------------- remote
class RemoteStudent(Student):
    def __init__(self, sandbox):
        self._sandbox = sandbox

    def _lookup(self, name: str):
        try:
            return self._sandbox.call("getattr", None, name)
        except MissingAnswer as e:
            raise MissingAnswer(e.exc_type, missing_message(name, self._sandbox.report.cell_errors)) from None

    def _time_limit(self, seconds: float):
        return self._sandbox.call_limit(seconds)

    def _cpu_clock(self):
        box = self._sandbox

        def sandbox_cpu():   # the sandbox's processes together: what its training limits count
            child = box.child
            return child.cpu_seconds() if child is not None else None
        return sandbox_cpu

    def _cell_errors(self) -> dict[str, dict]:
        return dict(self._sandbox.report.cell_errors)


class RemoteObject(StudentObject):
    """A handle on an object that lives in the sandbox child of one generation."""

    __slots__ = ("_sandbox", "_ref", "_type", "_generation", "_name")

    def __init__(self, sandbox, ref: int, type_name: str, generation: int, name: str = ""):
        for k, v in (("_sandbox", sandbox), ("_ref", ref), ("_type", type_name),
                     ("_generation", generation), ("_name", name)):
            object.__setattr__(self, k, v)

    @classmethod
    def from_wire(cls, sandbox, o: dict) -> "RemoteObject":
        return cls(sandbox, int(o["__ref__"]), str(o.get("type", "object"))[:100], sandbox.generation,
                   str(o.get("name") or "")[:100])

    @staticmethod
    def ref_in(value, sandbox) -> int | None:
        """The handle number of ``value`` if it is a handle of ``sandbox``'s current child."""
        if isinstance(value, RemoteObject) and object.__getattribute__(value, "_sandbox") is sandbox:
            return object.__getattribute__(value, "_ref")
        return None

    def _student_type(self) -> str:
        return object.__getattribute__(self, "_type")

    def _live(self):
        box = object.__getattribute__(self, "_sandbox")
        if box.generation != object.__getattribute__(self, "_generation") or box.child is None:
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

    def __del__(self):
        # The child may forget the object: said with the next request (no I/O here).
        box = object.__getattribute__(self, "_sandbox")
        if box.generation == object.__getattribute__(self, "_generation"):
            box.freed.append(object.__getattribute__(self, "_ref"))

    def __repr__(self) -> str:
        return f"<student object: {object.__getattribute__(self, '_type')}>"


# ----------------------------------------------------------------------------- in-process twin
class LocalStudent(Student):
    def __init__(self, namespace: dict):
        self._ns = namespace

    def _cpu_clock(self):
        return time.process_time   # the student's code runs in this process (nbgrader's kernel)

    def _lookup(self, name: str):
        if name not in self._ns:
            raise MissingAnswer("NameError", f"`{name}` is not defined by your cells")
        return _round_trip(self._ns[name])


class LocalObject(StudentObject):
    __slots__ = ("_obj",)

    def __init__(self, obj):
        object.__setattr__(self, "_obj", obj)

    def _student_type(self) -> str:
        return type(object.__getattribute__(self, "_obj")).__name__

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _round_trip(_student_call(getattr, object.__getattribute__(self, "_obj"), name))

    def __setattr__(self, name: str, value) -> None:
        _student_call(setattr, object.__getattribute__(self, "_obj"), name, _unwrap(value))

    def __call__(self, *args, **kwargs):
        obj = object.__getattribute__(self, "_obj")
        return _round_trip(_student_call(obj, *_unwrap(args), **_unwrap(kwargs)))

    def __repr__(self) -> str:
        return f"<student object: {type(object.__getattribute__(self, '_obj')).__name__}>"


def _round_trip(value):
    """``value`` as the wire would deliver it: data copied, other objects behind a ``LocalObject``."""
    objects: list = []

    def make_ref(obj) -> dict:
        objects.append(obj)
        return {"__ref__": len(objects) - 1}

    codec = wire.Codec(make_ref=make_ref, resolve_ref=lambda o: LocalObject(objects[o["__ref__"]]))
    try:
        encoded, arrays = codec.encode(value)
    except ValueError as e:
        raise StudentError("ValueError", str(e)) from None
    return codec.decode(encoded, [np.array(a, copy=True) for a in arrays])


def _unwrap(value):
    if isinstance(value, LocalObject):
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
        raise StudentError(type(e).__name__, str(e)[:2000], "".join(traceback.format_exception(e))[-4000:]) from None


# ----------------------------------------------------------------------------- no notebook
class UnavailableStudent(Student):
    """A notebook the sandbox cannot run: every name fails with the reason."""

    def __init__(self, reason: str):
        self._reason = reason

    def _lookup(self, name: str):
        raise MissingAnswer("MissingNotebook", self._reason)

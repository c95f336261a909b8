"""The sandbox child's program: runs a student's cells, one top-level statement per request, and
serves the grader's requests over the wire (``wire.py``).

The grader copies this file, ``wire.py`` and ``jail.py`` into the sandbox's working folder as
``_sandbox_worker.py``, ``_sandbox_wire.py`` and ``_sandbox_jail.py`` and starts ``python -I
_sandbox_worker.py <config json>``: the child needs nothing from the ``autograder`` package, whose
files (with the hidden checks) it may not be able to read, and ``-I`` puts no script folder on
``sys.path``, so this file puts its own folder there, for its two siblings.
"""
from __future__ import annotations

import ast
import json
import os
import sys
import traceback

if __name__ == "__main__":  # in the sandbox: the siblings were copied beside this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _sandbox_jail as jail
    import _sandbox_wire as wire
else:
    from autograder.sandbox import jail, wire

# Where the copies are put, by name (the grader's ``child.py`` reads this).
FILES = {"_sandbox_worker.py": "worker.py", "_sandbox_wire.py": "wire.py", "_sandbox_jail.py": "jail.py"}
OWN_FILES = {*FILES, *FILES.values()}


def describe_exception(exc: BaseException) -> dict:
    """The student-facing record of an exception: the frames of the worker's own files at the top
    of the traceback (the request that called into the student's code) are left out."""
    tb = exc.__traceback__
    while tb is not None and os.path.basename(tb.tb_frame.f_code.co_filename) in OWN_FILES:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": text[-4000:]}


# ----------------------------------------------------------------------------- the server
class Worker:
    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd = rfd, wfd
        self.namespace: dict = {"__name__": "__main__", "__builtins__": __builtins__}
        self.objects: dict[int, object] = {}
        self.next_id = 1
        self.codec = wire.Codec(make_ref=self._make_ref, resolve_ref=self._resolve_ref)
        self._shell = None
        self._parsed: dict[str, tuple[str, list]] = {}   # cell name -> (source, its statements)

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
            raise wire.ProtocolError(f"unknown handle {o['__ref__']}") from None

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

    def statements(self, name: str, source: str) -> list:
        """The cell's top-level statements, each compiled on its own (keeping the cell's line numbers),
        so that a statement that hangs or ends the sandbox costs only itself and what follows it.
        Parsed once per cell (the grader asks for them one by one). A cell that does not parse is one
        statement that raises its SyntaxError."""
        cached = self._parsed.get(name)
        if cached is not None and cached[0] == source:
            return cached[1]
        text = source
        if "%" in text or "!" in text or "?" in text:
            # Magics, shell escapes and help are IPython's syntax: let IPython translate them.
            from IPython.core.inputtransformer2 import TransformerManager

            text = TransformerManager().transform_cell(text)
            if "get_ipython()" in text:
                self.shell()
                self.namespace.setdefault("get_ipython", lambda: self._shell)
        filename = f"<cell {name}>"
        try:
            tree = ast.parse(text, filename)
            compiled = [(node.lineno, compile(ast.Module(body=[node], type_ignores=[]), filename, "exec"))
                        for node in tree.body]
        except BaseException as exc:  # SyntaxError, or a parser that gives up (too deeply nested)
            compiled = [(getattr(exc, "lineno", None) or 1, exc)]
        self._parsed[name] = (source, compiled)
        return compiled

    def run_statement(self, name: str, source: str, index: int) -> dict:
        """Run statement ``index`` of a cell. The reply says how many statements the cell has and
        where each starts (``lines``), and the error if it raised."""
        try:
            compiled = self.statements(name, source)
        except BaseException as exc:
            return {"lines": [1], "error": describe_exception(exc)}
        lines = [line for line, _ in compiled]
        if not 0 <= index < len(compiled):
            return {"lines": lines, "error": None}
        code = compiled[index][1]
        try:
            if isinstance(code, BaseException):
                raise code.with_traceback(None)   # cached: no traceback kept from an earlier run
            exec(code, self.namespace)
        except BaseException as exc:  # SystemExit included: a cell may not stop the sandbox
            return {"lines": lines, "error": describe_exception(exc)}
        return {"lines": lines, "error": None}

    # --- requests
    def handle(self, header: dict, arrays: list) -> tuple[dict, list]:
        for ref in header.get("free", []) if isinstance(header.get("free"), list) else []:
            if type(ref) is int:  # the grader no longer holds this handle
                self.objects.pop(ref, None)
        op = header.get("op")
        if op == "exec":   # one statement of a cell: {"name", "source", "statement"}
            done = self.run_statement(str(header["name"]), str(header["source"]), int(header["statement"]))
            return {"ok": True, **done}, []
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
        else:
            raise wire.ProtocolError(f"unknown operation {op!r}")
        encoded, out_arrays = self.codec.encode(value)
        return {"ok": True, "value": encoded}, out_arrays

    def serve(self) -> None:
        while True:
            try:
                header, arrays = wire.receive_message(lambda n: wire.read_exact(self.rfd, n))
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
                wire.send_message(lambda b: wire.write_all(self.wfd, b), reply, out)
            except (ValueError, TypeError) as exc:  # e.g. the value held an array of objects
                wire.send_message(lambda b: wire.write_all(self.wfd, b), {"ok": False, "error": describe_exception(exc)})


def main(argv: list[str]) -> None:
    config = json.loads(argv[1])
    rfd, wfd = config["rfd"], config["wfd"]
    write = lambda b: wire.write_all(wfd, b)  # noqa: E731
    try:
        jail.apply_limits(config.get("limits", {}))
        achieved = jail.enter(config)
    except Exception as e:
        wire.send_message(write, {"ok": False, "error": {"type": "SandboxSetupError", "message": str(e)}})
        return
    workdir = config.get("workdir")
    if workdir:
        os.chdir(workdir)
        sys.path.insert(0, workdir)
        os.environ.update(HOME=workdir, TMPDIR=workdir, MPLCONFIGDIR=workdir)
    os.environ.setdefault("MPLBACKEND", "Agg")
    wire.send_message(write, {"ok": True, "ready": True, "pid": os.getpid(), "isolation": achieved})
    Worker(rfd, wfd).serve()


if __name__ == "__main__":
    main(sys.argv)

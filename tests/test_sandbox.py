"""The sandbox on its own: the wire format, the limits, the isolation, and recovery after failures.
These need no notebook: each test hands the sandbox a few cells of its own."""
from __future__ import annotations

import io
import os
import re
import time

import numpy as np
import pytest

from autograder.sandbox import wire
from autograder.sandbox.errors import MissingAnswer, NotImplementedAnswer, SandboxCrash, SandboxTimeout, StudentError
from autograder.sandbox.host import Cell, NotCalledAgain, Sandbox
from autograder.sandbox.limits import Limits
from autograder.sandbox.proxy import LocalStudent, time_limit
from autograder.course import ROOT
from autograder.grading.hidden import hidden_paths

SECRET = ROOT / "autograder" / "checks" / "conftest.py"


@pytest.fixture
def box(request):
    boxes = []

    def make(source: str, **limits) -> Sandbox:
        b = Sandbox([Cell("setup", "import numpy as np"), Cell("answer", source)],
                    limits=Limits(**{"call_timeout": 5, **limits}), label="t", hidden=hidden_paths())
        boxes.append(b)
        return b

    yield make
    for b in boxes:
        b.close()


def test_values_cross_as_plain_data(box):
    ns = box("""
class Sub(np.ndarray):
    def __eq__(self, other): return True
def f(): return np.arange(6.0).reshape(2, 3).view(Sub)
def g(): return {"a": (1, 2.5, "x", None, [np.int64(3)])}
class Layer:
    def __init__(self): self.w = np.ones(3, dtype=np.float32)
    def scale(self, x, by=2): return x * by
""").student()
    a = ns.f()
    assert type(a) is np.ndarray and a.shape == (2, 3)
    assert not (a == np.zeros((2, 3))).all()  # the forged __eq__ stayed in the sandbox
    assert ns.g() == {"a": (1, 2.5, "x", None, [3])}
    layer = ns.Layer()
    assert layer.w.dtype == np.float32
    np.testing.assert_array_equal(layer.scale(np.arange(3), by=np.int64(3)), [0, 3, 6])
    layer.w = np.zeros(2)
    np.testing.assert_array_equal(layer.w, [0, 0])


def test_object_arrays_and_pickles_never_cross():
    # Decoding is strict: an object array (which needs pickle) is refused.
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    frames = [b'{"ok": true, "value": {"__nd__": 0}, "arrays": 1}', buf.getvalue()]
    data = b"".join(len(f).to_bytes(8, "big") + f for f in frames)
    stream = io.BytesIO(data)
    with pytest.raises(wire.ProtocolError):
        wire.receive_message(stream.read)
    big = io.BytesIO((10**9).to_bytes(8, "big"))
    with pytest.raises(wire.ProtocolError, match="over the limit"):
        wire.receive_message(big.read, limit=1000)


def test_errors_are_classified(box):
    ns = box("""
def todo(): raise NotImplementedError
def bad(): return 1 / 0
def objects(): return np.array([object()])
""").student()
    with pytest.raises(NotImplementedAnswer):
        ns.todo()
    with pytest.raises(StudentError, match="ZeroDivisionError"):
        ns.bad()
    with pytest.raises(StudentError, match="dtype object"):
        ns.objects()
    with pytest.raises(MissingAnswer, match="not defined"):
        ns.nothing_here


def test_timeout_kills_and_the_next_call_restarts(box):
    b = box("""
import time
def spin():
    while True: pass
def ok(): return 7
""", call_timeout=1)
    ns = b.student()
    with pytest.raises(SandboxTimeout, match=r"`spin` did not finish within 1 s"):
        ns.spin()
    assert ns.ok() == 7
    assert b.report.restarts == 1


@pytest.mark.parametrize("source", ["import os; os._exit(3)", "import sys; sys.stdout.flush(); os.kill(os.getpid(), 9)"])
def test_a_dying_child_is_a_crash_not_a_grader_error(box, source):
    ns = box(f"import os\ndef die():\n    {source}\ndef ok(): return 1").student()
    with pytest.raises(SandboxCrash):
        ns.die()
    assert ns.ok() == 1


def test_sys_exit_in_a_call_is_a_student_error(box):
    ns = box("import sys\ndef leave(): sys.exit(0)").student()
    with pytest.raises(StudentError, match="SystemExit"):
        ns.leave()


def test_time_limit_context_raises_the_limit(box):
    ns = box("import time\ndef nap(): time.sleep(1.5); return 1", call_timeout=1).student()
    with time_limit(ns, 5):
        assert ns.nap() == 1


SPIN = """import time
def spin(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return 1
def nap(seconds):
    time.sleep(seconds)
"""


def test_a_training_limit_is_cpu_time_so_a_busy_machine_costs_nothing(box):
    """Under ``time_limit`` a call may use its seconds of the sandbox's CPU time: stalled for 3 s (as
    on a busy machine: the child is stopped, SIGSTOP), a call of 0.5 s of CPU passes a 1 s limit;
    2.5 s of CPU does not, and says CPU time; sleeping ends at the wall cap (wall_factor times)."""
    import signal
    import threading

    b = box(SPIN, wall_factor=8)   # the stall and a second stream of tests share the wall cap
    ns = b.student()
    assert ns.spin(0.01) == 1                      # started: the child exists
    pid = b.child.proc.pid

    def stall():
        time.sleep(0.1)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(3)
        os.kill(pid, signal.SIGCONT)

    staller = threading.Thread(target=stall)
    staller.start()
    t0 = time.monotonic()
    with time_limit(ns, 1):
        assert ns.spin(0.5) == 1
    staller.join()
    assert time.monotonic() - t0 > 3               # the wall clock saw the stall; the limit did not
    with time_limit(ns, 1), pytest.raises(SandboxTimeout, match=r"did not finish within 1 s of CPU time"):
        ns.spin(2.5)
    with time_limit(ns, 0.5), pytest.raises(SandboxTimeout, match=r"within 4 s of wall time \(it waited or slept"):
        ns.nap(30)
    with pytest.raises(SandboxTimeout, match=r"did not finish within 5 s: look for"):   # a plain call: wall time
        ns.nap(30)


def test_output_is_captured_and_truncated(box):
    b = box("print('x' * 1_000_000)\ndef ok(): return 1", max_output_bytes=1000)
    assert b.student().ok() == 1
    report = b.close()
    assert len(report.output) == 1000 and report.output_dropped > 990_000


def test_huge_return_values_are_refused(box):
    ns = box("def big(): return np.zeros(20_000_000)", max_message_bytes=1 << 20).student()
    with pytest.raises(SandboxCrash, match="over the limit"):
        ns.big()


def test_memory_limit(box):
    ns = box("def hog(): return np.ones(10**10)", memory_bytes=2 << 30).student()
    with pytest.raises(StudentError, match="MemoryError|Unable to allocate"):
        ns.hog()


@pytest.mark.skipif(os.geteuid() != 0, reason="isolation by uid and namespaces needs root")
def test_root_isolation_hides_checks_and_network_and_drops_privileges(box):
    ns = box(f"""
import os, socket
def secret():
    try:
        return open({str(SECRET)!r}).read()[:20]
    except OSError as e:
        return "blocked: " + type(e).__name__
def whoami(): return os.getuid()
def net():
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=1); return "connected"
    except OSError as e:
        return "blocked: " + type(e).__name__
def parent(): 
    try:
        os.kill(os.getppid(), 9); return "killed"
    except OSError as e:
        return "blocked: " + type(e).__name__
""").student()
    assert ns.secret().startswith("blocked")
    assert ns.whoami() >= 200_000
    assert ns.net().startswith("blocked")
    assert ns.parent().startswith("blocked")


@pytest.mark.skipif(os.geteuid() != 0, reason="the per-sandbox uid reaper needs root")
def test_fork_bomb_and_escaped_children_are_reaped(box):
    b = box("""
import os, time
def bomb():
    for _ in range(200):
        try:
            if os.fork() == 0:
                os.setsid()
                time.sleep(600)
                os._exit(0)
        except OSError:
            break
    return 1
""", max_processes=64)
    assert b.student().bomb() == 1
    uid = b.child.uid
    b.close()
    from autograder.sandbox.child import _uid_in_use

    assert not _uid_in_use(uid)


def test_local_namespace_round_trips_like_the_remote_one():
    ns = {}
    exec("import numpy as np\nclass L:\n    def f(self, x): return x.view(np.matrix)\n"
         "def todo(): raise NotImplementedError", ns)
    local = LocalStudent(ns)
    out = local.L().f(np.ones((2, 2)))
    assert type(out) is np.ndarray
    with pytest.raises(NotImplementedAnswer):
        local.todo()
    with pytest.raises(MissingAnswer):
        local.absent


def cells_box(request_boxes, cells, **limits) -> Sandbox:
    b = Sandbox([Cell(name, source) for name, source in cells], limits=Limits(**{"call_timeout": 5, **limits}),
                label="t", hidden=hidden_paths())
    request_boxes.append(b)
    return b


@pytest.fixture
def boxes():
    made: list[Sandbox] = []
    yield made
    for b in made:
        b.close()


@pytest.mark.parametrize("runaway, kind, message", [
    ("while True:\n    pass", "CellTimeout", r"line 4 did not finish within the cell's 2 s \(an infinite loop"),
    ("__import__('os')._exit(3)", "CellCrash", r"line 4 ended the sandbox \(the sandbox process exited with status 3"),
])
def test_a_line_that_hangs_or_ends_the_sandbox_cuts_its_cell_there_and_keeps_what_is_above(boxes, runaway, kind, message):
    b = cells_box(boxes, [("a", "def f(): return 'f'"),
                          ("b", 'print("B-RAN", flush=True)\nclass Above:\n    def m(self): return "kept"\n'
                                + runaway + "\ndefined_after_the_loop = 1"),
                          ("c", "def g(): return 'g'\ndef spin():\n    while True: pass")],
                  exec_timeout=2, call_timeout=1)
    ns = b.student()
    assert ns.f() == "f" and ns.g() == "g"   # one cut and one restart (below), not one per call
    assert ns.Above().m() == "kept"          # defined above the line that stopped the cell
    with pytest.raises(MissingAnswer, match=r"note that your cell 'b' stopped with " + kind):
        ns.defined_after_the_loop
    err = b.report.cell_errors["b"]
    assert err["type"] == kind and re.search(message, err["message"]) and err["line"] == 4
    assert err["message"].endswith("the lines above it ran and what they defined is kept; the rest of the cell was "
                                   "not run, and the cells after it ran")
    assert b.cut == {"b": 2} and b.report.restarts == 1
    # A check's call that times out restarts the child: the cells run again, b up to the line that stopped it.
    with pytest.raises(SandboxTimeout, match="`spin` did not finish"):
        ns.spin()
    assert ns.f() == "f" and ns.g() == "g" and ns.Above().m() == "kept"
    assert b.report.restarts == 2 and b.cut == {"b": 2}
    report = b.close()
    assert report.output.count("B-RAN") == 3, report.output   # the lines above the cut run in every child
    assert list(report.cell_errors) == ["b"]


def test_a_cell_that_runs_out_of_time_between_lines_is_cut_without_a_restart(boxes):
    b = cells_box(boxes, [("a", "import time\nx = 1\ntime.sleep(1.5)\ny = 2\ntime.sleep(1.5)\nz = 3"),
                          ("b", "w = 4")], exec_timeout=2.5)
    ns = b.student()
    assert (ns.x, ns.y, ns.w) == (1, 2, 4)
    with pytest.raises(MissingAnswer):
        ns.z
    assert b.report.cell_errors["a"]["type"] == "CellTimeout"


def test_a_syntax_error_is_the_cells_error_and_magics_run(boxes):
    b = cells_box(boxes, [("a", "x = 1\ndef broken(:\n    pass"), ("b", "%time y = 2\nz = y + 1")])
    ns = b.student()
    assert (ns.y, ns.z) == (2, 3)
    assert b.report.cell_errors["a"]["type"] == "SyntaxError" and b.report.restarts == 0
    with pytest.raises(MissingAnswer):
        ns.x   # a cell that does not parse runs nothing, as in Jupyter


def test_a_cell_that_raises_is_recorded_and_the_next_cells_run(boxes):
    b = cells_box(boxes, [("a", "raise ValueError('nope')"), ("b", "def h(): return 2")])
    assert b.student().h() == 2
    assert b.report.cell_errors["a"]["type"] == "ValueError" and not b.cut and b.report.restarts == 0


def test_a_callable_that_keeps_stopping_the_sandbox_is_not_called_again(boxes):
    b = cells_box(boxes, [("a", "def spin():\n    while True: pass\ndef ok(): return 7")],
                  call_timeout=1, max_restarts=2)
    ns = b.student()
    for _ in range(3):  # the first call and one after each of the 2 fresh children it may have
        with pytest.raises(SandboxTimeout, match=r"`spin` did not finish within 1 s"):
            ns.spin()
    for _ in range(5):       # refused at once: no fresh child, no call
        with pytest.raises(NotCalledAgain, match=r"Not run: `spin` stopped the sandbox in each of its last 3 calls "
                                                  r"\(the last time: `spin` did not finish within 1 s"):
            ns.spin()
    assert ns.ok() == 7 and b.report.restarts == 3


def test_a_sandbox_that_cannot_run_any_cell_in_time_is_broken_once(boxes):
    b = cells_box(boxes, [("a", "x = 1")], submission_timeout=0.0)
    ns = b.student()
    for _ in range(3):
        with pytest.raises(SandboxCrash, match="answer cells could not be run .*time budget"):
            ns.x
    assert b.report.restarts == 0


def test_a_notebooks_budget_counts_only_the_time_its_sandbox_spends(boxes):
    """Two notebooks' sandboxes, checked one after the other: while one hangs, the other's share
    is untouched; a hang uses up only its own notebook's share."""
    from autograder.sandbox.limits import Budget
    limits = Limits(call_timeout=2, submission_timeout=10)
    hangs = Sandbox([Cell("a", "def spin():\n    while True: pass")], limits=limits, label="hangs",
                    hidden=hidden_paths(), budget=Budget(3.0, "hangs.ipynb"))
    other = Sandbox([Cell("a", "def ok(): return 1")], limits=limits, label="other",
                    hidden=hidden_paths(), budget=Budget(3.0, "other.ipynb"))
    boxes += [hangs, other]
    assert other.student().ok() == 1
    with pytest.raises(SandboxTimeout):
        hangs.student().spin()            # about 2 s of its 3
    with pytest.raises(SandboxTimeout, match=r"did not finish|the time budget of 3 s for hangs\.ipynb is used up"):
        hangs.student().spin()            # the rest of its share
    with pytest.raises((SandboxTimeout, SandboxCrash), match=r"time budget of 3 s for hangs\.ipynb is used up"):
        hangs.student().spin()
    assert hangs.budget.remaining() <= 0
    assert other.budget.remaining() > 2.0  # the other notebook's time was not spent waiting
    assert other.student().ok() == 1


# ----------------------------------------------------------------------------- the memory cap
def test_the_watchdog_counts_pages_a_fork_shares_once():
    """Resident memory counts a fork's shared pages twice; the watchdog's second look (Pss) once,
    so an honest process that forks is not stopped for memory it does not use."""
    from autograder.sandbox.memory import over

    hog = np.ones(40_000_000)                 # 320 MB, touched, shared with the fork below
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        time.sleep(0.3)
        with open(f"/proc/{os.getpid()}/statm") as f:
            mine = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        assert not over([os.getpid(), pid], int(mine * 1.6))         # resident: 2 x mine; shared: ~1 x
        assert over([os.getpid(), pid], int(mine * 0.5))
        assert not over([os.getpid()], 1 << 40) and not over([], 0)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        del hog


def test_a_v2_cap_goes_under_the_nearest_ancestor_that_passes_memory_on(tmp_path):
    """cgroup v2 (modelled: no machine here has its memory controller): the leaf goes under the
    nearest ancestor of the grader's cgroup that enables memory for its children (systemd's
    delegated user@UID.service, not the app scope the grader runs in); none enables it: no cgroup."""
    from autograder.sandbox.memory import v2_parent

    own = "/user.slice/user-1000.slice/user@1000.service/app.slice/jupyter.scope"
    for part, controllers in (("", "cpu memory pids"), ("user.slice", "memory pids"),
                              ("user.slice/user-1000.slice", "memory pids"),
                              ("user.slice/user-1000.slice/user@1000.service", "cpu memory pids"),
                              ("user.slice/user-1000.slice/user@1000.service/app.slice", "pids"),
                              (own.lstrip("/"), "")):
        folder = tmp_path / part
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cgroup.subtree_control").write_text(controllers + "\n")
        (folder / "cgroup.procs").write_text("")
    assert v2_parent((str(tmp_path), "/"), own) == tmp_path / "user.slice/user-1000.slice/user@1000.service"
    # a cgroup namespace: the mount's root is the grader's slice
    assert v2_parent((str(tmp_path / "user.slice"), "/user.slice"), own) == \
        tmp_path / "user.slice/user-1000.slice/user@1000.service"
    for folder in tmp_path.rglob("cgroup.subtree_control"):
        folder.write_text("cpu pids\n")
    assert v2_parent((str(tmp_path), "/"), own) is None


@pytest.mark.parametrize("how", ["as this machine caps", "watchdog"])
def test_forked_children_over_the_cap_stop_the_sandbox_and_the_next_call_is_fresh(box, monkeypatch, how):
    """Two forked children of 400 MB each under a 600 MB cap on the sandbox (each far under its
    address-space limit): the call fails naming the cap, and the next call gets a fresh sandbox.
    The same with the watchdog forced, as where the grader may make no cgroup (as root too)."""
    from autograder.sandbox.memory import MemoryCap

    if how == "watchdog":
        monkeypatch.setattr(MemoryCap, "_make_cgroup", lambda self: None)
    b = box("""
import os, time
def hog():
    kids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            try:
                x = np.ones(50_000_000)          # 400 MB, touched
                time.sleep(600 + x[0])
            finally:
                os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
def fine(): return 7
""", call_timeout=120, sandbox_memory_bytes=600 << 20)
    ns = b.student()
    with pytest.raises(SandboxCrash, match=r"together used more than its memory cap of 600 MiB \(forked children"):
        ns.hog()
    assert ns.fine() == 7
    capped = [line for line in b.report.isolation if "capped at 600 MiB" in line]
    machine = MemoryCap(1)
    machine.close()
    assert capped and ("watchdog" in capped[0]) == (how == "watchdog" or machine.how == "watchdog")

"""The hostile catalogue again, as an unprivileged user (``nobody``), the way an instructor grades
on a laptop, a JupyterHub server or a Slurm node: the grader is not root, so its sandboxes are
bubblewrap's (``sandbox.child.isolation_mode``), and every scenario of ``test_hostile.py`` must
hold there too. Run as root (CI), this starts ``pytest tests/test_hostile.py`` as ``nobody`` with
``setpriv``; the report says how many scenarios ran in each mode.

This machine's Python lives under root's home (0700), which ``nobody`` cannot enter. The run gets a
private mount namespace (``unshare -m``) in which each closed ancestor of the interpreter is covered
by an open, empty tmpfs and the interpreter's folder is bound back: the user can run Python and
read nothing else of root's."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autograder.course import ROOT
from tests.conftest import report_line

NOBODY = 65534


def closed_ancestors(path: str) -> list[str]:
    """The folders above ``path`` that others cannot enter (e.g. /root), outermost first."""
    parts, out = Path(path).parts, []
    for i in range(2, len(parts)):
        folder = os.path.join(*parts[:i])
        if not os.stat(folder).st_mode & 0o001:
            out.append(folder)
    return out


def as_nobody(argv: list[str], cwd: Path, home: Path) -> list[str]:
    """``argv`` as nobody, with the interpreter readable (see the module docstring)."""
    prefix = os.path.realpath(sys.base_prefix)
    steps = []
    closed = closed_ancestors(prefix)
    if closed:  # the outermost closed folder is the one to open; the prefix is bound back whole
        view = f"/tmp/.cnn2d-view-{os.getpid()}"
        steps += [f"mkdir -p {view}", f"mount --bind {shlex.quote(prefix)} {view}",
                  f"mount -t tmpfs -o mode=0755,size=64k tmpfs {shlex.quote(closed[0])}",
                  f"mkdir -p {shlex.quote(prefix)}", f"mount --move {view} {shlex.quote(prefix)}"]
    run = (f"cd {shlex.quote(str(cwd))} && exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "
           f"env -i PATH=/usr/bin:/bin HOME={shlex.quote(str(home))} LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 "
           + " ".join(shlex.quote(a) for a in argv))
    return ["unshare", "-m", "sh", "-c", " && ".join([*steps, run])]


@pytest.mark.skipif(os.geteuid() != 0, reason="the suite already runs unprivileged: test_hostile.py ran in that mode")
def test_the_hostile_catalogue_holds_without_root(tmp_path, request):
    for tool in ("unshare", "setpriv", "bwrap"):
        assert subprocess.run(["which", tool], capture_output=True).returncode == 0, \
            f"{tool} is missing: python3 tasks.py test installs bubblewrap; util-linux has unshare and setpriv"
    readable = [p for p in (ROOT, *ROOT.parents) if str(p) != "/" and not os.stat(p).st_mode & 0o005]
    assert not readable, f"nobody cannot read the checkout at {ROOT} ({readable}): clone it somewhere others can read"
    home = Path(tempfile.mkdtemp(prefix="cnn2d-nobody-"))
    os.chown(home, NOBODY, NOBODY)
    try:
        argv = [str(ROOT / ".venv" / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
                "--basetemp", str(home / "pytest"), "tests/test_hostile.py"]
        proc = subprocess.run(as_nobody(argv, ROOT, home), capture_output=True, text=True, timeout=1800)
    finally:
        subprocess.run(["rm", "-rf", str(home)], check=False)
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    summary = re.search(r"(\d+) passed(?:, (\d+) skipped)?", proc.stdout)
    assert summary, tail
    passed, skipped = int(summary.group(1)), int(summary.group(2) or 0)
    assert skipped == 0, f"scenarios skipped as nobody:\n{tail}"
    assert passed >= 60, tail
    graded = re.search(r"hostile catalogue as unprivileged \(bubblewrap\): (\d+) of (\d+) scenarios graded", proc.stdout)
    assert graded and graded.group(1) == graded.group(2), tail
    report_line(request, f"hostile catalogue as nobody (bubblewrap): {graded.group(1)} of {graded.group(2)} "
                         f"scenarios graded; {passed} tests passed, 0 skipped")


@pytest.mark.skipif(os.geteuid() != 0, reason="switches between root and nobody")
def test_each_mode_is_recorded_and_no_isolation_is_refused():
    """results.json says which isolation applied: root, bubblewrap (nobody), none (--no-isolation).
    Without root and without bubblewrap the grader refuses (exit 3, no score) and names the fix."""
    tmp_path = Path(tempfile.mkdtemp(prefix="cnn2d-modes-"))  # pytest's own folder is root's, closed to nobody
    os.chmod(tmp_path, 0o777)
    empty = tmp_path / "empty"
    empty.mkdir()
    py = str(ROOT / ".venv" / "bin" / "python")

    def grade(out: str, *extra: str, user: bool = True, path: str = "/usr/bin:/bin"):
        argv = [py, "-m", "autograder", "grade", str(empty), "--out", str(tmp_path / out), "-q", *extra]
        if user:
            cmd = as_nobody(argv, ROOT, tmp_path)
            cmd[-1] = cmd[-1].replace("PATH=/usr/bin:/bin", f"PATH={path}")
        else:
            cmd = argv
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
        data = tmp_path / out / "results.json"
        return proc, (json.loads(data.read_text()) if data.exists() else None)

    try:
        check_modes(grade)
    finally:
        subprocess.run(["rm", "-rf", str(tmp_path)], check=False)


def check_modes(grade) -> None:

    proc, data = grade("as-root", user=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert data["extra_data"]["isolation"] == "root"
    proc, data = grade("as-nobody")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert data["extra_data"]["isolation"] == "bubblewrap"
    nobwrap = Path("/nonexistent-no-bwrap")  # a PATH on which no bwrap is found
    proc, data = grade("no-bwrap", path=str(nobwrap))
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "bubblewrap (bwrap) is not installed" in proc.stderr and "--no-isolation" in proc.stderr
    assert data is None or "score" not in data
    proc, data = grade("trusted", "--no-isolation", path=str(nobwrap))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert data["extra_data"]["isolation"] == "none"

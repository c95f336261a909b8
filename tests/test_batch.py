"""Grading a class on Dask: the hand-in layouts (one entry per student, nbgrader's ``submitted/``,
Gradescope's export); the default LocalCluster, a real ``dask scheduler`` with two ``dask worker``
processes, and each hand-in graded alone, giving the same scores; a worker SIGKILLed mid-batch; a batch
that resumes (a rerun grades only what changed); the gradebook equal to grades.csv.

The batches grade the fast check modules only (``FAST``, one sandbox of 01_scratch_cnn per hand-in,
a few seconds each); most share one LocalCluster (``client``), whose workers stay warm. The load test
(Problem 7 under two CPU hogs) is in tests/test_slow_classifier.py.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from autograder import course
from autograder.__main__ import build_parser
from autograder.assignment.handins import GRADESCOPE_METADATA, content_digest, hand_ins, safe_name
from autograder.assignment.solutions import make_submission
from autograder.assignment.submission import CannotGrade
from autograder.grading import batch as batch_module
from autograder.grading.batch import BatchOutcome, grade_batch, grader_digest
from autograder.grading import cluster
from autograder.grading.cluster import open_client
from autograder.nbgrader.gradebook import record
from autograder.results.model import GradingResult

FAST = ["check_p04_maxpool.py", "check_p06_flatten.py"]
BREAK_FLATTEN = ("p6_flatten", "return np.asarray(d_out).reshape(self._shape)", "return np.asarray(d_out)")
ROOT = Path(__file__).resolve().parent.parent
DASK = Path(sys.executable).parent / "dask"
# Answer cells that sleep first: the hand-in is still being graded when the test kills its worker.
SLEEPY = [("p6_flatten", "class Flatten", "import time\ntime.sleep(6)\n\n\nclass Flatten")]
# A hostile Flatten cell: it forges every results.json it can find and signals the process that started it.
HOSTILE = """import glob, os, signal
for path in glob.glob("/tmp/**/results.json", recursive=True) + glob.glob(os.path.expanduser("~/**/results.json")):
    try:
        open(path, "w").write('{"score": 1000, "FORGED": true}')
    except OSError:
        pass
try:
    os.kill(os.getppid(), signal.SIGKILL)
except OSError:
    pass
"""

METADATA = """\
submission_1:
  :submitters:
  - :name: Alice Adams
    :sid: s1001
    :email: alice@example.edu
  :created_at: 2025-03-01 10:00:00.000000000 -08:00
  :score: !ruby/object:BigDecimal 18:0.0
  :status: processed
submission_2:
  :submitters:
  - :name: Bob Brown
    :email: bob.brown@example.edu
  :created_at: 2025-03-01 11:00:00.000000000 -08:00
"""


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory) -> dict[str, Path]:
    """A solved and an unsolved hand-in, built once (copied by each test)."""
    base = tmp_path_factory.mktemp("hand-ins")
    return {"solved": make_submission(base / "solved"), "unsolved": make_submission(base / "unsolved", solved=False)}


@pytest.fixture(scope="module")
def client():
    """One LocalCluster of two workers for the module's batches (the default path starts its own)."""
    with open_client(workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def a_class(notebooks, tmp_path_factory) -> Path:
    """Seven hand-ins: full, untouched, buggy (Flatten's backward), hostile (forges results.json,
    kills its parent), the full one zipped, an empty folder, a notebook that is not JSON."""
    folder = tmp_path_factory.mktemp("class")
    shutil.copytree(notebooks["solved"], folder / "full")
    shutil.copytree(notebooks["unsolved"], folder / "untouched")
    make_submission(folder / "buggy", patches=[BREAK_FLATTEN])
    make_submission(folder / "hostile", overrides={"p6_flatten": HOSTILE})
    shutil.make_archive(str(folder / "zipped"), "zip", notebooks["solved"])
    (folder / "empty").mkdir()
    (folder / "not-json").mkdir()
    (folder / "not-json" / "01_scratch_cnn.ipynb").write_text("{ this is not json")
    return folder


def per_check(results) -> dict[str, list[tuple[str, float]]]:
    return {r.student: sorted((c.name, c.score) for c in r.checks) for r in results}


def notebooks_of(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("*.ipynb"))


def rows(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def results_json(out: Path, student: str) -> dict:
    return json.loads((out / student / "results.json").read_text())


# ----------------------------------------------------------------------------- layouts, graded
def test_nbgrader_and_gradescope_layouts_are_read_named_and_graded(notebooks, client, tmp_path):
    course_dir = tmp_path / "course"
    for student, kind in (("alice", "solved"), ("bob", "unsolved")):
        shutil.copytree(notebooks[kind], course_dir / "submitted" / student / course.ASSIGNMENT)
    (course_dir / "submitted" / "carol" / "another_assignment").mkdir(parents=True)  # no cnn2d: left out
    export = tmp_path / "gradescope_export.zip"
    with zipfile.ZipFile(export, "w") as zf:
        zf.writestr(f"assignment_4242_export/{GRADESCOPE_METADATA}", METADATA)
        for folder, kind in (("submission_1", "solved"), ("submission_2", "unsolved")):
            for nb in notebooks_of(notebooks[kind]):
                zf.write(nb, f"assignment_4242_export/{folder}/{nb.name}")

    assert hand_ins(course_dir) == hand_ins(course_dir / "submitted") == {
        "alice": course_dir / "submitted" / "alice" / course.ASSIGNMENT,
        "bob": course_dir / "submitted" / "bob" / course.ASSIGNMENT}
    nbgrader = grade_batch(course_dir / "submitted", tmp_path / "out-nbgrader", progress=False, select=FAST,
                           client=client)
    gradescope = grade_batch(export, tmp_path / "out-gradescope", progress=False, select=FAST, client=client)

    for outcome, out, solved, unsolved in ((nbgrader, tmp_path / "out-nbgrader", "alice", "bob"),
                                           (gradescope, tmp_path / "out-gradescope", "s1001", "bob.brown")):
        results, failures = outcome
        assert failures == {} and outcome.skipped == []
        by = {r.student: r for r in results}
        assert set(by) == {solved, unsolved} == set(rows(out))
        assert by[solved].total == by[solved].possible > 0 and by[unsolved].total == 0
        assert {c.problem for c in by[solved].checks} == {4, 6}
        assert results_json(out, solved)["score"] == round(by[solved].total, 4)
        assert results_json(out, solved)["extra_data"]["digest"] == by[solved].digest != {}
    # The export was unpacked into the batch's own temporary folder: gone with it.
    assert not any(p.exists() for p in gradescope.hand_ins.values())


# ----------------------------------------------------------------------------- where it runs
@pytest.fixture
def dask_cluster(tmp_path):
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, as the README starts
    them (the scheduler leaves retrying a hand-in whose worker died to the client); yields the scheduler's address."""
    info = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "cwd": tmp_path}
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(info)], **quiet)]
    try:
        for _ in range(600):
            if info.exists() and info.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        procs += [subprocess.Popen([str(DASK), "worker", address, "--nthreads", "1", "--no-dashboard",
                                    "--name", f"w{k}"], **quiet) for k in (1, 2)]
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_alone_on_the_local_cluster_and_through_a_scheduler_the_same_scores(a_class, grader, client, dask_cluster,
                                                                            tmp_path):
    """Each hand-in graded alone (in this process), by the default LocalCluster (``client``: what
    ``open_client`` starts when no scheduler is given) and by a real scheduler with two workers: the
    same points, check by check; the hostile one forges nothing."""
    alone = [grader.grade(path, None, student=name, select=FAST) for name, path in hand_ins(a_class).items()]
    local = grade_batch(a_class, tmp_path / "out-local", progress=False, select=FAST, client=client)
    remote = grade_batch(a_class, tmp_path / "out-remote", progress=False, select=FAST, scheduler=dask_cluster)
    assert local.failures == remote.failures == {}
    assert per_check(alone) == per_check(local.results) == per_check(remote.results)

    totals = {r.student: r.by_problem() for r in local.results}
    full = totals["full"]
    assert sum(s for s, _, _ in full.values()) == sum(p for _, p, _ in full.values()) > 0
    assert totals["zipped"] == full
    for zero in ("untouched", "empty", "not-json"):
        assert all(s == 0 for s, _, _ in totals[zero].values()), zero
    assert totals["buggy"][4] == full[4] and totals["buggy"][6][0] < full[6][0]
    assert totals["hostile"][4] == full[4] and totals["hostile"][6][0] == 0
    for out in (tmp_path / "out-local", tmp_path / "out-remote"):
        assert set(rows(out)) == {p.name.removesuffix(".zip") for p in a_class.iterdir()}
        assert all(r["status"] == "graded" for r in rows(out).values())
    assert not [p for p in tmp_path.rglob("results.json") if "FORGED" in p.read_text()]

    # The command line, through the same scheduler (every check: an untouched and an empty hand-in).
    small = tmp_path / "small"
    shutil.copytree(a_class / "untouched", small / "untouched")
    (small / "empty").mkdir()
    cli = subprocess.run([sys.executable, "-m", "autograder", "batch", str(small), "--out", str(tmp_path / "out-cli"),
                          "--scheduler", dask_cluster, "--no-gradebook", "-q"], capture_output=True, text=True, cwd=ROOT)
    assert cli.returncode == 0, cli.stderr[-3000:]
    table = rows(tmp_path / "out-cli")
    assert set(table) == {"untouched", "empty"} and {r["autograded"] for r in table.values()} == {"0.0"}
    assert all(r["status"] == "graded" and r["possible"] != "" for r in table.values())


def test_a_scheduler_that_is_not_there_is_named_with_the_fix(notebooks, tmp_path):
    shutil.copytree(notebooks["unsolved"], tmp_path / "class" / "ann")
    cli = subprocess.run([sys.executable, "-m", "autograder", "batch", str(tmp_path / "class"), "--out",
                          str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9", "-q"],
                         capture_output=True, text=True, cwd=ROOT)
    assert cli.returncode == 3
    assert "could not reach the Dask scheduler at tcp://127.0.0.1:9" in cli.stderr and "fix: start it (`dask scheduler`)" in cli.stderr
    assert not (tmp_path / "out" / "ann" / "results.json").exists()


def test_a_killed_worker_costs_nothing_and_one_killed_twice_is_named(notebooks, client, tmp_path):
    """SIGKILL the worker grading ``unlucky`` once and the workers grading ``poison`` twice: unlucky
    is graded again on another worker, poison is "not graded: the grading worker died twice", the
    rest of the class is graded, and no results.json is left half-written."""
    folder = tmp_path / "class"
    for name in ("poison", "unlucky"):
        make_submission(folder / name, patches=SLEEPY)
    shutil.copytree(notebooks["solved"], folder / "full")
    shutil.copytree(notebooks["unsolved"], folder / "untouched")
    kills = {"poison": 2, "unlucky": 1}
    killed: list[str] = []
    done = threading.Event()

    def killer():
        seen: dict[str, float] = {}
        while not done.is_set() and any(kills.values()):
            for address, keys in client.processing().items():
                for key in keys:
                    name = next((n for n in kills if str(key).startswith(f"grade-{n}-")), None)
                    if name and kills[name]:
                        first = seen.setdefault(f"{key}@{address}", time.monotonic())
                        if time.monotonic() - first <= 1.5:           # not yet running its sleepy cells
                            continue
                        try:
                            pid = client.run(os.getpid, workers=[address]).get(address)
                        except Exception:                             # that worker is going away already
                            continue
                        if pid:
                            os.kill(pid, signal.SIGKILL)
                            kills[name] -= 1
                            killed.append(name)
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        outcome = grade_batch(folder, tmp_path / "out", progress=False, select=FAST, client=client)
    finally:
        done.set()
        thread.join(timeout=10)
    assert sorted(killed) == ["poison", "poison", "unlucky"]
    assert outcome.failures == {"poison": "the grading worker died twice (killed, or out of memory) while grading it"}
    by = {r.student: r for r in outcome.results}
    assert set(by) == {"unlucky", "full", "untouched"}
    assert by["unlucky"].by_problem() == by["full"].by_problem() and by["full"].total == by["full"].possible
    table = rows(tmp_path / "out")
    assert table["poison"]["status"] == "not graded: " + outcome.failures["poison"] and table["poison"]["autograded"] == ""
    assert not (tmp_path / "out" / "poison" / "results.json").exists()
    for student in by:
        assert results_json(tmp_path / "out", student)["extra_data"]["run_id"] == by[student].run_id
    client.wait_for_workers(2, timeout=120)      # the nanny restarted both: the cluster lives on


# ----------------------------------------------------------------------------- resume
def test_a_rerun_grades_only_the_changed_and_the_missing(notebooks, client, tmp_path):
    folder, out = tmp_path / "class", tmp_path / "out"
    for student, kind in (("ann", "solved"), ("ben", "solved"), ("cat", "unsolved")):
        shutil.copytree(notebooks[kind], folder / student)
    first = grade_batch(folder, out, progress=False, select=FAST, client=client)
    assert first.failures == {} and first.skipped == []
    run1 = {r.student: r for r in first.results}
    mtimes = {s: (out / s / "results.json").stat().st_mtime_ns for s in run1}

    shutil.rmtree(out / "ann")                                                     # lost
    shutil.rmtree(folder / "ben")
    make_submission(folder / "ben", patches=[BREAK_FLATTEN])                       # changed: Flatten broken
    second = grade_batch(folder, out, progress=False, select=FAST, client=client)
    assert second.failures == {} and second.skipped == ["cat"]
    run2 = {r.student: r for r in second.results}
    assert set(run2) == {"ann", "ben", "cat"}
    assert run2["cat"].run_id == run1["cat"].run_id == results_json(out, "cat")["extra_data"]["run_id"]
    assert (out / "cat" / "results.json").stat().st_mtime_ns == mtimes["cat"]
    for s in ("ann", "ben"):
        assert run2[s].run_id != run1[s].run_id
        assert results_json(out, s)["extra_data"]["run_id"] == run2[s].run_id
    assert run2["ann"].total == run1["ann"].total == run1["ann"].possible
    assert run2["ben"].by_problem()[4] == run1["ben"].by_problem()[4]
    assert run2["ben"].by_problem()[6][0] < run1["ben"].by_problem()[6][0]
    table = rows(out)
    assert set(table) == {"ann", "ben", "cat"}
    for s, r in run2.items():
        assert float(table[s]["autograded"]) == round(r.total, 4) and table[s]["status"] == "graded"
        assert float(table[s]["problem_6"]) == round(r.by_problem()[6][0], 4)
    assert float(table["cat"]["autograded"]) == 0 and float(table["ben"]["autograded"]) < float(table["ann"]["autograded"])

    # A check module changed: everyone is graded again. (Every worker must have the client's checks,
    # or it grades nobody; so the change is played the other way round: results graded by other checks.)
    for student in run2:
        path = out / student / "results.json"
        data = json.loads(path.read_text())
        data["extra_data"]["digest"]["checks"] = "0" * 64
        path.write_text(json.dumps(data))
    third = grade_batch(folder, out, progress=False, select=FAST, client=client)
    assert third.skipped == [] and {r.run_id for r in third.results}.isdisjoint(r.run_id for r in second.results)
    assert {r.student: r.total for r in third.results} == {s: r.total for s, r in run2.items()}

    # And --regrade grades everyone, up to date or not.
    fourth = grade_batch(folder, out, progress=False, select=FAST, regrade=True, client=client)
    assert fourth.skipped == [] and len(fourth.results) == 3
    assert {r.run_id for r in fourth.results}.isdisjoint(r.run_id for r in third.results)
    assert {r.student: r.total for r in fourth.results} == {s: r.total for s, r in run2.items()}
    assert {s: results_json(out, s)["extra_data"]["run_id"] for s in run2} == {r.student: r.run_id for r in fourth.results}


def test_an_interrupted_batch_keeps_what_it_graded_and_the_rerun_grades_the_rest(notebooks, client, tmp_path):
    """Ctrl-C after the first result: BatchInterrupted says how many are saved; nothing half-written;
    the rerun grades only the others."""
    folder, out = tmp_path / "class", tmp_path / "out"
    for student in ("ann", "ben", "cat", "dan"):
        shutil.copytree(notebooks["solved" if student != "dan" else "unsolved"], folder / student)
    arrived = []

    def ctrl_c(result, hand_in):
        arrived.append(result.student)
        raise KeyboardInterrupt

    with pytest.raises(batch_module.BatchInterrupted) as stopped:
        grade_batch(folder, out, progress=False, select=FAST, client=client, on_result=ctrl_c)
    assert (stopped.value.graded, stopped.value.left) == (1, 3) and "Ctrl-C" in stopped.value.reason
    saved = {p.parent.name for p in out.glob("*/results.json")}
    assert saved == set(arrived) and len(saved) == 1
    assert not (out / "grades.csv").exists()
    rerun = grade_batch(folder, out, progress=False, select=FAST, client=client)
    assert rerun.skipped == arrived and rerun.failures == {} and set(rows(out)) == {"ann", "ben", "cat", "dan"}


def test_the_gradebook_equals_grades_csv(notebooks, client, tmp_path):
    """Each result is recorded as it arrives (``on_result``, as the CLI does): read back with
    nbgrader's Gradebook API, every student's points per test cell and total equal grades.csv;
    a regrade of a changed hand-in updates its rows in place."""
    from nbgrader.api import Gradebook

    folder, out, db = tmp_path / "class", tmp_path / "out", f"sqlite:///{tmp_path / 'gradebook.db'}"
    shutil.copytree(notebooks["solved"], folder / "ann")
    shutil.copytree(notebooks["unsolved"], folder / "ben")
    make_submission(folder / "cat", patches=[BREAK_FLATTEN])

    def into_gradebook(result, hand_in):
        record(tmp_path / "course", [(result, hand_in)], db_url=db)

    def compare():
        table = rows(out)
        with Gradebook(db, course.settings().course_id) as gb:
            assert {s.id for s in gb.students} == set(table)
            for student, row in table.items():
                assert gb.find_submission(course.ASSIGNMENT, student).score == pytest.approx(float(row["autograded"]))
                for problem, cell in ((4, "p4_tests"), (6, "p6_tests")):
                    grade = gb.find_grade(cell, "01_scratch_cnn", course.ASSIGNMENT, student)
                    assert grade.auto_score == pytest.approx(float(row[f"problem_{problem}"])), (student, cell)
        return table

    grade_batch(folder, out, progress=False, select=FAST, client=client, on_result=into_gradebook)
    before = compare()
    shutil.rmtree(folder / "cat")
    shutil.copytree(notebooks["solved"], folder / "cat")                  # cat fixes Flatten
    again = grade_batch(folder, out, progress=False, select=FAST, client=client, on_result=into_gradebook)
    assert again.skipped == ["ann", "ben"]
    after = compare()
    assert float(after["cat"]["autograded"]) > float(before["cat"]["autograded"]) > float(before["cat"]["problem_4"])


def test_a_worker_with_other_checks_grades_nobody(notebooks, client, tmp_path, monkeypatch):
    """The client's checks differ from the workers' (here: the client hashes a changed copy): nobody
    gets a score, the message names the fix, and no results.json is written."""
    shutil.copytree(notebooks["solved"], tmp_path / "class" / "ann")
    checks = shutil.copytree(course.CHECKS_DIR, tmp_path / "checks", ignore=shutil.ignore_patterns("__pycache__"))
    with open(checks / FAST[1], "a") as f:
        f.write("\n# a changed check module\n")
    real = batch_module.grader_digest
    monkeypatch.setattr(batch_module, "grader_digest", lambda *a, **k: real(*a, **k, checks_dir=checks))
    with pytest.raises(batch_module.GraderBroken, match="other check modules, release or limits") as broken:
        grade_batch(tmp_path / "class", tmp_path / "out", progress=False, select=FAST, client=client)
    assert "install the same version of the grader" in broken.value.fix
    assert not list((tmp_path / "out").rglob("results.json"))


# ----------------------------------------------------------------------------- without grading
def test_each_user_unpacks_in_a_private_work_root_and_a_taken_one_is_named(monkeypatch, tmp_path):
    """/tmp is shared: root's batch leaves its work root behind, and a user grading next must still
    grade (the CI failure of the run as nobody). Each uid has its own, mode 0700; a name taken by a
    symlink or a readable directory is refused with the fix, since hand-ins must not land there."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "cnn2d-grading").mkdir(mode=0o700)                    # the shared name of old: ignored
    root = cluster.work_root()
    assert root == tmp_path / f"cnn2d-grading-{os.getuid()}" and root.stat().st_mode & 0o777 == 0o700
    assert cluster.work_root() == root                                  # a second worker shares it
    root.chmod(0o755)
    with pytest.raises(batch_module.GraderBroken, match="not a private directory") as broken:
        cluster.work_root()
    assert f"remove {root}" in broken.value.fix and "TMPDIR" in broken.value.fix
    root.rmdir()
    root.symlink_to(tmp_path / "cnn2d-grading")
    with pytest.raises(batch_module.GraderBroken, match="not a private directory"):
        cluster.work_root()
    limits = batch_module.Limits()
    outcome = batch_module.grade_on_worker("ann", {}, limits, None, grader_digest(limits, None), [])
    assert outcome[0] == "broken" and "not a private directory" in outcome[1]


def test_gradescope_names_from_the_metadata(notebooks, tmp_path):
    """:sid:, else the email's local part, else :name: (made a folder name); keys with or without the
    colon; a group joined by +; no entry: the submission folder; the metadata's Ruby tags are read."""
    root = tmp_path / "export"
    metadata = METADATA + """\
submission_3:
  submitters:
  - name: José Núñez / 3
submission_4:
  :submitters:
  - {":name": A, ":sid": 7}
  - {":name": B, ":sid": 8}
submission_5:
  :submitters:
  - :name: Alice again
    :sid: s1001
"""
    for n in range(1, 7):
        (root / f"submission_{n}").mkdir(parents=True)
    (root / GRADESCOPE_METADATA).write_text(metadata)
    expected = {"s1001": "submission_1", "bob.brown": "submission_2", "Jose_Nunez_3": "submission_3",
                "7+8": "submission_4", "submission_5": "submission_5", "submission_6": "submission_6"}
    assert hand_ins(root) == {name: root / folder for name, folder in expected.items()}
    assert hand_ins(tmp_path) == hand_ins(root)    # the folder holding the extracted export
    (root / GRADESCOPE_METADATA).write_text("::: not yaml [")
    assert set(hand_ins(root)) == {f"submission_{n}" for n in range(1, 7)}


def test_gradescope_zip_is_unpacked_safely_into_the_workdir(notebooks, tmp_path):
    export = tmp_path / "export.zip"
    nb = notebooks_of(notebooks["solved"])[0]
    with zipfile.ZipFile(export, "w") as zf:
        zf.writestr(GRADESCOPE_METADATA, METADATA)
        zf.write(nb, f"submission_1/{nb.name}")
        zf.writestr("submission_1/run.sh", "rm -rf /")
        zf.writestr("submission_2/answers.pdf", "%PDF")          # no notebook: graded as missing, not lost
        zf.writestr("../escaped.ipynb", "{}")
        zf.writestr("/abs.ipynb", "{}")
    work = tmp_path / "work"
    entries = hand_ins(export, workdir=work)
    assert list(entries) == ["bob.brown", "s1001"] and entries["s1001"].is_relative_to(work)
    assert list(entries["bob.brown"].iterdir()) == []
    assert [p.name for p in entries["s1001"].iterdir()] == [nb.name]
    assert not (tmp_path / "escaped.ipynb").exists() and not list(work.rglob("escaped.ipynb"))
    assert content_digest(entries["s1001"]) == content_digest(hand_ins(export, workdir=work)["s1001"])

    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.write(nb, f"alice/{nb.name}")
    with pytest.raises(CannotGrade, match="no Gradescope export"):
        hand_ins(plain, workdir=tmp_path / "work2")
    assert list((tmp_path / "work2").iterdir()) == []
    (tmp_path / "broken.zip").write_bytes(b"PK not a zip")
    with pytest.raises(CannotGrade, match="not a readable zip"):
        hand_ins(tmp_path / "broken.zip", workdir=tmp_path / "work3")
    with pytest.raises(CannotGrade, match="does not exist"):
        hand_ins(tmp_path / "nowhere")


def test_one_entry_per_student(tmp_path):
    for name in ("alice", "dan/cnn2d", ".git", "__MACOSX"):
        (tmp_path / name).mkdir(parents=True)
    for name in ("bob.zip", "carol.ipynb", "alice.zip", "roster.csv"):
        (tmp_path / name).write_text("x")
    assert hand_ins(tmp_path) == {"alice": tmp_path / "alice", "alice.zip": tmp_path / "alice.zip",
                                  "bob": tmp_path / "bob.zip", "carol": tmp_path / "carol.ipynb",
                                  "dan": tmp_path / "dan" / "cnn2d"}
    assert [safe_name(s) for s in ("..", ".hidden", "a/b", "", "a b@c.d")] == ["", "hidden", "a_b", "", "a_b@c.d"]


def test_digest_is_content_only_and_a_broken_results_json_is_graded_again(notebooks, tmp_path):
    a = shutil.copytree(notebooks["solved"], tmp_path / "a")
    b = shutil.copytree(notebooks["solved"], tmp_path / "b")
    assert content_digest(a) == content_digest(b)
    (b / "notes.txt").write_text("changed")
    assert content_digest(a) != content_digest(b)
    limits = batch_module.Limits()
    assert grader_digest(limits, FAST) == grader_digest(limits, list(reversed(FAST))) != grader_digest(limits)
    other = batch_module.Limits(call_timeout=limits.call_timeout + 1)
    assert grader_digest(other, FAST)["limits"] != grader_digest(limits, FAST)["limits"]

    class FakeGrader:
        def _manual(self, submission):
            return []

    digest = batch_module.batch_digest(a, grader_digest(limits, FAST))
    stored = {"score": 2, "execution_time": 1.5, "tests": [
        {"name": "Problem 4: forward", "score": 2, "max_score": 2, "status": "passed", "output": ""},
        {"name": "Problem 6: backward", "score": 0.5, "max_score": 1, "status": "failed", "output": ""}],
        "extra_data": {"graded": True, "run_id": "r1", "student": "a", "digest": digest}}
    path = tmp_path / "out" / "a" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(stored))
    back = batch_module._up_to_date(path, digest, FakeGrader(), FAST)
    assert isinstance(back, GradingResult) and back.run_id == "r1" and back.digest == digest
    assert back.by_problem() == {4: (2.0, 2.0, False), 6: (0.5, 1.0, False)} and back.execution_time == 1.5
    assert batch_module._up_to_date(path, {**digest, "submission": "other"}, FakeGrader(), FAST) is None
    path.write_text(json.dumps(stored)[:40])                    # half a file: graded again
    assert batch_module._up_to_date(path, digest, FakeGrader(), FAST) is None
    path.write_text(json.dumps({**stored, "extra_data": {**stored["extra_data"], "graded": False}}))
    assert batch_module._up_to_date(path, digest, FakeGrader(), FAST) is None


def test_outcome_unpacks_as_before_and_the_cli_states_the_layouts():
    outcome = BatchOutcome([], {"x": "why"}, ["y"], {})
    results, failures = outcome
    assert (results, failures, outcome.skipped) == ([], {"x": "why"}, ["y"])
    sub = build_parser()._subparsers._group_actions[0].choices["batch"]
    text = " ".join(sub.format_help().split())
    for phrase in ("SUBMISSIONS", "submitted/<student>/cnn2d/", "submission_metadata.yml", "--regrade",
                   "Export Submissions", ":sid:", "--workers N", "--scheduler ADDRESS", "LocalCluster",
                   "dask-jobqueue", "worker that dies", "Ctrl-C"):
        assert phrase in text, phrase
    assert build_parser().parse_args(["batch", "subs", "--out", "o", "--regrade"]).regrade is True
    args = build_parser().parse_args(["batch", "subs", "--out", "o", "--workers", "3", "--scheduler", "tcp://h:1"])
    assert (args.workers, args.scheduler) == (3, "tcp://h:1")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["batch", "subs", "--out", "o", "--shard", "0/2"])   # gone: Dask spreads a class

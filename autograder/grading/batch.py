"""Grade a class: every hand-in of a folder or Gradescope export (``autograder.assignment.handins``),
on a Dask cluster (``autograder.grading.cluster``: an embedded LocalCluster, one worker process per
core by default, or an existing scheduler). This process, the client, is the one writer: it writes
each ``out/<student>/results.json`` + feedback as that student's result arrives (and hands it to
``on_result``, for the gradebook), then ``out/grades.csv`` and ``out/batch.json``. A submission that
fails in any way is recorded and the batch goes on; a broken grader stops it (nobody gets a score).

Resumable and idempotent: each results.json carries ``extra_data.digest`` (``batch_digest``): the
hand-in's content, the check modules, the release, the limits and the checks selected. A rerun skips
every student whose results.json is graded with the same digest (its row read back from it), grades
the others (a new or changed hand-in, a missing or unreadable results.json, a changed check module or
release: everyone) and rewrites grades.csv from all. ``regrade=True`` grades everyone. results.json is
written atomically, so an interrupted batch (Ctrl-C, a killed client, scheduler or worker) loses at
most the submissions in flight, and never leaves half a file.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import functools
import json
import secrets
import shutil
import sys
import tempfile
import types
from concurrent.futures import CancelledError
from pathlib import Path

from autograder import course
from autograder.assignment.handins import content_digest, hand_ins
from autograder.assignment.submission import CannotGrade
from autograder.grading.broken import GraderBroken
from autograder.grading.cluster import (MAX_DEATHS, NoWorkers, died_message, free_worker, open_client,
                                        pack, tries_per_submit, unpack, wait_for_worker, work_root)
from autograder.grading.grader import Grader
from autograder.results.files import write_result
from autograder.results.model import GradingResult
from autograder.results.table import grades_csv
from autograder.sandbox.limits import Limits

BATCH_FILE = "batch.json"
DIGEST_SCHEME = 1          # raise when what the digest covers changes: every result is then regraded
NOT_CODE = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache")

__all__ = ["BATCH_FILE", "BatchInterrupted", "BatchOutcome", "batch_digest", "grade_batch", "grade_on_worker", "grader_digest"]


class BatchOutcome(tuple):
    """``(results, failures)``, so ``results, failures = grade_batch(...)`` reads as it always did, with
    ``skipped`` (the students whose results.json was up to date: not graded again; their results are
    read back from it and are in ``results`` too) and ``hand_ins`` (student -> the path graded; valid
    while the batch's workdir lives)."""

    results: list[GradingResult]
    failures: dict[str, str]
    skipped: list[str]
    hand_ins: dict[str, Path]

    def __new__(cls, results, failures, skipped, entries):
        self = super().__new__(cls, (results, failures))
        self.results, self.failures, self.skipped, self.hand_ins = results, failures, skipped, entries
        return self


def grader_digest(limits: Limits, select: list[str] | None = None, checks_dir: Path | None = None,
                  release_dir: Path | None = None) -> dict[str, str]:
    """What the grader's side of a result depends on, hashed: the check modules' files
    (``course.CHECKS_DIR``), the release's (``course.RELEASE_DIR``), the limits (as JSON), the selection."""
    return {"scheme": str(DIGEST_SCHEME),
            "checks": content_digest(checks_dir or course.CHECKS_DIR, skip=NOT_CODE),
            "release": content_digest(release_dir or course.RELEASE_DIR, skip=NOT_CODE),
            "limits": _sha(json.dumps(dataclasses.asdict(limits), sort_keys=True)),
            "select": _sha(json.dumps(sorted(select) if select else None))}


def batch_digest(hand_in: Path, grader: dict[str, str]) -> dict[str, str]:
    """A result's ``digest``: the hand-in's content (``content_digest``) and the ``grader_digest``."""
    return {"submission": content_digest(hand_in), **grader}


class BatchInterrupted(Exception):
    """The batch stopped before every hand-in was graded (Ctrl-C, the scheduler lost); what was
    graded is saved, and a rerun grades the rest."""

    def __init__(self, reason: str, graded: int, left: int):
        super().__init__(reason)
        self.reason, self.graded, self.left = reason, graded, left


def grade_batch(folder: Path, out: Path, limits: Limits | None = None, progress: bool = True, *,
                regrade: bool = False, select: list[str] | None = None, workdir: Path | None = None,
                workers: int | None = None, scheduler: str | None = None, client=None,
                on_result=None) -> BatchOutcome:
    """``folder``: any layout ``hand_ins`` reads (a Gradescope export zip included, unpacked under
    ``workdir``; default: a temporary folder of this call, so ``hand_ins`` of the outcome are gone
    once it returns). Graded on ``client`` (a ``distributed.Client``) when given, else on
    ``cluster.open_client(workers, scheduler)``. ``select``: the check modules to run (default: all).
    ``on_result(result, hand_in)`` is called for each newly graded student as the result arrives.
    Returns the results of every graded student (skipped ones read back) and, by student, why a
    submission could not be graded. Raises GraderBroken (nobody gets a score) or BatchInterrupted."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="cnn2d-batch-") as tmp:
            return grade_batch(folder, out, limits, progress, regrade=regrade, select=select,
                               workdir=Path(tmp), workers=workers, scheduler=scheduler, client=client,
                               on_result=on_result)
    out = Path(out)
    entries = hand_ins(Path(folder), workdir=workdir)
    grader = Grader(limits=limits)            # here only to read results back: grading is on the workers
    common = grader_digest(grader.limits, select)
    results, failures, skipped, todo = [], {}, [], {}
    out.mkdir(parents=True, exist_ok=True)
    for name, entry in entries.items():
        digest = batch_digest(entry, common)
        if not regrade and (done := _up_to_date(out / name / "results.json", digest, grader, select)):
            done.student = name
            results.append(done)
            skipped.append(name)
        else:
            todo[name] = (entry, digest)
    if todo:
        with contextlib.nullcontext(client) if client is not None else open_client(workers, scheduler) as c:
            _grade_on(c, todo, out, grader.limits, select, common, results, failures, progress, on_result,
                      hidden=[str(Path(folder).resolve()), str(out.resolve()), str(Path(workdir).resolve())])
    grades_csv(out / "grades.csv", results, failures)
    # Where the hand-ins are, for the class report's similarity section (`python -m autograder report OUT`).
    (out / BATCH_FILE).write_text(json.dumps({"submissions": str(Path(folder).resolve())}) + "\n")
    return BatchOutcome(results, failures, skipped, entries)


def _grade_on(client, todo: dict, out: Path, limits: Limits, select, common: dict, results: list,
              failures: dict, progress: bool, on_result, hidden: list[str]) -> None:
    """Submit every hand-in of ``todo`` to ``client``; handle each outcome as it arrives."""
    from distributed import as_completed
    from tqdm import tqdm

    # Each hand-in is placed on a worker thread that has nothing else (``free_worker``): a worker that
    # dies takes only the hand-in it was grading with it (Dask counts a death against every task a
    # worker holds, so two hand-ins on one worker would share the blame); the hand-ins' bytes are
    # read and sent one at a time. A hand-in whose worker died is placed again, on another worker,
    # until it has cost ``cluster.MAX_DEATHS`` workers.
    waiting, in_flight, finished = list(todo), {}, as_completed()      # in_flight: future -> (name, worker)
    deaths = dict.fromkeys(todo, 0)
    bar = tqdm(total=len(todo), desc="grading", unit="submission", disable=not progress, file=sys.stderr)
    graded = 0

    def fill() -> None:
        while waiting and (worker := free_worker(client, (w for _, w in in_flight.values()))):
            name = waiting.pop(0)
            try:
                packed = pack(todo[name][0])
            except (CannotGrade, OSError) as e:
                failures[name] = str(e)
                (out / name / "results.json").unlink(missing_ok=True)
                bar.update(1)
                continue
            future = client.submit(grade_on_worker, name, packed, limits, select, common, hidden,
                                   key=f"grade-{name}-{secrets.token_hex(4)}", pure=False, retries=0,
                                   workers=[worker], allow_other_workers=True)
            in_flight[future] = (name, worker)
            finished.add(future)

    try:
        fill()
        while in_flight or waiting:
            if not in_flight:             # every worker is gone or restarting: wait for one
                wait_for_worker(client)
                fill()
                continue
            future = next(finished)
            name, _ = in_flight.pop(future)
            entry, digest = todo[name]
            outcome = _outcome(future, client)
            if outcome[0] == "died":
                deaths[name] += outcome[1]
                if deaths[name] < MAX_DEATHS:
                    waiting.insert(0, name)       # graded again, first, on another worker
                    fill()
                    continue
                outcome = ("cannot", died_message(deaths[name]))
            if outcome[0] == "broken":
                raise GraderBroken(outcome[1], outcome[2])
            if outcome[0] == "graded":
                result = outcome[1]
                result.digest = digest
                write_result(result, out / name)   # atomically
                results.append(result)
                graded += 1
                if on_result is not None:
                    on_result(result, entry)
            else:
                failures[name] = outcome[1]
                (out / name / "results.json").unlink(missing_ok=True)  # an earlier hand-in's result is stale now
            bar.update(1)
            bar.set_postfix({"graded": graded, "failed": len(failures)}, refresh=False)
            fill()
    except KeyboardInterrupt:
        raise BatchInterrupted("interrupted (Ctrl-C)", graded, len(todo) - graded) from None
    except NoWorkers as e:
        raise BatchInterrupted(str(e), graded, len(todo) - graded) from None
    finally:
        bar.close()
        client.cancel(list(in_flight))


def _outcome(future, client) -> tuple:
    """What ``grade_on_worker`` returned, or ``("died", workers lost)`` when its worker died on every
    try the scheduler made, or ``("error", message)`` when the worker could not run it."""
    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        return ("died", tries_per_submit(client))
    except CancelledError:
        raise NoWorkers("the Dask scheduler was lost") from None
    except Exception as e:     # the worker could not run the task at all
        return ("error", f"internal error on the grading worker: {type(e).__name__}: {e}")


@functools.cache
def _grader(limits_json: str):
    return Grader(limits=Limits(**json.loads(limits_json)))


@functools.cache
def _own_digest(limits_json: str, select: tuple[str, ...] | None) -> dict:
    return grader_digest(Limits(**json.loads(limits_json)), list(select) if select else None)


def grade_on_worker(student: str, packed: dict, limits: Limits, select: list[str] | None,
                    expected: dict, hidden: list[str]) -> tuple:
    """Runs in a Dask worker process: grade one ``cluster.pack``ed hand-in and return a tagged tuple,
    ``("graded", GradingResult)``, ``("cannot", why)``, ``("error", why)`` or ``("broken", reason,
    fix)``. One ``Grader`` per limits is kept per worker (the release read once, TensorFlow imported
    once); the student's code runs in sandbox children of the worker, as always. It writes nothing:
    the client writes every result. Dask carries these tuples between the grader's own processes;
    student code never reaches them (a sandbox answers in numpy arrays and JSON only). A worker whose
    checks, release or limits differ from the client's (``grader_digest``) grades nobody."""
    key = json.dumps(dataclasses.asdict(limits), sort_keys=True)
    chosen = tuple(sorted(select)) if select else None
    if _own_digest(key, chosen) != expected:
        return ("broken", f"the grading worker on {os.uname().nodename} has other check modules, release or "
                "limits than the machine that started the batch",
                "install the same version of the grader and the same release/ on every worker, restart the "
                "workers (each keeps the checks it first loaded), then run the batch again")
    try:
        root = work_root()
    except GraderBroken as e:
        return ("broken", e.reason, e.fix)
    work = Path(tempfile.mkdtemp(prefix="hand-in-", dir=root))
    try:
        path = unpack(packed, work)
        result = _grader(key).grade(path, None, student=student, hidden=[*map(Path, hidden), root],
                                    select=select)
        return ("graded", result)
    except CannotGrade as e:
        return ("cannot", str(e))
    except GraderBroken as e:
        return ("broken", e.reason, e.fix)
    except Exception as e:  # a grader bug must not cost the rest of the class their grades
        return ("error", f"internal error: {type(e).__name__}: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _up_to_date(path: Path, digest: dict, grader: Grader, select: list[str] | None) -> GradingResult | None:
    """The result in ``path`` when it is graded with this very digest, read back; else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        extra = data["extra_data"]
        if extra.get("graded") is not True or extra.get("digest") != digest:
            return None
        # results.json has no hand-graded checks: rebuilt as the grader builds them (all checks selected)
        answers = types.SimpleNamespace(manual_answers=dict(extra.get("manual_answers") or {}))
        return GradingResult.from_results_json(data, pending=grader._manual(answers) if select is None else ())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None   # missing or unreadable: graded again


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()

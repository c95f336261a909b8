"""Where a batch is graded: on a Dask cluster (``distributed``), and what one of its workers does.

    with open_client(workers=2) as client:            # an embedded LocalCluster, or scheduler="tcp://..."
        future = client.submit(batch.grade_on_worker, "alice", pack(path), Limits(), None, digest, [])

``open_client`` starts a ``LocalCluster`` in this process (``workers`` processes, default one per
core, one thread each) or connects to the scheduler at ``scheduler``. Either way Dask's scheduler
retries a submission whose worker died (SIGKILL, the OOM killer) once, on another worker
(``ALLOWED_FAILURES``); a second death is ``KilledWorker`` for that submission alone, so one
poisonous submission costs two worker restarts (the nanny restarts them), never the cluster.

A hand-in travels to its worker as bytes (``pack``; ``unpack`` there under ``work_root()``), so
workers on other machines need no shared file system. What runs on the worker is
``batch.grade_on_worker``.
"""
from __future__ import annotations

import collections
import contextlib
import os
import stat
import tempfile
import time
from pathlib import Path

from autograder.grading.broken import GraderBroken

ALLOWED_FAILURES = 0                      # the scheduler's own retries: none (the client places again)
MAX_DEATHS = 2                            # workers a hand-in may cost before it is "not graded"
NO_WORKER_WAIT = 120                      # seconds without any worker before a batch stops
MAX_HAND_IN_BYTES = 200 << 20             # the most one hand-in may hold to be sent to a worker

__all__ = ["ALLOWED_FAILURES", "MAX_DEATHS", "NoWorkers", "died_message", "free_worker", "open_client",
           "pack", "tries_per_submit", "unpack", "wait_for_worker", "work_root"]


class NoWorkers(Exception):
    """The cluster has had no worker for ``NO_WORKER_WAIT`` seconds, or its scheduler is gone."""


def work_root() -> Path:
    """Where this user's workers unpack hand-ins (hidden from every sandbox): ``$TMPDIR/cnn2d-grading-UID``,
    a directory of this user's alone (mode 0700). One per user, since ``/tmp`` is shared: another
    user's (root's) directory of the same name would refuse this user's hand-ins. GraderBroken when
    the name is taken by anything else, since hand-ins must not be unpacked where others can read."""
    root = Path(tempfile.gettempdir()) / f"cnn2d-grading-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise GraderBroken(f"{root} is not a private directory of this user (uid {os.getuid()}), so hand-ins "
                           "cannot be unpacked there safely",
                           f"remove {root}, or point TMPDIR at a directory of your own, then grade again")
    return root


def free_worker(client, busy) -> str | None:
    """The address of a worker with a thread that holds none of the hand-ins placed on ``busy`` (the
    workers of the hand-ins in flight, one entry each), or None when every thread has one."""
    held = collections.Counter(busy)
    return next((w for w, n in sorted(client.nthreads().items()) if held[w] < n), None)


def wait_for_worker(client) -> None:
    """Until the cluster has a worker again (the nanny restarts one that died); NoWorkers after
    ``NO_WORKER_WAIT`` seconds without one."""
    try:
        client.wait_for_workers(1, timeout=NO_WORKER_WAIT)
    except TimeoutError:
        raise NoWorkers(f"the Dask cluster has had no worker for {NO_WORKER_WAIT} s") from None
    time.sleep(0.2)


@contextlib.contextmanager
def open_client(workers: int | None = None, scheduler: str | None = None, quiet: bool = True):
    """A ``distributed.Client``: of ``scheduler`` (``tcp://HOST:PORT``; GraderBroken when it cannot be
    reached or has no worker), else of a LocalCluster of ``workers`` processes (default
    ``os.cpu_count()``), one thread each, closed on leaving."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        if scheduler:
            client = None
            try:
                client = Client(scheduler, timeout="10s")
                client.wait_for_workers(1, timeout=60)
            except (OSError, TimeoutError) as e:
                if client is not None:
                    client.close()
                raise GraderBroken(f"could not reach the Dask scheduler at {scheduler}, or it has no workers ({e})",
                                   f"start it (`dask scheduler`) and its workers (`dask worker {scheduler}`), or "
                                   "leave out --scheduler to grade on this machine") from None
            with client:
                yield client
            return
        with LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.CRITICAL if quiet else logging.WARNING) as cluster, \
                Client(cluster) as client:
            yield client


def tries_per_submit(client) -> int:
    """How many workers died for one ``KilledWorker``: 1 + the scheduler's ``allowed-failures`` (0 on
    the embedded one; a scheduler started elsewhere may retry on its own)."""
    try:
        return 1 + int(client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures))
    except Exception:
        return 1 + ALLOWED_FAILURES


def died_message(deaths: int) -> str:
    """What grades.csv says of a submission whose grading worker died ``deaths`` times."""
    times = {1: "once", 2: "twice"}.get(deaths, f"{deaths} times")
    return f"the grading worker died {times} (killed, or out of memory) while grading it"


def pack(entry: Path) -> dict:
    """A hand-in (a folder, a .zip or a .ipynb) as ``{"name", "files": {relative path: bytes}}``:
    regular files only (no symlink is followed). Raises CannotGrade when it is too large to send."""
    from autograder.assignment.submission import CannotGrade

    entry = Path(entry)
    files = {entry.name: entry} if entry.is_file() else {
        str(p.relative_to(entry)): p for p in sorted(entry.rglob("*")) if p.is_file() and not p.is_symlink()}
    size = sum(p.stat().st_size for p in files.values())
    if size > MAX_HAND_IN_BYTES:
        raise CannotGrade(f"the hand-in holds {size >> 20} MiB, more than the {MAX_HAND_IN_BYTES >> 20} MiB "
                          "a hand-in may have: hand in the notebooks only")
    return {"name": entry.name, "folder": entry.is_dir(), "files": {k: p.read_bytes() for k, p in files.items()}}


def unpack(packed: dict, into: Path) -> Path:
    """Write a ``pack``ed hand-in under ``into``; return the path to grade (the folder or the file)."""
    top = into / (Path(packed["name"]).name or "hand-in")
    for rel, data in packed["files"].items():
        target = (top / rel) if packed["folder"] else top
        if not target.resolve().is_relative_to(into.resolve()):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if packed["folder"]:
        top.mkdir(parents=True, exist_ok=True)
    return top

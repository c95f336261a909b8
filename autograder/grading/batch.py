"""Grade a class: every hand-in of a folder or Gradescope export (``autograder.assignment.handins``),
one after the other in this process (the release is read and TensorFlow imported once). A submission
that fails in any way is recorded and the batch goes on; a broken grader stops it (nobody gets a score
from it). Writes ``out/<student>/results.json`` + feedback, ``out/grades.csv`` and ``out/batch.json``.

Resumable and idempotent: each results.json carries ``extra_data.digest`` (``batch_digest``): the
hand-in's content, the check modules, the release, the limits and the checks selected. A rerun skips
every student whose results.json is graded with the same digest (its row read back from it), grades
the others (a new or changed hand-in, a missing or unreadable results.json, a changed check module or
release: everyone) and rewrites grades.csv from all. ``regrade=True`` grades everyone. results.json is
written atomically after grading, so an interrupted batch leaves the old one or the new one, never half.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import tempfile
import types
from pathlib import Path

from autograder import course
from autograder.assignment.handins import content_digest, hand_ins
from autograder.assignment.submission import CannotGrade
from autograder.grading.broken import GraderBroken
from autograder.grading.grader import Grader
from autograder.results.files import write_result
from autograder.results.model import GradingResult
from autograder.results.table import grades_csv
from autograder.sandbox.limits import Limits

BATCH_FILE = "batch.json"
DIGEST_SCHEME = 1          # raise when what the digest covers changes: every result is then regraded
NOT_CODE = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache")

__all__ = ["BATCH_FILE", "BatchOutcome", "batch_digest", "grade_batch", "grader_digest"]


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


def grade_batch(folder: Path, out: Path, limits: Limits | None = None, progress: bool = True,
                shard: tuple[int, int] = (0, 1), *, regrade: bool = False, select: list[str] | None = None,
                workdir: Path | None = None) -> BatchOutcome:
    """``folder``: any layout ``hand_ins`` reads (a Gradescope export zip included, unpacked under
    ``workdir``; default: a temporary folder of this call, so ``hand_ins`` of the outcome are gone
    once it returns). ``shard=(k, n)`` grades every n-th submission starting at k, to spread a class
    over machines. ``select``: the check modules to run (default: all). Returns the results of every
    graded student (skipped ones read back) and, by student, why a submission could not be graded."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="cnn2d-batch-") as tmp:
            return grade_batch(folder, out, limits, progress, shard, regrade=regrade, select=select,
                               workdir=Path(tmp))
    from tqdm import tqdm

    out = Path(out)
    entries = dict(list(hand_ins(Path(folder), workdir=workdir).items())[shard[0]::shard[1]])
    grader = Grader(limits=limits)
    common = grader_digest(grader.limits, select)
    results, failures, skipped = [], {}, []
    out.mkdir(parents=True, exist_ok=True)
    others = [Path(folder).resolve(), out.resolve(), Path(workdir).resolve()]  # the class's hand-ins and results
    for name, entry in tqdm(entries.items(), desc="grading", unit="submission", disable=not progress,
                            file=sys.stderr):
        try:
            digest = batch_digest(entry, common)
            if not regrade and (done := _up_to_date(out / name / "results.json", digest, grader, select)):
                done.student = name
                results.append(done)
                skipped.append(name)
                continue
            (out / name).mkdir(parents=True, exist_ok=True)  # before any sandbox starts: hidden like the rest
            result = grader.grade(entry, None, student=name, hidden=[*others, out / name], select=select)
            result.digest = digest
            write_result(result, out / name)  # atomically, every sandbox closed by now
            results.append(result)
        except CannotGrade as e:
            failures[name] = str(e)
            (out / name / "results.json").unlink(missing_ok=True)  # an earlier hand-in's result is stale now
        except GraderBroken:  # the same for everyone: stop
            raise
        except Exception as e:  # a grader bug must not cost the rest of the class their grades
            failures[name] = f"internal error: {type(e).__name__}: {e}"
    grades_csv(out / "grades.csv", results, failures)
    # Where the hand-ins are, for the class report's similarity section (`python -m autograder report OUT`).
    (out / BATCH_FILE).write_text(json.dumps({"submissions": str(Path(folder).resolve())}) + "\n")
    return BatchOutcome(results, failures, skipped, entries)


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

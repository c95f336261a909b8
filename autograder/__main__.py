"""Command line: a thin shell over ``main(command, **kwargs)``, so the two never drift apart.

    python -m autograder grade PATH --out DIR      grade one student (folder, notebook or zip)
    python -m autograder batch DIR --out DIR       grade a class: student folders/zips, nbgrader's submitted/,
                                                   a Gradescope export (+ gradebook, class report; resumable)
                                                   on a Dask cluster: [--workers N] [--scheduler ADDRESS]
    python -m autograder report OUT                the class report OUT/report.html (plots, similarity)
    python -m autograder export --results OUT --out CSV   final grades, hand-graded points included
    python -m autograder validate PATH             what the grader will run, and whether it runs
    python -m autograder release                   generate release/cnn2d from source/cnn2d
    python -m autograder data                      where the grading data comes from, and does it load
    python -m autograder gradescope --out ZIP      the autograder zip for Gradescope
    python -m autograder demo                      grade the example submissions, print a table

Exit status: 0 graded (whatever the score), 2 bad usage, 3 could not grade: the submission is
unreadable, or the grader's own environment is at fault (then nobody gets a score, and the message
names the fix), 130 a batch stopped (Ctrl-C, a lost scheduler; what was graded is kept).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_GRADED, EXIT_USAGE, EXIT_CANNOT_GRADE, EXIT_INTERRUPTED = 0, 2, 3, 130

def limit_help() -> str:
    """The limits' part of ``--help``, written from their declarations (``Limits.describe``)."""
    from autograder.sandbox.limits import Limits

    return ("limits of the sandbox that runs each notebook (defaults):\n" + Limits.describe() +
            "\nIsolation: as root, its own uid in new namespaces; as another user, bubblewrap (own PID namespace);"
            "\nno network, the checks, data and results masked. Neither: refused; --no-isolation turns it off.")


def _limits(call_timeout=None, submission_timeout=None, memory_mb=None, jail=True, **_):
    from autograder.sandbox.limits import Limits

    limits = Limits(jail=jail)
    if call_timeout:
        limits.call_timeout = float(call_timeout)
    if submission_timeout:
        limits.submission_timeout = float(submission_timeout)
    if memory_mb:
        limits.memory_bytes = int(memory_mb) << 20
    return limits


def not_graded(out: Path | None, broken, student: str | None = None) -> int:
    """The grader's environment is at fault: say so, with the fix; leave a results.json with no score."""
    print(f"could not grade: {broken.reason}\nfix: {broken.fix}\nNo score was written.", file=sys.stderr)
    if out is not None:
        from autograder.results.files import write_not_graded

        write_not_graded(Path(out), broken.reason, broken.fix, student=student or "")
    return EXIT_CANNOT_GRADE


def grade(path: str, out: str, student: str | None = None, quiet: bool = False, **kw) -> int:
    from autograder.assignment.submission import CannotGrade
    from autograder.grading.broken import GraderBroken
    from autograder.grading.grader import Grader

    try:
        result = Grader(limits=_limits(**kw)).grade(Path(path), Path(out), student=student)
    except CannotGrade as e:
        print(f"could not grade {path}: {e}", file=sys.stderr)
        return EXIT_CANNOT_GRADE
    except GraderBroken as e:
        return not_graded(Path(out), e, student)
    if not quiet:
        print_table([result])
        print(f"wrote {Path(out) / 'results.json'}, feedback.md, feedback.html (run {result.run_id})")
    return EXIT_GRADED


def batch(folder: str, out: str, quiet: bool = False, gradebook: bool = True, threshold: float | None = None,
          regrade: bool = False, workers: int | None = None, scheduler: str | None = None, **kw) -> int:
    import tempfile

    from autograder import course
    from autograder.assignment.submission import CannotGrade
    from autograder.grading.batch import BatchInterrupted, grade_batch
    from autograder.grading.broken import GraderBroken
    from autograder.nbgrader.gradebook import record
    from autograder.reports.class_report import write_report

    unrecorded: list[str] = []            # why the gradebook could not take a result (the grades are on disk)

    def into_gradebook(items) -> None:
        if gradebook and items and not unrecorded:
            try:
                record(course.ROOT, items)
            except Exception as e:
                unrecorded.append(f"{type(e).__name__}: {e}")

    with tempfile.TemporaryDirectory(prefix="cnn2d-batch-") as work:   # a Gradescope export, unpacked
        try:
            outcome = grade_batch(Path(folder), Path(out), _limits(**kw), progress=not quiet, regrade=regrade,
                                  workdir=Path(work), workers=workers, scheduler=scheduler,
                                  on_result=lambda result, hand_in: into_gradebook([(result, hand_in)]))
        except GraderBroken as e:  # the grader's environment, or no Dask scheduler at --scheduler
            return not_graded(None, e)
        except CannotGrade as e:   # SUBMISSIONS is no layout of hand-ins, or an unreadable zip
            print(f"could not read the hand-ins: {e}", file=sys.stderr)
            return EXIT_CANNOT_GRADE
        except BatchInterrupted as e:
            print(f"\nthe batch stopped: {e.reason}. {e.graded} graded and saved in {out}, {e.left} not yet.\n"
                  f"Run the same command again: it grades only those that are missing.", file=sys.stderr)
            return EXIT_INTERRUPTED
        results, failures = outcome
        # Up-to-date students were recorded by an earlier run; again here, in case that run had no gradebook.
        into_gradebook([(r, outcome.hand_ins[r.student]) for r in results if r.student in outcome.skipped])
        page = write_report(Path(out), submissions=Path(folder), threshold=threshold)
    if unrecorded:
        print(f"could not record the results in nbgrader's gradebook ({course.settings().db_url}): "
              f"{unrecorded[0]}\nfix: check c.CourseDirectory.db_url in nbgrader_config.py, "
              f"then run this batch again", file=sys.stderr)
        return EXIT_CANNOT_GRADE
    if not quiet:
        print_table(results)
        for name, why in failures.items():
            print(f"could not grade {name}: {why}")
        if outcome.skipped:
            print(f"{len(outcome.skipped)} up to date, not graded again (same hand-in, checks, release and "
                  f"limits; --regrade grades them again): {', '.join(outcome.skipped)}")
        print(f"wrote {Path(out) / 'grades.csv'}, one folder per student and the class report {page}"
              + (f"; {len(results)} recorded in the gradebook ({course.settings().db_url})" if gradebook and results else ""))
    return EXIT_GRADED if results or not failures else EXIT_CANNOT_GRADE


def report(out: str, submissions: str | None = None, threshold: float | None = None, **_) -> int:
    """The class report of a batch's output folder (also written at the end of every batch)."""
    import json

    from autograder.grading.batch import BATCH_FILE
    from autograder.reports.class_report import write_report

    if not (Path(out) / "grades.csv").is_file():
        print(f"{out} holds no grades.csv: run `python -m autograder batch SUBMISSIONS --out {out}` first",
              file=sys.stderr)
        return EXIT_USAGE
    if submissions is None and (Path(out) / BATCH_FILE).is_file():
        submissions = json.loads((Path(out) / BATCH_FILE).read_text()).get("submissions")
    if submissions is not None and not Path(submissions).exists():
        print(f"the hand-ins {submissions} are not here: pass --submissions DIR for the similarity section",
              file=sys.stderr)
        submissions = None
    page = write_report(Path(out), submissions=Path(submissions) if submissions else None, threshold=threshold)
    print(f"wrote {page}")
    return EXIT_GRADED


def export(results: str, out: str, format: str = "plain", id_column: str = "student", roster: str | None = None,
           **_) -> int:
    """Final grades: the autograded points of a batch and the hand-graded ones from the gradebook."""
    from autograder.reports.export import export as export_grades

    if not (Path(results) / "grades.csv").is_file():
        print(f"{results} holds no grades.csv: run `python -m autograder batch SUBMISSIONS --out {results}` first",
              file=sys.stderr)
        return EXIT_USAGE
    rows = export_grades(Path(results), Path(out), fmt=format, id_column=id_column,
                         roster=Path(roster) if roster else None)
    missing = sum(1 for r in rows if r.get("status") == "manual grading missing")
    print(f"wrote {out}: {len(rows)} students ({format})"
          + (f"; {missing} still need Problems 9/11 graded in Formgrader" if missing else ""))
    return EXIT_GRADED


def validate(path: str, **kw) -> int:
    from autograder.grading.validate import validate_submission

    return validate_submission(Path(path), _limits(**kw))


def data(**_) -> int:
    """Where the grading data comes from (nbgrader_config.py), and whether it loads here."""
    from autograder import course
    from autograder.grading.broken import GraderBroken
    from autograder.grading.data import grading_data

    print(f"c.GradingData.mnist = {course.settings().mnist!r}  ({course.CONFIG_FILE})")
    try:
        d = grading_data()
    except GraderBroken as e:
        return not_graded(None, e)
    print(f"loads: {len(d.X_train)} training and {len(d.X_heldout)} held-out images for Problems 7 and 8")
    return EXIT_GRADED


def gradescope(out: str, mnist: str | None = None, **_) -> int:
    from autograder.assignment.gradescope import build_zip

    if mnist and not Path(mnist).is_file():
        print(f"--mnist {mnist}: no such file", file=sys.stderr)
        return EXIT_USAGE
    path = build_zip(Path(out), Path(mnist) if mnist else None)
    print(f"wrote {path}: upload it on Gradescope's Configure Autograder page "
          f"({'grading data inside' if mnist else 'setup.sh downloads MNIST while the image is built'})")
    return EXIT_GRADED


def release(**_) -> int:
    from autograder.nbgrader.release import main as release_main

    return release_main() or 0


def demo(out: str = "build/examples", **kw) -> int:
    """The README's main job: build the example submissions from source/ and grade them."""
    from autograder.assignment.solutions import build_examples
    from autograder.grading.broken import GraderBroken
    from autograder.grading.grader import Grader
    from autograder.reports.class_report import write_report
    from autograder.results.table import grades_csv

    try:
        grader = Grader(limits=_limits(**kw))
    except GraderBroken as e:
        return not_graded(None, e)
    results = []
    for name, path in build_examples(Path(out)).items():
        print(f"grading {name} ...", flush=True)
        try:
            results.append(grader.grade(path, Path(out) / "results" / name, student=name))
        except GraderBroken as e:
            return not_graded(Path(out) / "results" / name, e, name)
    grades_csv(Path(out) / "results" / "grades.csv", results, {})
    page = write_report(Path(out) / "results", submissions=Path(out) / "submissions")
    print_table(results)
    print(f"feedback for each example: {Path(out) / 'results'}/<example>/feedback.html; the class report: {page}")
    return EXIT_GRADED


def print_table(results) -> None:
    from autograder.results.table import console_table

    print(console_table(results), end="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def limits(p):
        p.add_argument("--call-timeout", type=float, metavar="S", help="seconds for one call into student code")
        p.add_argument("--submission-timeout", type=float, metavar="S", help="seconds for a whole submission")
        p.add_argument("--memory-mb", type=int, metavar="MB", help="address-space limit of the sandbox")
        p.add_argument("--no-isolation", dest="jail", action="store_false",
                       help="no namespaces, masks or uid change (not for untrusted code)")

    p = sub.add_parser("grade", help="grade one submission", epilog=limit_help() + """

writes DIR/results.json (Gradescope format: score, execution_time, output, tests[] with name, score,
max_score, status, output, visibility; extra_data.run_id is this run's nonce), DIR/feedback.md and
DIR/feedback.html for the student. Problems 9 and 11 are graded by hand: they are not tests of results.json
(not in its score); the student's text is in its output and extra_data.manual_answers.""",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="a folder with the cnn2d notebooks, one notebook, or a .zip of them")
    p.add_argument("--out", required=True, metavar="DIR", help="where results.json and the feedback go")
    p.add_argument("--student", help="the name shown in the report (default: the folder's name)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    limits(p)

    p = sub.add_parser("batch", help="grade every submission of a class", epilog="""\
SUBMISSIONS may be:
  a folder with one sub-folder, .zip or .ipynb per student, named by the student;
  nbgrader's submitted/ (or the course folder holding it): submitted/<student>/cnn2d/, as
    `nbgrader collect` leaves it; each student named by their folder;
  Gradescope's "Export Submissions" zip, or the folder it was extracted to: submission_metadata.yml
    and one submission_<id>/ per submission; each named by the metadata's submitter (:sid:, else the
    email's local part, else :name:), else by the submission folder.

Where it runs: on Dask. A LocalCluster in this command (--workers, default one per core) or, with
--scheduler tcp://HOST:PORT, a cluster (`dask scheduler` + `dask worker`, dask-jobqueue's SLURMCluster,
dask-kubernetes: see the README). Each worker keeps one grader; each hand-in runs in its own sandboxes.
OUT/<student>/results.json is written (and put in the gradebook) as each is done. A worker that dies
costs nothing: its hand-in is graded again elsewhere; if it dies twice, grades.csv says so.

Resumable: OUT/<student>/results.json records a digest of the hand-in, the check modules, the release
and the limits; a rerun grades only the students whose digest changed or who have no results.json
(a changed check module: everyone), and rewrites grades.csv for all. --regrade grades everyone.
Stopped (Ctrl-C, a lost scheduler), a batch keeps what it wrote: run it again for the rest.

""" + limit_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", metavar="SUBMISSIONS", help="the class's hand-ins (the layouts are below)")
    p.add_argument("--out", required=True, metavar="OUT", help="OUT/<student>/results.json and OUT/grades.csv")
    p.add_argument("--regrade", action="store_true", help="grade every hand-in again, up to date or not")
    p.add_argument("--workers", type=int, metavar="N", help="grading processes of the embedded Dask LocalCluster "
                   "(default: one per core; each grades one hand-in at a time)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="grade on an existing Dask cluster, tcp://HOST:PORT "
                   "(its workers need this grader and release/ installed; see the README)")
    p.add_argument("--no-gradebook", dest="gradebook", action="store_false",
                   help="do not record the results in nbgrader's gradebook (c.CourseDirectory.db_url)")
    p.add_argument("--threshold", type=float, metavar="T", help="similarity (0-1) above which the class report "
                   "flags a pair of hand-ins (default: autograder/reports/similarity.py's THRESHOLD)")
    p.add_argument("-q", "--quiet", action="store_true")
    limits(p)

    p = sub.add_parser("report", help="the class report OUT/report.html of a batch (also written by batch)")
    p.add_argument("out", metavar="OUT", help="a batch's output folder (OUT/grades.csv, OUT/<student>/results.json)")
    p.add_argument("--submissions", metavar="DIR", help="the hand-ins, for the similarity section (default: "
                   "the folder the batch graded, from OUT/batch.json)")
    p.add_argument("--threshold", type=float, metavar="T", help="similarity (0-1) above which a pair is flagged")

    p = sub.add_parser("export", help="final grades for the LMS: autograded + hand-graded (Formgrader) points")
    p.add_argument("--results", required=True, metavar="OUT", help="a batch's output folder")
    p.add_argument("--out", required=True, metavar="CSV", help="the file to write")
    p.add_argument("--format", choices=["plain", "canvas"], default="plain",
                   help="plain: one column per problem, total, status; canvas: Canvas's gradebook import")
    p.add_argument("--id-column", default="student", metavar="NAME", help="plain: the name of the id column")
    p.add_argument("--roster", metavar="CSV", help="maps nbgrader's student id (column `student`) to your own "
                   "ids (the --id-column column; for canvas: ID, SIS User ID, SIS Login ID, Section)")

    p = sub.add_parser("validate", help="what is unfinished, per problem (nbgrader's validator, as the "
                       "students' Validate button runs it)")
    p.add_argument("path", help="a notebook folder or one notebook")
    limits(p)

    sub.add_parser("release", help="generate release/cnn2d from source/cnn2d with nbgrader")
    p = sub.add_parser("gradescope", help="build the autograder zip for Gradescope (setup.sh, run_autograder at its top)")
    p.add_argument("--out", required=True, metavar="ZIP", help="the zip to write, e.g. autograder.zip")
    p.add_argument("--mnist", metavar="NPZ", help="carry this mnist.npz in the zip (data/mnist.npz); without it "
                   "setup.sh downloads MNIST with Keras while Gradescope builds the image")
    sub.add_parser("data", help="show where the grading data comes from (c.GradingData.mnist in "
                   "nbgrader_config.py) and check that it loads")

    p = sub.add_parser("demo", help="grade the example submissions (full solution, untouched release, buggy)")
    p.add_argument("--out", default="build/examples", metavar="DIR")
    limits(p)
    return parser


COMMANDS = {"grade": grade, "batch": batch, "report": report, "export": export, "validate": validate,
            "release": release, "data": data, "gradescope": gradescope, "demo": demo}


def main(command: str, **kwargs) -> int:
    return COMMANDS[command](**kwargs)


def cli(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    return main(args.pop("command"), **args)


if __name__ == "__main__":
    sys.exit(cli())

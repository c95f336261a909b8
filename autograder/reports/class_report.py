"""The class report, OUT/report.html, for the instructor before the next lecture. ``gather`` reads a
batch's ``OUT/<student>/results.json`` and ``OUT/grades.csv`` into ``ClassFigures`` (plain data, every
number as the files state it); ``write_report(out, submissions=None, threshold=None)`` adds the figures
(``plots.py``) and the hand-ins' similarity and renders ``templates/report.html.j2`` (Jinja2 with
autoescape: results.json holds student-influenced text)."""
from __future__ import annotations

import csv
import json
import os
import re
import statistics
from collections import Counter, namedtuple
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import jinja2

from autograder import course
from autograder.assignment.handins import hand_ins

TEMPLATES = Path(__file__).resolve().parent / "templates"
SLOWEST = 5                                          # the slowest submissions listed by name
PROBLEM = re.compile(r"^\s*Problem\s+(\d+)\b")
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

class Stats(namedtuple("Stats", "n mean median q1 q3 low high")):
    def marks(self, unit: str = "", keep=("Q1", "median", "Q3")) -> list[tuple[str, str, float]]:
        """(kind, label, x) of the quartiles for plots.py, labelled as the page prints them."""
        values = {"Q1": self.q1, "median": self.median, "Q3": self.q3}
        return [(k, f"{k} {num(values[k])}{unit}", values[k]) for k in keep]

Finding = namedtuple("Finding", "student kind text")     # kind: "locked cell edited (checksum mismatch)", ...
KINDS = [(("locked", "modified"), "locked cell edited (checksum mismatch)"), (("deleted",), "cell deleted or missing"),
         (("missing",), "cell deleted or missing"), (("appears", "times"), "cell duplicated"),
         (("of your own were run",), "cells of their own (run)")]
# A group of one check's failure messages: its most common first line (as the students saw it), how many, who,
# how many distinct first lines it holds (they differ in numbers, case or spacing) and its most common hint.
MessageGroup = namedtuple("MessageGroup", "message count students variants hint")


@dataclass
class FailedCheck:
    name: str
    problem: int
    failed: int                   # graded students below full marks on it (Gradescope's "failed")
    partial: int                  # ... of whom with some of its points
    of: int                       # graded students whose results have this check
    students: list[str]
    messages: list[MessageGroup]
    share: float = 0.0            # failed / of


@dataclass
class ClassFigures:
    title: str
    students: list[str]                                   # everyone: graded and not graded
    graded: dict[str, dict]                               # student -> results.json
    not_graded: dict[str, str]                            # student -> why
    totals: dict[str, float]                              # results.json "score"
    possible: float                                       # what most submissions are out of
    stats: Stats | None
    problems: dict[int, dict[str, float]]                 # problem -> student -> sum of its tests' scores
    problem_possible: dict[int, float]
    failed_checks: list[FailedCheck]                      # most often failed first
    times: dict[str, float]                               # results.json "execution_time"
    time_stats: Stats | None
    findings: list[Finding]
    links: dict[str, str]                                 # student -> relative link to their feedback.html
    notes: list[str] = field(default_factory=list)        # about the input itself (grades.csv missing...)

    def findings_by_kind(self) -> list[tuple[str, list[Finding]]]:
        kinds = {k: [f for f in self.findings if f.kind == k] for k in {f.kind for f in self.findings}}
        return sorted(kinds.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def stats(values) -> Stats | None:
    """Mean, median and quartiles (linear interpolation, numpy's default); None for no values."""
    if not (v := sorted(values)):
        return None
    q1, median, q3 = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else (v[0],) * 3
    return Stats(len(v), statistics.fmean(v), median, q1, q3, v[0], v[-1])


def gist(output) -> tuple[str, str]:
    """A check's message: its first line and its "What to look at" hint."""
    lines = [line.strip() for line in str(output).splitlines() if line.strip()]
    return (lines or ["(no message)"])[0], next((x[16:].strip() for x in lines if x.startswith("What to look at:")), "")


def normalise(line: str) -> str:
    """The key failure messages are grouped by: case, spacing and the numbers in them do not count."""
    return re.sub(r"\s+", " ", NUMBER.sub("#", line.lower())).strip(" .:;")


def num(x: float) -> str:
    """How every number is printed: at most two decimals, no trailing zeros."""
    return f"{round(float(x), 2):g}"


def gather(out: Path) -> ClassFigures:
    """Read a batch's output folder: nothing is computed but sums, counts and statistics over them."""
    out, notes, graded, not_graded, rows = Path(out), [], {}, {}, {}
    if not (out / "grades.csv").is_file():
        notes.append("grades.csv is missing: the class is read from the results.json files alone")
    else:
        with open(out / "grades.csv", newline="", encoding="utf-8") as f:
            rows = {r["student"]: r for r in csv.DictReader(f) if r.get("student")}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (folder / "results.json").exists():
            if folder.name in rows:
                not_graded[folder.name] = "no results.json was written"
            continue
        try:
            data = json.loads((folder / "results.json").read_text(encoding="utf-8"))
            extra = data.get("extra_data") or {}
            if extra.get("graded") is False or "score" not in data:
                not_graded[folder.name] = str(extra.get("reason") or "results.json has no score")
                continue
            float(data["score"]), [float(t.get("score", 0)) for t in data.get("tests", [])]
            graded[folder.name] = data
        except (OSError, ValueError, TypeError, AttributeError) as e:
            not_graded[folder.name] = f"results.json could not be read ({type(e).__name__})"
    for student, row in rows.items():
        status = (row.get("status") or "").strip()
        if status.startswith("not graded"):  # grades.csv is this run's; a results.json may be an older run's
            stale = " (the results.json in its folder is from an older run)" if graded.pop(student, None) else ""
            not_graded[student] = (status.removeprefix("not graded").lstrip(": ") or "(no reason given)") + stale
        elif student not in graded:
            not_graded.setdefault(student, "listed as graded in grades.csv, but there is no results.json")
    totals = {s: float(d["score"]) for s, d in graded.items()}
    possibles = Counter(float((d.get("extra_data") or {}).get("possible") or sum(
        float(t.get("max_score", 0)) for t in d.get("tests", []))) for d in graded.values())
    if len(possibles) > 1:
        notes.append("the submissions are not all out of the same points: " + ", ".join(map(num, sorted(possibles))))
    problems, problem_possible = _by_problem(graded)
    times = {s: float(d.get("execution_time") or 0) for s, d in graded.items()}
    everyone = sorted({*graded, *not_graded})
    return ClassFigures(
        title=course.TITLE, students=everyone, graded=graded, not_graded=dict(sorted(not_graded.items())),
        totals=totals, possible=possibles.most_common(1)[0][0] if possibles else 0.0, stats=stats(totals.values()),
        problems=problems, problem_possible=problem_possible, failed_checks=_failed_checks(graded),
        times=times, time_stats=stats(times.values()), findings=_findings(graded, rows, totals),
        links={s: f"{quote(s)}/feedback.html" for s in everyone if (out / s / "feedback.html").is_file()}, notes=notes)


def _by_problem(graded: dict[str, dict]) -> tuple[dict[int, dict[str, float]], dict[int, float]]:
    sums: dict[tuple[int, str], list[float]] = {}                 # (problem, student) -> [score, max_score]
    for student, data in graded.items():
        for t in data.get("tests", []):
            if m := PROBLEM.match(str(t.get("name", ""))):
                s = sums.setdefault((int(m.group(1)), student), [0.0, 0.0])
                s[0], s[1] = s[0] + float(t.get("score", 0)), s[1] + float(t.get("max_score", 0))
    scores: dict[int, dict[str, float]] = {}
    possible: dict[int, float] = {}
    for (p, student), (score, top) in sorted(sums.items()):
        scores.setdefault(p, {})[student] = round(score, 4)
        possible[p] = max(possible.get(p, 0.0), round(top, 4))
    return scores, possible


def _failed_checks(graded: dict[str, dict]) -> list[FailedCheck]:
    seen, failed, out = Counter(), {}, []          # check -> graded students with it; -> (student, test) below full
    for student, data in graded.items():
        for t in data.get("tests", []):
            seen[str(t.get("name", ""))] += 1
            if t.get("status") != "passed":
                failed.setdefault(str(t.get("name", "")), []).append((student, t))
    for name, rows in failed.items():
        groups: dict[str, list[tuple[str, str, str]]] = {}
        for student, t in rows:
            line, hint = gist(t.get("output", ""))
            groups.setdefault(normalise(line), []).append((student, line, hint))
        messages = []
        for members in groups.values():
            lines, hints = Counter(m[1] for m in members), Counter(m[2] for m in members if m[2])
            messages.append(MessageGroup(lines.most_common(1)[0][0], len(members), sorted(m[0] for m in members),
                                         len(lines), hints.most_common(1)[0][0] if hints else ""))
        messages.sort(key=lambda g: (-g.count, g.message))
        m = PROBLEM.match(name)
        out.append(FailedCheck(name, int(m.group(1)) if m else 0, len(rows),
                               sum(float(t.get("score", 0)) > 0 for _, t in rows), seen[name],
                               sorted(s for s, _ in rows), messages, len(rows) / seen[name]))
    return sorted(out, key=lambda c: (-c.failed, c.problem, c.name))


def _findings(graded: dict[str, dict], rows: dict[str, dict], totals: dict[str, float]) -> list[Finding]:
    """Everything results.json flags about a submission besides its score."""
    out = []
    for student, data in graded.items():
        extra = data.get("extra_data") or {}
        out += [Finding(student, next((k for words, k in KINDS if all(w in str(f).lower() for w in words)),
                                      "other note about the hand-in"), str(f)) for f in extra.get("findings") or []]
        for notebook, box in (extra.get("sandbox") or {}).items():
            failures = [str(x) for x in box.get("failures") or []]
            out += [Finding(student, "sandbox timed out" if "timed out" in f.lower() else "sandbox crashed",
                            f"{notebook}: {f}") for f in failures]
            if not any("namespace" in str(x) for x in box.get("isolation") or []):
                out.append(Finding(student, "sandbox ran without namespaces", f"{notebook}: isolation: "
                                   + (", ".join(map(str, box.get("isolation") or [])) or "none")))
        for t in data.get("tests", []):
            line = gist(t.get("output", ""))[0]
            if t.get("status") != "passed" and (line.startswith("Time limit") or "timed out" in line):
                out.append(Finding(student, "check hit a time limit", f"{t.get('name')}: {line}"))
        for cell, err in (extra.get("cell_errors") or {}).items():
            err = err if isinstance(err, dict) else {}
            out.append(Finding(student, "answer cell raised an error",
                               f"{cell}: {err.get('type', 'Error')}: {str(err.get('message', ''))[:300]}"))
        listed = str((rows.get(student) or {}).get("autograded") or "").strip()
        if listed and not (NUMBER.fullmatch(listed) and abs(float(listed) - totals[student]) < 1e-6):
            out.append(Finding(student, "grades.csv disagrees with results.json",
                               f"grades.csv: autograded {listed}; results.json: score {totals[student]:g}"))
    return out


def write_report(out: Path, submissions: Path | None = None, threshold: float | None = None) -> Path:
    """Write OUT/report.html (atomically) for the batch output folder ``out``; with ``submissions`` (the
    hand-ins, one per student) also the similarity pages OUT/similarity/<a>--<b>.html. Returns its path."""
    from autograder.reports import plots

    c = gather(out := Path(out))
    similarity, absent = _similarity(out, submissions, threshold)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters.update(num=num, pct=lambda x: f"{100 * x:.0f}%")
    page = env.get_template("report.html.j2").render(
        c=c, similarity=similarity, similarity_absent=absent, slowest=SLOWEST,
        totals_png=plots.totals_histogram(list(c.totals.values()), c.possible, c.stats.marks() if c.stats else []),
        problems_png=plots.problem_multiples(c.problems, c.problem_possible),
        times_png=plots.time_histogram(list(c.times.values()),
                                       c.time_stats.marks(" s", ["median"]) if c.time_stats else []))
    (tmp := out / f".report.html.{os.getpid()}").write_text(page, encoding="utf-8")
    os.replace(tmp, out / "report.html")  # a reader sees the old page or the new one, never half
    return out / "report.html"


def _similarity(out: Path, submissions: Path | None, threshold: float | None):
    """(the Similarity, its pages written, "") or (None, why the section is absent)."""
    if submissions is None:
        return None, "no folder of hand-ins was given, so the hand-ins were not compared"
    try:
        from autograder.reports.similarity import THRESHOLD, compare, write_pages
        result = compare(hand_ins(Path(submissions)), threshold=THRESHOLD if threshold is None else threshold)
        write_pages(result, out)
        return result, ""
    except ImportError as e:
        return None, f"the similarity module could not be imported ({e}), so the hand-ins were not compared"
    except Exception as e:  # noqa: BLE001  (the rest of the report must not be lost to it)
        return None, f"comparing the hand-ins failed ({type(e).__name__}: {str(e)[:300]})"

"""Results as data, and the files rendered from them.

The model: one ``CheckResult`` per check, one ``GradingResult`` per submission. Internally a check is
passed | partial | failed | pending (pending = a hand-graded written answer, Problems 9 and 11). The renderers:

- ``to_gradescope()``: Gradescope's results.json. Its tests are the autograded checks only, each
  ``passed`` (full marks) or ``failed`` (partial credit is in ``score``). Hand-graded problems are no
  tests: the instructor grades them as manual questions; their text is in ``output`` and ``extra_data``.
- ``feedback_markdown()`` and ``feedback_html()`` (``templates/feedback.html.j2``): the student's
  feedback, in this order: summary, what needs attention, passed checks (compact), cells that
  raised, written answers, what the code printed.
- ``write_not_graded()``: the files for when the grader's own environment is broken.

What came from the student reaches the HTML only escaped: by Jinja's autoescape, or as markdown-it's
HTML (raw HTML, links and images off), or as MathML made by latex2mathml and let through a whitelist.
"""
from __future__ import annotations

import functools
import html
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
TITLE = "Convolutional neural networks from scratch"
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
CHECK_MARKS = {"passed": "✓", "partial": "◐", "failed": "✗", "pending": "…"}
ANSWER_CHARS_IN_OUTPUT = 3000     # per written answer, in results.json's top-level output
NOT_GRADED = ("This submission could not be graded: the autograder's own set-up is broken. This is not your "
              "fault and nothing you handed in was judged. You do not need to change or resubmit your work: "
              "your instructor re-runs the autograder once it is fixed.")


@dataclass
class CheckResult:
    problem: int
    name: str                  # "Problem 1: forward matches tf.nn.conv2d"
    score: float
    max_score: float
    status: str                # passed | failed | partial | pending
    output: str = ""           # student-facing: what went wrong and what to look at
    visibility: str = "visible"
    duration: float = 0.0

    @property
    def full_marks(self) -> bool:
        return self.status in ("passed", "partial") and self.score >= self.max_score

    def to_gradescope(self) -> dict:
        return {"name": self.name, "score": round(self.score, 4), "max_score": self.max_score,
                "status": "passed" if self.full_marks else "failed",
                "output": self.output, "visibility": self.visibility}


@dataclass
class GradingResult:
    student: str
    checks: list[CheckResult]
    run_id: str
    execution_time: float = 0.0
    findings: list[str] = field(default_factory=list)        # instructor and student: integrity notes
    cell_errors: dict[str, dict] = field(default_factory=dict)  # "notebook/cell" -> error
    student_output: dict[str, str] = field(default_factory=dict)
    sandbox: dict[str, dict] = field(default_factory=dict)    # per notebook: isolation, restarts, failures
    manual_answers: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(c.score for c in self.checks if c.status != "pending")

    @property
    def possible(self) -> float:
        return sum(c.max_score for c in self.checks if c.status != "pending")

    @property
    def pending(self) -> float:
        return sum(c.max_score for c in self.checks if c.status == "pending")

    def by_problem(self) -> dict[int, tuple[float, float, bool]]:
        """problem -> (score, possible, pending)."""
        out: dict[int, list] = {}
        for c in self.checks:
            s = out.setdefault(c.problem, [0.0, 0.0, False])
            s[0] += c.score
            s[1] += c.max_score
            s[2] = s[2] or c.status == "pending"
        return {k: tuple(v) for k, v in sorted(out.items())}

    def public_view(self) -> "GradingResult":
        """What a student may see before grades are published: only the visible checks."""
        return GradingResult(self.student, [c for c in self.checks if c.visibility == "visible"], self.run_id,
                             self.execution_time, self.findings, self.cell_errors, self.student_output)

    def written_answers(self) -> list[tuple[int, str, str]]:
        """(problem, grade_id, text) per hand-graded problem; text is "" when there is no answer."""
        out, used = [], set()
        for c in self.checks:
            if c.status == "pending":
                gid = next((g for g in self.manual_answers if _problem_of(g) == c.problem and g not in used), "")
                used.add(gid)
                out.append((c.problem, gid, self.manual_answers.get(gid, "")))
        out += [(_problem_of(g), g, t) for g, t in self.manual_answers.items() if g not in used]
        return out

    # --- results.json
    def to_gradescope(self) -> dict:
        return {
            "score": round(self.total, 4),
            "execution_time": round(self.execution_time, 2),
            "output": self.summary_line() + self._answers_text(),
            "tests": [c.to_gradescope() for c in self.checks if c.status != "pending"],
            "extra_data": {"graded": True, "run_id": self.run_id, "student": self.student,
                           "possible": self.possible, "pending_manual_points": self.pending,
                           "findings": self.findings, "cell_errors": self.cell_errors, "sandbox": self.sandbox,
                           "manual_answers": self.manual_answers},
        }

    def summary_line(self) -> str:
        note = self._hand_note()
        return f"Autograded score: {self.total:g} / {self.possible:g}." + (f" {note}" if note else "")

    def _hand_note(self) -> str:
        hand = [p for p, (_, _, pend) in self.by_problem().items() if pend]
        return f"{self.pending:g} more points are graded by hand (Problems {_and(hand)})." if hand else ""

    def _answers_text(self) -> str:
        answers = self.written_answers()
        if not answers:
            return ""
        parts = [f"\n\nWritten answers (graded by hand, Problems {_and(sorted({p for p, _, _ in answers}))}):"]
        for problem, gid, text in answers:
            text = text.strip()
            if len(text) > ANSWER_CHARS_IN_OUTPUT:
                text = text[:ANSWER_CHARS_IN_OUTPUT] + f"\n[... {len(text) - ANSWER_CHARS_IN_OUTPUT:,} more " \
                       "characters, in extra_data.manual_answers and feedback.html]"
            parts.append(f"\n--- Problem {problem}" + (f" ({gid})" if gid else "") + " ---\n"
                         + (text or "(no answer given)"))
        return "\n".join(parts)

    # --- feedback
    def _view(self) -> dict:
        """Everything the feedback shows, in the order shown; plain data for both renderers."""
        attention, passed, first = [], {}, {}
        for c in self.checks:
            if c.status == "pending":
                continue
            if c.full_marks:
                passed.setdefault(c.problem, []).append(c)
                continue
            anchor = f"check-p{c.problem}-{sum(a['problem'] == c.problem for a in attention) + 1}"
            first.setdefault(c.problem, anchor)
            message, hint = _split_hint(c.output)
            attention.append({"id": anchor, "problem": c.problem, "name": c.name, "status": c.status,
                              "mark": CHECK_MARKS.get(c.status, "✗"), "score": c.score, "max_score": c.max_score,
                              "message": message, "hint": hint})
        answers = [{"id": f"answer-p{p}", "problem": p, "grade_id": g, "text": t} for p, g, t in self.written_answers()]
        rows = []
        for p, (score, possible, pend) in self.by_problem().items():
            kind, mark = _problem_mark(score, possible, pend)
            href = first.get(p) or (f"answer-p{p}" if pend else f"passed-p{p}")
            rows.append({"problem": p, "score": score, "possible": possible, "kind": kind, "mark": mark, "href": href})
        return {
            "title": TITLE, "student": self.student, "run_id": self.run_id, "time": self.execution_time,
            "summary": self.summary_line(), "hand_note": self._hand_note(), "total": self.total,
            "possible": self.possible, "rows": rows,
            "findings": self.findings, "attention": attention,
            "passed": [{"id": f"passed-p{p}", "problem": p, "checks": cs,
                        "score": sum(c.score for c in cs)} for p, cs in sorted(passed.items())],
            "cell_errors": [{"where": w, "type": e.get("type", "Error"), "message": str(e.get("message", ""))[:300],
                             "traceback": str(e.get("traceback", "")).strip()[-1500:]}
                            for w, e in self.cell_errors.items()],
            "answers": answers,
            "printed": [{"notebook": nb, "text": t[-3000:]} for nb, t in self.student_output.items() if t.strip()],
        }

    def feedback_markdown(self) -> str:
        v = self._view()
        out = [f"# Feedback: {TITLE}", "", f"Student: `{self.student}` · run `{self.run_id}` · "
               f"graded in {self.execution_time:.1f} s", "", f"**{v['summary']}**", "",
               "| Problem | Score | |", "|---|---|---|"]
        out += [f"| {r['problem']} | {r['score']:g} / {r['possible']:g} | {r['mark']} |" for r in v["rows"]]
        out.append("")
        if v["findings"]:
            out += ["## About your hand-in", ""] + [f"- {f}" for f in v["findings"]] + [""]
        out += ["## What needs your attention", ""]
        if not v["attention"]:
            out += ["Every autograded check passed.", ""]
        for a in v["attention"]:
            out += [f"### {a['mark']} {a['name']} ({a['score']:g} / {a['max_score']:g})", ""]
            if a["message"]:
                out += [_fenced(a["message"]), ""]
            if a["hint"]:
                out += [f"**What to look at:** {a['hint']}", ""]
        if v["passed"]:
            out += ["## Passed checks", ""]
            for g in v["passed"]:
                out += [f"**Problem {g['problem']}** ({len(g['checks'])} passed, {g['score']:g} points)", ""]
                out += [f"- ✓ {c.name} ({c.max_score:g})" for c in g["checks"]] + [""]
        if v["cell_errors"]:
            out += ["## Answer cells that raised an error", ""]
            for e in v["cell_errors"]:
                out += [f"**{e['where']}**: {e['type']}: {e['message']}", ""]
                out += [_fenced(e["traceback"]), ""] if e["traceback"] else []
        if v["answers"]:
            out += ["## Your written answers (graded by hand)", ""]
            for a in v["answers"]:
                out += [f"### Problem {a['problem']}", ""]
                out += ([("> " + line).rstrip() for line in a["text"].strip().splitlines()] if a["text"].strip()
                        else ["No answer was given."]) + [""]
        if v["printed"]:
            out += ["## What your code printed", ""]
            for p in v["printed"]:
                out += [f"**{p['notebook']}**", "", _fenced(p["text"]), ""]
        return "\n".join(out)

    def feedback_html(self) -> str:
        view = self._view()
        for a in view["answers"]:
            a["html"] = render_answer(a["text"])
        return _template().render(graded=True, **view)

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write results.json and the feedback atomically. Called only after every sandbox is gone,
        so whatever a sandbox may have planted in ``out_dir`` is replaced, never read."""
        markdown = self.feedback_markdown()
        try:
            page = self.feedback_html()
        except Exception:  # the HTML must never cost the student their results.json
            page = "<!doctype html><meta charset='utf-8'><title>Feedback</title><pre style='white-space:" \
                   "pre-wrap;overflow-wrap:anywhere'>" + html.escape(markdown) + "</pre>"
        return _write_files(out_dir, {"results.json": json.dumps(self.to_gradescope(), indent=2, allow_nan=False),
                                      "feedback.md": markdown, "feedback.html": page})

    @staticmethod
    def read_results(path: Path, run_id: str) -> dict:
        """Read a results.json back, refusing one this run did not write."""
        data = json.loads(Path(path).read_text())
        if data.get("extra_data", {}).get("run_id") != run_id:
            raise ValueError(f"{path} was not written by run {run_id}")
        return data


# ----------------------------------------------------------------------------- the grader is broken
def write_not_graded(out_dir: Path, reason: str, fix: str, student: str = "", run_id: str = "") -> dict[str, Path]:
    """The grader's own environment is broken (data missing, TensorFlow failing, a check module not
    loading): say so, with no score at all, so that nobody mistakes it for a grade of 0."""
    text = f"{NOT_GRADED}\n\nFor the instructor:\nReason: {reason}\nFix: {fix}"
    data = {"execution_time": 0, "output": text, "tests": [],
            "extra_data": {"graded": False, "reason": reason, "fix": fix, "run_id": run_id, "student": student}}
    who = f"Student: `{student}` · run `{run_id}`\n\n" if student or run_id else ""
    markdown = (f"# Not graded: {TITLE}\n\n{who}"
                + f"**{NOT_GRADED}**\n\n## For the instructor\n\n**Reason:**\n\n{_fenced(reason)}\n\n**Fix:**\n\n{_fenced(fix)}\n")
    page = _template().render(graded=False, title=TITLE, student=student, run_id=run_id, reason=reason, fix=fix,
                              message=NOT_GRADED)
    return _write_files(out_dir, {"results.json": json.dumps(data, indent=2, allow_nan=False),
                                  "feedback.md": markdown, "feedback.html": page})


def _write_files(out_dir: Path, files: dict[str, str]) -> dict[str, Path]:
    """Each file written to a temporary name in ``out_dir`` and renamed: readers see old or new, never half."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, text in files.items():
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out_dir / name)
        written[name] = out_dir / name
    return written


# ----------------------------------------------------------------------------- small pieces
def _problem_of(grade_id: str) -> int:
    m = re.match(r"p(\d+)_", grade_id)
    return int(m.group(1)) if m else 0


def _and(items) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _problem_mark(score: float, possible: float, pending: bool) -> tuple[str, str]:
    if pending:
        return "hand", "graded by hand"
    if score >= possible:
        return "full", "✓"
    return ("partial", f"◐ {score:g} / {possible:g}") if score > 0 else ("failed", "✗")


def _split_hint(output: str) -> tuple[str, str]:
    """The collector ends a message with "What to look at: <hint>"; the feedback shows the hint apart."""
    head, sep, hint = output.rpartition("\nWhat to look at: ")
    if not sep and output.startswith("What to look at: "):
        return "", output[len("What to look at: "):].strip()
    return (head.strip(), hint.strip()) if sep else (output.strip(), "")


def _fenced(text: str) -> str:
    """A Markdown code block that no backtick run in ``text`` can close."""
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{fence}\n{text.rstrip()}\n{fence}"


@functools.cache
def _template():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda x: f"{x:g}"
    return env.get_template("feedback.html.j2")


# ----------------------------------------------------------------------------- written answers
MATH = re.compile(r"\$\$(?P<d1>.+?)\$\$|\\\[(?P<d2>.+?)\\\]|\\\((?P<i1>.+?)\\\)"
                  r"|(?<![\\$\w])\$(?=\S)(?P<i2>[^$\n]+?)(?<=\S)\$(?!\d)", re.S)  # "$5 and $6" is no math
MATHML_TAGS = {"math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "mfrac",
               "msqrt", "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd", "mlabeledtr", "mstyle",
               "mpadded", "mphantom", "menclose", "mfenced", "merror", "mmultiscripts", "mprescripts", "none",
               "semantics", "annotation"}
MATHML_ATTRS = {"display", "mathvariant", "stretchy", "fence", "separator", "separators", "lspace", "rspace",
                "columnalign", "rowalign", "rowspacing", "columnspacing", "columnlines", "rowlines", "frame",
                "accent", "accentunder", "linethickness", "minsize", "maxsize", "movablelimits", "symmetric",
                "largeop", "form", "width", "height", "depth", "voffset", "notation", "displaystyle",
                "scriptlevel", "mathsize", "mathcolor", "mathbackground", "open", "close", "align", "encoding"}
SAFE_VALUE = re.compile(r"[\w#.%+\- ]*")


class _MathMLFilter(HTMLParser):
    """Re-serialises latex2mathml's output keeping only MathML elements and presentation attributes,
    all text escaped. Any other element (``\\text{<script>}`` passes through latex2mathml raw) rejects it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []

    def handle_starttag(self, tag, attrs, close=False):
        if tag not in MATHML_TAGS:
            raise ValueError(f"not MathML: <{tag}>")
        kept = "".join(f' {k}="{html.escape(v)}"' for k, v in attrs
                       if k in MATHML_ATTRS and v is not None and SAFE_VALUE.fullmatch(v))
        self.out.append(f"<{tag}{kept}>" + (f"</{tag}>" if close else ""))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs, close=True)

    def handle_endtag(self, tag):
        if tag not in MATHML_TAGS:
            raise ValueError(f"not MathML: </{tag}>")
        self.out.append(f"</{tag}>")

    def handle_data(self, data):
        self.out.append(html.escape(data, quote=False))

    def handle_comment(self, data):
        pass

    def handle_decl(self, decl):
        raise ValueError("declaration in MathML")

    handle_pi = unknown_decl = handle_decl


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """MathML for ``tex``, or the TeX source escaped in a <code> when latex2mathml cannot convert it."""
    try:
        from latex2mathml.converter import convert

        f = _MathMLFilter()
        f.feed(convert(tex, display="block" if display else "inline"))
        f.close()
        return "".join(f.out)
    except Exception:
        delim = "$$" if display else "$"
        return f'<code class="tex">{html.escape(delim + tex + delim)}</code>'


@functools.cache
def _markdown():
    from markdown_it import MarkdownIt

    # No raw HTML, and no links or images: the page loads nothing from anywhere and sends nobody anywhere.
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"]) \
        .disable(["link", "image", "autolink", "reference"])


def render_answer(text: str, limit: int = 20000):
    """A written answer as safe HTML: Markdown rendered, ``$...$``/``$$...$$`` (and ``\\(...\\)``,
    ``\\[...\\]``) as MathML. The math is cut out before Markdown sees it and put back after."""
    from markupsafe import Markup

    text = text[:limit] + (f"\n\n[... {len(text) - limit:,} more characters not shown]" if len(text) > limit else "")
    nonce, maths = secrets.token_hex(4), []

    def cut(m: re.Match) -> str:
        display = m.group("d1") is not None or m.group("d2") is not None
        maths.append(tex_to_mathml(next(g for g in m.groups() if g is not None).strip(), display))
        return f"MATH{nonce}X{len(maths) - 1}X"

    body = _markdown().render(MATH.sub(cut, text))
    return Markup(re.sub(f"MATH{nonce}X(\\d+)X", lambda m: maths[int(m.group(1))], body))

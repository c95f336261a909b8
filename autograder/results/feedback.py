"""The student's feedback, as Markdown and as one self-contained HTML page (``templates/feedback.html.j2``).

In this order: summary, what needs attention, passed checks (compact), cells that raised, written
answers, what the code printed. Also the feedback for when the grader's own environment is broken.

What came from the student reaches the HTML only escaped: by Jinja's autoescape, or as markdown-it's
HTML (raw HTML, links and images off), or as MathML made by latex2mathml and let through a whitelist.
"""
from __future__ import annotations

import functools
import html
import itertools
import re
import secrets
from html.parser import HTMLParser
from pathlib import Path

from autograder.course import TITLE
from autograder.results.model import NOT_GRADED, GradingResult

TEMPLATES = Path(__file__).resolve().parent / "templates"
CHECK_MARKS = {"passed": "✓", "partial": "◐", "failed": "✗", "pending": "…"}


def _view(result: GradingResult) -> dict:
    """Everything the feedback shows, in the order shown; plain data for both renderers."""
    attention, passed, first = [], {}, {}
    for c in result.checks:
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
    answers = [{"id": f"answer-p{p}", "problem": p, "grade_id": g, "text": t} for p, g, t in result.written_answers()]
    rows = []
    for p, (score, possible, pend) in result.by_problem().items():
        kind, mark = _problem_mark(score, possible, pend)
        href = first.get(p) or (f"answer-p{p}" if pend else f"passed-p{p}")
        rows.append({"problem": p, "score": score, "possible": possible, "kind": kind, "mark": mark, "href": href})
    return {
        "title": TITLE, "student": result.student, "run_id": result.run_id, "time": result.execution_time,
        "summary": result.summary_line(), "hand_note": result.hand_note(), "total": result.total,
        "possible": result.possible, "rows": rows,
        "findings": result.findings, "attention": attention,
        "passed": [{"id": f"passed-p{p}", "problem": p, "checks": cs,
                    "score": sum(c.score for c in cs)} for p, cs in sorted(passed.items())],
        "cell_errors": [{"where": w, "type": e.get("type", "Error"), "message": str(e.get("message", ""))[:300],
                         "traceback": str(e.get("traceback", "")).strip()[-1500:]}
                        for w, e in result.cell_errors.items()],
        "answers": answers,
        "printed": [{"notebook": nb, "text": t[-3000:]} for nb, t in result.student_output.items() if t.strip()],
    }


def feedback_markdown(result: GradingResult) -> str:
    v = _view(result)
    out = [f"# Feedback: {TITLE}", "", f"Student: `{result.student}` · run `{result.run_id}` · "
           f"graded in {result.execution_time:.1f} s", "", f"**{v['summary']}**", "",
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


def feedback_html(result: GradingResult) -> str:
    view = _view(result)
    for a in view["answers"]:
        a["html"] = render_answer(a["text"], where=f"your answer to Problem {a['problem']}")
    return _template().render(graded=True, **view)


# ----------------------------------------------------------------------------- the grader is broken
def not_graded_markdown(reason: str, fix: str, student: str = "", run_id: str = "") -> str:
    who = f"Student: `{student}` · run `{run_id}`\n\n" if student or run_id else ""
    return (f"# Not graded: {TITLE}\n\n{who}"
            + f"**{NOT_GRADED}**\n\n## For the instructor\n\n**Reason:**\n\n{_fenced(reason)}\n\n**Fix:**\n\n{_fenced(fix)}\n")


def not_graded_html(reason: str, fix: str, student: str = "", run_id: str = "") -> str:
    return _template().render(graded=False, title=TITLE, student=student, run_id=run_id, reason=reason, fix=fix,
                              message=NOT_GRADED)


# ----------------------------------------------------------------------------- small pieces
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


# A wide table or display formula of an answer scrolls sideways inside its box. A box that scrolls must be
# reachable by keyboard (WCAG 2.1.1; axe-core's scrollable-region-focusable): a region in the tab order, whose
# label is unique on the page (a landmark), e.g. "Table 1 of your answer to Problem 9".
WIDE_BOX = '<{tag} class="wide" role="region" tabindex="0" aria-label="{label}">'


def render_answer(text: str, limit: int = 20000, where: str = "your answer"):
    """A written answer as safe HTML: Markdown rendered, ``$...$``/``$$...$$`` (and ``\\(...\\)``,
    ``\\[...\\]``) as MathML. The math is cut out before Markdown sees it and put back after.
    Tables and display formulas sit in a box that scrolls (``WIDE_BOX``, labelled with ``where``); the
    answer's own headings go under the page's "Problem N" heading (h3): h4 and below."""
    from markupsafe import Markup

    text = text[:limit] + (f"\n\n[... {len(text) - limit:,} more characters not shown]" if len(text) > limit else "")
    nonce, maths, formulas, tables = secrets.token_hex(4), [], itertools.count(1), itertools.count(1)

    def cut(m: re.Match) -> str:
        display = m.group("d1") is not None or m.group("d2") is not None
        math = tex_to_mathml(next(g for g in m.groups() if g is not None).strip(), display)
        if display:   # a <span>: the formula may stand inside a paragraph
            math = WIDE_BOX.format(tag="span", label=html.escape(f"Formula {next(formulas)} of {where}")) \
                + math + "</span>"
        maths.append(math)
        return f"MATH{nonce}X{len(maths) - 1}X"

    # markdown-it escapes the student's own HTML ("html": False): every tag below is its own.
    body = _markdown().render(MATH.sub(cut, text))
    body = re.sub("<table>", lambda m: WIDE_BOX.format(tag="div", label=html.escape(
        f"Table {next(tables)} of {where}")) + "<table>", body).replace("</table>", "</table></div>")
    body = _headings_under(body, 3)
    return Markup(re.sub(f"MATH{nonce}X(\\d+)X", lambda m: maths[int(m.group(1))], body))


def _headings_under(body: str, level: int) -> str:
    """markdown-it's headings of ``body`` moved under a heading of ``level``: the answer's levels in their
    order of rank, from ``level + 1``, never more than one deeper than the heading before (no skipped
    level, as a screen reader's outline expects), at most h6."""
    rank = {n: i for i, n in enumerate(sorted({int(n) for n in re.findall(r"<h([1-6])>", body)}))}
    last = level

    def move(m: re.Match) -> str:
        nonlocal last
        if not m.group(1):                               # an opening tag; a closing one ends the same heading
            last = min(6, level + 1 + rank[int(m.group(2))], last + 1)
        return f"<{m.group(1)}h{last}>"

    return re.sub(r"<(/?)h([1-6])>", move, body)

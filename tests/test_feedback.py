"""The renderers, on a ``GradingResult`` built by hand (no grading run, so this takes seconds):
Gradescope's results.json, the "not graded" files, and the feedback page, which is also opened in
headless Chromium to check that nothing is wider than an 800 px window."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder.course import ROOT
from autograder.results.feedback import feedback_markdown, render_answer
from autograder.results.files import read_result, write_not_graded, write_result
from autograder.results.gradescope import gradescope_json
from autograder.results.model import CheckResult, GradingResult

CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = ROOT / "build" / "test-artefacts"
LONG = "x" * 400                                   # one unbroken "word" longer than any window
ANSWER_9 = ("The ratio $\\frac{a}{b}$ shrinks as the stride grows, and\n\n$$x^2$$\n\n"
            "<script>alert(1)</script> and [a link](https://example.com/a.png) ![img](https://example.com/b.png)\n\n"
            "A broken formula: $\\frac{$ stays readable. " + "wide" * 60)
ANSWER_11 = ("Padding keeps the borders: $N_{out} = (N + 2P - F)/S + 1$, about $28 \\cdot 5 \\approx 140$M adds.\n\n"
             "| layer | parameters |\n|---|---|\n| conv | $k^2 C F + F$ |\n| dense | " + "9" * 300 + " |\n")


def check(problem, name, score, points, status, output=""):
    return CheckResult(problem, f"Problem {problem}: {name}", score, points, status, output)


@pytest.fixture
def result() -> GradingResult:
    checks = [check(1, f"passes part {i}", 2, 2, "passed") for i in range(6)]
    checks += [
        check(1, "backward matches tf.GradientTape", 0, 4, "failed",
              "Your code raised ValueError: operands could not be broadcast together\n\nTraceback (most recent call "
              "last):\n  File \"cell p1_conv2d\", line 40, in backward\n    d_x = " + LONG +
              "\nWhat to look at: the gradient with respect to the input is a full convolution of d_out with the "
              "flipped kernels; " + LONG),
        check(4, "overlapping windows", 8.5, 10, "partial",
              "8.5 of 10 points: 17 of 20 random cases agree. Largest difference " + LONG +
              "\nWhat to look at: accumulate the gradient where windows overlap."),
        check(7, "held-out accuracy", 0, 15, "failed", "Time limit: fit took longer than 120 s."),
        check(7, "a check with a long name " + "z" * 200, 0, 1, "failed", ""),
    ]
    checks += [check(p, f"check {i}", 1, 1, "passed") for p in (2, 3, 5, 6, 8, 10) for i in range(3)]
    checks += [check(9, "written answer (graded by hand)", 0, 7, "pending", "Your answer, for the instructor:\n\n" + ANSWER_9),
               check(11, "written answer (graded by hand)", 0, 7, "pending", "Your answer, for the instructor:\n\n" + ANSWER_11)]
    return GradingResult(
        student="alice-" + "y" * 150, checks=checks, run_id="0123456789abcdef", execution_time=42.0,
        findings=["01_scratch_cnn.ipynb: the cell p1_tests was changed; the grader used the released copy."],
        cell_errors={"01_scratch_cnn/p7_classifier": {"type": "MemoryError", "message": "out of memory " + LONG,
                                                      "traceback": "Traceback:\n  " + LONG}},
        student_output={"01_scratch_cnn": "epoch 1 loss 2.3 " + LONG, "02_keras": ""},
        manual_answers={"p9_survey": ANSWER_9, "p11_survey": ANSWER_11})


@pytest.fixture
def written(result, tmp_path) -> dict[str, Path]:
    return write_result(result, tmp_path / "out")


# ----------------------------------------------------------------------------- results.json
SPEC_TEST_FIELDS = {"name": str, "score": (int, float), "max_score": (int, float), "status": str, "output": str,
                    "visibility": str}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def test_results_json_follows_gradescope_spec(result, written):
    data = json.loads(written["results.json"].read_text())
    json.dumps(data, allow_nan=False)
    assert isinstance(data["score"], (int, float)) and isinstance(data["output"], str)
    for t in data["tests"]:
        assert set(t) == set(SPEC_TEST_FIELDS), t
        for key, kind in SPEC_TEST_FIELDS.items():
            assert isinstance(t[key], kind) and not isinstance(t[key], bool), (key, t)
        assert t["visibility"] in VISIBILITY
        assert t["status"] == ("passed" if t["score"] == t["max_score"] else "failed"), t
    assert {t["status"] for t in data["tests"]} == {"passed", "failed"}
    assert not any(t["name"].startswith(("Problem 9:", "Problem 11:")) for t in data["tests"])
    partial = next(t for t in data["tests"] if t["name"] == "Problem 4: overlapping windows")
    assert (partial["score"], partial["max_score"], partial["status"]) == (8.5, 10, "failed")
    assert data["score"] == sum(t["score"] for t in data["tests"]) == result.total
    assert sum(t["max_score"] for t in data["tests"]) == result.possible == 60


def test_results_json_carries_the_written_answers_and_the_run(result, written):
    data = json.loads(written["results.json"].read_text())
    extra = data["extra_data"]
    assert extra["graded"] is True and extra["run_id"] == result.run_id
    assert extra["manual_answers"] == {"p9_survey": ANSWER_9, "p11_survey": ANSWER_11}
    assert extra["pending_manual_points"] == 14 and extra["possible"] == 60
    out = data["output"]
    assert out.startswith("Autograded score: 38.5 / 60. 14 more points are graded by hand (Problems 9 and 11).")
    assert "Written answers (graded by hand, Problems 9 and 11):" in out
    assert "--- Problem 9 (p9_survey) ---\nThe ratio $\\frac{a}{b}$" in out and ANSWER_11.strip() in out
    assert read_result(written["results.json"], result.run_id)["score"] == 38.5


def test_long_written_answer_is_cut_in_output_but_kept_in_extra_data(result):
    result.manual_answers["p9_survey"] = "word " * 5000
    data = gradescope_json(result)
    assert len(data["output"]) < 8000 and "more characters, in extra_data.manual_answers" in data["output"]
    assert data["extra_data"]["manual_answers"]["p9_survey"] == "word " * 5000


def test_results_json_is_renamed_into_place_last(result, tmp_path, monkeypatch):
    """A rerun takes a current results.json for graded: the feedback beside it must be this run's,
    so results.json is the last file renamed into place (graded and not graded alike)."""
    import autograder.results.files as files

    renamed = []
    real = files.os.replace
    monkeypatch.setattr(files.os, "replace", lambda src, dst: (renamed.append(Path(dst).name), real(src, dst)))
    write_result(result, tmp_path / "graded")
    write_not_graded(tmp_path / "broken", "the data is missing", "put it back")
    assert renamed == ["feedback.md", "feedback.html", "results.json"] * 2


def test_write_not_graded(tmp_path):
    files = write_not_graded(tmp_path / "out", reason="TensorFlow failed to import: libcuda.so missing",
                             fix="reinstall tensorflow-cpu with python3 tasks.py main", student="bob", run_id="r1")
    assert set(files) == {"results.json", "feedback.md", "feedback.html"}
    data = json.loads(files["results.json"].read_text())
    assert "score" not in data and data["tests"] == []
    assert data["extra_data"] == {"graded": False, "reason": "TensorFlow failed to import: libcuda.so missing",
                                  "fix": "reinstall tensorflow-cpu with python3 tasks.py main", "run_id": "r1",
                                  "student": "bob"}
    for text in (data["output"], files["feedback.md"].read_text(), files["feedback.html"].read_text()):
        assert "could not be graded" in text and "not your fault" in text
        assert "libcuda.so missing" in text and "python3 tasks.py main" in text
    assert read_result(files["results.json"], "r1")["tests"] == []
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind


# ----------------------------------------------------------------------------- feedback.html
class Page(HTMLParser):
    """The ids (each once), the local links, the references to anything outside the page, any script."""

    def __init__(self, text):
        super().__init__()
        self.ids, self.hrefs, self.external, self.script = {}, [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.script = True
        if "id" in a:
            assert a["id"] not in self.ids, f"id {a['id']} twice"
            self.ids[a["id"]] = self.getpos()
        if tag == "a" and (a.get("href") or "").startswith("#"):
            self.hrefs.append(a["href"][1:])
        for key in ("src", "href", "xlink:href", "srcset", "poster", "data", "action"):
            if a.get(key) and not a[key].startswith("#"):
                self.external.append((tag, key, a[key]))


def test_feedback_html_order_links_marks(written):
    text = written["feedback.html"].read_text()
    page = Page(text)
    assert not page.script and not page.external, page.external
    assert not re.search(r"@import|url\(|https?://", text.split("<body>")[0]), "the style must load nothing"
    assert page.hrefs and all(h in page.ids for h in page.hrefs), set(page.hrefs) - set(page.ids)
    # Failures and partial results first, each with an anchor the summary links to; then the passed checks.
    pos = lambda s: text.index(s)  # noqa: E731
    first_passed = pos("passes part 0")
    for name in ("backward matches tf.GradientTape", "overlapping windows", "held-out accuracy"):
        assert pos(name) < first_passed
    assert pos("<table") < pos('id="check-p1-1"') < pos('id="passed-p1"') < pos("Answer cells that raised") \
        < pos('id="answer-p9"') < pos("What your code printed")
    rows = dict(re.findall(r'<a href="#([\w-]+)">Problem (\d+)</a>', text))
    by_problem = {int(p): h for h, p in rows.items()}
    assert by_problem[1] == "check-p1-1" and by_problem[4] == "check-p4-1" and by_problem[7] == "check-p7-1"
    assert by_problem[2] == "passed-p2" and by_problem[9] == "answer-p9" and by_problem[11] == "answer-p11"
    row4 = re.search(r'href="#check-p4-1">Problem 4</a>.*?</tr>', text, re.S).group(0)
    assert "◐ 8.5 / 10" in row4
    assert "✗" in re.search(r'href="#check-p7-1">Problem 7</a>.*?</tr>', text, re.S).group(0)
    assert "✓" in re.search(r'href="#passed-p2">Problem 2</a>.*?</tr>', text, re.S).group(0)
    assert text.count("graded by hand</td>") == 2
    # The hint is shown apart, in full.
    assert "<b>What to look at:</b> accumulate the gradient where windows overlap." in text


def test_feedback_html_renders_written_answers_safely(written):
    text = written["feedback.html"].read_text()
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    answer = text[text.index('id="answer-p9"'):text.index('id="answer-p11"')]
    assert re.search(r'<math display="inline">.*<mfrac>', answer) and '<math display="block">' in answer
    assert "$\\frac{a}{b}$" not in answer and "<msup><mi>x</mi><mn>2</mn></msup>" in answer
    assert '<code class="tex">$\\frac{$</code>' in answer  # latex2mathml failed: the source, escaped
    assert "<a " not in answer and "<img" not in answer and "[a link](https://example.com/a.png)" in answer
    answer = text[text.index('id="answer-p11"'):]
    assert "<table>" in answer and "<msup><mi>k</mi><mn>2</mn></msup>" in answer
    assert "$28" not in answer and "</math>M adds" in answer  # a closing $ may be followed by a letter


class Tags(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.tags = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.mark.parametrize("tex", [r"\text{<img src=x onerror=alert(1)>}", r"\href{https://evil.example}{x}",
                                 r"\color{url(https://evil.example)}{x}", r"\mathrm{a&b}", "\\", r"\frac{"])
def test_student_math_cannot_inject(tex):
    """Whatever latex2mathml makes of it, only MathML elements and presentation attributes get through."""
    tags = Tags(str(render_answer(f"before ${tex}$ after"))).tags
    assert tags[0] == ("p", {})
    for tag, attrs in tags[1:]:
        assert tag == "math" or tag.startswith("m") or (tag, attrs) == ("code", {"class": "tex"}), tags
        assert not {k for k in attrs if k in ("href", "src", "style") or k.startswith("on")}, tags
        assert not any("url(" in v or "//" in v for v in attrs.values() if v), tags


def test_feedback_markdown_order_and_marks(result):
    md = feedback_markdown(result)
    assert md.index("## What needs your attention") < md.index("## Passed checks") \
        < md.index("## Answer cells that raised") < md.index("## Your written answers") < md.index("## What your code")
    assert md.index("overlapping windows") < md.index("passes part 0")
    assert "| 4 | 8.5 / 10 | ◐ 8.5 / 10 |" in md and "| 7 | 0 / 16 | ✗ |" in md and "| 9 | 0 / 7 | graded by hand |" in md
    assert "- ✓ Problem 1: passes part 0 (2)" in md and "> <script>alert(1)</script>" in md


# ----------------------------------------------------------------------------- in a browser
# Elements past the window's right edge, or whose content spills out of them (text that does not wrap).
# What sits inside a scrolling box (a traceback, a wide table) is not counted: the box itself is.
FIND_WIDE = """() => {
  const limit = document.documentElement.clientWidth + 1;
  const visible = e => getComputedStyle(e).overflowX === 'visible';
  const inScrollBox = e => { for (let a = e.parentElement; a; a = a.parentElement) if (!visible(a)) return true;
                             return false; };
  const spills = e => e.scrollWidth > e.clientWidth + 1 && visible(e);
  const wide = [...document.querySelectorAll('*')]
      .filter(e => !inScrollBox(e) && (e.getBoundingClientRect().right > limit || spills(e)))
      .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '')
           + ' right=' + Math.round(e.getBoundingClientRect().right));
  return {wide, scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth};
}"""


def test_feedback_page_fits_an_800px_window(written):
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `python3 tasks.py test` installs Debian's chromium"
    from playwright.sync_api import sync_playwright

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 800, "height": 900})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(written["feedback.html"].as_uri())
            found = [page.evaluate(FIND_WIDE)]
            page.screenshot(path=str(ARTEFACTS / "feedback.png"), full_page=True)
            page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
            found.append(page.evaluate(FIND_WIDE))  # the passed checks, opened, must fit too
            maths = page.locator("math").count()
        finally:
            browser.close()
    for state in found:
        assert state["wide"] == [] and state["scrollWidth"] <= state["clientWidth"], state
    assert maths >= 3  # Chromium parsed the MathML
    assert requests == [written["feedback.html"].as_uri()], requests

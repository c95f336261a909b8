"""The class report (autograder/reports/class_report.py) on a class that was really graded.

Ten hand-ins are made from source/ (a full solution, the untouched release, typical bugs, an edited
locked cell, a sandbox crash, a time limit, a zip that cannot be read) and graded once per module with
the fast check modules only (no Problem 7/8 training), as ``python -m autograder batch`` grades them:
one results.json per student, then grades.csv with the one that could not be graded. The report's
figures and page are then compared with what the results.json files say, computed here independently,
and the page is opened in Debian's chromium at 1280 and 390 px (screenshot in
build/test-artefacts/browser/report.png).

    .venv/bin/python -m pytest tests/test_report.py -q
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from autograder import course
from autograder.assignment.solutions import BUGGY_OVERRIDES, make_submission
from autograder.assignment.submission import CannotGrade
from autograder.grading.grader import Grader
from autograder.reports.class_report import KINDS, gather, normalise, num, write_report
from autograder.results.table import grades_csv
from autograder.sandbox.limits import Limits
from tests.browser_support import ARTEFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.conftest import FIXTURES, cell_by_id, edit_notebook

FAST = ["check_p01_conv2d.py", "check_p02_small_array.py", "check_p03_output_size.py", "check_p03_keras_models.py",
        "check_p04_maxpool.py", "check_p05_avgpool.py", "check_p06_flatten.py", "check_p10_conv_arithmetic.py"]
BUGS = FIXTURES / "catalogue" / "bugs"
FLIPPED_KERNEL = ("p1_conv2d", "w_mat = self.weights.reshape(self.out_channels, -1)",
                  "w_mat = self.weights[:, :, ::-1, ::-1].reshape(self.out_channels, -1)")
OFF_BY_ONE = ("p1_conv2d", "Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1",
              "Ho, Wo = (H + 2 * p - k) // s, (W + 2 * p - k) // s")
CRASH = ("p6_flatten", "        x = np.asarray(x)\n", "        import os; os._exit(3)  # kills the sandbox\n")
SLEEP = ("p6_flatten", "        return np.asarray(d_out).reshape(self._shape)",
         "        import time; time.sleep(60)\n        return np.asarray(d_out).reshape(self._shape)")
NOT_GRADED = "zed-unreadable"
TIMEOUT_STUDENT = "ivy-sleeps"
WIDTHS = (1280, 390)


# ----------------------------------------------------------------------------------- the class
def hand_ins(base: Path) -> dict[str, Path]:
    subs = base / "submissions"
    made = {
        "ada-full": make_submission(subs / "ada-full"),
        "ben-untouched": make_submission(subs / "ben-untouched", solved=False),
        "cho-three-bugs": make_submission(subs / "cho-three-bugs", overrides=BUGGY_OVERRIDES),
        "dan-flipped": make_submission(subs / "dan-flipped", patches=[FLIPPED_KERNEL]),
        "eve-avgpool": make_submission(subs / "eve-avgpool", overrides={
            "p5_avgpool": (BUGS / "avgpool_backward_equality_mask.py").read_text()}),
        "fay-off-by-one": make_submission(subs / "fay-off-by-one", patches=[OFF_BY_ONE]),
        "gus-edited": make_submission(subs / "gus-edited", overrides={"p10_answers": BUGGY_OVERRIDES["p10_answers"]}),
        "hal-crash": make_submission(subs / "hal-crash", patches=[CRASH]),
        TIMEOUT_STUDENT: make_submission(subs / TIMEOUT_STUDENT, patches=[SLEEP]),
    }
    edit_notebook(made["gus-edited"], "01_scratch_cnn",
                  lambda nb: setattr(cell_by_id(nb, "p1_tests"), "source", "assert True  # my own test now"))
    (subs / f"{NOT_GRADED}.zip").write_bytes(b"this is not a zip file")
    made[NOT_GRADED] = subs / f"{NOT_GRADED}.zip"
    return made


@pytest.fixture(scope="module")
def graded(tmp_path_factory, grader):
    """(OUT, submissions folder): the class graded once, as a batch writes it."""
    base = tmp_path_factory.mktemp("report-class")
    out = base / "out"
    quick = Grader(limits=Limits(call_timeout=3.0))   # the student whose code sleeps waits 3 s per call, not 10
    results, failures = [], {}
    for name, path in hand_ins(base).items():
        try:
            who = quick if name == TIMEOUT_STUDENT else grader
            results.append(who.grade(path, out_dir=out / name, student=name, select=FAST))
        except CannotGrade as e:
            failures[name] = str(e)
    grades_csv(out / "grades.csv", results, failures)
    assert list(failures) == [NOT_GRADED] and len(results) >= 8
    return out, base / "submissions"


@pytest.fixture(scope="module")
def report(graded) -> Path:
    out, submissions = graded
    return write_report(out, submissions)


def read_class(out: Path) -> dict[str, dict]:
    """student -> results.json, read here without the report's code."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/results.json"))}


def text_of(page: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', page)
    assert m, f"no element #{element_id} in the page"
    return m.group(1).strip()


# ----------------------------------------------------------------------------------- the numbers
def test_figures_equal_the_results_json(graded):
    out, _ = graded
    data = read_class(out)
    c = gather(out)
    assert set(c.graded) == set(data) and NOT_GRADED not in data
    totals = [d["score"] for d in data.values()]
    q1, median, q3 = np.percentile(totals, [25, 50, 75])
    assert (c.stats.n, c.stats.low, c.stats.high) == (len(totals), min(totals), max(totals))
    assert c.stats.mean == pytest.approx(np.mean(totals)) and c.stats.median == pytest.approx(median)
    assert (c.stats.q1, c.stats.q3) == (pytest.approx(q1), pytest.approx(q3))
    assert c.possible == data["ada-full"]["extra_data"]["possible"] == data["ada-full"]["score"]
    assert len(set(totals)) > 3, "the class should spread over the histogram"

    failed, seen = Counter(), Counter()
    for d in data.values():
        for t in d["tests"]:
            seen[t["name"]] += 1
            failed[t["name"]] += t["status"] != "passed"
    shown = {f.name: f for f in c.failed_checks}
    assert set(shown) == {n for n, k in failed.items() if k}
    for name, f in shown.items():
        assert (f.failed, f.of, f.share) == (failed[name], seen[name], failed[name] / seen[name])
        assert sum(g.count for g in f.messages) == f.failed
        assert sorted(s for g in f.messages for s in g.students) == f.students
    counts = [f.failed for f in c.failed_checks]
    assert counts == sorted(counts, reverse=True) and counts[0] >= 3

    # the untouched release fails with "not implemented" everywhere; ada (the solution) fails nothing
    assert all("ada-full" not in f.students for f in c.failed_checks)
    assert any(g.message.startswith("Not implemented yet") and "ben-untouched" in g.students
               for f in c.failed_checks for g in f.messages)
    # Problem 5's backward: the same bug in two hand-ins is one group of two
    assert any({"cho-three-bugs", "eve-avgpool"} <= set(g.students) for f in c.failed_checks if f.problem == 5
               for g in f.messages)
    for f in c.failed_checks:
        assert len({normalise(g.message) for g in f.messages}) == len(f.messages)

    for p, scores in c.problems.items():
        for student, d in data.items():
            mine = [t for t in d["tests"] if t["name"].startswith(f"Problem {p}:")]
            assert scores[student] == pytest.approx(sum(t["score"] for t in mine))
            assert c.problem_possible[p] == pytest.approx(sum(t["max_score"] for t in mine))
    assert {student: t for student, t in c.times.items()} == {s: d["execution_time"] for s, d in data.items()}

    with open(out / "grades.csv", newline="") as f:
        rows = {r["student"]: r["status"] for r in csv.DictReader(f)}
    assert rows[NOT_GRADED].startswith("not graded: ")
    assert c.not_graded == {NOT_GRADED: rows[NOT_GRADED].removeprefix("not graded: ")}

    kinds = {(f.student, f.kind) for f in c.findings}
    assert ("gus-edited", "locked cell edited (checksum mismatch)") in kinds
    assert ("hal-crash", "sandbox crashed") in kinds
    assert (TIMEOUT_STUDENT, "sandbox timed out") in kinds and (TIMEOUT_STUDENT, "check hit a time limit") in kinds
    assert not {k for s, k in kinds if s == "ada-full"}
    hand_in_kinds = {kind for _, kind in KINDS} | {"other note about the hand-in"}
    assert sorted((s, f) for s, d in data.items() for f in d["extra_data"]["findings"]) == \
        sorted((f.student, f.text) for f in c.findings if f.kind in hand_in_kinds)
    for student, d in data.items():   # every sandbox failure of results.json is on the page's list
        failures = [f"{nb}: {x}" for nb, box in d["extra_data"]["sandbox"].items() for x in box["failures"]]
        assert failures == [f.text for f in c.findings if f.student == student and f.kind.startswith("sandbox ")
                            and "isolation" not in f.text]


# ----------------------------------------------------------------------------------- the page
def test_page_has_every_section_with_the_numbers(graded, report):
    out, _ = graded
    page = report.read_text()
    data = read_class(out)
    c = gather(out)
    for section in ("summary", "failed-checks", "totals", "problems", "not-graded", "integrity", "similarity", "time"):
        assert f'id="{section}"' in page, section
    assert page.index('id="failed-checks"') < page.index('id="totals"'), "the failures come first"
    assert course.TITLE in page
    totals = [d["score"] for d in data.values()]
    assert text_of(page, "n-students") == str(len(data) + 1)
    assert text_of(page, "n-graded") == str(len(data)) and text_of(page, "n-not-graded") == "1"
    expected = dict(zip(["stat-q1", "stat-median", "stat-q3"], np.percentile(totals, [25, 50, 75])))
    expected.update({"stat-mean": np.mean(totals), "stat-low": min(totals), "stat-high": max(totals),
                     "stat-possible": data["ada-full"]["extra_data"]["possible"]})
    for element_id, value in expected.items():
        assert text_of(page, element_id) == num(value), element_id
    assert text_of(page, "time-max") == num(max(d["execution_time"] for d in data.values()))

    for f in c.failed_checks:
        m = re.search(rf'<a href="#check-\d+">{re.escape(str(escape(f.name)))}</a></td>\s*'
                      rf'<td class="n" data-failed="(\d+)">(\d+) / (\d+)</td>\s*<td class="n" data-share="(\d+)%">', page)
        assert m, f.name
        assert (int(m.group(1)), int(m.group(3))) == (f.failed, f.of)
        assert int(m.group(4)) == round(100 * f.failed / f.of)
        for g in f.messages:
            assert str(escape(g.message)) in page
            for student in g.students:
                assert f'href="{student}/feedback.html"' in page
    assert (out / "ada-full" / "feedback.html").is_file()
    assert re.search(rf'<tr class="not-graded"><td>{NOT_GRADED}</td><td>{re.escape(str(escape(c.not_graded[NOT_GRADED])))}',
                     page)
    assert 'data-kind="locked cell edited (checksum mismatch)"' in page and 'data-kind="sandbox crashed"' in page

    # self-contained: three embedded PNGs, no resource and no link outside the folder
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r"https?://", page), re.findall(r".{60}https?://.{40}", page)
    assert not re.search(r"<(script|link|iframe|object)\b", page)
    assert set(re.findall(r'src="([^":]*)', page)) <= {"data"}


def test_similarity_section(graded, report, tmp_path, monkeypatch):
    out, submissions = graded
    page = report.read_text()
    assert "a prompt to look, not a verdict" in page
    m = re.search(r"<p>(\d+) hand-ins compared; (\d+) pairs share some code;\s*<b id=\"n-flagged\">(\d+)</b> "
                  r"at or above the threshold of ([\d.]+)\.", page)
    assert m, "the similarity figures are missing"
    from autograder.reports.similarity import THRESHOLD

    assert int(m.group(1)) == len(read_class(out)) and m.group(4) == f"{THRESHOLD:.2f}"
    # most hand-ins are the source solution with one bug: near-copies of each other, so flagged
    links = re.findall(r'href="(similarity/[^"]+)"', page)
    assert int(m.group(3)) == len(links) == page.count('<tr class="pair">') > 0
    assert all((out / link).is_file() for link in links)

    copy = shutil.copytree(out, tmp_path / "out")
    assert "no folder of hand-ins was given" in text_of(write_report(copy).read_text(), "similarity-absent")
    monkeypatch.setitem(sys.modules, "autograder.reports.similarity", None)   # as if not written yet
    assert "could not be imported" in text_of(write_report(copy, submissions).read_text(), "similarity-absent")


# ----------------------------------------------------------------------------------- in a browser
FITS = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const w = window.innerWidth, wide = [];
  for (const el of document.querySelectorAll('body, body *')) {
    const r = el.getBoundingClientRect();
    if (r.right > w + 1) wide.push(`${el.tagName.toLowerCase()}.${el.className} right=${Math.round(r.right)}`);
  }
  const images = [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth}));
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: w, wide: wide.slice(0, 20), images};
}"""


def test_page_fits_the_window_in_chromium(report):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width in WIDTHS:
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.on("request", lambda r: requests.append(r.url))
                page.goto(report.as_uri(), wait_until="load")
                shot = ARTEFACTS / ("report.png" if width == WIDTHS[0] else f"report-{width}.png")
                page.screenshot(path=str(shot), full_page=True)
                fit = page.evaluate(FITS)
                assert fit["scrollWidth"] <= fit["innerWidth"] == width, fit
                assert not fit["wide"], f"wider than {width} px: {fit['wide']}"
                assert len(fit["images"]) == 3 and all(i["complete"] and i["width"] > 0 for i in fit["images"]), fit
                page.close()
        finally:
            browser.close()
    assert shot.is_file() and (ARTEFACTS / "report.png").is_file()
    assert all(u.startswith(("file:", "data:")) for u in requests), [u for u in requests if not u.startswith("file:")]

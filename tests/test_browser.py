"""The course in a browser, used the way a student and an instructor use it.

Two JupyterLab servers are started from a person's shell (``env -i`` + ``source .venv/bin/activate``:
a HOME of their own, PATH starting with .venv/bin, no PYTHONPATH, MNIST_PATH or CNN2D_FAST):

- the **student** server, in a student's folder holding copies of release/cnn2d (untouched, with
  Problem 1 solved, fully solved); the student's ``~/.jupyter/nbgrader_config.py`` names the
  course's exchange, as nbgrader's documentation tells students to do;
- the **instructor** server, in a copy of the course (source/, release/, nbgrader_config.py, the
  assignment generated into its own gradebook), where Formgrader runs.

Debian's chromium (``/usr/bin/chromium``), driven by Playwright, does what a person does: opens
notebooks, uses the menus and nbgrader's buttons, reads what the page shows. Every test saves a
screenshot into build/test-artefacts/browser/ (the servers' and commands' logs go there too).

The grader's own pages (a class of two graded by ``python -m autograder batch``: the students'
feedback.html, the class report, the side-by-side similarity page) must fit the window and pass
axe-core's WCAG 2.1 AA rules and best practices (axe.min.js from the pinned axe-playwright-python).

    .venv/bin/python -m pytest tests/test_browser.py -x -q
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect, sync_playwright

from autograder.assignment.solutions import BUGGY_OVERRIDES, make_submission, source_solutions
from tests.browser_support import (ARTEFACTS, ASSIGNMENT, CHROMIUM, COURSE_ID, ROOT, WCAG_21_AA, Job, JupyterLab,
                                   axe_violations, copy_course, describe_violations, launch_chromium,
                                   screenshot, shell)

RELEASE = ROOT / "release" / ASSIGNMENT
STUDENT = "alice"
MS = 1000
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
expect.set_options(timeout=30 * MS)  # assertions retry this long (the machine is shared and slow)


# ---------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def base() -> Path:
    """Where the course copy and the student's folders live: under build/, so beside shared/ as a
    checkout is, where the notebooks' load_mnist() finds the offline MNIST set with no variable set
    (online, Keras would download it)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    folder = ROOT / "build" / "browser-test"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


class Course:
    """A copy of the course as the instructor has it, the assignment generated into its gradebook.
    A full solution of ``STUDENT`` is put into submitted/ and ``nbgrader autograde`` starts at once
    in the background (it is the slow part of the suite); :meth:`autograded` waits for it."""

    def __init__(self, base: Path):
        self.root = copy_course(base / "course")
        self.home = base / "instructor-home"
        shell(["nbgrader", "generate_assignment", ASSIGNMENT, "--force"], cwd=self.root, home=self.home)
        make_submission(self.root / "submitted" / STUDENT / ASSIGNMENT)
        self._autograde = Job(["nbgrader", "autograde", ASSIGNMENT, "--student", STUDENT, "--force"],
                              cwd=self.root, home=self.home, log=ARTEFACTS / "nbgrader-autograde.log")
        self.exchange = self.root / "exchange"

    def autograded(self) -> float:
        return self._autograde.wait()

    def lost_points(self) -> str:
        """For a failure message: every autograded cell below full marks, with what it printed to
        stderr or raised (nbgrader gives 0 to a test cell with either)."""
        from nbgrader.api import Gradebook

        lines = []
        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}") as gb:
            for nb in gb.find_submission(ASSIGNMENT, STUDENT).notebooks:
                cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nbformat.read(
                    self.root / "autograded" / STUDENT / ASSIGNMENT / f"{nb.name}.ipynb", as_version=4).cells}
                for grade in nb.grades:
                    if grade.auto_score is not None and grade.score < grade.max_score:
                        bad = [o.get("text") or f"{o.get('ename')}: {o.get('evalue')}"
                               for o in cells[grade.name].get("outputs", [])
                               if o.output_type == "error" or o.get("name") == "stderr"]
                        lines.append(f"  {nb.name} {grade.name}: {grade.score:g}/{grade.max_score:g}; "
                                     f"stderr/error: {' | '.join(bad)[:400]!r}")
        return "\n".join(lines) or "  (none)"

    def close(self) -> None:
        self._autograde.close()


@pytest.fixture(scope="module")
def course(base):
    c = Course(base)
    yield c
    c.close()


FULL, BUGGY = "full-solution", "three-bugs"
# The buggy hand-in's own lines besides the three bugs: a check of its own at the end of the Flatten cell
# that fails (the class is defined before it), and a written answer with a heading, a display formula
# and a table wider than a phone.
OWN_CHECK = ("\nprint('checking my Flatten')\n"
             "assert Flatten().forward(np.zeros((2, 3, 4, 4))).shape == (2, 47), 'my own check of Flatten'\n")
WIDE_ANSWER = ("### Small filters\n\nThree 3×3 layers see a 7×7 patch with fewer weights than one 7×7 layer:\n\n"
               "$$3 \\cdot (3 \\cdot 3 \\cdot C^2) = 27 C^2 < 49 C^2 = 7 \\cdot 7 \\cdot C^2$$\n\n"
               "| filters | receptive field | weights with C channels in and out | non-linearities between |\n"
               "|---|---|---|---|\n| one 7×7 | 7×7 | 49 C² | 1 |\n| three 3×3 | 7×7 | 27 C² | 3 |\n\n"
               "### 1×1 filters\n\nThey mix the channels at each pixel, like a small dense layer.\n")


@pytest.fixture(scope="module", autouse=True)
def graded_class(base):
    """``python -m autograder batch`` grades a class of two, as an instructor does: a full solution,
    and a hand-in with three typical mistakes, a failing check of its own in an answer cell, an edited
    locked test cell and a wide written answer (so its feedback page has failures, findings, a
    traceback, printed output and boxes that scroll). Its output holds both feedback pages, the class
    report and the pair's side-by-side similarity page (a near-copy: flagged). Started with the module,
    as it takes a minute or two, and read by tests 07 and 10-12."""
    subs = base / "class"
    make_submission(subs / FULL)
    flatten = source_solutions()["01_scratch_cnn"]["p6_flatten"]
    buggy = make_submission(subs / BUGGY, overrides={**BUGGY_OVERRIDES, "p6_flatten": flatten + OWN_CHECK,
                                                     "p11_survey": WIDE_ANSWER})
    nb = nbformat.read(buggy / "01_scratch_cnn.ipynb", as_version=4)
    next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "p1_tests").source = \
        "assert True  # my own test now"
    nbformat.write(nb, buggy / "01_scratch_cnn.ipynb")
    out = base / "graded"
    # One worker (one hand-in at a time) takes no more of the machine than one CLI grade, beside the servers.
    job = Job([str(ROOT / ".venv" / "bin" / "python"), "-m", "autograder", "batch", str(subs), "--out", str(out),
               "--workers", "1", "--no-gradebook"],
              cwd=base, home=base / "grader-home", log=ARTEFACTS / "cli-batch.log")
    job.out = out
    yield job
    job.close()


@pytest.fixture(scope="module")
def student_dir(base) -> Path:
    """The student's folder: the release as handed out, and two copies with answers filled in."""
    work = base / "student-work"
    shutil.copytree(RELEASE, work / "release-copy",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    p1 = source_solutions()["01_scratch_cnn"]["p1_conv2d"]
    make_submission(work / "p1-solved", solved=False, overrides={"p1_conv2d": p1})
    make_submission(work / "solved")
    return work


@pytest.fixture(scope="module")
def student_server(base, course, student_dir):
    home = base / "student-home"
    (home / ".jupyter").mkdir(parents=True)
    # What nbgrader's docs tell a student: their own nbgrader_config.py names the exchange.
    (home / ".jupyter" / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.Exchange.root = {str(course.exchange)!r}\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n")
    server = JupyterLab(student_dir, home, ARTEFACTS / "student-server.log", "student").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def instructor_server(course):
    server = JupyterLab(course.root, course.home, ARTEFACTS / "instructor-server.log", "instructor").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(base):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                    "(apt-get install chromium; `python3 tasks.py test` installs it)", pytrace=False)
    with sync_playwright() as p:
        context = launch_chromium(p, base / "chromium-profile")
        context.set_default_timeout(60 * MS)
        yield context
        context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


# ------------------------------------------------------------------------------------------ helpers

def cell_index(path: Path, grade_id: str) -> int:
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return i
    raise KeyError(f"{grade_id} not in {path}")


def login(page, server: JupyterLab) -> None:
    """Log in with the token at the server's root. (Opening a deep Formgrader link with ?token= sets
    the login cookie for that link's folder only, as nbgrader's handlers strip the base URL's slash;
    the page's own API calls then go to /login and its tables stay at "Loading, please wait...".)"""
    page.goto(server.url("api/status"))


def open_notebook(page, server: JupyterLab, relpath: str, workspace: str):
    """Open a notebook in a fresh JupyterLab workspace (nothing else open) and wait for its kernel."""
    page.goto(server.url(f"lab/workspaces/{workspace}/tree/{relpath}"))
    panel = page.locator(".jp-NotebookPanel").filter(has=page.locator(".jp-Notebook"))
    expect(panel.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=120 * MS)
    n_cells = len(nbformat.read(server.root / relpath, as_version=4).cells)
    expect(cells(page)).to_have_count(n_cells, timeout=60 * MS)  # every cell is in the page
    wait_idle(page)
    return panel


def wait_idle(page, timeout: float = 120) -> None:
    expect(page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='executionProgress']")) \
        .to_contain_text("Idle", timeout=timeout * MS)
    expect(page.locator(".jp-StatusBar-Item", has_text="| Idle")).to_have_count(1, timeout=timeout * MS)


def cells(page):
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")


def prompt(cell) -> str:
    # textContent, not innerText: JupyterLab skips rendering cells out of view (content-visibility)
    return (cell.locator(".jp-InputArea-prompt").text_content() or "").replace("\xa0", " ").strip()


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def editor_text(editor) -> str:
    """A cell editor's whole text: CodeMirror draws only the lines in view, so a long cell's
    ``inner_text`` is a part of it; its document holds all of it."""
    text = editor.evaluate("el => el.cmView && el.cmView.view ? el.cmView.view.state.doc.toString() : null")
    assert text is not None, "CodeMirror's view is not reachable from .cm-content"
    return text


def select(cell) -> None:
    """Click a cell's prompt: JupyterLab selects it and scrolls it into view (command mode)."""
    cell.locator(".jp-InputPrompt, .jp-Cell-inputCollapser").first.click()
    # A cell taller than the window (a long visible-test cell and its traceback) may be left with its
    # top above the window once JupyterLab has activated it: bring it back, as a person scrolls.
    cell.scroll_into_view_if_needed()
    expect(cell).to_be_in_viewport()


def menu(page, menu_name: str, command: str) -> None:
    label = page.locator(f".lm-MenuBar-itemLabel:text-is('{menu_name}')")
    page.locator(".lm-MenuBar-item", has=label).click()
    page.locator(f".lm-Menu-item[data-command='{command}']").click()


def validate(page, timeout: float = 600) -> dict:
    """Press nbgrader's Validate button in the notebook toolbar; return the result dialog's text and
    the first line of every cell it lists as failed."""
    button = page.locator(".jp-NotebookPanel-toolbar .validate-button")
    expect(button).to_be_visible()
    button.click()
    dialog = page.locator(".jp-Dialog").filter(has=page.locator("#validation-message"))
    expect(dialog).to_be_visible(timeout=timeout * MS)
    message = dialog.locator("#validation-message")
    failed_first_lines = message.evaluate("""m => {
        const out = []; const kids = [...m.children];
        kids.forEach((k, i) => {
            if (k.textContent.trim() === 'The following cell failed:' && kids[i + 1])
                out.push(kids[i + 1].textContent.trim().split('\\n')[0]);
        });
        return out; }""")
    return {"text": message.inner_text(), "failed": failed_first_lines}


def close_dialog(page) -> None:
    page.locator(".jp-Dialog .jp-mod-accept").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)


def non_local(urls: list[str]) -> list[str]:
    out = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            out.append(url)
    return out


# -------------------------------------------------------------------------------------------- tests

def test_chromium_is_installed():
    assert CHROMIUM.exists(), (f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                               "(apt-get install chromium; `python3 tasks.py test` installs it)")


def test_01_notebook_renders(page, student_server, student_dir):
    open_notebook(page, student_server, "release-copy/01_scratch_cnn.ipynb", "t01")
    heading = page.locator(".jp-NotebookPanel .jp-MarkdownOutput h2", has_text="Problem 1")
    expect(heading.first).to_be_visible()
    heading.first.scroll_into_view_if_needed()
    nb = nbformat.read(student_dir / "release-copy" / "01_scratch_cnn.ipynb", as_version=4)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    expect(page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell")).to_have_count(n_code)
    expect(page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-editor").first).to_be_visible()
    # The kernel the course registers (.venv's Python), named in the notebooks' metadata, is idle.
    expect(page.locator(".jp-NotebookPanel-toolbar .jp-KernelName")).to_have_text("Python 3 (cnn2d)")
    expect(page.locator(".jp-StatusBar-Item", has_text="Python 3 (cnn2d) | Idle")).to_have_count(1)
    screenshot(page, "01-notebook-renders")
    # Opening it changed nothing: no unsaved-changes dot on its tab. (JupyterLab writes the kernel's
    # language_info and kernelspec into the notebook when the kernel connects; metadata that differs
    # from what the kernel reports makes a notebook the student never touched "modified".)
    tab = page.locator(".lm-TabBar-tab.jp-mod-current", has_text="01_scratch_cnn.ipynb")
    expect(tab).to_have_count(1)
    assert "jp-mod-dirty" not in (tab.get_attribute("class") or ""), (
        "the freshly opened notebook shows unsaved changes; its metadata: "
        f"{dict(kernelspec=nb.metadata.get('kernelspec'), language_info=nb.metadata.get('language_info'))}")


def test_02_run_all_stops_at_first_unanswered_problem(page, student_server, student_dir):
    """Run → Run All Cells stops at Problem 1, the first unanswered problem: at its answer cell when
    the stub raises there, or, as in this release (the stub raises inside ``Conv2d.__init__``), at
    the visible tests that call it. The error is the stub's NotImplementedError; nothing after runs."""
    path = student_dir / "release-copy" / "01_scratch_cnn.ipynb"
    answer, visible, hidden = (cell_index(path, g) for g in ("p1_conv2d", "p1_visible", "p1_tests"))
    code = [i for i, c in enumerate(nbformat.read(path, as_version=4).cells) if c.cell_type == "code"]
    open_notebook(page, student_server, "release-copy/01_scratch_cnn.ipynb", "t02")
    menu(page, "Run", "runmenu:run-all")  # Run → Run All Cells
    # Run All marks every code cell queued ([*]); it is over when none is left queued: the cells
    # that ran have a number, and after an error JupyterLab clears the rest back to [ ].
    page.wait_for_function("""() => {
        const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')]
            .map(p => p.textContent.trim());
        return prompts.some(p => /^\\[\\d+\\]:$/.test(p)) && !prompts.some(p => p === '[*]:');
    }""", timeout=300 * MS)
    wait_idle(page)
    ran = [i for i in code if re.fullmatch(r"\[\d+\]:", prompt(cells(page).nth(i)))]
    stopped = ran[-1]
    output = cells(page).nth(stopped).locator(".jp-OutputArea")
    select(cells(page).nth(stopped))
    screenshot(page, "02-run-all-stops")
    assert stopped in (answer, visible), (
        f"Run All stopped at cell {stopped}, not at Problem 1 (its answer cell {answer} or visible tests "
        f"{visible}); its output:\n" + (output.text_content() or "")[-2500:])
    assert ran == [i for i in code if i <= stopped], f"cells above the stop that did not run: {ran}"
    expect(output).to_contain_text("NotImplementedError")
    expect(output).to_contain_text("YOUR CODE HERE")  # the traceback points at the stub
    for i in code:
        if i > stopped:  # nothing below ran: not Problem 1's graded cell, nothing of Problem 2 on
            assert prompt(cells(page).nth(i)) == "[ ]:", (i, prompt(cells(page).nth(i)))
    assert prompt(cells(page).nth(hidden)) == "[ ]:"
    if stopped == answer:
        assert prompt(cells(page).nth(visible)) == "[ ]:"
    student_server.shutdown_kernels()


def test_03_locked_cells_cannot_be_edited(page, student_server, student_dir):
    path = student_dir / "release-copy" / "01_scratch_cnn.ipynb"
    released = nbformat.read(path, as_version=4)  # the student's copy of the release, untouched
    locked = {c.metadata["nbgrader"]["grade_id"]: c for c in released.cells
              if c.metadata.get("nbgrader", {}).get("locked")}
    assert {"setup", "p1_statement", "p1_visible", "p1_tests"} <= set(locked)
    # What nbgrader writes into the release for a locked cell, and JupyterLab honours.
    for gid, cell in locked.items():
        assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False, gid
    setup, statement, answer = (cell_index(path, g) for g in ("setup", "p1_statement", "p1_conv2d"))
    open_notebook(page, student_server, "release-copy/01_scratch_cnn.ipynb", "t03")
    n_cells = len(released.cells)

    setup_editor = cells(page).nth(setup).locator(".cm-content")
    before = editor_text(setup_editor)
    setup_editor.click()
    page.keyboard.press("ControlOrMeta+End")
    page.keyboard.type("\nprint('changed')")
    page.keyboard.press("Backspace")
    expect(setup_editor).to_have_attribute("aria-readonly", "true")  # CodeMirror: read-only
    assert editor_text(setup_editor) == before

    # A locked Markdown cell: a double click shows its source, read-only; typing changes nothing.
    statement_cell = cells(page).nth(statement)
    statement_text = released.cells[statement].source
    statement_cell.locator(".jp-MarkdownOutput").dblclick()
    statement_editor = statement_cell.locator(".cm-content")
    expect(statement_editor).to_have_attribute("aria-readonly", "true")
    page.keyboard.press("ControlOrMeta+End")
    page.keyboard.type(" edited")
    expect(statement_editor).not_to_contain_text("edited")
    assert squash(editor_text(statement_editor)) == squash(statement_text)
    page.locator(".jp-NotebookPanel-toolbar [data-command='notebook:run-cell-and-select-next']").click()
    expect(statement_cell.locator(".jp-MarkdownOutput")).to_be_visible()

    # deletable: false: select the setup cell in command mode and press D, D.
    select(cells(page).nth(setup))
    page.keyboard.press("Escape")
    page.keyboard.press("d")
    page.keyboard.press("d")
    expect(cells(page)).to_have_count(n_cells)

    # The control: an answer cell does take the same typing.
    answer_editor = cells(page).nth(answer).locator(".cm-content")
    answer_editor.click()
    page.keyboard.press("ControlOrMeta+End")
    page.keyboard.type("\n# my answer")
    expect(answer_editor).to_contain_text("# my answer")
    select(cells(page).nth(setup))
    screenshot(page, "03-locked-cells")

    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").click()
    expect(page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")).to_have_count(0)
    saved = {c.metadata.get("nbgrader", {}).get("grade_id"): c
             for c in nbformat.read(path, as_version=4).cells}
    for gid, cell in locked.items():
        assert saved[gid].source == cell.source, f"locked cell {gid} changed"
    assert saved["p1_conv2d"].source.endswith("# my answer")
    assert len(saved) == len({c.metadata.get("nbgrader", {}).get("grade_id") for c in released.cells})
    student_server.shutdown_kernels()


def test_04_validate_names_the_unfinished_problems(page, student_server):
    open_notebook(page, student_server, "p1-solved/01_scratch_cnn.ipynb", "t04")
    result = validate(page)
    screenshot(page, "04-validate-p1-solved")
    text, failed = result["text"], result["failed"]
    assert "Success" not in text, (
        f"Validate says the notebook passes with Problems 2-7 unanswered:\n{text[:2000]}")
    named = {int(m.group(1)) for line in failed for m in [re.match(r"#\s*Problem (\d+)\b", line)] if m}
    assert named >= {2, 3, 4, 5, 6, 7}, (
        f"Validate should name Problems 2..7 as unfinished (the first line of each failed cell), "
        f"it named {sorted(named)}; failed cells begin with: {failed}\n{text[:2000]}")
    assert 1 not in named, f"Problem 1 is solved but Validate lists it: {failed}"
    close_dialog(page)
    student_server.shutdown_kernels()


@pytest.mark.parametrize("notebook", ["03_theory", "01_scratch_cnn"])
def test_05_validate_success_when_solved(page, student_server, notebook):
    open_notebook(page, student_server, f"solved/{notebook}.ipynb", f"t05-{notebook}")
    result = validate(page)
    screenshot(page, f"05-validate-solved-{notebook}")
    assert "Success! Your notebook passes all the tests." in result["text"], result["text"][:3000]
    assert not result["failed"]
    close_dialog(page)
    student_server.shutdown_kernels()


def test_06_formgrader_shows_the_autograded_points(page, course, instructor_server):
    page.goto(instructor_server.url("lab/workspaces/t06"))
    menu(page, "Nbgrader", "nbgrader:open-formgrader")
    formgrader = page.frame_locator("iframe[src*='formgrader']")
    expect(formgrader.locator("td", has_text=ASSIGNMENT).first).to_be_visible(timeout=60 * MS)
    # The exchange exists (nbgrader_config.py makes it), so Formgrader offers Release and Collect.
    expect(formgrader.locator("#warning-exchange")).to_have_count(0)
    expect(formgrader.locator("body")).not_to_contain_text("exchange directory")
    screenshot(page, "06-formgrader-assignments")

    seconds = course.autograded()
    print(f"nbgrader autograde: {seconds:.0f} s after it was started")
    login(page, instructor_server)
    page.goto(instructor_server.url(f"formgrader/manage_students/{STUDENT}"))
    row = page.locator("tr", has=page.locator("td", has_text=ASSIGNMENT))
    expect(row).to_have_count(1)
    cells_text = [t.strip() for t in row.locator("td").all_inner_texts()]
    screenshot(page, "06-formgrader-student-scores")
    # Assignment ID, Overall, Code, Written, Task, Needs manual grade
    assert cells_text[2] == "86 / 86", (f"code (autograded) score: {cells_text}; the cells that lost "
                                        f"points:\n{course.lost_points()}")
    assert cells_text[3] == "0 / 14", f"written (manual, Problems 9 and 11) score: {cells_text}"
    assert cells_text[1] == "86 / 100", cells_text

    page.goto(instructor_server.url(f"formgrader/manage_submissions/{ASSIGNMENT}"))
    row = page.locator("tr", has=page.locator("td", has_text=STUDENT))
    expect(row).to_contain_text("86 / 100")
    expect(row).to_contain_text("needs manual grading")
    screenshot(page, "06-formgrader-submissions")


def test_07_feedback_page_fits_an_800px_viewport(page, graded_class):
    graded_class.wait()  # python -m autograder batch <class> --out <dir>
    out = graded_class.out / BUGGY
    feedback = out / "feedback.html"
    assert feedback.exists(), sorted(p.name for p in out.iterdir())
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto(feedback.as_uri())
    page.wait_for_load_state("load")
    report = page.evaluate("""() => {
        const cw = document.documentElement.clientWidth, wide = [];
        for (const el of document.querySelectorAll('body, body *')) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 && r.height === 0) continue;
            if (r.right <= cw + 0.5) continue;
            const cls = typeof el.className === 'string' && el.className.trim()
                ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
            wide.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${cls} right=` +
                      `${Math.round(r.right)} "${(el.textContent || '').trim().slice(0, 60)}"`);
        }
        return {clientWidth: cw, scrollWidth: document.documentElement.scrollWidth, wide};
    }""")
    screenshot(page, "07-feedback-800px", full_page=True)
    assert report["scrollWidth"] <= report["clientWidth"], report
    assert not report["wide"], (f"{len(report['wide'])} element(s) wider than the "
                                f"{report['clientWidth']} px viewport:\n" + "\n".join(report["wide"][:25]))


def test_08_assignment_list_shows_the_released_assignment(page, course, student_server, instructor_server):
    shell(["nbgrader", "release_assignment", ASSIGNMENT, "--force"], cwd=course.root, home=course.home)
    assert (course.exchange / COURSE_ID / "outbound" / ASSIGNMENT / "01_scratch_cnn.ipynb").exists()

    page.goto(student_server.url("lab/workspaces/t08"))
    menu(page, "Nbgrader", "nbgrader:open-assignment-list")
    panel = page.locator("#nbgrader-assignment-list")
    released = panel.locator("#released_assignments_list .list_item")
    expect(released.locator(".item_name")).to_have_text([ASSIGNMENT], timeout=60 * MS)
    expect(released.locator(".item_course")).to_have_text([COURSE_ID])
    expect(released.locator("button", has_text="Fetch")).to_be_visible()
    expect(panel.locator("#course_list_default")).to_have_text(COURSE_ID)
    expect(panel).not_to_contain_text("Error fetching courses")
    expect(panel).not_to_contain_text("exchange directory")
    for error in panel.locator(".list_error, .version_error").all():
        assert not error.is_visible() or not error.inner_text().strip(), error.inner_text()
    screenshot(page, "08-assignment-list")

    # The instructor's side of the same exchange: Formgrader lists the assignment as released.
    login(page, instructor_server)
    page.goto(instructor_server.url("formgrader/manage_assignments"))
    row = page.locator("tr", has=page.locator("td", has_text=ASSIGNMENT))
    expect(row).to_contain_text("released")
    expect(page.locator("body")).not_to_contain_text("exchange directory")
    screenshot(page, "08-formgrader-released")


def test_09_formgrader_renders_math_offline(page, course, instructor_server):
    course.autograded()
    login(page, instructor_server)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(instructor_server.url(f"formgrader/gradebook/{ASSIGNMENT}/01_scratch_cnn"))
    page.locator("a", has_text="Submission #1").click()
    expect(page.locator("#notebook-container .jp-Cell, #notebook-container .cell").first).to_be_visible()
    page.wait_for_load_state("load")
    assert not non_local(requests), f"requests to other hosts: {non_local(requests)}"
    page.wait_for_function("() => window.MathJax && window.MathJax.Hub", timeout=60 * MS)
    page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")  # typeset done
    math = page.locator("mjx-container, .MathJax, .MathJax_Display, .MathJax_CHTML")
    expect(math.first).to_be_visible()
    page.wait_for_load_state("networkidle")
    # The statement of Problem 1 (its formulas), as the grader sees it.
    statement = page.locator("#notebook-container .cell, #notebook-container .jp-Cell").filter(
        has=page.locator("h2", has_text="Problem 1")).first
    expect(statement.locator(".MathJax, mjx-container").first).to_be_visible()
    screenshot(statement, "09-formgrade-math")
    assert math.count() >= 10, math.count()
    assert not non_local(requests), f"requests to other hosts: {non_local(requests)}"
    assert any("/static/jupyter_server_mathjax/MathJax.js" in u for u in requests), requests


# ---------------------------------------------------------------------------------- accessibility
# axe-core (the pinned axe-playwright-python wheel's axe.min.js) on the grader's pages, as a student and
# an instructor open them from disk: every <details> open, at a desktop width and a phone's. Its
# WCAG 2.0/2.1 A and AA rules and its best practices (landmarks, heading order) must find nothing.
WIDTHS = (1280, 390)
OPEN_ALL = "() => document.querySelectorAll('details').forEach(d => { d.open = true; })"
# The elements that scroll: content wider or taller than the box, and an overflow that lets it scroll.
# Each is marked data-scroller="<n>" for the keyboard test.
SCROLLERS = """() => [...document.querySelectorAll('body *')].filter(e => {
    const s = getComputedStyle(e);
    return (/auto|scroll/.test(s.overflowX) && e.scrollWidth > e.clientWidth + 1)
        || (/auto|scroll/.test(s.overflowY) && e.scrollHeight > e.clientHeight + 1);
}).map((e, i) => { e.dataset.scroller = i;
    return {i, tag: e.tagName.toLowerCase(), label: e.getAttribute('aria-label'), tabindex: e.getAttribute('tabindex'),
            x: e.scrollWidth > e.clientWidth + 1, y: e.scrollHeight > e.clientHeight + 1}; })"""


def audit(page, name: str) -> dict[int, list[dict]]:
    """The page's axe violations at each of WIDTHS (a screenshot of each); the page stays at the last."""
    found = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate(OPEN_ALL)
        found[width] = axe_violations(page)
        screenshot(page, f"{name}-{width}px", full_page=True)
    return found


def assert_no_violations(found: dict[int, list[dict]], page_name: str) -> None:
    bad = {w: v for w, v in found.items() if v}
    assert not bad, f"axe-core finds accessibility violations on {page_name}:\n" + "\n".join(
        f"at {w} px wide:\n{describe_violations(v)}" for w, v in bad.items())


@pytest.mark.parametrize("student", ["not-graded", FULL, BUGGY])
def test_10_feedback_page_passes_axe(page, base, graded_class, student):
    """The student's feedback page: of a full solution, of a hand-in with failures, findings, a traceback,
    printed output and a wide answer, and the page shown when the grader could not grade."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    if student == "not-graded":
        from autograder.results.files import write_not_graded
        feedback = write_not_graded(base / "not-graded", "TensorFlow does not import: libcuda.so missing",
                                    "run python3 tasks.py setup", student="bob", run_id="0123")["feedback.html"]
    else:
        graded_class.wait()
        feedback = graded_class.out / student / "feedback.html"
    page.goto(feedback.as_uri())
    page.wait_for_load_state("load")
    headings = [squash(h) for h in page.locator("h2").all_inner_texts()]
    if student == FULL:  # its score is the grading tests' business; this page is a graded one's
        expect(page.locator("p.score")).to_contain_text("Autograded score:")
        assert headings[0].startswith("What needs your attention") and "Passed checks" in headings, headings
    elif student == BUGGY:  # what the audit must see: every kind of section, and the boxes that scroll
        assert page.locator("article.check").count() >= 3, headings
        for heading in ("About your hand-in", "Answer cells that raised an error", "What your code printed"):
            assert any(h.startswith(heading) for h in headings), (heading, headings)
        traceback = page.get_by_role("region", name="Traceback of 01_scratch_cnn/p6_flatten", exact=True)
        expect(traceback).to_have_count(1)
        assert page.get_by_role("region", name=re.compile(r"^What .* printed$")).count() >= 1
        expect(page.get_by_role("region", name="Table 1 of your answer to Problem 11")).to_have_count(1)
        expect(page.get_by_role("region", name="Formula 1 of your answer to Problem 11")).to_have_count(1)
    found = audit(page, f"10-axe-feedback-{student}")
    assert_no_violations(found, f"{student}'s feedback.html")
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # axe-core came from the wheel

    if student == BUGGY:
        # The control, at 390 px: the same boxes without their tabindex are what axe-core flags.
        scrollers = page.evaluate(SCROLLERS)
        assert scrollers and all(s["tabindex"] == "0" for s in scrollers), scrollers
        page.evaluate("() => document.querySelectorAll('[data-scroller]')"
                      ".forEach(e => e.removeAttribute('tabindex'))")
        flagged = axe_violations(page, WCAG_21_AA)
        assert [v["id"] for v in flagged] == ["scrollable-region-focusable"], describe_violations(flagged)
        assert all("data-scroller=" in n["html"] for n in flagged[0]["nodes"]), describe_violations(flagged)


def test_11_feedback_scroll_boxes_take_the_keyboard(page, graded_class):
    """At a phone's width, Tab reaches every box of the feedback page that scrolls (a traceback, printed
    output, a wide table), and the arrow keys scroll it."""
    graded_class.wait()
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto((graded_class.out / BUGGY / "feedback.html").as_uri())
    page.evaluate(OPEN_ALL)
    scrollers = page.evaluate(SCROLLERS)
    assert len(scrollers) >= 2, scrollers
    reached, scrolled = set(), {}
    for _ in range(200):
        page.keyboard.press("Tab")
        i = page.evaluate("() => document.activeElement.dataset.scroller ?? null")
        if page.evaluate("() => document.activeElement === document.body"):
            break
        if i is None or int(i) in reached:
            continue
        reached.add(int(i))
        s = scrollers[int(i)]
        key, prop = ("ArrowRight", "scrollLeft") if s["x"] else ("ArrowDown", "scrollTop")
        before = page.evaluate(f"() => document.activeElement.{prop}")
        page.keyboard.press(key)
        try:  # Chromium scrolls smoothly: the position moves over a few frames
            page.wait_for_function("([prop, before]) => document.activeElement[prop] > before",
                                   arg=[prop, before], timeout=5 * MS)
            scrolled[int(i)] = True
        except PlaywrightTimeout:
            scrolled[int(i)] = False
    screenshot(page, "11-feedback-keyboard-390px")
    assert reached == {s["i"] for s in scrollers}, (
        f"Tab never reaches {[s for s in scrollers if s['i'] not in reached]}")
    stuck = [scrollers[i] for i, ok in scrolled.items() if not ok]
    assert not stuck, f"the arrow keys do not scroll {stuck}"
    assert all(s["label"] for s in scrollers), scrollers


def test_12_class_report_and_similarity_page_pass_axe(page, graded_class):
    """The instructor's class report, then the side-by-side page of the flagged pair, reached by its link."""
    graded_class.wait()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((graded_class.out / "report.html").as_uri())
    page.wait_for_load_state("load")
    # Each figure's alt text says what it shows, with the numbers the page prints.
    alts = page.locator("main img").evaluate_all("imgs => imgs.map(i => i.alt)")
    assert len(alts) == 3 and all(re.search(r"\d", a) for a in alts), alts
    assert f"median {page.locator('#stat-median').inner_text()}" in alts[0], alts[0]
    assert f"longest {page.locator('#time-max').inner_text()} s" in alts[2], alts[2]
    assert_no_violations(audit(page, "12-axe-report"), "report.html")

    link = page.locator("#similarity tr.pair a", has_text="compare")
    expect(link).to_have_count(1)
    link.click()
    page.wait_for_load_state("load")
    assert page.url.endswith(f"/similarity/{FULL}--{BUGGY}.html"), page.url
    expect(page.locator("h1")).to_contain_text(f"Similarity: {FULL} and {BUGGY}")
    assert_no_violations(audit(page, "12-axe-similarity"), f"similarity/{FULL}--{BUGGY}.html")
    assert all(u.startswith(("file:", "data:")) for u in requests), requests

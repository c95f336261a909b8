"""The committed student version ``release/cnn2d`` is exactly what nbgrader makes of ``source/cnn2d``,
gives no solution, hidden test or rubric away, and has the cells and points of docs/design.md."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autograder.nbgrader.release import generate_release
from autograder.assignment.solutions import STUDENT_ANSWERS, build_examples, make_submission

from autograder.course import RELEASE_DIR as RELEASE, ROOT, SOURCE_DIR as SOURCE
NOTEBOOKS = ("01_scratch_cnn", "02_keras", "03_theory")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "run_checks",
           "nbgrader.bridge")
SOLUTION_BLOCK = re.compile(r"^[ \t]*### BEGIN SOLUTION[ \t]*\n(.*?)^[ \t]*### END SOLUTION[ \t]*$", re.M | re.S)
FAST_LINE = 'FAST = os.environ.get("CNN2D_FAST") == "1" or "NBGRADER_EXECUTION" in os.environ'
MAX_LINE = 100


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def source_text(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def design_graded_cells() -> dict[str, dict[str, tuple[int, str]]]:
    """notebook -> {grade_id of each graded cell: (points, "auto" | "manual")}, read from the table
    of docs/design.md (``p1_conv2d`` + ``p1_tests`` pairs and ``p9_survey`` (manual) cells)."""
    table = {}
    for line in (ROOT / "docs" / "design.md").read_text().splitlines():
        m = re.match(r"\|\s*`(\d\d_\w+)\.ipynb`\s*\|(.*)\|(.*)\|\s*$", line)
        if not m:
            continue
        notebook, cells, points = m.groups()
        graded = []
        for item in cells.split(";"):
            ids = re.findall(r"`(\w+)`", item)
            if "(manual)" in item:
                graded.append((ids[0], "manual"))
            elif "+" in item:
                graded.append((ids[1], "auto"))
        numbers = [int(p) for p in re.findall(r"\d+", points)]
        assert len(numbers) == len(graded), f"cannot read the design table row of {notebook}"
        table[notebook] = {gid: (pts, kind) for (gid, kind), pts in zip(graded, numbers)}
    assert set(table) == set(NOTEBOOKS), f"design.md table lists {sorted(table)}"
    return table


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("release") / "cnn2d"
    files = generate_release(ROOT, dest=dest)
    assert files and all(f.is_relative_to(dest) for f in files)
    return dest


def test_committed_release_is_what_nbgrader_generates(regenerated):
    # nbgrader 0.9.6 writes the same bytes every time (checksums are md5 of source + metadata, cell
    # ids come from the source), so nothing is normalised: parsed JSON must be identical.
    produced = sorted(p.relative_to(regenerated).as_posix() for p in regenerated.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(RELEASE).as_posix() for p in RELEASE.rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts)
    assert produced == committed, "release/cnn2d is stale: run `python3 tasks.py release` and commit it"
    assert {f"{n}.ipynb" for n in NOTEBOOKS} | {"mnist_data.py"} <= set(produced)
    for name in produced:
        if name.endswith(".ipynb"):
            assert load(regenerated / name) == load(RELEASE / name), f"{name} differs: regenerate the release"
        else:
            assert (regenerated / name).read_bytes() == (RELEASE / name).read_bytes(), f"{name} differs"


def distinctive_solution_lines(notebook: str) -> set[str]:
    """Lines of the source solution blocks (and whole manual answers) that appear nowhere else in the
    source notebook: none of them may reach the student version."""
    nb = load(SOURCE / f"{notebook}.ipynb")
    solution, public = set(), set()
    for cell in nb["cells"]:
        text, meta = source_text(cell), nbgrader_meta(cell)
        if meta.get("solution") and cell["cell_type"] == "markdown":
            solution |= {ln.strip() for ln in text.splitlines()}
            continue
        for block in SOLUTION_BLOCK.findall(text):
            solution |= {ln.strip() for ln in block.splitlines()}
        public |= {ln.strip() for ln in SOLUTION_BLOCK.sub("", text).splitlines()}
    return {ln for ln in solution - public if len(ln) >= 12 and re.search(r"[A-Za-z0-9]", ln)}


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_release_gives_nothing_away(notebook):
    text = (RELEASE / f"{notebook}.ipynb").read_text()
    nb = load(RELEASE / f"{notebook}.ipynb")
    for marker in MARKERS:
        assert marker not in text, f"{notebook}: '{marker}' leaked into the release"
    lines = {ln.strip() for cell in nb["cells"] for ln in source_text(cell).splitlines()}
    secret = distinctive_solution_lines(notebook)
    assert len(secret) >= 3, f"{notebook}: found too few solution lines to check ({secret})"
    leaked = sorted(secret & lines)
    assert not leaked, f"{notebook}: solution lines in the release: {leaked[:5]}"
    assert "Rubric" not in text and "Model answer" not in text, f"{notebook}: the rubric or model answer leaked"
    assert all(not cell.get("outputs") for cell in nb["cells"] if cell["cell_type"] == "code"), \
        f"{notebook}: the release must not carry outputs"


def test_solution_check_would_catch_a_leak():
    """The leak detector finds real solution lines (guards against it silently checking nothing)."""
    secret = distinctive_solution_lines("01_scratch_cnn")
    assert any("self.d_weights = " in ln for ln in secret)
    assert any("softmax" in ln or "log_p" in ln for ln in secret)
    secret3 = distinctive_solution_lines("03_theory")
    assert any("Rubric" in ln for ln in secret3) and any("10,416" in ln or "10416" in ln or "(3 * 3 * 24 + 1) * 48" in ln
                                                         for ln in secret3)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_release_answer_cells_are_stubs(notebook):
    nb = load(RELEASE / f"{notebook}.ipynb")
    answers = [c for c in nb["cells"] if nbgrader_meta(c).get("solution")]
    assert answers, f"{notebook}: no answer cells"
    for cell in answers:
        gid, text = nbgrader_meta(cell)["grade_id"], source_text(cell)
        if cell["cell_type"] == "code":
            assert "raise NotImplementedError()" in text, f"{notebook}/{gid}: the stub should raise NotImplementedError"
            assert not nbgrader_meta(cell).get("locked"), f"{notebook}/{gid}: answer cells must be editable"
        else:
            assert text.strip() == "YOUR ANSWER HERE", f"{notebook}/{gid}: a manual answer should be the bare stub"


def test_points_and_cells_match_the_design():
    """The graded cells with points are those of the design table; besides them, the only graded
    cells are the visible-test cells, worth 0 points (graded so that nbgrader's Validate names them
    when they fail), which the grader's Assignment does not count as test cells."""
    from autograder.assignment.spec import Assignment

    design = design_graded_cells()
    assignment = Assignment.from_release(RELEASE)
    auto_total = manual_total = 0
    for notebook in NOTEBOOKS:
        nb = load(RELEASE / f"{notebook}.ipynb")
        graded, visible = {}, set()
        for cell in nb["cells"]:
            meta = nbgrader_meta(cell)
            if meta.get("grade") and meta["grade_id"].endswith("_visible"):
                assert cell["cell_type"] == "code" and meta.get("points") == 0, meta
                visible.add(meta["grade_id"])
            elif meta.get("grade"):
                kind = "auto" if cell["cell_type"] == "code" else "manual"
                graded[meta["grade_id"]] = (meta.get("points"), kind)
        assert graded == design[notebook], f"{notebook}: graded cells {graded} != design.md {design[notebook]}"
        tests = {gid for gid, (_, kind) in graded.items() if kind == "auto"}
        assert visible == {gid.replace("_tests", "_visible") for gid in tests}, f"{notebook}: {visible}"
        kinds = {c.grade_id: c.kind for c in assignment.notebooks[notebook].cells}
        assert {gid for gid, k in kinds.items() if k == "test"} == tests
        assert {gid for gid, k in kinds.items() if k == "visible"} == visible
        ids = [nbgrader_meta(c).get("grade_id") for c in nb["cells"]]
        assert ids.count("setup") == 1 and len([i for i in ids if i]) == len({i for i in ids if i}), \
            f"{notebook}: one setup cell and unique grade_ids"
        auto_total += sum(p for p, k in graded.values() if k == "auto")
        manual_total += sum(p for p, k in graded.values() if k == "manual")
    assert (auto_total, manual_total) == (86, 14)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_source_cells_follow_the_conventions(notebook):
    """Test cells end with the hidden call for their own problem; every locked markdown cell and
    every setup, answer and test cell has the nbgrader metadata of design.md."""
    nb = load(SOURCE / f"{notebook}.ipynb")
    for cell in nb["cells"]:
        meta, text = nbgrader_meta(cell), source_text(cell)
        if not meta:
            continue
        gid = meta["grade_id"]
        if meta.get("grade") and cell["cell_type"] == "code" and gid.endswith("_visible"):
            problem = int(re.match(r"p(\d+)_", gid).group(1))
            assert meta["points"] == 0 and meta["locked"] and not meta["solution"], gid
            assert text.startswith(f"# Problem {problem}, visible tests"), \
                f"{notebook}/{gid}: the first line names the problem (nbgrader validate shows it)"
            assert "BEGIN HIDDEN TESTS" not in text and "run_checks" not in text, gid
            lines = [ln for ln in text.rstrip().splitlines() if ln.strip()]
            assert lines[-1].startswith("print("), \
                f"{notebook}/{gid}: no value as the last expression (nbgrader would read it as points)"
            after = nb["cells"][nb["cells"].index(cell) + 1]
            assert nbgrader_meta(after).get("grade_id") == gid.replace("_visible", "_tests"), gid
        elif meta.get("grade") and cell["cell_type"] == "code":
            problem = int(re.match(r"p(\d+)_", gid).group(1))
            tail = text.rstrip().splitlines()[-4:]
            assert tail == ["### BEGIN HIDDEN TESTS", "from autograder.nbgrader.bridge import run_checks",
                            f'run_checks({problem}, "{notebook}", globals())', "### END HIDDEN TESTS"], \
                f"{notebook}/{gid}: the hidden tests must be the last lines"
            code = [ln for ln in text.splitlines()[:-4] if ln.strip() and not ln.lstrip().startswith("#")]
            assert not code, f"{notebook}/{gid}: a graded cell holds only the hidden part (visible asserts go in {gid[:-6]}_visible)"
            assert meta["locked"] and not meta["solution"]
            before = nb["cells"][nb["cells"].index(cell) - 1]
            assert nbgrader_meta(before).get("grade_id") == gid.replace("_tests", "_visible"), \
                f"{notebook}/{gid}: the visible tests should be in the cell just above"
        elif meta.get("solution") and cell["cell_type"] == "code":
            assert not meta["grade"] and not meta["locked"] and "### BEGIN SOLUTION" in text, gid
        elif meta.get("solution"):
            assert meta["grade"] and meta["points"] == 7 and not meta["locked"], gid
        else:
            assert meta["locked"] and not meta["grade"], gid
        if cell["cell_type"] == "markdown" and not meta.get("solution"):
            assert meta["locked"]
    setups = [c for c in nb["cells"] if nbgrader_meta(c).get("grade_id") == "setup"]
    assert len(setups) == 1 and FAST_LINE in source_text(setups[0]).splitlines()
    headings = " ".join(source_text(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    for gid, (points, _) in design_graded_cells()[notebook].items():
        problem = int(re.match(r"p(\d+)_", gid).group(1))
        assert re.search(rf"## Problem {problem}\b[^\n]*\({points} points", headings), \
            f"{notebook}: the heading of Problem {problem} should state its {points} points"


@pytest.mark.parametrize("folder", [SOURCE, RELEASE], ids=["source", "release"])
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_setup_and_visible_test_lines_fit_the_cell(folder, notebook):
    """No line of a setup or visible-test cell runs past the cell's edge."""
    nb = load(folder / f"{notebook}.ipynb")
    checked = 0
    for cell in nb["cells"]:
        gid = nbgrader_meta(cell).get("grade_id", "")
        if cell["cell_type"] == "code" and (gid.startswith("setup") or gid.endswith("_visible")):
            checked += 1
            long = [ln for ln in source_text(cell).splitlines() if len(ln) > MAX_LINE]
            assert not long, f"{notebook}/{gid}: {len(long)} line(s) over {MAX_LINE} characters: {long[0]}"
    assert checked >= 2


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_metadata_is_what_the_cnn2d_kernel_reports(notebook):
    """JupyterLab rewrites kernelspec/language_info on open when they differ from the kernel's: they
    are the registered kernel `cnn2d`'s, in the source and (carried by nbgrader) in the release."""
    for folder in (SOURCE, RELEASE):
        meta = load(folder / f"{notebook}.ipynb")["metadata"]
        assert meta["kernelspec"] == {"display_name": "Python 3 (cnn2d)", "language": "python",
                                      "name": "cnn2d"}, f"{folder.name}/{notebook}"
        info = meta["language_info"]
        assert set(info) == {"codemirror_mode", "file_extension", "mimetype", "name",
                             "nbconvert_exporter", "pygments_lexer", "version"}, info
        assert info["name"] == "python" and re.fullmatch(r"3\.\d+\.\d+", info["version"]), info
    assert load(SOURCE / f"{notebook}.ipynb")["metadata"] == load(RELEASE / f"{notebook}.ipynb")["metadata"]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _shingles(text: str, n: int = 8) -> set[str]:
    w = _words(text)
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def test_built_submissions_carry_no_model_answer_or_rubric(tmp_path):
    """The example submissions (and every make_submission) fill the written answers with a student's
    text, never the source's model answer or rubric (the feedback page shows it as "Your answer")."""
    nb = load(SOURCE / "03_theory.ipynb")
    manual = {nbgrader_meta(c)["grade_id"]: source_text(c) for c in nb["cells"]
              if cell_is_manual(c)}
    assert set(manual) == set(STUDENT_ANSWERS) == {"p9_survey", "p11_survey"}
    secret_lines = {ln.strip() for text in manual.values() for ln in text.splitlines()
                    if len(ln.strip()) >= 12 and re.search(r"[A-Za-z]{3}", ln)}
    secret_shingles = set().union(*(_shingles(t) for t in manual.values()))
    assert any("Rubric" in ln for ln in secret_lines) and len(secret_shingles) > 100
    folders = list(build_examples(tmp_path / "examples").values())
    folders.append(make_submission(tmp_path / "with-overrides", overrides={"p3_output_size": "x = 1"}))
    for folder in folders:
        for path in sorted(folder.glob("*.ipynb")):
            text = path.read_text()
            for marker in ("Model answer", "Rubric", "instructor only"):
                assert marker not in text, f"{folder.name}/{path.name}: '{marker}'"
            cells = [source_text(c) for c in load(path)["cells"]]
            lines = {ln.strip() for src in cells for ln in src.splitlines()}
            assert not secret_lines & lines, f"{folder.name}/{path.name}: {sorted(secret_lines & lines)[:3]}"
            shared = set().union(*(_shingles(src) for src in cells)) & secret_shingles
            assert not shared, f"{folder.name}/{path.name} repeats the model answer: {sorted(shared)[:3]}"
    full = load(folders[0] / "03_theory.ipynb")
    written = {nbgrader_meta(c)["grade_id"]: source_text(c) for c in full["cells"] if cell_is_manual(c)}
    assert written == STUDENT_ANSWERS and all("$" in t for t in written.values())


def cell_is_manual(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell["cell_type"] == "markdown" and bool(meta.get("solution")) and bool(meta.get("grade"))

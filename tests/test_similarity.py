"""Similarity between hand-ins (autograder/reports/similarity.py), with the real copydetect.

* Independent correct solutions are not flagged at ``THRESHOLD``: synthetic students, each combining
  different correct implementations per cell (the source solution and tests/fixtures/catalogue/correct/).
  No two students share a large cell (where a large cell has fewer variants than students, the others
  leave it unanswered, as students do); the small cells, where correct solutions converge on the same
  text, rotate through their few variants with one period, so that students s and s + 3 share every
  small cell but the output-size formula verbatim: a harsh case for the threshold.
* Near-copies of one hand-in are flagged against it: every variable renamed; every class's methods in
  reverse order; comments and docstrings removed and other comments added; all three at once.
* The untouched release is all boilerplate: never flagged, not even against itself.
* The side-by-side page: escaped, self-contained, highlighted, and it says similarity is not a verdict.
"""
from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

from autograder import course
from autograder.assignment.solutions import make_submission, source_solutions
from autograder.assignment.spec import Assignment
from autograder.reports import similarity
from autograder.reports.similarity import THRESHOLD, Pair, Similarity, answer_cells, compare, write_pages

CORRECT = Path(__file__).resolve().parent / "fixtures" / "catalogue" / "correct"

# The catalogue's correct variants per answer cell (tests/test_catalogue.py's CORRECT, files only:
# its one patch variant, classifier_early_stopping, is the source classifier with two lines added,
# not an independent implementation).
CATALOGUE = {
    "p1_conv2d": ["conv_loops.py", "conv_einsum.py", "conv_as_strided_im2col.py",
                  "conv_sliding_window_view.py", "conv_float32.py"],
    "p2_small_array": ["p2_literals_no_batch_axis.py", "p2_nested_lists.py"],
    "p3_output_size": ["size_math_floor.py", "size_int_division.py", "size_numpy_floor_divide.py"],
    "p4_maxpool": ["maxpool_reshape_fallback.py"],
    "p5_avgpool": ["avgpool_loops_tuples.py"],
    "p6_flatten": ["flatten_len_reshape.py", "flatten_np_prod.py"],
    "p7_classifier": ["classifier_adam_one_conv.py", "classifier_two_conv_sgd.py"],
    "p3_keras_models": ["keras_separate_activations.py"],
    "p8_lenet": ["lenet_functional.py", "lenet_categorical.py"],
    "p10_answers": ["p10_lists.py", "p10_numpy.py"],
}
# Large cells: never shared. Student s answers with variant (s - offset) % STUDENTS when there is one,
# else leaves the cell as released; the offsets spread the answered large cells over the students.
LARGE = {"p1_conv2d": 0, "p4_maxpool": 0, "p5_avgpool": 2, "p7_classifier": 3, "p3_keras_models": 4}
STUDENTS = 6


def variants() -> dict[str, list[str]]:
    """grade_id -> its correct implementations: the source solution first, then the catalogue's."""
    solutions = {gid: src for cells in source_solutions().values() for gid, src in cells.items()}
    return {gid: [solutions[gid]] + [(CORRECT / f).read_text() for f in files] for gid, files in CATALOGUE.items()}


def independent_answers() -> dict[str, dict[str, str]]:
    """student -> {grade_id: answer}: the synthetic class of independent correct solutions."""
    out = {}
    for s in range(STUDENTS):
        answers = {}
        for gid, options in variants().items():
            if gid in LARGE:
                i = (s - LARGE[gid]) % STUDENTS
                if i < len(options):
                    answers[gid] = options[i]
            else:
                answers[gid] = options[s % len(options)]
        out[f"student{s}"] = answers
    return out


# ----------------------------------------------------------------------------- near-copies
def rename_variables(src: str) -> str:
    """Every variable and parameter (all names ever bound, except ``self``) renamed, everywhere it is used."""
    tree = ast.parse(src)
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    new = {name: f"q{i}_{name[::-1].strip('_')}x" for i, name in enumerate(sorted(bound - {"self"}))}
    edits = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id in new:
            edits.append((n.lineno, n.col_offset, n.end_col_offset, new[n.id]))
        elif isinstance(n, ast.arg) and n.arg in new:
            edits.append((n.lineno, n.col_offset, n.col_offset + len(n.arg.encode()), new[n.arg]))
    lines = [ln.encode() for ln in src.splitlines(keepends=True)]
    for row, start, end, name in sorted(edits, reverse=True):   # ast offsets are UTF-8 byte offsets
        lines[row - 1] = lines[row - 1][:start] + name.encode() + lines[row - 1][end:]
    return b"".join(lines).decode()


def reorder_methods(src: str) -> str:
    """The methods of every top-level class in reverse order."""
    lines = (src.rstrip("\n") + "\n").splitlines(keepends=True)
    tree = ast.parse(src)
    for cls in sorted((n for n in tree.body if isinstance(n, ast.ClassDef)), key=lambda c: -c.lineno):
        methods = [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if len(methods) < 2:
            continue
        starts = [min([m.lineno] + [d.lineno for d in m.decorator_list]) - 1 for m in methods]
        end = cls.end_lineno
        chunks = [lines[a:b] for a, b in zip(starts, starts[1:] + [end])]
        chunks = ["".join(c).rstrip() + "\n" for c in reversed(chunks)]
        lines[starts[0]:end] = ["\n".join(chunks)]
    return "".join(lines)


def change_comments(src: str) -> str:
    """Docstrings and comments removed; other comments added, one before every second statement."""
    lines = (src.rstrip("\n") + "\n").splitlines(keepends=True)
    tree = ast.parse("".join(lines))
    doc_lines = set()
    for n in ast.walk(tree):
        body = getattr(n, "body", None)
        if (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and len(body) > 1
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            doc_lines |= set(range(body[0].lineno - 1, body[0].end_lineno))
    lines = [ln for i, ln in enumerate(lines) if i not in doc_lines]
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO("".join(lines)).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0] - 1] = tok.start[1]
    kept = []
    for i, ln in enumerate(lines):
        if i in comments:
            ln = ln[:comments[i]].rstrip()
            if not ln.strip():
                continue
            ln += "\n"
        kept.append(ln)
    lines = kept
    tree = ast.parse("".join(lines))
    statements = sorted({n.lineno for n in ast.walk(tree) if isinstance(n, ast.stmt)})
    for k, row in enumerate(reversed(statements)):
        if k % 2 == 0:
            line = lines[row - 1]
            indent = line[:len(line) - len(line.lstrip())]
            lines.insert(row - 1, f"{indent}# step {row}: as discussed in the study group\n")
    return "".join(lines)


def combined(src: str) -> str:
    return change_comments(reorder_methods(rename_variables(src)))


NEAR_COPIES = {"renamed": rename_variables, "reordered": reorder_methods, "comments": change_comments,
               "all_three": combined}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def assignment() -> Assignment:
    return Assignment.from_release(course.RELEASE_DIR)


@pytest.fixture(scope="module")
def independent(tmp_path_factory) -> Similarity:
    base = tmp_path_factory.mktemp("independent")
    hand_ins = {name: make_submission(base / name, solved=False, overrides=answers)
                for name, answers in independent_answers().items()}
    return compare(hand_ins)


@pytest.fixture(scope="module")
def near_copies(tmp_path_factory, assignment) -> tuple[Similarity, dict[str, dict[str, str]]]:
    base = tmp_path_factory.mktemp("near-copies")
    original = make_submission(base / "original")
    cells = answer_cells(original, assignment)
    hand_ins, changed = {"original": original}, {}
    for kind, transform in NEAR_COPIES.items():
        changed[kind] = {gid: transform(src) for gid, src in cells.items()}
        hand_ins[kind] = make_submission(base / kind, overrides=changed[kind])
    return compare(hand_ins), changed


# ----------------------------------------------------------------------------- tests
def test_answer_cells_are_the_code_answers_in_release_order(tmp_path, assignment):
    folder = make_submission(tmp_path / "solution")
    cells = answer_cells(folder, assignment)
    solutions = {gid: src for nb in source_solutions().values() for gid, src in nb.items()}
    code_ids = [c.grade_id for nb in assignment.notebooks.values() for c in nb.cells
                if c.kind == "answer" and c.cell_type == "code"]
    assert list(cells) == code_ids
    assert "p9_survey" not in cells and "p11_survey" not in cells
    assert all(cells[gid] == solutions[gid] for gid in cells)
    assert answer_cells(folder / "03_theory.ipynb", assignment) == {"p10_answers": solutions["p10_answers"]}


def test_the_synthetic_class_shares_no_large_cell():
    answers = independent_answers()
    for gid in LARGE:
        used = [a[gid] for a in answers.values() if gid in a]
        assert len(used) == len(set(used)) >= 2, gid
    assert all("p1_conv2d" in a for a in answers.values())


def test_independent_correct_solutions_are_not_flagged(independent):
    assert independent.compared == STUDENTS
    assert independent.pairs, "independent solutions of the same problems always share something"
    top = independent.pairs[0]
    assert independent.flagged == [], (
        f"flagged at THRESHOLD {THRESHOLD}: {[(p.a, p.b, round(p.similarity, 3)) for p in independent.flagged]}")
    # The measured margin, reported: the highest similarity between independent correct students.
    assert top.similarity < THRESHOLD - 0.1, (
        f"highest similarity among independent students: {top.a}/{top.b} {top.similarity:.3f}, "
        f"too close to THRESHOLD {THRESHOLD}")
    print(f"\nhighest similarity among {STUDENTS} independent correct students: "
          f"{top.a}/{top.b} {top.similarity:.3f}")


@pytest.mark.parametrize("kind", list(NEAR_COPIES))
def test_near_copies_are_flagged(near_copies, kind):
    result, changed = near_copies
    for gid, src in changed[kind].items():
        ast.parse(src)                                   # still Python
    solutions = {gid: s for nb in source_solutions().values() for gid, s in nb.items()}
    assert sum(src != solutions[gid] for gid, src in changed[kind].items()) >= 5, "the transform changed nothing"
    pair = {(p.a, p.b): p for p in result.pairs}.get(tuple(sorted(("original", kind))))
    assert pair is not None, f"{kind}: nothing in common with the original"
    assert pair in result.flagged, f"{kind}: similarity {pair.similarity:.3f} < THRESHOLD {THRESHOLD}"
    assert pair.similarity >= THRESHOLD + 0.25, (
        f"{kind}: similarity {pair.similarity:.3f}, too close to THRESHOLD {THRESHOLD}")
    print(f"\nnear-copy ({kind}) against the original: {pair.similarity:.3f}")


def test_the_untouched_release_is_all_boilerplate(tmp_path):
    untouched = make_submission(tmp_path / "untouched", solved=False)
    other = make_submission(tmp_path / "other", solved=False)
    result = compare({"u1": untouched, "u2": other, "u3": untouched})
    assert result.compared == 3
    assert result.pairs == [] and result.flagged == []
    # One hand-in, none, or one that cannot be read: nothing to compare, and no error.
    for hand_ins, n in (({"solo": untouched}, 1), ({}, 0), ({"ghost": tmp_path / "missing", "solo": untouched}, 1)):
        result = compare(hand_ins)
        assert (result.compared, result.pairs, result.flagged) == (n, [], [])


def test_an_unfinished_hand_in_is_compared_on_what_it_has(tmp_path):
    """A student who answered only the first cell, copied: flagged; against the untouched release: 0."""
    conv = variants()["p1_conv2d"][2]
    result = compare({"x": make_submission(tmp_path / "x", solved=False, overrides={"p1_conv2d": conv}),
                      "y": make_submission(tmp_path / "y", solved=False,
                                           overrides={"p1_conv2d": rename_variables(conv)}),
                      "z": make_submission(tmp_path / "z", solved=False)})
    assert [(p.a, p.b) for p in result.flagged] == [("x", "y")]
    assert all("z" not in (p.a, p.b) for p in result.pairs)


def test_the_threshold_is_the_instructors(tmp_path, independent):
    lowered = Similarity(0.0001, independent.compared, independent.pairs)
    assert lowered.flagged == independent.pairs
    a, b = make_submission(tmp_path / "a"), make_submission(tmp_path / "b")
    assert compare({"a": a, "b": b}).flagged and not compare({"a": a, "b": b}, threshold=1.01).flagged
    assert Pair("a", "b", 0.5) in Similarity(0.5, 2, [Pair("a", "b", 0.5)]).flagged   # >= threshold


def test_write_pages(tmp_path, assignment):
    original = make_submission(tmp_path / "ada")
    cells = answer_cells(original, assignment)
    hostile = {gid: combined(src) for gid, src in cells.items()}
    hostile["p6_flatten"] = "# </pre><script>alert('x')</script> & <b>bold</b>\n" + hostile["p6_flatten"]
    unrelated = make_submission(tmp_path / "cy", solved=False, overrides={"p3_output_size": (
        CORRECT / "size_math_floor.py").read_text()})
    zed = "zed/../<i>"                                  # a name is untrusted too (page name, title)
    result = compare({"ada": original, zed: make_submission(tmp_path / "zed", overrides=hostile), "cy": unrelated})
    assert [(p.a, p.b) for p in result.flagged] == [("ada", zed)]
    write_pages(result, tmp_path / "report")
    pair = result.flagged[0]
    assert pair.page == "similarity/ada--zed_..__i_.html"
    assert all(p.page is None for p in result.pairs if p is not pair)
    assert [p.name for p in (tmp_path / "report" / "similarity").iterdir()] == ["ada--zed_..__i_.html"]
    page = (tmp_path / "report" / pair.page).read_text()
    assert "<script" not in page and "alert(&#39;x&#39;)" in page and "&lt;/pre&gt;&lt;script&gt;" in page
    assert "<b>bold" not in page and "<i>" not in page and "zed/../&lt;i&gt;" in page
    assert similarity.NOT_A_VERDICT in page
    assert "<span class='highlight-red'>" in page and "<span class='highlight-green'>" in page
    assert page.count("<span class=") == page.count("</span>")
    for cell in cells:
        assert f"<h2>{cell}" in page
    # Self-contained and no wider than the viewport.
    assert "http" not in page.split("<body>")[0] and "<link" not in page and "src=" not in page
    assert "white-space: pre-wrap" in page and "overflow-wrap: anywhere" in page and "table-layout: fixed" in page

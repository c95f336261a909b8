"""Which hand-ins are suspiciously alike: copydetect (winnowing over k-grams of the tokenized code, as
MOSS does) over what the students wrote, with a side-by-side page per flagged pair.

    similarity = compare({"ada": Path("subs/ada"), "bob": Path("subs/bob.zip"), ...})
    similarity.flagged                      # pairs with similarity >= similarity.threshold
    write_pages(similarity, out_dir)        # out_dir/similarity/<a>--<b>.html; sets pair.page

What is compared: the student's code answer cells only (``kind == "answer"``; not the written answers
of Problems 9 and 11, which are free text). The release's text of each answer cell (its stub: class and
method signatures, docstrings, ``# YOUR CODE HERE``) is copydetect's boilerplate, so only what the
students wrote can match. copydetect's tokenizer already makes identifiers (``V``/``F``/``O``), string
contents (``S``), comments and whitespace invisible, so renaming variables and changing comments do not
hide a copy; its fingerprints are a set, so reordering methods only breaks the k-grams at the seams.

The layout, chosen by measurement: ONE FOLDER PER ANSWER CELL, one file per student in it, and one
``CopyDetector`` per folder (the same as ``same_name_only`` over one file per cell, without its
n^2 x cells file-name tests). A pair's similarity is copydetect's own formula over the whole hand-in:
the student's tokens matched in the other's same cell, summed over the cells, divided by the student's
non-boilerplate tokens (copydetect's ``token_coverage``), summed over the cells; the larger of the two
directions. Measured on the cases of tests/test_similarity.py (noise_t 25) against ONE FILE PER
STUDENT (the cells concatenated in release order): per cell, the highest independent pair 0.43 and the
lowest near-copy 0.95; one file, 0.46 and 0.93. One file also lets a Dense layer match a Conv2d, and its
k-grams across the seams between cells (the end of one stub, the start of the next) are boilerplate in
no stub file: two untouched releases would share only those, and score 1.0 unless the concatenated
release is added as boilerplate too.

``guarantee_t == noise_t`` (window 1: every k-gram is a fingerprint). Winnowing with a larger window
keeps the minimum hash of each window, and copydetect hashes with Python's ``hash()``, which is salted
per process: the same class would get different similarities in different runs. These files are small,
so keeping every k-gram costs nothing and makes the figures reproducible.

Similarity is a prompt to look, not a verdict: short problems have few good solutions, and students
may legitimately share a lecture's idiom. The side-by-side page says so; so does the class report.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from autograder import course
from autograder.assignment.spec import Assignment, CannotGrade

TEMPLATES = Path(__file__).resolve().parent / "templates"

# copydetect's noise threshold: the shortest run of matching *filtered* characters that counts (its
# default; about one line of code once names are V and whitespace is gone). Measured with 15, 20, 25,
# 30 and 40: the gap between the highest independent pair and the lowest near-copy was 0.44, 0.50,
# 0.52, 0.54 and 0.57. 25 is kept: a longer k widens the gap only a little on these near-copies, which
# keep every token, and costs sensitivity to copies edited inside their lines, which they do not measure.
NOISE_T = 25

# The default threshold, measured in tests/test_similarity.py (the figures are asserted there):
#  * 6 synthetic students, each combining different correct implementations per cell (the source
#    solution and tests/fixtures/catalogue/correct/); no two share a large cell, while the small cells,
#    where correct solutions converge on the same text, rotate through their few variants, so that
#    some pairs share all of them verbatim: highest similarity 0.43 (such a pair);
#  * near-copies of the full solution: every variable renamed 1.00; every class's methods reversed
#    0.99; docstrings and comments removed, others added 0.97; all three at once 0.95.
# 0.6 keeps well clear of the independent students (the first concern), and still flags a
# hand-in of which most of the code (what is not the release's stub) is another's.
THRESHOLD = 0.6

NOT_A_VERDICT = ("Similarity is a prompt to look, not a verdict: short problems have few good solutions, "
                 "and matching code can be honest work. Read both hand-ins, and talk to the students, "
                 "before drawing any conclusion.")


@dataclass
class Pair:
    a: str                  # student names, a < b
    b: str
    similarity: float       # 0..1: copydetect's similarity, the larger of the two directions
    page: str | None = None  # the side-by-side page, relative to the report's folder (set by write_pages)


@dataclass
class Similarity:
    threshold: float
    compared: int           # how many hand-ins were compared
    pairs: list[Pair]       # every compared pair with similarity > 0, highest first
    # For the side-by-side pages: each student's compared cells (grade_id -> text, release order), and
    # copydetect's matching regions per pair and cell: (a, b) -> {grade_id: (slices in a's text, slices
    # in b's text)}, each a 2 x n array of start and end offsets.
    _cells: dict[str, dict[str, str]] = field(default_factory=dict, repr=False, compare=False)
    _regions: dict[tuple[str, str], dict[str, tuple]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def flagged(self) -> list[Pair]:
        return [p for p in self.pairs if p.similarity >= self.threshold]


# ----------------------------------------------------------------------------- reading hand-ins
def _code_answer_ids(assignment: Assignment) -> list[str]:
    """The grade_ids of the code answer cells, in release order."""
    return [c.grade_id for nb in assignment.notebooks.values() for c in nb.cells
            if c.kind == "answer" and c.cell_type == "code"]


def answer_cells(path: Path, assignment: Assignment) -> dict[str, str]:
    """grade_id -> the student's source of that code answer cell, for one hand-in (a folder, a notebook
    or a zip), in release order. A cell that appears several times is its copies joined, in order; a
    missing cell is absent. Raises ``CannotGrade`` when the hand-in cannot be read at all."""
    from autograder.assignment.submission import Submission

    submission = Submission.load(Path(path), assignment)
    wanted = set(_code_answer_ids(assignment))
    found: dict[str, list[str]] = {}
    for program in submission.programs.values():
        for cell in program.cells:
            gid = cell.name.split("#", 1)[0]
            if gid in wanted:
                found.setdefault(gid, []).append(cell.source)
    return {gid: "\n\n".join(found[gid]) for gid in _code_answer_ids(assignment) if gid in found}


def _clean(text: str) -> str:
    """The text exactly as copydetect will read it back (UTF-8, universal newlines)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.encode("utf-8", "replace").decode("utf-8")


# ----------------------------------------------------------------------------- comparing
def compare(submissions: dict[str, Path], release_dir: Path = course.RELEASE_DIR,
            threshold: float = THRESHOLD) -> Similarity:
    """Compare every pair of hand-ins (student name -> hand-in path) with copydetect. Hand-ins that
    cannot be read at all are left out (``compared`` counts the others)."""
    assignment = Assignment.from_release(release_dir)
    cells: dict[str, dict[str, str]] = {}
    for student in sorted(submissions):
        try:
            cells[student] = {gid: _clean(src) for gid, src in answer_cells(submissions[student], assignment).items()}
        except CannotGrade:
            continue
    result = Similarity(threshold, len(cells), [], cells)
    if len(cells) < 2:
        return result

    import copydetect

    stubs = [_clean(c.source) for nb in assignment.notebooks.values() for c in nb.cells
             if c.kind == "answer" and c.cell_type == "code"]
    students = list(cells)                        # index i: files are named by index, never by the name
    coverage = dict.fromkeys(students, 0.0)       # a hand-in's tokens that are not boilerplate
    overlap: dict[tuple[str, str], float] = {}    # (s, t): s's tokens matched in t, summed over the cells
    with tempfile.TemporaryDirectory(prefix="cnn2d-similarity-") as tmp:
        tmp = Path(tmp)
        boilerplate = tmp / "boilerplate"
        boilerplate.mkdir()
        for i, stub in enumerate(stubs):
            (boilerplate / f"{i:03d}.py").write_text(stub, encoding="utf-8")
        for c, gid in enumerate(_code_answer_ids(assignment)):
            folder = tmp / f"cell{c:03d}"
            folder.mkdir()
            student_of = {}
            for i, student in enumerate(students):
                text = cells[student].get(gid, "")
                if text.strip():
                    path = folder / f"{i:05d}.py"
                    path.write_text(text, encoding="utf-8")
                    student_of[str(path)] = student
            if not student_of:
                continue
            detector = copydetect.CopyDetector(
                test_dirs=[str(folder)], ref_dirs=[str(folder)], boilerplate_dirs=[str(boilerplate)],
                extensions=["py"], noise_t=NOISE_T, guarantee_t=NOISE_T, display_t=0.0,
                same_name_only=False, autoopen=False, silent=True, out_file=str(tmp / "report.html"))
            detector.run()                    # one file alone: fingerprinted (its coverage counts), not compared
            for path, data in detector.file_data.items():
                coverage[student_of[path]] += float(data.token_coverage)
            for i, test_f in enumerate(detector.test_files):
                for j, ref_f in enumerate(detector.ref_files):
                    sim = float(detector.similarity_matrix[i, j][0])
                    if test_f == ref_f or sim <= 0:
                        continue
                    key = (student_of[test_f], student_of[ref_f])
                    overlap[key] = overlap.get(key, 0.0) + sim * float(detector.file_data[test_f].token_coverage)
            for (test_f, ref_f), (slices_test, slices_ref) in detector.slice_matrix.items():
                s, t = student_of[test_f], student_of[ref_f]
                result._regions.setdefault(tuple(sorted((s, t))), {})[gid] = (
                    (slices_test, slices_ref) if s < t else (slices_ref, slices_test))
    best: dict[tuple[str, str], float] = {}
    for (s, t), matched in overlap.items():
        key = tuple(sorted((s, t)))
        best[key] = max(best.get(key, 0.0), matched / coverage[s] if coverage[s] else 0.0)
    result.pairs = sorted((Pair(a, b, min(sim, 1.0)) for (a, b), sim in best.items() if sim > 0),
                          key=lambda p: (-p.similarity, p.a, p.b))
    return result


# ----------------------------------------------------------------------------- side-by-side pages
def _highlighted(text: str, slices, css_class: str):
    """One answer cell as safe HTML, copydetect's matching regions highlighted by its own
    ``highlight_overlap`` (which escapes the code: ``escape_html=True``)."""
    from copydetect.utils import highlight_overlap
    from markupsafe import Markup, escape

    if slices is None or slices.ndim != 2 or slices.shape[1] == 0 or not text:
        return escape(text)            # highlight_overlap returns an empty-slices text unescaped
    html, _ = highlight_overlap(text, slices, f"<span class='{css_class}'>", "</span>", escape_html=True)
    return Markup(html)


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "_"


def write_pages(similarity: Similarity, out_dir: Path) -> None:
    """Write ``out_dir/similarity/<a>--<b>.html`` for each flagged pair and set its ``page`` (relative to
    ``out_dir``; names reduced to letters, digits, ``._-``). A pair whose hand-ins this ``Similarity`` does
    not hold (one not made by ``compare``) gets no page."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    template = env.get_template("similarity_pair.html.j2")
    folder = Path(out_dir) / "similarity"
    used: set[str] = set()
    for pair in similarity.flagged:
        cells_a, cells_b = similarity._cells.get(pair.a), similarity._cells.get(pair.b)
        if cells_a is None or cells_b is None:
            continue
        regions = similarity._regions.get((pair.a, pair.b), {})
        rows = []
        for gid in list(cells_a) + [g for g in cells_b if g not in cells_a]:
            slices_a, slices_b = regions.get(gid, (None, None))
            rows.append({"grade_id": gid, "matched": gid in regions,
                         "a": _highlighted(cells_a[gid], slices_a, "highlight-red") if gid in cells_a else None,
                         "b": _highlighted(cells_b[gid], slices_b, "highlight-green") if gid in cells_b else None})
        stem = f"{_file_name(pair.a)}--{_file_name(pair.b)}"
        name, n = f"{stem}.html", 1
        while name in used:
            n += 1
            name = f"{stem}-{n}.html"
        used.add(name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(template.render(
            a=pair.a, b=pair.b, similarity=pair.similarity, threshold=similarity.threshold,
            compared=similarity.compared, not_a_verdict=NOT_A_VERDICT, rows=rows, title=course.TITLE,
            noise_t=NOISE_T), encoding="utf-8")
        pair.page = f"similarity/{name}"

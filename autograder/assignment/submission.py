"""One student's hand-in (a folder, a single notebook or a zip: untrusted), read against the release
(``autograder.assignment.spec``, trusted) into what the sandbox runs per notebook.

The release decides what each cell is. A submitted cell is matched to the release by its nbgrader
``grade_id``; what the student may change (answer cells, manual answers) is taken from the
submission, what they may not (setup, test and locked cells) is compared with nbgrader's own
checksum and, for setup cells, always taken from the release.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.assignment import metadata
from autograder.assignment.spec import Assignment, CannotGrade, NotebookSpec
from autograder.sandbox.host import Cell

__all__ = ["CannotGrade", "Finding", "NotebookProgram", "Submission", "find_notebooks", "identify", "read_notebook",
           "safe_unzip"]

MAX_NOTEBOOK_BYTES = 50 << 20
MAX_ZIP_BYTES = 200 << 20
MAX_ZIP_ENTRIES = 2000
MANUAL_PLACEHOLDER = "YOUR ANSWER HERE"

logging.getLogger("nbformat").setLevel(logging.CRITICAL)  # hostile notebooks: we report, it need not log


@dataclass
class Finding:
    """Something about the hand-in the instructor (and the student) should know."""

    notebook: str
    cell: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.notebook}" + (f", cell '{self.cell}'" if self.cell else "")
        return f"{where}: {self.message}"


@dataclass
class NotebookProgram:
    """What the sandbox runs for one notebook, or why it cannot run it."""

    name: str
    cells: list[Cell] = field(default_factory=list)
    why_not: str | None = None   # set when the notebook is missing or unreadable: student-facing

    @property
    def ok(self) -> bool:
        return self.why_not is None


@dataclass
class Submission:
    student: str
    path: Path
    programs: dict[str, NotebookProgram]
    manual_answers: dict[str, str]
    findings: list[Finding]

    @classmethod
    def load(cls, path: Path, assignment: Assignment, student: str | None = None) -> "Submission":
        path = Path(path)
        if not path.exists():
            raise CannotGrade(f"{path} does not exist")
        findings: list[Finding] = []
        tmp = None
        try:
            if path.is_file() and path.suffix.lower() == ".zip":
                tmp = Path(tempfile.mkdtemp(prefix="cnn2d-zip-"))
                safe_unzip(path, tmp)
                files = find_notebooks(tmp, assignment, findings)
            elif path.is_file():
                stem, unreadable = ((path.stem, None) if path.stem in assignment.notebooks
                                    else identify(path, assignment))
                files = {stem: path} if stem else {}
                if stem and stem != path.stem:
                    findings.append(Finding(stem, None, f"graded {path.name} as {stem}.ipynb (by its cells)"))
                if not files:
                    findings.append(Finding(path.name, None, unreadable or (
                        "this file is not one of the assignment's notebooks ("
                        + ", ".join(f"{n}.ipynb" for n in assignment.notebooks) + ")")))
            else:
                files = find_notebooks(path, assignment, findings)
            programs, manual = {}, {}
            for name, spec in assignment.notebooks.items():
                if name not in files:
                    programs[name] = NotebookProgram(name, why_not=f"{name}.ipynb is missing from the submission")
                    continue
                programs[name] = _program(files[name], spec, findings, manual)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return cls(student or path.stem, path, programs, manual, findings)


def safe_unzip(archive: Path, dest: Path, keep=lambda name: name.endswith(".ipynb"),
               max_entries: int = MAX_ZIP_ENTRIES, max_bytes: int = MAX_ZIP_BYTES) -> None:
    """Unpack the regular files of an untrusted zip whose name ``keep`` accepts (default: the notebooks)
    into ``dest``: no absolute or ``..`` paths, no symlinks, nothing when the zip holds more than
    ``max_entries`` entries or ``max_bytes`` bytes uncompressed. Raises CannotGrade."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > max_entries or sum(i.file_size for i in infos) > max_bytes:
                raise CannotGrade(f"{archive.name} is too large to unpack (over {max_entries} files "
                                  f"or {max_bytes >> 20} MiB)")
            for info in infos:
                name = Path(info.filename)
                if info.is_dir() or not keep(info.filename):
                    continue  # only notebooks matter; nothing else is unpacked (no symlinks, no scripts)
                if name.is_absolute() or ".." in name.parts:
                    continue
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, length=1 << 20)
    except zipfile.BadZipFile as e:
        raise CannotGrade(f"{archive.name} is not a readable zip file ({e})") from None


def identify(path: Path, assignment: Assignment) -> tuple[str | None, str | None]:
    """Which assignment notebook a renamed file is, judged by the nbgrader grade_ids it holds.
    Returns (notebook name, None), or (None, why it could not be read)."""
    nb, why_not, _ = read_notebook(path)
    if nb is None:
        return None, why_not
    ids = {gid for c in nb.cells if (gid := metadata.grade_id(c)) is not None}
    best = max(assignment.notebooks.values(), key=lambda spec: len(ids & set(spec.by_id())))
    return (best.name, None) if ids & set(best.by_id()) - {"setup"} else (None, None)


def find_notebooks(folder: Path, assignment: Assignment, findings: list[Finding]) -> dict[str, Path]:
    """The assignment's notebooks in ``folder`` (and below, renamed downloads included), by notebook name;
    what was chosen among several candidates goes to ``findings``."""
    found: dict[str, list[Path]] = {}
    for p in folder.rglob("*.ipynb"):
        rel = p.relative_to(folder)
        if len(rel.parts) > 5 or any(part in (".ipynb_checkpoints", "__MACOSX") for part in rel.parts):
            continue
        if p.is_symlink() or not p.is_file():
            continue
        stem = p.stem
        if stem not in assignment.notebooks:
            # Downloads get renamed: "01_scratch_cnn (1).ipynb", "01_scratch_cnn-Copy1.ipynb".
            matches = [n for n in assignment.notebooks if stem.startswith(n)]
            if len(matches) != 1:
                continue
            stem = matches[0]
        found.setdefault(stem, []).append(p)
    files = {}
    for stem, paths in found.items():
        paths.sort(key=lambda p: (p.stem != stem, len(p.relative_to(folder).parts), str(p)))
        files[stem] = paths[0]
        if len(paths) > 1 or paths[0].stem != stem:
            findings.append(Finding(stem, None, f"graded {paths[0].relative_to(folder)}"
                                    + (f" (of {len(paths)} candidates)" if len(paths) > 1 else "")))
    return files


def read_notebook(path: Path) -> tuple[nbformat.NotebookNode | None, str | None, list[str]]:
    """Read a notebook leniently. Returns (notebook, why_not, notes): why_not is set when it cannot be read."""
    notes = []
    try:
        raw = path.read_bytes()
    except OSError as e:
        return None, f"{path.name} could not be read ({e.strerror})", notes
    if len(raw) > MAX_NOTEBOOK_BYTES:
        return None, f"{path.name} is {len(raw) >> 20} MiB, over the limit of {MAX_NOTEBOOK_BYTES >> 20} MiB " \
                     "(clear the outputs: Edit > Clear Outputs of All Cells, then save)", notes
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        notes.append("the file is not valid UTF-8; undecodable bytes were replaced")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as e:  # NotJSONError, unknown nbformat versions, anything malformed
        detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        return None, (f"{path.name} is not a readable notebook ({detail}). It may be damaged or "
                      "truncated: download it again from JupyterLab (File > Download) and resubmit"), notes
    if not isinstance(nb.get("cells"), list):
        return None, f"{path.name} has no cells", notes
    return nb, None, notes


def _program(path: Path, spec: NotebookSpec, findings: list[Finding], manual: dict[str, str]) -> NotebookProgram:
    nb, why_not, notes = read_notebook(path)
    for note in notes:
        findings.append(Finding(spec.name, None, note))
    if nb is None:
        return NotebookProgram(spec.name, why_not=why_not)
    specs = spec.by_id()
    seen: dict[str, int] = {}
    cells: list[Cell] = []
    added: list[str] = []
    anchor = "the top of the notebook"     # the graded cell the student's own cells follow, for their names
    for cell in nb.cells:
        if not isinstance(cell, dict):
            continue
        gid = metadata.grade_id(cell)
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if not isinstance(gid, str) or gid not in specs:
            # A code cell of the student's own (added, or a release cell they changed) runs where it
            # stands, as in Jupyter; the release's own demo and data cells, unchanged, do not.
            if cell.get("cell_type") == "code" and source.strip() and source.strip() not in spec.ordinary:
                name = f"your cell after {anchor}"
                taken = sum(1 for c in cells if c.name == name or c.name.startswith(name + " #"))
                cells.append(Cell(name + (f" #{taken + 1}" if taken else ""), source, kind="own"))
                added.append(cells[-1].name)
            continue
        want = specs[gid]
        anchor = f"'{gid}'"
        seen[gid] = seen.get(gid, 0) + 1
        if want.kind == "answer":
            if cell.get("cell_type") != "code":
                findings.append(Finding(spec.name, gid, "the answer cell was turned into a non-code cell; it is not run"))
                continue
            cells.append(Cell(gid if seen[gid] == 1 else f"{gid}#{seen[gid]}", source))
        elif want.kind == "manual":
            text = source.strip()
            manual[gid] = "" if text == MANUAL_PLACEHOLDER else text
        else:
            if metadata.computed_checksum(cell) != want.checksum:
                what = {"setup": "the release version was run instead",
                        "test": "the grader never runs notebook test cells: it has its own checks",
                        "visible": "the grader never runs notebook test cells: it has its own checks"}.get(
                    want.kind, "the change is ignored")
                findings.append(Finding(spec.name, gid, f"this locked {want.kind} cell was modified; {what}"))
            if want.kind == "setup" and seen[gid] == 1:
                cells.append(Cell(gid, want.source, kind="setup"))
    for gid, count in seen.items():
        if count > 1:
            findings.append(Finding(spec.name, gid, f"the cell appears {count} times"
                                    + ("; every copy was run, in order" if specs[gid].kind == "answer" else "")))
    for want in spec.cells:
        if want.grade_id in seen:
            continue
        if want.kind == "setup":
            cells.insert(0, Cell(want.grade_id, want.source, kind="setup"))
            findings.append(Finding(spec.name, want.grade_id, "the setup cell was deleted; the release version was run"))
        elif want.kind == "answer":
            findings.append(Finding(spec.name, want.grade_id, "the answer cell is missing (deleted, or its "
                                    "nbgrader metadata was changed): only what your own cells define counts for it"))
        elif want.kind == "manual":
            findings.append(Finding(spec.name, want.grade_id, "the answer cell is missing (deleted, or its "
                                    "nbgrader metadata was changed): it counts as unanswered"))
        elif want.kind == "test":
            findings.append(Finding(spec.name, want.grade_id, "the test cell was deleted (the grader's own checks ran)"))
    if added:
        findings.append(Finding(spec.name, None, f"{len(added)} code cell(s) of your own were run, in notebook order "
                                f"with the answer cells ({', '.join(added[:5])}{', ...' if len(added) > 5 else ''}): "
                                "the notebook's own demo and data cells, if unchanged, are not run"))
    return NotebookProgram(spec.name, cells)


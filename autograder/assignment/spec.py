"""What the grader knows about the assignment: the release notebooks (trusted), read once per process
into one ``CellSpec`` per nbgrader cell (its grade_id, kind, release source, checksum and points).

    assignment = Assignment.from_release(RELEASE_DIR)
    assignment.notebooks["01_scratch_cnn"].by_id()["p1_tests"].points     # 20.0
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.assignment import metadata


class CannotGrade(Exception):
    """The submission cannot be graded at all (no such path, an unreadable zip, no release notebooks).
    Defined here, where the release is read, so that submission.py (which re-exports it) can import
    this module without a cycle."""


@dataclass
class CellSpec:
    grade_id: str
    kind: str            # setup | answer | visible | test | manual | locked
    cell_type: str
    source: str
    checksum: str | None
    points: float = 0.0

    @property
    def problem(self) -> int | None:
        return metadata.problem_of(self.grade_id)


@dataclass
class NotebookSpec:
    name: str
    cells: list[CellSpec]
    ordinary: frozenset[str] = frozenset()   # sources of the release's ordinary code cells (demos, plots)

    def by_id(self) -> dict[str, CellSpec]:
        return {c.grade_id: c for c in self.cells}


@dataclass
class Assignment:
    """The release notebooks of one assignment, read once per harness process."""

    directory: Path
    notebooks: dict[str, NotebookSpec]
    support_files: list[Path]

    @classmethod
    def from_release(cls, directory: Path) -> "Assignment":
        directory = Path(directory)
        notebooks = {}
        for path in sorted(directory.glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            cells, ordinary = [], set()
            for cell in nb.cells:
                gid = metadata.grade_id(cell)
                if gid is None:
                    if cell.cell_type == "code":
                        ordinary.add(cell.source.strip())
                    continue
                cells.append(CellSpec(gid, metadata.kind(cell), cell.cell_type, cell.source,
                                      metadata.checksum(cell), metadata.points(cell)))
            notebooks[path.stem] = NotebookSpec(path.stem, cells, frozenset(ordinary))
        if not notebooks:
            raise CannotGrade(f"no release notebooks in {directory}: run `python3 tasks.py release` first")
        support = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix == ".py")
        return cls(directory, notebooks, support)

    def manual_cells(self) -> list[tuple[str, CellSpec]]:
        return [(nb.name, c) for nb in self.notebooks.values() for c in nb.cells if c.kind == "manual"]

    def test_cells(self) -> list[tuple[str, CellSpec]]:
        return [(nb.name, c) for nb in self.notebooks.values() for c in nb.cells if c.kind == "test"]

"""The one reader of nbgrader's cell metadata (the ``nbgrader`` dict of a cell's metadata: grade,
solution, locked, grade_id, points, checksum) and of the ``### BEGIN SOLUTION`` / ``### BEGIN HIDDEN
TESTS`` markers. Every other module of the grader asks here.

nbgrader's own predicates ``is_grade``, ``is_solution`` and ``is_locked`` (``nbgrader.utils``) are
re-exported for the trusted notebooks (source, release), read by nbformat. The accessors below
(``grade_id``, ``points``, ``checksum``) also take a hand-in's cells: a plain dict, a cell that is not
a dict, metadata that is not a dict; what is malformed reads as absent, never as an exception.
"""
from __future__ import annotations

import re

import nbformat
from nbgrader.utils import compute_checksum, is_grade, is_locked, is_solution

__all__ = ["MARKER", "is_grade", "is_solution", "is_locked", "nbgrader_metadata", "grade_id", "points",
           "checksum", "computed_checksum", "problem_of", "kind", "is_marker"]

# The lines nbgrader's ClearSolutions / ClearHiddenTests look for (course config: "BEGIN SOLUTION").
MARKER = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")


def nbgrader_metadata(cell) -> dict:
    """The cell's ``nbgrader`` metadata; ``{}`` when it has none or it is not a dict."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nb = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nb if isinstance(nb, dict) else {}


def grade_id(cell) -> str | None:
    """The cell's nbgrader ``grade_id``, or None (no nbgrader metadata, or a grade_id that is no string)."""
    gid = nbgrader_metadata(cell).get("grade_id")
    return gid if isinstance(gid, str) else None


def points(cell) -> float:
    """The points of a graded cell (0 for any other)."""
    return float(nbgrader_metadata(cell).get("points", 0) or 0)


def checksum(cell) -> str | None:
    """The checksum nbgrader recorded in the cell's metadata when it generated the release."""
    return nbgrader_metadata(cell).get("checksum")


def computed_checksum(cell: dict) -> str | None:
    """nbgrader's checksum of the cell as it is now (None for a cell too mangled to checksum)."""
    try:
        return compute_checksum(nbformat.from_dict(cell))
    except Exception:  # a cell mangled badly enough that nbgrader cannot checksum it
        return None


def problem_of(gid: str) -> int | None:
    """The problem number a grade_id belongs to (``p7_tests`` -> 7), None for ``setup``, ``intro``..."""
    m = re.match(r"p(\d+)_", gid)
    return int(m.group(1)) if m else None


def kind(cell) -> str:
    """What a release cell is to the grader: setup | answer | visible | test | manual | locked."""
    gid = grade_id(cell) or ""
    if is_solution(cell) and is_grade(cell):
        return "manual" if cell.cell_type == "markdown" else "answer"
    if is_solution(cell):
        return "answer"
    if is_grade(cell):
        # The visible tests (`pN_visible`) are graded cells worth 0 points, so that nbgrader's
        # Validate names the problems whose visible tests fail; they are not test cells with points.
        if gid.endswith("_visible") and not points(cell):
            return "visible"
        return "test"
    if cell.cell_type == "code" and gid.startswith("setup"):
        return "setup"
    return "locked"


def is_marker(line: str) -> bool:
    """A ``### BEGIN/END SOLUTION`` or ``### BEGIN/END HIDDEN TESTS`` line."""
    return bool(MARKER.match(line))

"""The source notebooks are the single home of the solutions. This module reads them from there
and builds submissions from the release, as a student would hand them in.

    make_submission(dest)                                      # the full solution
    make_submission(dest, solved=False)                        # the untouched release
    make_submission(dest, overrides={"p3_output_size": code})  # one answer cell replaced
    make_submission(dest, patches=[("p1_conv2d", "self.d_weights = ", "_ = ")])  # a bug planted
"""
from __future__ import annotations

import re
import shutil
import types
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "source" / "cnn2d"
RELEASE_DIR = ROOT / "release" / "cnn2d"
_MARKER = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def source_solutions(source_dir: Path = SOURCE_DIR) -> dict[str, dict[str, str]]:
    """notebook -> {grade_id: the answer as a student would write it} for every solution cell."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted(Path(source_dir).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = {}
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                lines = [ln for ln in cell.source.splitlines() if not _MARKER.match(ln)]
                cells[meta["grade_id"]] = "\n".join(lines)
        out[path.stem] = cells
    return out


def make_submission(dest: Path, *, solved: bool = True, overrides: dict[str, str] | None = None,
                    patches: list[tuple[str, str, str]] = (), release_dir: Path = RELEASE_DIR,
                    source_dir: Path = SOURCE_DIR) -> Path:
    """Write the release notebooks into ``dest`` with answers filled in. ``patches`` are
    (grade_id, old, new) text replacements on the answer; each ``old`` must occur."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    answers: dict[str, str] = {}
    if solved:
        for cells in source_solutions(source_dir).values():
            answers.update(cells)
    answers.update(overrides or {})
    for gid, old, new in patches:
        if old not in answers.get(gid, ""):
            raise ValueError(f"patch for {gid}: {old!r} does not occur in the solution")
        answers[gid] = answers[gid].replace(old, new)
    for path in sorted(Path(release_dir).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            gid = _grade_id(cell)
            if gid in answers and cell.metadata["nbgrader"].get("solution"):
                cell.source = answers[gid]
        nbformat.write(nb, dest / path.name)
    for extra in Path(release_dir).glob("*.py"):
        shutil.copy(extra, dest / extra.name)
    return dest


def solution_module(notebook: str = "01_scratch_cnn", source_dir: Path = SOURCE_DIR) -> types.ModuleType:
    """The setup and solution cells of a source notebook, run as a module (for benchmarks and tests)."""
    path = Path(source_dir) / f"{notebook}.ipynb"
    nb = nbformat.read(path, as_version=4)
    module = types.ModuleType(f"cnn2d_solution_{notebook}")
    module.__file__ = str(path)
    import sys

    sys.path.insert(0, str(source_dir))
    try:
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            gid = meta.get("grade_id", "")
            if cell.cell_type == "code" and (meta.get("solution") or (gid.startswith("setup") and meta.get("locked"))):
                lines = [ln for ln in cell.source.splitlines() if not _MARKER.match(ln) and not ln.lstrip().startswith("%")]
                exec(compile("\n".join(lines), f"<{notebook}:{gid}>", "exec"), module.__dict__)
    finally:
        sys.path.remove(str(source_dir))
    return module


# Examples for the README's main job: a full solution, the untouched release, and a submission
# with three typical mistakes (each a different problem, so the table shows where points go).
BUGGY_OVERRIDES = {
    "p3_output_size": "def calculate_output_size(N_in, P, F, S):\n    return (N_in + 2 * P - F) / S + 1\n",
    "p6_flatten": (
        "class Flatten:\n"
        "    def forward(self, x):\n"
        "        self.shape = x.shape\n"
        "        return np.moveaxis(x, 1, -1).reshape(x.shape[0], -1)   # channels last: reorders\n"
        "    def backward(self, d_out):\n"
        "        return d_out.reshape(self.shape)\n"),
    "p10_answers": (
        "conv_layer_answers = {\n"
        "    'a': {'output_shape': (142, 142, 6), 'parameters': 168},\n"
        "    'b': {'output_shape': (58, 58, 48), 'parameters': 31152},\n"
        "    'c': {'output_shape': (18, 18, 20), 'parameters': 1820},\n"
        "}\n"),
}


def build_examples(out: Path) -> dict[str, Path]:
    out = Path(out)
    if out.exists():
        shutil.rmtree(out / "submissions", ignore_errors=True)
    base = out / "submissions"
    return {
        "full-solution": make_submission(base / "full-solution"),
        "untouched-release": make_submission(base / "untouched-release", solved=False),
        "three-bugs": make_submission(base / "three-bugs", overrides=BUGGY_OVERRIDES),
    }

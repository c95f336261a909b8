"""The source notebooks are the single home of the solutions. This module reads them from there
and builds submissions from the release, as a student would hand them in.

    make_submission(dest)                                      # the full solution
    make_submission(dest, solved=False)                        # the untouched release
    make_submission(dest, overrides={"p3_output_size": code})  # one answer cell replaced
    make_submission(dest, patches=[("p1_conv2d", "self.d_weights = ", "_ = ")])  # a bug planted
"""
from __future__ import annotations

import shutil
import types
from pathlib import Path

import nbformat

from autograder.assignment import metadata
from autograder.course import RELEASE_DIR, SOURCE_DIR


# The written answers (Problems 9 and 11) of the example submissions. The source's manual cells hold
# the instructor's model answer and rubric, which must never reach a submission (the feedback page
# shows them under "Your answer"); these are short answers as a student might write them.
STUDENT_ANSWERS = {
    "p9_survey": (
        "AlexNet (2012) stacks five convolutional layers, starting with large 11×11 filters at stride 4, "
        "and three fully connected layers; it has about 60 million weights, almost all of them in the "
        "dense part at the end. It trained quickly thanks to ReLU, used dropout and lots of data "
        "augmentation against overfitting, and was split over two GPUs. It won ImageNet 2012 with "
        "roughly 15% top-5 error.\n\n"
        "VGG16 (2014) is twice as deep: 13 convolutions, every one of them 3×3 with stride 1, with a "
        "2×2 max-pool after each block, and again three dense layers, about 138 million weights in total. "
        "Two 3×3 layers cover a 5×5 patch with fewer weights, $2 \\cdot 9 = 18 < 25$ per channel pair. "
        "Its top-5 error was about half of AlexNet's (around 7%), but it needs far more memory and compute."
    ),
    "p11_survey": (
        "1. Stacking small filters gives the same view of the image as one big filter: two 3×3 layers "
        "see 5×5 pixels and three see 7×7. With C channels in and out, the stack of three needs fewer "
        "weights than one 7×7 layer, $3 \\cdot 9 C^2 = 27 C^2 < 49 C^2$, and it has a ReLU after every "
        "small layer, so the network becomes deeper and more non-linear for less cost.\n\n"
        "2. A 1×1 convolution mixes the channels at each pixel separately, like a small dense layer "
        "applied everywhere. Network in Network used it to put little MLPs inside the convolutions, and "
        "GoogLeNet's Inception blocks use it to shrink the number of channels before the expensive 3×3 "
        "and 5×5 filters: going from 192 down to 16 channels first cuts the work of a 5×5 layer with 32 "
        "outputs by about ten times."
    ),
}


def source_solutions(source_dir: Path = SOURCE_DIR) -> dict[str, dict[str, str]]:
    """notebook -> {grade_id: the answer as a student would write it} for every solution cell: the
    code of the source's solution cells, and for the written (markdown) answers ``STUDENT_ANSWERS``,
    never the source's model answer or rubric."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted(Path(source_dir).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = {}
        for cell in nb.cells:
            if not metadata.is_solution(cell):
                continue
            gid = metadata.grade_id(cell)
            if cell.cell_type != "code":
                if gid not in STUDENT_ANSWERS:
                    raise KeyError(f"{path.name}: no student-written answer for the manual cell {gid} "
                                   "in autograder.assignment.solutions.STUDENT_ANSWERS")
                cells[gid] = STUDENT_ANSWERS[gid]
                continue
            lines = [ln for ln in cell.source.splitlines() if not metadata.is_marker(ln)]
            cells[gid] = "\n".join(lines)
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
            gid = metadata.grade_id(cell)
            if gid in answers and metadata.is_solution(cell):
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
            gid = metadata.grade_id(cell) or ""
            if cell.cell_type == "code" and (metadata.is_solution(cell)
                                             or (gid.startswith("setup") and metadata.is_locked(cell))):
                lines = [ln for ln in cell.source.splitlines()
                         if not metadata.is_marker(ln) and not ln.lstrip().startswith("%")]
                exec(compile("\n".join(lines), f"<{notebook}:{gid}>", "exec"), module.__dict__)
    finally:
        sys.path.remove(str(source_dir))
    return module


# Examples for the README's main job: a full solution, the untouched release, and a submission
# with three typical mistakes, in three problems nothing else builds on (so the table shows
# exactly where the points go): average-pool backward through an equality mask (Problem 5),
# Keras models that forget the stride (Problem 3), and the seed's arithmetic slips (Problem 10).
BUGGY_OVERRIDES = {
    "p5_avgpool": """class AveragePool2D:
    def __init__(self, pool_size=2, stride=None):
        self.ph, self.pw = (pool_size, pool_size) if np.isscalar(pool_size) else tuple(pool_size)
        stride = (self.ph, self.pw) if stride is None else stride
        self.sh, self.sw = (stride, stride) if np.isscalar(stride) else tuple(stride)

    def forward(self, x):
        N, C, H, W = x.shape
        Ho, Wo = (H - self.ph) // self.sh + 1, (W - self.pw) // self.sw + 1
        out = np.zeros((N, C, Ho, Wo))
        for i in range(Ho):
            for j in range(Wo):
                win = x[:, :, i * self.sh:i * self.sh + self.ph, j * self.sw:j * self.sw + self.pw]
                out[:, :, i, j] = win.mean(axis=(2, 3))
        self.x, self.out = x, out
        return out

    def backward(self, d_out):
        dx = np.zeros(self.x.shape)
        for i in range(d_out.shape[2]):
            for j in range(d_out.shape[3]):
                rows = slice(i * self.sh, i * self.sh + self.ph)
                cols = slice(j * self.sw, j * self.sw + self.pw)
                # Bug: routes the gradient like max pooling, through an equality mask.
                mask = self.x[:, :, rows, cols] == self.out[:, :, i, j][:, :, None, None]
                dx[:, :, rows, cols] += mask * d_out[:, :, i, j][:, :, None, None]
        return dx
""",
    "p3_keras_models": """def build_padding_model(padding="valid", strides=1, batch_norm=False):
    model = keras.Sequential([keras.Input((28, 28, 1))])
    for _ in range(3):
        model.add(layers.Conv2D(32, 3, padding=padding, activation="relu"))  # Bug: strides forgotten
        if batch_norm:
            model.add(layers.BatchNormalization())
    model.add(layers.Flatten())
    model.add(layers.Dense(128, activation="relu"))
    model.add(layers.Dense(10, activation="softmax"))
    return model


def build_single_conv_model():
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(32, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
""",
    "p10_answers": """conv_layer_answers = {
    "a": {"output_shape": (142, 142, 6), "parameters": 168},
    "b": {"output_shape": (58, 58, 48), "parameters": 31152},
    "c": {"output_shape": (18, 18, 20), "parameters": 1820},
}
""",
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

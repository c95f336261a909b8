"""One home per fact: every time limit is stated in ``autograder/course.py``, and the notebooks'
text, ``--help``, docs/ and the checks say the same; the package's imports run one way, by stage
(docs/architecture.md), with no cycle."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from autograder import course
from autograder.__main__ import build_parser
from autograder.sandbox.limits import Limits

ROOT = course.ROOT
PACKAGE = ROOT / "autograder"

# Where a person reads a time limit: (file, a pattern whose one group is the number, the constant).
STATEMENTS = [
    ("source/cnn2d/01_scratch_cnn.ipynb", r"time limit of (\d+) s", "FIT_SECONDS"),
    ("release/cnn2d/01_scratch_cnn.ipynb", r"time limit of (\d+) s", "FIT_SECONDS"),
    ("source/cnn2d/01_scratch_cnn.ipynb", r"held-out images \(within (\d+) s of CPU", "PREDICT_SECONDS"),
    ("source/cnn2d/01_scratch_cnn.ipynb", r"against the (\d+) s budget", "FIT_SECONDS"),
    ("source/cnn2d/01_scratch_cnn.ipynb", r"FIT_BUDGET = (\d+) ", "FIT_SECONDS"),
    *[(f"{folder}/cnn2d/{nb}.ipynb", r"Each cell has\s+(\d+) s", "CELLS_SECONDS")
      for folder in ("source", "release") for nb in ("01_scratch_cnn", "02_keras", "03_theory")],
    ("source/cnn2d/01_scratch_cnn.ipynb", r"with (\d+) s for the cell", "CELLS_SECONDS"),
    ("docs/design.md", r"time limit of (\d+) s of the sandbox's CPU time", "FIT_SECONDS"),
    ("docs/security.md", r"per call into student code \| (\d+) s", "CALL_SECONDS"),
    ("docs/security.md", r"and per `predict` \| (\d+) s and \d+ s of CPU time", "FIT_SECONDS"),
    ("docs/security.md", r"and per `predict` \| \d+ s and (\d+) s of CPU time", "PREDICT_SECONDS"),
    ("docs/security.md", r"with a wall cap of (\d+) × that", "WALL_FACTOR"),
    ("docs/security.md", r"one top-level statement at a time \| (\d+) s", "CELLS_SECONDS"),
    ("docs/security.md", r"per submission \| (\d+) s", "SUBMISSION_SECONDS"),
    ("docs/security.md", r"CPU time \(sandbox lifetime\) \| (\d+) s", "CPU_SECONDS"),
    ("docs/hostile.md", r"by default: (\d+) s × \d+", "FIT_SECONDS"),
    ("README.md", r"Each cell has (\d+) s", "CELLS_SECONDS"),
    ("docs/hostile.md", r"by default: \d+ s × (\d+)", "WALL_FACTOR"),
]


def _text(path: Path) -> str:
    if path.suffix == ".ipynb":
        return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    return path.read_text()


@pytest.mark.parametrize("file,pattern,constant", STATEMENTS, ids=[f"{f}:{c}" for f, _, c in STATEMENTS])
def test_stated_time_limits_are_course_constants(file, pattern, constant):
    found = [float(m) for m in re.findall(pattern, _text(ROOT / file))]
    assert found, f"{file} no longer states {constant} as /{pattern}/: update STATEMENTS or the text"
    assert set(found) == {float(getattr(course, constant))}, \
        f"{file} states {found} s where course.{constant} is {getattr(course, constant)} s"


def test_notebook_shares_cover_the_release_and_add_up_to_the_submission():
    """Each notebook's sandbox has its own share of the submission's time; together exactly all of it."""
    from autograder.sandbox.limits import Budget
    assert set(course.NOTEBOOK_SHARES) == {p.stem for p in course.RELEASE_DIR.glob("*.ipynb")}
    assert sum(course.NOTEBOOK_SHARES.values()) == pytest.approx(1.0)
    limits = Limits(submission_timeout=100)
    assert [round(Budget.for_notebook(limits, nb).seconds) for nb in course.NOTEBOOK_SHARES] == [60, 30, 10]


def test_limits_take_their_defaults_from_course():
    limits = Limits()
    assert (limits.call_timeout, limits.exec_timeout, limits.start_timeout, limits.submission_timeout,
            limits.max_call_timeout, limits.cpu_seconds) == \
        (course.CALL_SECONDS, course.CELLS_SECONDS, course.START_SECONDS, course.SUBMISSION_SECONDS,
         course.TRAINING_CAP_SECONDS, course.CPU_SECONDS)


@pytest.mark.parametrize("command", ["grade", "batch"])
def test_help_states_the_limits_of_course(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    text = " ".join(sub.format_help().split())
    for phrase, value in [("one call into student code", course.CALL_SECONDS),
                          ("all calls of one submission, each notebook with its own share ("
                           + ", ".join(f"{nb[:2]} {share:.0%}" for nb, share in course.NOTEBOOK_SHARES.items()) + ")",
                           course.SUBMISSION_SECONDS),
                          ("the lines above it kept)", course.CELLS_SECONDS),
                          ("whole life (RLIMIT_CPU)", course.CPU_SECONDS)]:
        assert f"{phrase}: {value:g} s" in text, (phrase, text)


def test_checks_state_no_time_limit_of_their_own():
    """Problems 7 and 8 take their budgets from course.py; no literal 'N s' in any check's text."""
    for module in sorted(course.CHECKS_DIR.glob("*.py")):
        tree = ast.parse(module.read_text())
        literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        stated = [s for s in literals if re.search(r"\b\d+(\.\d+)? ?s\b(?!\w)", s)]
        assert not stated, f"{module.name} states a time in its own words: {stated}"
        assigned = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                    and isinstance(n.value, ast.Constant) for t in n.targets if isinstance(t, ast.Name)}
        for name in ("FIT_SECONDS", "PREDICT_SECONDS"):
            assert name not in assigned, f"{module.name} sets its own {name}: import it from autograder.course"


# ----------------------------------------------------------------------------- imports
STAGES = ["course", "sandbox", "assignment", "results", "checks", "grading", "nbgrader", "reports", "__main__"]


def _stage(module: str) -> str:
    """``sandbox`` for ``sandbox.host``; ``course`` for ``course``."""
    return module.split(".")[0]


def _exists(module: str) -> bool:
    path = ROOT / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports() -> dict[str, set[str]]:
    """autograder module -> the autograder modules it imports (anywhere in its body)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("autograder"):
                # `from package import module` imports the module; `from module import name`, the module
                found |= {f"{node.module}.{a.name}" if _exists(f"{node.module}.{a.name}") else node.module
                          for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("autograder")}
        # a package's __init__ runs before any of its modules anyway: an edge to an ancestor says nothing
        out[name] = {m for m in found if _exists(m) and m != name and not name.startswith(m + ".")}
    return out


def test_imports_follow_the_stages():
    later = []
    for module, imported in _imports().items():
        for other in imported:
            a, b = _stage(module.removeprefix("autograder.")), _stage(other.removeprefix("autograder."))
            if a in STAGES and b in STAGES and STAGES.index(b) > STAGES.index(a):
                later.append(f"{module} imports {other}")
    assert not later, "a stage imports a later one (docs/architecture.md):\n" + "\n".join(sorted(later))


def test_no_import_cycles():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_modules_outside_checks_are_small_and_say_their_job():
    for path in PACKAGE.rglob("*.py"):
        if "checks" in path.parts:
            continue
        text = path.read_text()
        # A prompt to look at a module's cohesion, not a rule to move code by (host.py passed 350 when
        # cells started running one statement at a time: that belongs with the cells).
        assert len(text.splitlines()) <= 400, f"{path.relative_to(ROOT)} has {len(text.splitlines())} lines"
        if text.strip():
            assert ast.get_docstring(ast.parse(text)), f"{path.relative_to(ROOT)} has no docstring stating its job"


def test_readme_states_the_similarity_threshold_of_the_code():
    from autograder.reports.similarity import THRESHOLD

    stated = re.findall(r"`--threshold` \(default ([\d.]+)", " ".join((ROOT / "README.md").read_text().split()))
    assert stated and {float(x) for x in stated} == {THRESHOLD}, (stated, THRESHOLD)


# ----------------------------------------------------------------------------- Problem 7's numbers
def _notebook_cells(path: Path) -> dict[str, str]:
    cells = json.loads(path.read_text())["cells"]
    return {c.get("id", ""): "".join(c["source"]) for c in cells}


@pytest.mark.parametrize("folder", ["source", "release"])
def test_problem_7_text_and_mirror_cell_state_the_grader_s_numbers(folder):
    """The Problem 7 statement and the cell that mirrors the graded run state the sample sizes, the
    accuracy bands and the retrain's cap of the grader: its data (grading/data.py) and its check."""
    import inspect

    from autograder.checks import check_p07_classifier as p7
    from autograder.grading.data import grading_data

    defaults = inspect.signature(grading_data).parameters
    n_train, n_heldout = defaults["n_train"].default, defaults["n_heldout"].default
    cells = _notebook_cells(ROOT / folder / "cnn2d" / "01_scratch_cnn.ipynb")
    statement = " ".join(cells["p7_statement"].split())
    bands = [(float(t), int(f) / 100) for t, f in re.findall(r"(\d\.\d\d) → (\d+)%", statement)]
    assert bands == [(t, f) for t, f in p7.BANDS], (bands, p7.BANDS)
    assert f"on {n_train:,} training images" in statement and f"predicts {n_heldout:,} held-out" in statement
    assert "at most half the points" in statement and p7.RETRAIN_CAP == 0.5, \
        "the notebook says 'at most half the points' after a retrain: update it with RETRAIN_CAP"
    mirror = cells["01-mirror"]
    tree = ast.parse(mirror)
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
    assert [tuple(b) for b in ast.literal_eval(assigned["BANDS"])] == list(p7.BANDS)
    assert ast.literal_eval(assigned["FIT_BUDGET"]) == course.FIT_SECONDS
    assert f"(2_000, 1_000) if FAST" not in mirror and f"else ({n_train:_}, {n_heldout:_})" in mirror
    assert "Scratch2dCNNClassifier(random_state=0).fit(" in mirror and "time.process_time()" in mirror
    text = " ".join(cells["01-mirror-text"].split())
    assert f"fitted on {n_train:,} training images" in text and f"on {n_heldout:,} test images" in text


def test_keras_intro_states_the_lenet_check_s_training_run():
    """02's intro says the hidden tests train LeNet 'for 2 epochs on 2,000 images': the training
    check's own name."""
    from autograder.checks import check_p08_lenet

    named = re.search(r"after (\d+ epochs on [\d,]+ images)", inspect_source(check_p08_lenet))
    for folder in ("source", "release"):
        intro = " ".join(_notebook_cells(ROOT / folder / "cnn2d" / "02_keras.ipynb")["intro"].split())
        stated = re.search(r"train your compiled model for (\d+ epochs on [\d,]+ images)", intro)
        assert named and stated and stated.group(1) == named.group(1), (named, stated)


def inspect_source(module) -> str:
    return Path(module.__file__).read_text()

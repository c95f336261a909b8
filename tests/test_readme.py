"""The README's commands, run exactly as written, in a fresh shell with only the set-up done.

Each fenced ``bash`` block of the README's instructor and student sections is read from README.md
itself and run line by line by ``bash`` in a person's environment: this machine's PATH without the
project's venv, a fresh HOME, and none of the variables a test harness might set (PYTHONPATH,
MNIST_PATH, CNN2D_*, VIRTUAL_ENV). The only substitution is ``<student>``, the placeholder the README
uses for a student's name. ``jupyter lab`` lines are the browser tests' (tests/test_browser.py).

The commands run in this checkout, as a person's would. What they leave behind (the gradebook,
the exchange, submitted/, autograded/, feedback/, graded/, the zip; all ignored by git) and the
release they regenerate are set aside before and put back after, so the checkout is as it was.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from autograder.course import ASSIGNMENT, ROOT
from autograder.assignment.solutions import make_submission

README = ROOT / "README.md"
HARNESS_VARIABLES = ("PYTHONPATH", "MNIST_PATH", "VIRTUAL_ENV", "PYTHONHOME")
pytestmark = pytest.mark.alone   # regenerates release/ in this checkout: tasks.py test runs it by itself


def readme_blocks(heading: str) -> list[str]:
    """The ``bash`` blocks under a README heading (up to the next heading of the same or a higher level)."""
    text = README.read_text()
    m = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.M)
    assert m, f"README has no heading {heading!r}"
    level = len(m.group(1))
    end = re.search(rf"^#{{1,{level}}} ", text[m.end():], re.M)
    section = text[m.end(): m.end() + end.start() if end else None]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def commands(block: str) -> list[str]:
    out = []
    for line in block.splitlines():
        line = line.split("  #")[0].strip()   # the README's trailing comments
        if line and not line.startswith("#"):
            out.append(line)
    return out


def person_env(home: Path) -> dict[str, str]:
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin
                           and not p.endswith("/.venv/bin"))
    env = {"HOME": str(home), "PATH": path, "LANG": "C.UTF-8", "USER": os.environ.get("USER", "root")}
    if os.environ.get("PYENV_ROOT"):   # this machine's python3 is pyenv's: a person's shell has it set
        env["PYENV_ROOT"] = os.environ["PYENV_ROOT"]
    assert not set(env) & set(HARNESS_VARIABLES)
    return env


class Shell:
    """One person's shell: every command runs with the set-up's activation, as in a terminal where
    ``source .venv/bin/activate`` was typed once (the set-up lines themselves run as they are)."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.cwd, self.env, self.log = cwd, env, []

    def run(self, command: str, cwd: Path | None = None, timeout: int = 1500, ok: bool = True):
        script = f"source {self.venv_activate()} >/dev/null 2>&1 || true\n{command}"
        if command.startswith(("python3 tasks.py", "source ")):
            script = command   # the set-up itself runs before anything is activated
        proc = subprocess.run(["bash", "-c", script], cwd=cwd or self.cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        self.log.append(f"$ {command}\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
        if ok:
            assert proc.returncode == 0, f"`{command}` exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def venv_activate(self) -> Path:
        return self.cwd / ".venv" / "bin" / "activate"


LEFT_BEHIND = ("gradebook.db", "exchange", "submitted", "autograded", "feedback", "graded", "autograder.zip", "final-grades.csv",
               f"release/{ASSIGNMENT}", "build/readme-students", "grade_on_slurm.py")


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """This checkout, with whatever the README's commands leave behind set aside and restored."""
    aside = tmp_path_factory.mktemp("set-aside")
    for name in LEFT_BEHIND:
        if (ROOT / name).exists():
            (aside / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(ROOT / name, aside / name)
    if (aside / "release" / ASSIGNMENT).exists():   # the release is committed: the commands start from it
        shutil.copytree(aside / "release" / ASSIGNMENT, ROOT / "release" / ASSIGNMENT)
    try:
        yield ROOT
    finally:
        for name in LEFT_BEHIND:
            target = ROOT / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            if (aside / name).exists():
                shutil.move(aside / name, target)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


def test_readme_instructor_commands_work_as_written(course, home, tmp_path):
    shell = Shell(course, person_env(home))
    setup = commands(readme_blocks("For instructors")[0])
    assert setup == ["python3 tasks.py setup", "source .venv/bin/activate"], setup
    shell.run("python3 tasks.py setup && source .venv/bin/activate && python -c 'import autograder'")

    nbgrader_block = commands(readme_blocks("Release, collect, grade with nbgrader")[0])
    release, publish, collect, autograde, feedback, lab = nbgrader_block
    assert lab.startswith("jupyter lab")
    shell.run(release)
    assert (course / "release" / ASSIGNMENT / "01_scratch_cnn.ipynb").is_file()
    shell.run(publish)

    # A student on the same machine: the course id and exchange root in ~/.jupyter, then fetch,
    # solve, submit with nbgrader's own commands (the Assignment List's buttons call the same code).
    exchange = course / "exchange"
    (home / ".jupyter").mkdir(exist_ok=True)
    (home / ".jupyter" / "nbgrader_config.py").write_text(
        f'c = get_config()\nc.CourseDirectory.course_id = "cnn2d-course"\nc.Exchange.root = "{exchange}"\n')
    student_dir = tmp_path / "student"
    student_dir.mkdir()
    shell.run(f"nbgrader fetch_assignment {ASSIGNMENT}", cwd=student_dir)
    fetched = student_dir / ASSIGNMENT
    assert (fetched / "01_scratch_cnn.ipynb").is_file()
    make_submission(fetched)   # the student's answers, written into the fetched notebooks
    shell.run(f"nbgrader submit {ASSIGNMENT}", cwd=student_dir)

    shell.run(collect)
    students = [p.name for p in (course / "submitted").iterdir()]
    assert len(students) == 1, students
    student = students[0]
    proc = shell.run(autograde)
    assert "has changed" not in proc.stdout + proc.stderr, "autograde warned about changed checksums"
    shell.run(feedback)
    assert list((course / "feedback" / student / ASSIGNMENT).glob("*.html"))

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        sub = gb.find_submission(ASSIGNMENT, student)
        assert sub.score == 86 and sub.max_score == 100, (sub.score, sub.max_score)

    sandbox_block = [c.replace("<student>", student) for c in commands(readme_blocks("Grade in the sandbox")[0])]
    grade_one, batch, report, export, data, help_ = sandbox_block
    shell.run(grade_one)
    result = json.loads((course / "graded" / student / "results.json").read_text())
    assert result["score"] == 86 and result["extra_data"]["graded"] is True
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:   # nbgrader autograde's record: gone
        gb.remove_submission(ASSIGNMENT, student)
    shell.run(batch)
    assert f"{student}," in (course / "graded" / "grades.csv").read_text()
    page = (course / "graded" / "report.html").read_text()
    (course / "graded" / "report.html").unlink()
    shell.run(report)
    assert (course / "graded" / "report.html").read_text().count("<img") == page.count("<img") > 0

    # Formgrader's part, through the gradebook it writes to: the batch recorded the autograded points,
    # the instructor gives Problems 9 and 11 their points by hand.
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        sub = gb.find_submission(ASSIGNMENT, student)
        assert sub.score == 86, sub.score
        manual = [g for nb in sub.notebooks for g in nb.grades if g.cell.cell_type == "markdown"]   # Problems 9, 11
        assert sorted(g.max_score for g in manual) == [7, 7], [(g.name, g.max_score) for g in manual]
        for g in manual:
            g.manual_score = 5
        gb.db.commit()
    shell.run(export)
    (row,) = list(csv.DictReader(open(course / "final-grades.csv")))
    assert float(row["total"]) == 96 and row["status"] == "graded", row
    proc = shell.run(data)
    assert "c.GradingData.mnist = 'auto'" in proc.stdout and "loads:" in proc.stdout
    proc = shell.run(help_)
    assert "--call-timeout" in proc.stdout

    (zip_command,) = commands(readme_blocks("Gradescope")[0])
    shell.run(zip_command)
    assert (course / "autograder.zip").is_file()


# Stand-ins for Slurm's sbatch and scancel (there is no Slurm here): sbatch runs the job script on this
# machine in a session of its own, whose id is the job id; scancel ends that session.
SBATCH = """#!/bin/bash
job="$(mktemp)"; cp "${@: -1}" "$job"
setsid bash "$job" >/dev/null 2>&1 </dev/null &
echo $! >> JOBS
echo "Submitted batch job $!"
"""
SCANCEL = """#!/bin/bash
for job in "$@"; do kill -TERM -- "-$job" 2>/dev/null; done
exit 0
"""


def test_readme_class_on_a_cluster_works_as_written(course, home, tmp_path):
    """The README's three ways to grade a class, as written: a LocalCluster; a scheduler and workers
    by hand (HOST: this machine); the Slurm script with dask-jobqueue (sbatch and scancel are the
    stand-ins above). Each grades the same nbgrader submitted/ folder with the same points."""
    import socket

    from autograder.assignment.solutions import source_solutions

    shell = Shell(course, person_env(home))
    section = README.read_text().split("### A class, from a laptop to a cluster", 1)[1].split("\n### ", 1)[0]
    laptop, by_hand = (commands(b) for b in readme_blocks("A class, from a laptop to a cluster"))
    (slurm_script,) = re.findall(r"```python\n(.*?)```", section, re.S)
    for name in ("submitted", "graded"):
        shutil.rmtree(course / name, ignore_errors=True)
    # Two hand-ins of 03_theory.ipynb alone (cheap to grade; the other notebooks are reported missing):
    # ann's untouched, bob's with Problem 10 answered.
    p10 = source_solutions()["03_theory"]["p10_answers"]
    for student, overrides in (("ann", {}), ("bob", {"p10_answers": p10})):
        folder = make_submission(course / "submitted" / student / ASSIGNMENT, solved=False, overrides=overrides)
        for nb in folder.glob("0[12]_*.ipynb"):
            nb.unlink()

    def graded() -> dict:
        with open(course / "graded" / "grades.csv", newline="") as f:
            table = {r["student"]: (r["autograded"], r["status"]) for r in csv.DictReader(f)}
        shutil.rmtree(course / "graded")
        return table

    (on_a_laptop,) = laptop
    shell.run(on_a_laptop)
    first = graded()
    assert set(first) == {"ann", "bob"} and float(first["bob"][0]) > float(first["ann"][0]) == 0, first

    scheduler, worker, batch = (c.replace("HOST", "127.0.0.1") for c in by_hand)
    sessions = [subprocess.Popen(["bash", "-c", f"source .venv/bin/activate && {c}"], cwd=course, env=shell.env,
                                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for c in (scheduler, worker)]
    jobs = tmp_path / "jobs.txt"
    try:
        for _ in range(600):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", 8786)) == 0:
                    break
            time.sleep(0.1)
        shell.run(batch)
        assert graded() == first

        fake = tmp_path / "slurm-bin"
        fake.mkdir()
        for name, text in (("sbatch", SBATCH.replace("JOBS", str(jobs))), ("scancel", SCANCEL)):
            (fake / name).write_text(text)
            (fake / name).chmod(0o755)
        (course / "grade_on_slurm.py").write_text(slurm_script)
        slurm = Shell(course, {**shell.env, "PATH": f"{fake}{os.pathsep}{shell.env['PATH']}"})
        slurm.run("python grade_on_slurm.py")
        assert graded() == first
        assert len(jobs.read_text().split()) == 4      # cluster.scale(jobs=4): four sbatch calls
    finally:
        for proc in sessions:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        for job in (jobs.read_text().split() if jobs.exists() else []):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(job), signal.SIGKILL)


def test_readme_student_self_check_works_as_written(course, home):
    """The student has the release folder and the course's requirements, not the grader: the
    release never mentions it, and nbgrader's validator names what is unfinished. The student's
    copies sit in the course copy (beside shared/, as on this machine a student's folder must be for
    the offline MNIST set; online, Keras downloads it)."""
    shell = Shell(course, person_env(home))
    tmp_path = course / "build" / "readme-students"
    release = course / "release" / ASSIGNMENT
    for nb in release.glob("*.ipynb"):
        assert "autograder" not in nb.read_text(), f"{nb.name} needs the grader package"
    blocks = readme_blocks("For students")
    assert any("pip install -r requirements.txt" in b for b in blocks)
    (validate,) = [c for b in blocks for c in commands(b) if c.startswith("nbgrader validate")]

    untouched = tmp_path / "untouched"
    shutil.copytree(release, untouched)
    proc = shell.run(validate, cwd=untouched, ok=False)
    assert "Success" not in proc.stdout
    for problem in (1, 2, 3, 4, 5, 6, 7, 8, 10):
        assert re.search(rf"# Problem {problem}\b", proc.stdout), f"Problem {problem} is not named:\n{proc.stdout[-3000:]}"

    solved = make_submission(tmp_path / "solved")
    proc = shell.run(validate, cwd=solved, ok=False)
    assert proc.stdout.count("Success! Your notebook passes all the tests.") == 3, proc.stdout[-3000:]

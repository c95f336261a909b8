"""Slow but correct is never zero, and never slow to grade: Problem 7's ladder
(autograder/checks/check_p07_classifier.py). A probe times fits on 2, 10, 32 and 128 images and projects
each step's fit; a classifier goes straight to the first step it can finish (step 1: 2,000 images;
2: 500 images, 1 epoch; 3: 100 images, 2 epochs; 4: the training logic on 10 images), each step
below the first capped, with a message that says which limit ran out or what the probe projected,
which step was used and its limits.

* In the sandbox: the source classifier on the catalogue's correct loop-based ``Conv2d`` (the course
  material's loops: step 2, its full fit never run) and on the per-pixel loop ``Conv2d`` (step 4); a
  ``fit`` that loops forever (0, the time-limit message); the fair-under-load test.
* In-process: the check module driven by stand-in students whose ``fit`` and ``predict`` spend a
  simulated CPU clock (the one the probe reads), and raise the sandbox's own ``SandboxTimeout`` past
  their limit: every step reached, the messages, the probe's decisions, a predict that runs out,
  a fit that sleeps. What happened is asserted from the fits made and ``Training.history``, never
  from elapsed time.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from autograder import course
from autograder.grading.grader import Grader
from autograder.grading.plugin import run_check_modules
from autograder.sandbox.errors import SandboxTimeout, StudentError
from autograder.sandbox.limits import Limits
from autograder.sandbox.proxy import Student
from tests.conftest import FIXTURES

with warnings.catch_warnings():  # its pytest.mark.check is registered by the checks' own conftest only
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    from autograder.checks import check_p07_classifier as p7

P1, P7 = "check_p01_conv2d.py", "check_p07_classifier.py"
# A catalogue Conv2d with the stub's rng= keyword (the source classifier passes it).
WITH_RNG = [("p1_conv2d", "stride=1, padding=0):", "stride=1, padding=0, *, rng=None):")]
HANG_CAP = 3.0
LAYERS = "If Problems 1, 4 and 6 pass, your layers are right but too slow: vectorise Conv2d"
TIME_LIMIT = r"Time limit: `Scratch2dCNNClassifier\.fit` did not finish within {:g} s"


def problem_7(checks) -> list:
    found = [c for c in checks if c.problem == 7]
    assert len(found) == 3, checks
    return found


def shown(checks) -> str:
    return "\n".join(f"[{c.score:g}/{c.max_score:g}] {c.name} ({c.status}): {c.output}" for c in checks)


def last_training() -> p7.Training:
    """The Training of the last grading run (the checks' module as pytest imported it)."""
    module = sys.modules.get("check_p07_classifier", p7)
    return module._CACHE["training"]


def assert_on_step(checks, step: int) -> float:
    """Every Problem 7 check is scored from that step, at most its cap, and says why and what to do."""
    rung = p7.RUNGS[step - 1]
    checks = problem_7(checks)
    for c in checks:
        assert 0 < c.score <= rung.cap * c.max_score + 1e-9, shown(checks)
        assert f"(step {step} of {len(p7.RUNGS)}: fit within {rung.fit_seconds:g} s of CPU time" in c.output, shown(checks)
        assert LAYERS in c.output and "your layers are correct" not in c.output, shown(checks)
    return sum(c.score for c in checks)


# ----------------------------------------------------------------------------- in the sandbox
def test_course_material_loops_go_straight_to_step_2(submission):
    """The catalogue's conv_loops (loops over output rows, columns and filters, the batch vectorised):
    its full fit is projected past 1.5 times its limit and never run (no sandbox restart at all);
    step 2 gives banded partial credit; Problem 1 keeps every point."""
    code = (FIXTURES / "catalogue" / "correct" / "conv_loops.py").read_text()
    path = submission(overrides={"p1_conv2d": code}, patches=WITH_RNG)
    result = Grader().grade(path, select=[P1, P7])
    score, possible, _ = result.by_problem()[1]
    assert score == possible > 0, shown(result.checks)
    t = last_training()
    assert t.rung.step == 2 and t.predicted == 1000, t.history
    assert [h.split(":")[0] for h in t.history] == ["probe", "step 1", "step 2"] and "skipped" in t.history[1], t.history
    total = assert_on_step(result.checks, 2)
    assert 0 < total <= 7.5
    for c in problem_7(result.checks):
        assert re.search(r"would take about \d+ s, more than 1\.5 times its 120 s limit: it was not run", c.output), c.output
    assert result.sandbox["01_scratch_cnn"]["restarts"] == 0, result.sandbox   # nothing ran out of time


def test_per_pixel_loops_reach_the_training_logic_step(submission):
    """A correct Conv2d that loops over images, filters, pixels and channels (about 1 s of CPU time
    per image and epoch): the probe's 10-image fit runs out of its 6 s, which with the 2-image one bounds
    every step but the last: steps 1 to 3 are skipped, and
    step 4 gives 20% of each check for training logic that works: slow but correct is never zero."""
    code = (FIXTURES / "catalogue" / "correct" / "conv_per_pixel.py").read_text()
    path = submission(overrides={"p1_conv2d": code}, patches=WITH_RNG)
    result = Grader().grade(path, select=[P7])
    t = last_training()
    assert t.rung.step == 4, t.history
    assert "and one on 10 images did not finish within 6 s" in t.history[0], t.history
    assert_on_step(result.checks, 4)
    for c in problem_7(result.checks):
        assert c.score == pytest.approx(p7.LOGIC_FRACTION * c.max_score), shown(result.checks)
    accuracy = next(c for c in result.checks if "held-out accuracy" in c.name)
    assert "The training logic works: the loss fell from" in accuracy.output, accuracy.output
    assert result.sandbox["01_scratch_cnn"]["restarts"] == 1, result.sandbox   # the probe's time-out only


def test_fit_that_never_returns_still_scores_0(submission):
    path = submission(patches=[("p7_classifier", '"""X: (N, 1, 28, 28) floats in [0, 1]; y: (N,) ints 0..9. Returns self."""',
                                '"""Never returns."""\n        while True:\n            pass')])
    result = Grader(limits=Limits(max_call_timeout=HANG_CAP)).grade(path, select=[P7])
    checks = problem_7(result.checks)
    for c in checks:
        assert c.score == 0 and re.search(TIME_LIMIT.format(HANG_CAP), c.output), shown(checks)
        assert "retrained" not in c.output, shown(checks)
    # The probe's 2-image fit runs out (nothing projected), then step 1, then only step 4: three time-outs.
    assert [h for h in last_training().history if "timed out" in h] == ["step 1: fit timed out", "step 4: fit timed out"]
    assert result.sandbox["01_scratch_cnn"]["restarts"] == 3, result.sandbox


def test_in_nbgrader_s_kernel_the_loops_take_the_same_step():
    """The nbgrader bridge (the student's code in this process, no sandbox): the probe reads this
    process's CPU time, so the course material's loops skip the full fit and score step 2 there too."""
    import json

    from autograder.assignment.solutions import solution_module
    from autograder.nbgrader.bridge import run_checks

    namespace = dict(vars(solution_module("01_scratch_cnn")))
    code = (FIXTURES / "catalogue" / "correct" / "conv_loops.py").read_text()
    exec(code.replace(*WITH_RNG[0][1:]), namespace)
    cells = json.loads((course.SOURCE_DIR / "01_scratch_cnn.ipynb").read_text())["cells"]
    classifier = next("".join(c["source"]) for c in cells
                      if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "p7_classifier")
    exec("\n".join(line for line in classifier.splitlines() if "### " not in line), namespace)  # its Conv2d: the loops
    points = run_checks(7, "01_scratch_cnn", namespace, verbose=False)
    t = last_training()
    assert t.rung.step == 2 and "step 1: skipped" in t.history[1], t.history
    assert 0 < float(points) <= 7.5


# ----------------------------------------------------------------------------- fair under load
FAIR_CAP = 24.0            # the fit's limit here (course.FIT_SECONDS capped): CPU seconds
BURN = FAIR_CAP / 3        # the slow classifier's fit burns this much CPU first, then trains as the solution does
SLOW = [("p7_classifier", '"""X: (N, 1, 28, 28) floats in [0, 1]; y: (N,) ints 0..9. Returns self."""',
         '"""X: (N, 1, 28, 28) floats in [0, 1]; y: (N,) ints 0..9. Returns self."""\n'
         f'        import time as _time\n        _start = _time.process_time()\n'
         f'        while _time.process_time() - _start < {BURN}:\n            pass')]


def test_a_busy_machine_does_not_change_a_grade(submission, solution_dir, tmp_path):
    """The full solution and a correct classifier whose fit takes a third of its limit alone, graded
    alone and then in a batch with --workers 2 beside two CPU hogs (each in its own session, as
    another user's job would be): every Problem 7 check gets the same points; nothing is retrained."""
    from autograder.grading.batch import grade_batch

    limits = Limits(max_call_timeout=FAIR_CAP)
    folder = tmp_path / "class"
    shutil.copytree(solution_dir, folder / "full")
    shutil.copytree(submission(patches=SLOW), folder / "slow")
    grader = Grader(limits=limits)
    alone = {name: grader.grade(folder / name, student=name, select=[P7]) for name in ("full", "slow")}
    hog = [sys.executable, "-c", "while True: pass"]
    hogs = [subprocess.Popen(hog, start_new_session=True) for _ in range(2)]
    try:
        busy = grade_batch(folder, tmp_path / "out", limits, progress=False, select=[P7], workers=2)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert busy.failures == {}
    under_load = {r.student: r for r in busy.results}
    for name in ("full", "slow"):
        assert [(c.name, c.score) for c in problem_7(under_load[name].checks)] == \
            [(c.name, c.score) for c in problem_7(alone[name].checks)], shown(under_load[name].checks)
        assert not any("retrained" in c.output for c in under_load[name].checks)
    assert sum(c.score for c in problem_7(alone["slow"].checks)) == sum(c.score for c in problem_7(alone["full"].checks)) == 15


# ----------------------------------------------------------------------------- in-process stand-ins
class Clock:
    """A simulated CPU clock: the stand-ins' fit and predict spend it, and run out of their limit
    as the sandbox's would (``SandboxTimeout``), or sleep past its wall cap (``stall``)."""

    def __init__(self, stall: bool = False):
        self.now, self.limit, self.stall = 0.0, None, stall

    def read(self) -> float:
        return self.now

    @contextlib.contextmanager
    def limited(self, seconds: float):
        old, self.limit = self.limit, seconds
        try:
            yield
        finally:
            self.limit = old

    def spend(self, seconds: float, what: str) -> None:
        if self.stall:
            raise SandboxTimeout(f"{what} did not finish within {4 * self.limit:.0f} s of wall time (it waited or slept: "
                                 "it used 0 s of CPU time): look for an infinite loop or a loop that is far too slow")
        if self.limit is not None and seconds > self.limit:
            self.now += self.limit
            raise SandboxTimeout(f"{what} did not finish within {self.limit:.0f} s of CPU time (its limit; a busy grading "
                                 "machine does not count): look for an infinite loop or a loop that is far too slow")
        self.now += seconds


class Standin(Student):
    """A student whose Scratch2dCNNClassifier is a plain class here (the checks see it as they see a
    handle), on a simulated CPU clock (None: no clock, as a student whose CPU time cannot be read)."""

    def __init__(self, cls, clock: Clock | None):
        self._cls, self._clock = cls, clock

    def _lookup(self, name: str):
        assert name == "Scratch2dCNNClassifier", name
        return self._cls

    def _time_limit(self, seconds: float):
        return self._clock.limited(seconds) if self._clock else contextlib.nullcontext()

    def _cpu_clock(self):
        return self._clock.read if self._clock else None


def centroids(clock: Clock | None, fit_cost: float = 0.001, predict_cost: float = 0.0001, takes_epochs: bool = True,
              learns: bool = True, loss_falls: bool = True, in_time: int | None = None, forever_from: int | None = None,
              fixed: float = 0.0):
    """A nearest-class-mean classifier (it learns at once) whose fit costs ``fixed`` plus ``fit_cost`` CPU
    seconds per image and epoch (``in_time``: a fit on more images runs out of time whatever its limit;
    ``forever_from``: from that many images on it never ends) and predict ``predict_cost`` per image.
    ``Cls.fits`` records each fit's images per class."""

    def spend(seconds: float, what: str):
        if clock is not None:
            clock.spend(seconds, what)

    class Centroids:
        fits: list = []

        def __init__(self, random_state=None, **params):
            if params and not takes_epochs:
                raise StudentError("TypeError", f"__init__() got an unexpected keyword argument {next(iter(params))!r}")
            self.epochs = params.get("epochs", 5)

        def fit(self, X, y):
            type(self).fits.append(np.bincount(y, minlength=10))
            cost = fixed + fit_cost * len(X) * self.epochs
            if (in_time is not None and len(X) > in_time) or (forever_from is not None and len(X) >= forever_from):
                cost = float("inf")
            if clock is None and cost == float("inf"):
                raise SandboxTimeout("`Scratch2dCNNClassifier.fit` did not finish within 120 s: look for an "
                                     "infinite loop or a loop that is far too slow")
            spend(cost, "`Scratch2dCNNClassifier.fit`")
            self.means_ = np.stack([X[y == c].reshape(-1, X[0].size).mean(axis=0) for c in range(10)])
            self.loss_history_ = [2.3 - 0.1 * e if loss_falls else 2.3 for e in range(self.epochs)]
            self.accuracy_history_ = [0.8] * self.epochs
            return self

        def predict(self, X):
            spend(predict_cost * len(X), "`Scratch2dCNNClassifier.predict`")
            if not learns:
                return np.zeros(len(X), np.int64)
            flat = X.reshape(len(X), -1)
            return ((flat[:, None, :] - self.means_[None]) ** 2).sum(axis=2).argmin(axis=1)

    return Centroids


def grade(cls, clock: Clock | None):
    results, _ = run_check_modules(lambda notebook: Standin(cls, clock), [P7], capture="sys")
    return problem_7(results), last_training()


def sizes(cls) -> list[int]:
    return [int(f.sum()) for f in cls.fits]


def test_a_fast_classifier_is_probed_then_trained_on_step_1():
    clock = Clock()
    cls = centroids(clock)
    checks, t = grade(cls, clock)
    assert sizes(cls) == [2, 10, 32, 128, 2000] and t.rung.step == 1 and t.predicted == 1000
    assert not any("retrain" in c.output or "step" in c.output for c in checks), shown(checks)
    contract, histories = (c for c in checks if "held-out accuracy" not in c.name)
    assert contract.score == contract.max_score and histories.score == histories.max_score and not contract.output


def test_course_material_speed_skips_the_full_fit():
    """0.025 s per image and epoch (the course material's loops in the sandbox): the full fit would
    take 250 s, more than 1.5 x 120 s, so it is never run; step 2 on 500 balanced images, 1 epoch."""
    clock = Clock()
    cls = centroids(clock, fit_cost=0.025, predict_cost=0.0055)
    checks, t = grade(cls, clock)
    assert sizes(cls) == [2, 10, 32, 128, 500] and list(cls.fits[-1]) == [50] * 10
    assert t.rung.step == 2 and t.predicted == 1000
    assert_on_step(checks, 2)
    accuracy = next(c for c in checks if "held-out accuracy" in c.name)
    assert re.search(r"after the reduced training \(step 2, 1,000 held-out images\): \d+% of the points \(at most 50%, "
                     r"from 0\.65; bands", accuracy.output), accuracy.output
    assert "so its fit on 2,000 images (5 epochs) would take about 250 s, more than 1.5 times its 120 s limit: it was not run" \
        in accuracy.output, accuracy.output
    assert all("Passed on the reduced training" in c.output for c in checks if c is not accuracy)


def test_a_fit_just_within_the_margin_is_not_cut_short():
    """A projection of 1.4 times the limit: the full fit is run, and it finishes (no point lost)."""
    clock = Clock()
    cls = centroids(clock, fit_cost=0.9 * p7.FIT_SECONDS / (2000 * 5))
    checks, t = grade(cls, clock)
    assert sizes(cls)[-1] == 2000 and t.rung.step == 1
    assert all("step" not in c.output for c in checks)


def test_naive_loop_speed_reaches_step_3_and_predicts_what_its_budget_allows():
    """0.24 s per image and epoch, 0.087 s per predicted image (CS231n's naive loops): the probe's
    32-image fit runs out of its 6 s, a lower bound with the 10-image one (2.4 s): steps 1 and 2 cannot
    finish; step 3 (100 images, 2 epochs) is run; predict runs on the held-out images that fit in its
    15 s, and the message says how many."""
    clock = Clock()
    cls = centroids(clock, fit_cost=0.24, predict_cost=0.087)
    checks, t = grade(cls, clock)
    assert sizes(cls) == [2, 10, 32, 100] and t.rung.step == 3
    assert p7.PREDICT_FIRST < t.predicted < 1000
    assert t.predicted * 0.087 <= p7.RUNGS[2].predict_seconds
    assert_on_step(checks, 3)
    accuracy = next(c for c in checks if "held-out accuracy" in c.name)
    assert f"then predict on {t.predicted:,} held-out images within 15 s" in accuracy.output, accuracy.output
    assert ("a fit of your classifier on 2 images and 10 images (1 epoch) took 0.5 s and 2.4 s of CPU time, and one on "
            "32 images did not finish within 6 s, so its fit on 2,000 images (5 epochs) would take more than") in accuracy.output


def test_a_fit_with_a_large_fixed_cost_is_not_cut_short():
    """8 s of CPU before any training (the fair-under-load test's classifier): even the 2-image probe
    runs out, so nothing is projected and step 1 is run, and finishes: every point."""
    clock = Clock()
    cls = centroids(clock, fixed=8.0)
    checks, t = grade(cls, clock)
    assert sizes(cls) == [2, 2000] and t.rung.step == 1, t.history
    assert all(c.score == c.max_score or "held-out accuracy" in c.name for c in checks), shown(checks)
    assert not any("step" in c.output for c in checks), shown(checks)


def test_the_slowest_correct_classifier_gets_the_training_logic_step():
    clock = Clock()
    cls = centroids(clock, fit_cost=1.2, predict_cost=0.55)
    checks, t = grade(cls, clock)
    assert sizes(cls) == [2, 10, 10] and t.rung.step == 4
    for c in checks:
        assert c.score == pytest.approx(p7.LOGIC_FRACTION * c.max_score), shown(checks)
    assert "on this last step each check gives 20% of its points if the training logic works" in checks[0].output


def test_training_logic_that_does_not_learn_scores_0_on_step_4():
    clock = Clock()
    cls = centroids(clock, fit_cost=1.2, predict_cost=0.55, loss_falls=False)
    checks, t = grade(cls, clock)
    assert t.rung.step == 4
    for c in checks:
        assert c.score == 0 and "The loss did not fall while training 3 epochs on 10 images" in c.output, shown(checks)
        assert "does not pass this check" in c.output and LAYERS not in c.output, shown(checks)


def test_a_classifier_that_fits_none_of_its_training_images_scores_0_on_step_4():
    clock = Clock()
    checks, t = grade(centroids(clock, fit_cost=1.2, predict_cost=0.55, learns=False), clock)
    assert t.rung.step == 4
    for c in checks:
        assert c.score == 0 and "predict labels only 10% of those same images right" in c.output, shown(checks)


def test_a_predict_that_runs_out_on_step_1_is_named_and_retrained():
    """The fit finishes, but predict on the 1,000 held-out images runs out of its 30 s: the step was
    chosen by the projection, so the classifier goes straight to step 4; the message names predict."""
    clock = Clock()
    cls = centroids(clock, predict_cost=0.05)
    checks, t = grade(cls, clock)
    assert sizes(cls) == [2, 10, 32, 128, 2000, 10] and t.rung.step == 4, t.history
    assert "step 1: predict timed out" in t.history
    assert all("predict on the 1,000 held-out images did not finish within 30 s of CPU time" in c.output for c in checks)


def test_without_a_clock_a_slow_fit_steps_down_by_time_outs():
    """No CPU clock (nothing to project from): the full fit runs out, then step 2 is tried, as before."""
    cls = centroids(None, in_time=p7.RETRAIN_IMAGES)
    checks, t = grade(cls, None)
    assert sizes(cls) == [2000, 500] and t.rung.step == 2
    assert_on_step(checks, 2)
    assert all("its fit on 2,000 images did not finish within 120 s" in c.output for c in checks), shown(checks)


def test_a_constructor_without_epochs_is_retrained_with_its_default():
    clock = Clock()
    cls = centroids(clock, fit_cost=0.015, takes_epochs=False)   # 150 s for the full fit: within the margin, run
    checks, t = grade(cls, clock)
    assert sizes(cls) == [2, 10, 32, 128, 2000, 500] and t.rung.step == 2, t.history
    assert all(f"retrained on {p7.RETRAIN_IMAGES:,} images (50 of each class) with your default epochs" in c.output
               for c in checks), shown(checks)


def test_a_retrained_classifier_that_does_not_learn_scores_0_and_says_why():
    clock = Clock()
    for c in grade(centroids(clock, fit_cost=0.025, learns=False), clock)[0]:
        assert c.score == 0 and re.search(r"Held-out accuracy is 0\.\d+ \(chance is 0\.10\)", c.output), c.output
        assert "retrained on" in c.output and "does not pass this check" in c.output, c.output
        assert LAYERS not in c.output, c.output


def test_a_fit_that_sleeps_ends_the_ladder_at_the_probe():
    clock = Clock(stall=True)
    cls = centroids(clock)
    checks, t = grade(cls, clock)
    assert sizes(cls) == [2]
    for c in checks:
        assert c.score == 0 and "of wall time (it waited or slept" in c.output and "retrained" not in c.output, shown(checks)


def test_a_fit_that_never_ends_tries_only_the_last_step():
    """Even the probe's 2-image fit runs out: nothing is projected, step 1 runs out, then only step 4
    is tried, and runs out too: 0, with the first time-out as the message; never all four steps."""
    clock = Clock()
    cls = centroids(clock, forever_from=1)
    checks, t = grade(cls, clock)
    assert sizes(cls) == [2, 2000, 10], t.history
    for c in checks:
        assert c.score == 0 and re.search(TIME_LIMIT.format(120), c.output) and "retrained" not in c.output, shown(checks)


def test_after_two_time_outs_only_the_last_step_is_tried():
    """A full fit projected at 1.25 times its limit is run and runs out; step 2, which the projection
    allows, never ends: the classifier goes straight to step 4 (never through all four steps), whose
    message names both time-outs."""
    clock = Clock()
    cls = centroids(clock, fit_cost=0.015, forever_from=500)
    checks, t = grade(cls, clock)
    assert sizes(cls) == [2, 10, 32, 128, 2000, 500, 10] and t.rung.step == 4, t.history
    accuracy = next(c for c in checks if "held-out accuracy" in c.name)
    assert ("its fit on 2,000 images did not finish within 120 s of CPU time; then its fit on step 2 (500 images) "
            "did not finish within 60 s of CPU time") in accuracy.output, accuracy.output


def test_the_steps_shrink_and_their_bands_end_at_their_gates_under_their_caps():
    assert [r.step for r in p7.RUNGS] == [1, 2, 3, 4]
    assert p7.RUNGS[0].images == 2000 and p7.RUNGS[0].fit_seconds == p7.FIT_SECONDS and p7.RUNGS[0].bands == p7.BANDS
    assert p7.RUNGS[0].predict_images == 1000 and p7.RUNGS[0].predict_seconds == p7.PREDICT_SECONDS
    work = [r.images * (r.epochs or 1) for r in p7.RUNGS[1:]]
    assert work == sorted(work, reverse=True)
    caps = [r.cap for r in p7.RUNGS]
    assert caps == sorted(caps, reverse=True) and caps[0] == 1 and caps[1] <= 0.5 and caps[-1] == p7.LOGIC_FRACTION
    for rung in p7.RUNGS[:-1]:
        thresholds, fractions = zip(*rung.bands)
        assert fractions[0] == rung.cap and list(thresholds) == sorted(thresholds, reverse=True)
        assert list(fractions) == sorted(fractions, reverse=True)
    assert p7.RUNGS[1].gate == p7.GATE and p7.MARGIN >= 1.5

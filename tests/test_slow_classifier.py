"""Slow but correct is not zero: a Problem 7 classifier whose ``fit`` runs out of time is retrained on
a small budget (``RETRAIN_IMAGES`` images, ``RETRAIN_EPOCHS`` epoch) and gets banded partial credit,
capped at ``RETRAIN_CAP`` of each check, with a message that says why; one that never finishes keeps
the time-limit message and 0 (autograder/checks/check_p07_classifier.py).

* In the sandbox: the source classifier on a correct loop-based ``Conv2d`` (the catalogue's
  ``conv_loops``), and the source classifier with a ``fit`` that loops forever. The graders cap every
  call's limit with a small ``max_call_timeout``, which caps the fit's limit (``course.FIT_SECONDS``)
  too: the full fit times out after ``LOOPS_CAP`` seconds and the retrain runs under the same cap.
* In-process: the check module driven by stand-in students whose ``fit`` raises the sandbox's own
  ``SandboxTimeout`` past a number of images (no sandbox, no training): the retrain's sample, the
  constructor without ``epochs``, the bands and every message.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

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
# The catalogue's loop-based Conv2d, with the stub's rng= keyword (the source classifier passes it):
# about 14 s for the retrain's fit (500 images, 1 epoch) and 10 s for predict here; the full fit is 20 times the work.
LOOPS_WITH_RNG = [("p1_conv2d", "stride=1, padding=0):", "stride=1, padding=0, *, rng=None):"),
                  ("p1_conv2d", "np.random.randn(out_channels, in_channels, kernel_size, kernel_size)",
                   "(np.random if rng is None else rng).standard_normal((out_channels, in_channels, kernel_size, kernel_size))")]
LOOPS_CAP = 30.0
HANG_CAP = 3.0
RETRAINED = (f"so it was retrained on {p7.RETRAIN_IMAGES:,} images for {p7.RETRAIN_EPOCHS} epoch: your layers "
             "are correct but too slow; vectorise Conv2d and the pooling layers (see the notebook's note on vectorising)")
TIME_LIMIT = r"Time limit: `Scratch2dCNNClassifier\.fit` did not finish within {:g} s"


def problem_7(checks) -> list:
    found = [c for c in checks if c.problem == 7]
    assert len(found) == 3, checks
    return found


def shown(checks) -> str:
    return "\n".join(f"[{c.score:g}/{c.max_score:g}] {c.name} ({c.status}): {c.output}" for c in checks)


def assert_retrained(checks, sentence: str = RETRAINED) -> float:
    """Every Problem 7 check is scored from the retrain, at most RETRAIN_CAP of it, and says why."""
    checks = problem_7(checks)
    for c in checks:
        assert 0 < c.score <= p7.RETRAIN_CAP * c.max_score, shown(checks)
        assert sentence in c.output, shown(checks)
    return sum(c.score for c in checks)


# ----------------------------------------------------------------------------- in the sandbox
def test_loop_based_layers_are_retrained_and_get_partial_credit(submission):
    code = (FIXTURES / "catalogue" / "correct" / "conv_loops.py").read_text()
    path = submission(overrides={"p1_conv2d": code}, patches=LOOPS_WITH_RNG)
    result = Grader(limits=Limits(max_call_timeout=LOOPS_CAP)).grade(path, select=[P1, P7])
    score, possible, _ = result.by_problem()[1]
    assert score == possible > 0, shown(result.checks)
    total = assert_retrained(result.checks)
    assert 0 < total < 15
    for c in problem_7(result.checks):      # the limit it ran out of, as it applied here (capped)
        assert f"did not finish training within {LOOPS_CAP:g} s of CPU time, so it was retrained" in c.output, c.output
    box = result.sandbox["01_scratch_cnn"]
    assert box["restarts"] == 1 and "Scratch2dCNNClassifier.fit" in box["failures"][0], box  # the full fit timed out


def test_fit_that_never_returns_still_scores_0(submission):
    path = submission(patches=[("p7_classifier", '"""X: (N, 1, 28, 28) floats in [0, 1]; y: (N,) ints 0..9. Returns self."""',
                                '"""Never returns."""\n        while True:\n            pass')])
    result = Grader(limits=Limits(max_call_timeout=HANG_CAP)).grade(path, select=[P7])
    checks = problem_7(result.checks)
    for c in checks:
        assert c.score == 0 and re.search(TIME_LIMIT.format(HANG_CAP), c.output), shown(checks)
        assert "retrained" not in c.output, shown(checks)
    assert result.sandbox["01_scratch_cnn"]["restarts"] == 2  # the full fit and the retrain both timed out


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
class Standin(Student):
    """A student whose Scratch2dCNNClassifier is a plain class here (the checks see it as they see a handle)."""

    def __init__(self, cls):
        self._cls = cls

    def _lookup(self, name: str):
        assert name == "Scratch2dCNNClassifier", name
        return self._cls


def centroids(in_time: int | None = None, takes_epochs: bool = True, learns: bool = True):
    """A nearest-class-mean classifier (it learns at once); ``fit`` on more than ``in_time`` images
    stands for one that runs out of time. ``Cls.fits`` records each fit's images per class."""

    class Centroids:
        fits: list = []

        def __init__(self, random_state=None, **params):
            if params and not takes_epochs:
                raise StudentError("TypeError", f"__init__() got an unexpected keyword argument {next(iter(params))!r}")
            self.epochs = params.get("epochs", 5)

        def fit(self, X, y):
            type(self).fits.append(np.bincount(y, minlength=10))
            if in_time is not None and len(X) > in_time:
                raise SandboxTimeout("`Scratch2dCNNClassifier.fit` did not finish within 120 s: look for an "
                                     "infinite loop or a loop that is far too slow")
            self.means_ = np.stack([X[y == c].reshape(-1, X[0].size).mean(axis=0) for c in range(10)])
            self.loss_history_ = [1.0] * self.epochs
            self.accuracy_history_ = [0.8] * self.epochs
            return self

        def predict(self, X):
            if not learns:
                return np.zeros(len(X), np.int64)
            flat = X.reshape(len(X), -1)
            return ((flat[:, None, :] - self.means_[None]) ** 2).sum(axis=2).argmin(axis=1)

    return Centroids


def grade(cls):
    results, _ = run_check_modules(lambda notebook: Standin(cls), [P7], capture="sys")
    return problem_7(results)


def test_a_slow_fit_is_retrained_on_a_balanced_sample():
    cls = centroids(in_time=p7.RETRAIN_IMAGES)
    checks = grade(cls)
    assert_retrained(checks)
    full, retrain = cls.fits
    assert full.sum() == 2000 and list(retrain) == [p7.RETRAIN_IMAGES // 10] * 10
    accuracy = next(c for c in checks if "held-out accuracy" in c.name)
    assert re.search(r"after the reduced training: \d+% of the points \(at most 50%, from 0\.\d\d; bands", accuracy.output)
    assert all("Passed on the reduced training" in c.output for c in checks if c is not accuracy)


def test_a_constructor_without_epochs_is_retrained_with_its_default():
    assert_retrained(grade(centroids(in_time=p7.RETRAIN_IMAGES, takes_epochs=False)),
                     f"so it was retrained on {p7.RETRAIN_IMAGES:,} images with your default epochs")


def test_a_retrained_classifier_that_does_not_learn_scores_0_and_says_why():
    for c in grade(centroids(in_time=p7.RETRAIN_IMAGES, learns=False)):
        assert c.score == 0 and re.search(r"Held-out accuracy is 0\.\d+ \(chance is 0\.10\)", c.output), c.output
        assert "so it was retrained on" in c.output and "does not pass this check" in c.output, c.output


def test_a_fit_that_fails_the_small_budget_too_keeps_the_time_limit_message():
    cls = centroids(in_time=p7.RETRAIN_IMAGES // 2)
    checks = grade(cls)
    assert len(cls.fits) == 2
    for c in checks:
        assert c.score == 0 and re.search(TIME_LIMIT.format(120), c.output) and "retrained" not in c.output, shown(checks)


def test_a_fit_in_time_is_never_retrained():
    cls = centroids()
    checks = grade(cls)
    assert len(cls.fits) == 1
    assert not any("retrain" in c.output for c in checks), shown(checks)
    contract, histories = (c for c in checks if "held-out accuracy" not in c.name)
    assert contract.score == contract.max_score and histories.score == histories.max_score and not contract.output


def test_retrain_bands_end_at_the_gate_under_the_cap():
    thresholds, fractions = zip(*p7.RETRAIN_BANDS)
    assert fractions[0] == p7.RETRAIN_CAP < 1 and thresholds[-1] == p7.GATE
    assert list(thresholds) == sorted(thresholds, reverse=True) and list(fractions) == sorted(fractions, reverse=True)

"""Problem 7 (15 points): Scratch2dCNNClassifier trained on harness data, scored on held-out images.

The classifier is trained ONCE per grading run (the result is cached for the pytest session, see
``training``), on the first step of a ladder that its speed allows. The held-out labels never leave
this process; the accuracy is computed here.

The ladder (``RUNGS``; the limits are CPU seconds of the sandbox, so a busy grading machine costs
nothing; the first step's are ``course.FIT_SECONDS`` and ``course.PREDICT_SECONDS``):

    step  training images         epochs            fit, predict limits        predict on                each check
    1     2,000 (the sample)      yours (default)   FIT_, PREDICT_SECONDS      1,000 held-out            full points
    2     500 (50 per class)      1                 LADDER_SECONDS[2]          up to 1,000 held-out      at most 50%
    3     100 (10 per class)      2                 LADDER_SECONDS[3]          up to 1,000 held-out      at most 35%
    4     10 (1 per class)        3                 LADDER_SECONDS[4]          its 10 training images    20% if the training logic works

(all in ``autograder/course.py``, the one home of every time limit)

``Scratch2dCNNClassifier(random_state=0, epochs=...)`` (``epochs=`` left out on step 1, and on every
step if the constructor does not take it). On steps 2 and 3 ``predict`` runs on as many held-out
images as the step's predict limit allows: first on ``PREDICT_FIRST`` images, whose CPU time says how
many more fit in the rest of the limit (a predict that cannot run on all 1,000 is scored on the
first ones; the message says how many). Step 4 checks the training logic only: the loss falls over
its epochs (``loss_history_``) and ``predict`` gives labels 0..9 for its training images.

Seeing slowness early (``probe``): before step 1, the classifier is fitted for one epoch on 2, 10, 32
and 128 images of the training sample (``PROBE_IMAGES``), each within ``course.PROBE_SECONDS`` of CPU
time and each only while the fit before took less than half of that, and the sandbox's CPU time of
each fit is read. A fixed cost plus a cost per image and epoch, fitted to the two largest fits,
projects each step's fit (its images times its epochs; step 1 with the classifier's own ``epochs``):
a step is skipped only when that estimate is more than ``MARGIN`` (1.5) times its fit limit, so a fit
that would have finished is cut short only if the estimate is wrong by that factor (a classifier
that stops early, well before its ``epochs``, could be). When a probe runs out of time after a
first one finished, the two give a lower bound on the cost per image (f + n1 p = c1, f + n2 p > PROBE_SECONDS),
and a step is skipped when its bound is over its limit itself (it cannot finish). When even the
2-image probe runs out (a large fixed cost, or a very slow fit), nothing is projected: step 1 is
tried, then step 4. A step whose fit or predict runs out of time anyway sends the classifier down
the ladder: straight to step 4 when the estimate said the step fits within its limit (such a
classifier does not scale like its probe: it may never finish), else to the next step that may
fit, and after a second time-out straight to step 4. A fit that waits or sleeps (its time limit ends
on the wall cap with almost no CPU time used) ends the ladder at once, with that time-out as its
message and 0. So Problem 7 uses at most the probes, step 1 and step 4 in CPU time (with the
course's limits about 220 CPU seconds) for a classifier that never finishes or does not scale like
its probe, and at most the probes and steps 1, 2 and 4 (about 300 CPU seconds) in the worst case
(step 1 ran out within its margin, step 2, which its projection allowed, too); a fit that sleeps
from the start costs one probe's wall cap (``course.WALL_FACTOR`` times ``PROBE_SECONDS``). (A full
fit that sleeps after quick probes still runs to the sandbox's wall cap for step 1,
``course.WALL_FACTOR`` times ``FIT_SECONDS``, then ends the ladder.)

Every point of this problem is gated on a held-out accuracy clearly above chance (>= ``GATE``,
0.30; 0.20 on step 3), so a constant or random predictor scores 0 throughout. Accuracy bands of step 1
(fraction of the 11 points):

    >= 0.90: 1.0    >= 0.85: 0.85    >= 0.80: 0.7    >= 0.70: 0.5    >= 0.50: 0.3    >= 0.30: 0.1
    below 0.30: 0 (chance is 0.10)

A small from-scratch CNN (a few 3x3 filters, max-pool, one dense layer, softmax, SGD) reaches
about 0.9 on these images within the budget; the lower bands reward classifiers that learn but
are under-trained or mis-tuned.

Step 2 (fraction of the 11 points):

    >= 0.65: 0.5    >= 0.55: 0.4    >= 0.45: 0.3    >= 0.35: 0.2    >= 0.30: 0.1    below 0.30: 0

At this budget (500 images, 1 epoch) the source classifier reaches 0.67 (0.50 to 0.78 over
random states 0 to 5, 0.69 on average; 0.96 after the full fit), the catalogue's correct variants
0.65 and 0.72: the top band is about what a good classifier learns from so little.

Step 3 (100 images, 2 epochs; the source classifier: 0.28 to 0.50 over random states 0 to 3):

    >= 0.45: 0.35   >= 0.35: 0.3    >= 0.25: 0.25   >= 0.20: 0.2    below 0.20: 0

Step 4 gives ``LOGIC_FRACTION`` (0.2) of each check when the loss falls (below its start, or below its
peak after a first step that overshoots), the labels are valid and at
least ``LOGIC_GATE`` (3 of the 10) of its training images are predicted right (the source classifier,
random states 0 to 3: the loss falls every time, and it gets 5 to 9 of the 10 right).
Every message of a step below the first says which limit ran out (fit or predict) or what the
probe projected, which step was used and its limits, and that the layers are right but slow only if
Problems 1, 4 and 6 pass (Problem 7 alone cannot tell).
"""
from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pytest

from autograder.checks.assertions import as_array, require, short, type_name
from autograder.course import FIT_SECONDS, LADDER_SECONDS, PREDICT_SECONDS, PROBE_SECONDS
from autograder.sandbox.errors import SandboxTimeout, StudentError
from autograder.sandbox.proxy import LocalStudent, time_limit

PROBLEM = 7
NOTEBOOK = "01_scratch_cnn"

GATE = 0.30
BANDS = ((0.90, 1.0), (0.85, 0.85), (0.80, 0.7), (0.70, 0.5), (0.50, 0.3), (0.30, 0.1))


@dataclass(frozen=True)
class Rung:
    """One step of the ladder (see the module's docstring)."""

    step: int
    images: int                  # training images: all of the sample on step 1, else as many per class
    epochs: int | None           # None: the classifier's own default (step 1)
    fit_seconds: float           # CPU seconds of the sandbox for fit
    predict_images: int          # the most held-out images predicted (step 4: its training images)
    predict_seconds: float       # CPU seconds for predict (all of its calls together)
    cap: float                   # the most each check gives on this step
    bands: tuple = ()            # (accuracy threshold, fraction); () on step 4 (the training logic only)

    @property
    def gate(self) -> float:
        return self.bands[-1][0] if self.bands else 0.0


LOGIC_FRACTION = 0.2
LOGIC_GATE = 0.3             # step 4: the share of its own 10 training images predict must get right
RUNGS = (
    Rung(1, 2000, None, FIT_SECONDS, 1000, PREDICT_SECONDS, 1.0, BANDS),
    Rung(2, 500, 1, LADDER_SECONDS[2][0], 1000, LADDER_SECONDS[2][1], 0.5,
         ((0.65, 0.5), (0.55, 0.4), (0.45, 0.3), (0.35, 0.2), (0.30, 0.1))),
    Rung(3, 100, 2, LADDER_SECONDS[3][0], 1000, LADDER_SECONDS[3][1], 0.35,
         ((0.45, 0.35), (0.35, 0.3), (0.25, 0.25), (0.20, 0.2))),
    Rung(4, 10, 3, LADDER_SECONDS[4][0], 10, LADDER_SECONDS[4][1], LOGIC_FRACTION),
)
LOGIC = RUNGS[-1]
# The former names of step 2 (one retrain after a time-out), kept for the notebook's text and tests.
RETRAIN_IMAGES, RETRAIN_EPOCHS, RETRAIN_CAP, RETRAIN_BANDS = 500, 1, RUNGS[1].cap, RUNGS[1].bands

PROBE_IMAGES = (2, 10, 32, 128)  # the probe's fits, one epoch each (see ``probe``)
MARGIN = 1.5                 # a step is skipped only when its projected fit is more than this times its limit
PREDICT_FIRST = 50           # steps 2-3: held-out images predicted first, to time predict
PREDICT_MARGIN = 1.5         # ... then as many more as fit in the rest of the limit, with this margin
STALL_SHARE = 0.1            # a time-out on the wall cap with less CPU time than this share of the limit: it sleeps


@dataclass
class Training:
    error: BaseException | None = None          # fit/predict failed: every check reports it
    predictions: object = None
    accuracy: float | None = None
    prediction_problem: str = ""                # why the predictions are not valid labels
    attributes: dict = field(default_factory=dict)
    attribute_errors: dict = field(default_factory=dict)
    rung: Rung = RUNGS[0]
    predicted: int = 0                          # held-out images predicted (step 4: training images)
    why: str = ""                               # below step 1: why ("Your classifier's fit ... did not finish ...")
    how: str = ""                               # below step 1: how it was trained and predicted
    history: list = field(default_factory=list)  # what happened, step by step (for tests and benchmarks)

    @property
    def retrained(self) -> bool:
        return self.rung.step > 1


_CACHE: dict = {"key": None, "training": None}


# ----------------------------------------------------------------------------- the classifier's CPU time
def cpu_clock(student):
    """A clock of the CPU seconds the student's code uses, or None: the sandbox's processes (what its
    training limits count), this process in nbgrader's kernel (the student's code runs here), or a
    stand-in's own (tests)."""
    own = getattr(student, "_cpu_clock", None)   # the proxy's (autograder.sandbox.proxy), or a stand-in's
    return own() if callable(own) else None


def _timed(student, seconds: float, what: str, call):
    """``call()`` within ``seconds`` of CPU time; returns (its value, the CPU seconds it used or None).
    In nbgrader's kernel, where nothing can stop the call, a call past its limit counts as a time-out
    afterwards, so that both ways of grading give the same step."""
    clock = cpu_clock(student)
    start = clock() if clock is not None else None
    with time_limit(student, seconds):
        value = call()
    end = clock() if start is not None else None
    used = end - start if end is not None else None
    if used is not None and used > seconds and isinstance(student, LocalStudent):
        raise SandboxTimeout(f"{what} did not finish within {seconds:.0f} s of CPU time (its limit; it used {used:.0f} s)")
    return value, used


def limit_of(timeout: BaseException) -> str:
    """The limit a time-out names (such as "N s of CPU time"), as it applied."""
    found = re.search(r"did not finish within (\d+ s(?: of (?:CPU|wall) time)?)", str(timeout))
    return found.group(1) if found else "its time limit"


def stalled(timeout: BaseException, seconds: float) -> bool:
    """The call ended on its wall cap having used almost no CPU time: it sleeps or waits."""
    found = re.search(r"of wall time \(it waited or slept: it used (\d+) s of CPU time", str(timeout))
    return bool(found) and float(found.group(1)) <= STALL_SHARE * seconds


# ----------------------------------------------------------------------------- samples
def stratified(y: np.ndarray, n: int) -> np.ndarray:
    """The indices of ``n`` images taking the classes in turn (the first of each class, then the
    second, ...), in the sample's own (random) order: ``n // 10`` of each class when ``n`` is a
    multiple of 10."""
    per_class = [np.flatnonzero(y == c) for c in range(10)]
    chosen = [idx[i] for i in range(max(len(p) for p in per_class)) for idx in per_class if i < len(idx)][:n]
    return np.sort(np.asarray(chosen, dtype=np.int64))


def retrain_sample(data, images: int = RETRAIN_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """A step's training images: ``images // 10`` of each class."""
    chosen = stratified(data.y_train, images)
    return data.X_train[chosen], data.y_train[chosen]


# ----------------------------------------------------------------------------- the probe
@dataclass
class Cost:
    """What the probe learnt: CPU seconds = fixed + per_image * images * epochs (an estimate), or a
    lower bound on per_image (a probe ran out of time), or nothing."""

    fixed: float = 0.0
    per_image: float | None = None     # None: nothing known (no clock, or the probe failed otherwise)
    lower_bound: bool = False          # per_image is a lower bound (a probe ran out of time), fixed 0
    unknown: bool = False              # the first (2-image) probe ran out: slow, but how is unknown
    default_epochs: int | None = None  # the classifier's own epochs (None: unknown, counted as 1)
    takes_epochs: bool = True
    text: str = ""                     # for the messages: what the probe measured
    stall: BaseException | None = None  # the probe waited or slept past its wall cap

    def projected(self, rung: Rung) -> float | None:
        if self.per_image is None:
            return None
        epochs = rung.epochs if rung.epochs is not None and self.takes_epochs else (self.default_epochs or 1)
        return self.fixed + self.per_image * rung.images * epochs

    def fits(self, rung: Rung) -> bool:
        """Worth trying: an estimate within MARGIN times the step's limit, a lower bound within the limit
        itself (a bound past the limit is certain to run out), or nothing known."""
        cost = self.projected(rung)
        return cost is None or cost <= (1.0 if self.lower_bound else MARGIN) * rung.fit_seconds


def _new(student, **params):
    """A new classifier, ``random_state=0`` and ``params`` (left out if its constructor refuses
    them); returns it and the params it took."""
    try:
        return student.Scratch2dCNNClassifier(random_state=0, **params), params
    except StudentError:
        if not params:
            raise
        return student.Scratch2dCNNClassifier(random_state=0), {}


def probe(student, data) -> Cost:
    """Fit one epoch on 2, 10, 32 and 128 training images, each while the fit before took less than
    half of ``PROBE_SECONDS``, and model the CPU time: from the two largest fits, or, when the next
    one ran out of time, a lower bound from the last fit and that one."""
    cost = Cost()
    if cpu_clock(student) is None:
        return cost
    try:
        default = student.Scratch2dCNNClassifier(random_state=0)
        epochs = getattr(default, "epochs")
        cost.default_epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0 else None
    except (StudentError, AttributeError):
        pass
    except Exception:
        return cost  # a time-out or crash: the ladder meets it again
    points: list[tuple[int, float]] = []
    ran_out = 0                                  # the size of a probe that ran out of time after a first one
    for n in PROBE_IMAGES:
        if points and points[-1][1] >= PROBE_SECONDS / 2:
            break  # the larger probe would hardly finish: the ones so far are the measure
        chosen = stratified(data.y_train, n)
        X, y = data.X_train[chosen], data.y_train[chosen]
        try:
            clf, params = _new(student, epochs=1)
            cost.takes_epochs = bool(params)
            _, used = _timed(student, PROBE_SECONDS, "`Scratch2dCNNClassifier.fit`", lambda: clf.fit(X, y))
        except SandboxTimeout as timeout:
            if stalled(timeout, PROBE_SECONDS):
                cost.stall = timeout
                return cost
            if not points:   # slow already on 2 images: a large fixed cost, or very slow; not projected
                cost.unknown = True
                cost.text = (f"a fit of your classifier on {n} images (1 epoch) did not finish within "
                             f"{PROBE_SECONDS:g} s of CPU time")
                return cost
            ran_out = n
            break
        except Exception:
            return cost  # its own error: the ladder's fit meets it and reports it
        if used is None:
            return cost
        points.append((n, used))
    epochs = 1 if cost.takes_epochs else (cost.default_epochs or 1)
    took = " and ".join(f"{n} images" for n, _ in points[-2:]) + f" ({epochs} epoch{'s' if epochs != 1 else ''}) took " + \
        " and ".join(f"{c:.1f} s" for _, c in points[-2:]) + " of CPU time"
    if ran_out:          # f + n1 p = c1 and f + n2 p > PROBE_SECONDS: p > (PROBE_SECONDS - c1) / (n2 - n1)
        n1, c1 = points[-1]
        cost.per_image = max(PROBE_SECONDS - c1, 0.0) / ((ran_out - n1) * epochs)
        cost.lower_bound = True
        cost.text = (f"a fit of your classifier on {took}, and one on {ran_out} images did not finish within "
                     f"{PROBE_SECONDS:g} s")
    else:                # a fixed cost and a cost per image and epoch, from the two largest fits
        (n1, c1), (n2, c2) = points[-2:]
        per_image = max(c2 - c1, 0.0) / ((n2 - n1) * epochs)
        cost.fixed, cost.per_image = max(c1 - per_image * n1 * epochs, 0.0), per_image
        cost.text = f"a fit of your classifier on {took}"
    return cost


# ----------------------------------------------------------------------------- one step
def describe_rung(rung: Rung, images: int, epochs_taken: bool, predicted: int | None = None) -> str:
    if rung.step == 1:
        return "trained on the 2,000 images"
    per = f" ({images // 10} of each class)" if images >= 10 else ""
    epochs = (f"for {rung.epochs} epoch{'s' if rung.epochs != 1 else ''}" if epochs_taken
              else "with your default epochs (your constructor does not take epochs=)")
    if rung is LOGIC:
        then = f"then predict on those {images} images within {rung.predict_seconds:g} s"
    else:
        shown = f"{predicted:,}" if predicted is not None else f"up to {rung.predict_images:,}"
        then = f"then predict on {shown} held-out images within {rung.predict_seconds:g} s"
    return (f"retrained on {images:,} images{per} {epochs} (step {rung.step} of {len(RUNGS)}: fit within "
            f"{rung.fit_seconds:g} s of CPU time, {then})")


def _predict_step(student, clf, X, what: str, seconds: float):
    return _timed(student, seconds, what, lambda: clf.predict(X))


def run_rung(student, data, rung: Rung) -> Training:
    """Fit and predict on one step. Time-outs are raised (with ``.phase`` "fit" or "predict");
    the student's own errors end in ``Training.error``."""
    t = Training(rung=rung)
    if rung.step == 1:
        X, y = data.X_train, data.y_train
        clf, _ = _new(student)
        params = {}
    else:
        X, y = retrain_sample(data, rung.images)
        clf, params = _new(student, epochs=rung.epochs)
    try:
        _timed(student, rung.fit_seconds, "`Scratch2dCNNClassifier.fit`", lambda: clf.fit(X, y))
    except SandboxTimeout as timeout:
        timeout.phase = "fit"
        raise
    try:
        if rung.step == 1:   # exactly the notebook's mirror: one predict on the 1,000 images
            t.predictions, _ = _predict_step(student, clf, data.X_heldout, "`Scratch2dCNNClassifier.predict`",
                                             rung.predict_seconds)
            truth = data.y_heldout
        elif rung is LOGIC:
            t.predictions, _ = _predict_step(student, clf, X, "`Scratch2dCNNClassifier.predict`", rung.predict_seconds)
            truth = y
        else:
            t.predictions, truth = _predict_ladder(student, clf, data, rung)
    except SandboxTimeout as timeout:
        timeout.phase = "predict"
        raise
    except Exception as exc:  # student errors: reported by every check of this problem
        t.error = exc
        return t
    t.predicted = len(truth)
    t.how = describe_rung(rung, len(y), bool(params), t.predicted)
    labels, t.prediction_problem = _labels(t.predictions, len(truth))
    if labels is not None:
        t.accuracy = float(np.mean(labels == truth))
    for name in ("loss_history_", "accuracy_history_", "epochs"):
        try:
            t.attributes[name] = getattr(clf, name)
        except Exception as exc:  # reported by the check that needs the attribute
            t.attribute_errors[name] = exc
    return t


def _predict_ladder(student, clf, data, rung: Rung):
    """Steps 2-3: predict ``PREDICT_FIRST`` held-out images, then as many more as the rest of the
    step's predict limit allows (by the first call's CPU time); returns (labels, their true labels)."""
    first = min(PREDICT_FIRST, rung.predict_images)
    what = "`Scratch2dCNNClassifier.predict`"
    head, used = _predict_step(student, clf, data.X_heldout[:first], what, rung.predict_seconds)
    more = rung.predict_images - first
    if used is not None and used > 0:
        per_image = used / first
        more = min(more, int((rung.predict_seconds - used) / (per_image * PREDICT_MARGIN)))
    if more <= 0:
        return head, data.y_heldout[:first]
    left = rung.predict_seconds - (used or 0.0)
    rest, _ = _predict_step(student, clf, data.X_heldout[first:first + more], what, left)
    try:
        joined = np.concatenate([as_array(head, "predict(X)").reshape(-1) if np.ndim(head) <= 1 else as_array(head, "predict(X)"),
                                 as_array(rest, "predict(X)").reshape(-1) if np.ndim(rest) <= 1 else as_array(rest, "predict(X)")])
    except (AssertionError, ValueError):
        return head, data.y_heldout[:first]  # the first call's predictions are judged
    return joined, data.y_heldout[:first + more]


# ----------------------------------------------------------------------------- the ladder
def _train(student, data) -> Training:
    cost = probe(student, data)
    if cost.stall is not None:
        return Training(error=cost.stall, history=["probe: waited or slept"])
    history = [f"probe: {cost.text or 'no measure'}"]
    i = 0
    why = ""
    while i < len(RUNGS) and not cost.fits(RUNGS[i]):
        if i == 0:
            over = f"more than {MARGIN:g} times its" if not cost.lower_bound else "more than its"
            why = (f"{cost.text}, so its fit on 2,000 images{epochs_text(cost)} would take "
                   f"{'more than' if cost.lower_bound else 'about'} {cost.projected(RUNGS[0]):.0f} s, {over} "
                   f"{FIT_SECONDS:g} s limit: it was not run")
        history.append(f"step {RUNGS[i].step}: skipped, projected {cost.projected(RUNGS[i]):.0f} s")
        i += 1
    i = min(i, len(RUNGS) - 1)  # step 4 is always tried
    first_timeout: SandboxTimeout | None = None
    while True:
        rung = RUNGS[i]
        try:
            t = run_rung(student, data, rung)
        except SandboxTimeout as timeout:
            phase = getattr(timeout, "phase", "fit")
            history.append(f"step {rung.step}: {phase} timed out")
            first_timeout = first_timeout or timeout
            seconds = rung.fit_seconds if phase == "fit" else rung.predict_seconds
            if stalled(timeout, seconds) or rung is LOGIC:
                return Training(error=first_timeout if not stalled(timeout, seconds) else timeout, history=history)
            why = f"{why}; then {timeout_text(rung, phase, timeout)}" if why else timeout_text(rung, phase, timeout)
            # A step whose estimate was within its limit that runs out anyway: the classifier does not
            # scale like its probe (it may never finish), so only the last step is tried; so too after
            # step 1 when even the 2-image probe ran out, and after a second time-out. (Between the
            # limit and MARGIN times it, or above a lower bound, running out was expected: the next
            # step that may fit is tried.)
            projected = cost.projected(rung)
            surprise = (projected is not None and not cost.lower_bound
                        and (phase == "predict" or projected <= rung.fit_seconds))
            timeouts = sum("timed out" in h for h in history)
            i = len(RUNGS) - 1 if surprise or cost.unknown or timeouts >= 2 else i + 1
            while i < len(RUNGS) - 1 and not cost.fits(RUNGS[i]):
                i += 1
            continue
        except Exception as exc:  # student errors: reported by every check of this problem
            history.append(f"step {rung.step}: {type_name(exc)}")
            return Training(error=exc, history=history)
        history.append(f"step {rung.step}: done")
        t.history, t.why = history, why
        return t


def epochs_text(cost: Cost) -> str:
    return f" ({cost.default_epochs} epochs)" if cost.default_epochs else ""


def timeout_text(rung: Rung, phase: str, timeout: BaseException) -> str:
    if phase == "fit":
        what = "its fit on 2,000 images" if rung.step == 1 else f"its fit on step {rung.step} ({rung.images:,} images)"
    else:
        what = (f"predict on the {rung.predict_images:,} held-out images" if rung.step == 1
                else f"predict on step {rung.step}")
    return f"{what} did not finish within {limit_of(timeout)}"


def _labels(pred, n: int) -> tuple[np.ndarray | None, str]:
    """The predictions as int labels, or None and why not."""
    try:
        arr = as_array(pred, "predict(X)")
    except AssertionError as e:
        return None, str(e)
    if arr.shape == (n, 10):
        return np.argmax(arr, axis=1), ("predict(X) returned an (N, 10) array of scores: return the class labels, "
                                        "e.g. np.argmax(probabilities, axis=1)")
    if arr.shape != (n,):
        return None, f"predict(X) returned shape {arr.shape} for {n} images, expected ({n},)"
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            return None, "predict(X) returned NaN or inf"
        if not np.all(arr == np.round(arr)):
            return None, f"predict(X) returned non-integer values such as {short(arr[arr != np.round(arr)][:3])}: return class labels"
    labels = arr.astype(np.int64)
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        return labels, f"predict(X) returned labels outside 0..9 (from {labels.min()} to {labels.max()})"
    return labels, ""


def training(student, grading_data, request) -> Training:
    """Fit and predict once per grading run: per pytest session and data set; later checks reuse the
    result. A session grades one student (the grader runs one per submission, the nbgrader bridge
    one per run of the test cell), so it also stands for the student's sandbox, which each check
    sees through a new ``student`` object."""
    key = (request.session, grading_data)
    cached = _CACHE["key"]
    if cached is None or any(a is not b for a, b in zip(cached, key)):
        _CACHE.update(key=key, training=None)  # one entry: nothing of an earlier submission is kept
        _CACHE["training"] = _train(student, grading_data)
    t = _CACHE["training"]
    if t.error is not None:
        raise t.error
    return t


def gate(t: Training) -> None:
    if t.rung is LOGIC:
        logic(t)
        return
    if t.accuracy is None:
        raise AssertionError(f"No held-out accuracy could be computed: {t.prediction_problem}.")
    on = f" on {t.predicted:,} held-out images" if t.retrained and t.predicted < 1000 else ""
    require(t.accuracy >= t.rung.gate,
            f"Held-out accuracy is {t.accuracy:.3f}{on} (chance is 0.10); the points of this problem need a classifier "
            f"that learns (at least {t.rung.gate:.2f}).{nan_note(t)}")


def logic(t: Training) -> None:
    """Step 4: the training logic works (the loss falls; predict gives labels 0..9)."""
    if t.accuracy is None or t.prediction_problem:
        raise AssertionError(f"predict on the {t.predicted} training images did not give labels 0..9: "
                             f"{t.prediction_problem}.")
    losses = t.attributes.get("loss_history_")
    try:
        values = [float(v) for v in losses]
    except Exception:
        raise AssertionError("After fit, `loss_history_` is not a list of numbers, so the training logic cannot be "
                             "checked: append the epoch's mean loss to self.loss_history_ every epoch.") from None
    require(len(values) >= 2, f"`loss_history_` has {len(values)} entries after {LOGIC.epochs} epochs on {t.predicted} "
                              "images: append one mean loss per epoch, so that the fall of the loss can be checked.")
    require(all(math.isfinite(v) for v in values), f"`loss_history_` holds NaN or inf: {short(values)}.{nan_note(t)}")
    # Falls: below where it started, or (a first step that overshoots, as momentum does on 10 images
    # in one batch) below the highest it reached; whether the classifier learnt is the accuracy's test.
    require(values[-1] < values[0] or values[-1] < max(values),
            f"The loss did not fall while training {LOGIC.epochs} epochs on {t.predicted} images ({short(values)}): "
            "check the softmax/cross-entropy gradient, the backward passes and that every layer's update runs.")
    require(t.accuracy >= LOGIC_GATE,
            f"After {LOGIC.epochs} epochs on {t.predicted} images, predict labels only {t.accuracy:.0%} of those same "
            f"images right (at least {LOGIC_GATE:.0%} needed; a classifier that trains fits a handful of images): check "
            "that predict runs the trained layers and returns argmax of the scores.")


def nan_note(t: Training) -> str:
    losses = t.attributes.get("loss_history_")
    try:
        values = [float(v) for v in losses]
    except Exception:
        return ""
    if any(not math.isfinite(v) for v in values):
        return (" Your loss_history_ contains NaN or inf: a softmax that exponentiates raw scores overflows; "
                "subtract each row's maximum before np.exp, and clip probabilities inside the log.")
    return ""


VECTORISE = "vectorise Conv2d and the pooling layers (see the notebook's note on vectorising)"


def retrain_note(t: Training) -> str:
    """Why a check below step 1 gives at most the step's share of its points ("" on step 1)."""
    if not t.retrained:
        return ""
    why = f" Your classifier was not graded on the full training: {t.why or 'it was too slow'}. It was {t.how}"
    if t.rung is LOGIC:
        share = f"on this last step each check gives {LOGIC_FRACTION:.0%} of its points if the training logic works"
    else:
        share = f"on this step each check gives at most {t.rung.cap:.0%} of its points"
    try:
        gate(t)
    except AssertionError:
        return (f"{why}, but even that classifier does not pass this check: fix what it says first (Problems 1, 4 and 6 "
                f"show whether your layers are right), then {VECTORISE}.")
    return (f"{why}; {share}. If Problems 1, 4 and 6 pass, your layers are right but too slow: {VECTORISE}.")


@contextlib.contextmanager
def explained(t: Training):
    """A check's failure, with the reason for the step below the first if there was one."""
    try:
        yield
    except AssertionError as exc:
        if not t.retrained:
            raise
        raise AssertionError(f"{exc}{retrain_note(t)}") from None


def award(t: Training, partial, fraction: float = 1.0, message: str = "") -> None:
    """A passed check's points: ``fraction`` of them with ``message`` (all of them and nothing to say
    by default); below step 1 at most the step's cap, with the reason."""
    if t.retrained:
        fraction = min(fraction, t.rung.cap)
        message = (message or "Passed on the reduced training.") + retrain_note(t)
    if fraction < 1.0:
        partial(fraction, message)


def bands_text(bands) -> str:
    """"full points from 0.90; bands 0.85 / ..." (below step 1: "at most 50%, from ...")."""
    top, fraction = bands[0]
    first = f"full points from {top:.2f}" if fraction >= 1.0 else f"at most {fraction:.0%}, from {top:.2f}"
    return f"{first}; bands " + " / ".join(f"{threshold:.2f}" for threshold, _ in bands[1:])


@pytest.mark.check(points=11, name="held-out accuracy after fit on 2,000 images",
                   hint=f"train for enough epochs within {FIT_SECONDS:g} s (aim for well under a minute) with a sensible learning rate; check the softmax/cross-entropy gradient and that every layer's update runs")
def check_heldout_accuracy(student, grading_data, request, partial):
    t = training(student, grading_data, request)
    with explained(t):
        gate(t)
    if t.rung is LOGIC:
        award(t, partial, LOGIC_FRACTION,
              f"The training logic works: the loss fell from {float(t.attributes['loss_history_'][0]):.3f} to "
              f"{float(t.attributes['loss_history_'][-1]):.3f} over {LOGIC.epochs} epochs on {t.predicted} images, and "
              f"predict gets {t.accuracy:.0%} of them right: {LOGIC_FRACTION:.0%} of the points (no held-out accuracy on "
              "this step).")
        return
    note = f" ({t.prediction_problem})" if t.prediction_problem else ""
    after = f" after the reduced training (step {t.rung.step}, {t.predicted:,} held-out images)" if t.retrained else ""
    for threshold, fraction in t.rung.bands:
        if t.accuracy >= threshold:
            award(t, partial, fraction, f"Held-out accuracy {t.accuracy:.3f}{after}: {fraction:.0%} of the points "
                                        f"({bands_text(t.rung.bands)}).{note}")
            return
    raise AssertionError(f"Held-out accuracy is {t.accuracy:.3f}.")  # unreachable past the gate


@pytest.mark.check(points=2, name="predict returns one integer label in 0..9 per image",
                   hint="predict(X) returns a (N,) array of ints 0..9, e.g. np.argmax(scores, axis=1)")
def check_predict_contract(student, grading_data, request, partial):
    t = training(student, grading_data, request)
    with explained(t):
        gate(t)
        require(not t.prediction_problem, t.prediction_problem + ".")
    award(t, partial)


@pytest.mark.check(points=2, name="loss_history_ and accuracy_history_ have one finite value per epoch",
                   hint="append the epoch's mean loss and training accuracy (floats) to self.loss_history_ and self.accuracy_history_ at the end of every epoch")
def check_histories(student, grading_data, request, partial):
    t = training(student, grading_data, request)
    with explained(t):
        gate(t)
        histories_problems(t)
    award(t, partial)


def histories_problems(t: Training) -> None:
    """Raises AssertionError for the first problem of loss_history_ / accuracy_history_."""
    lengths = {}
    for name in ("loss_history_", "accuracy_history_"):
        if name in t.attribute_errors:
            raise AssertionError(f"After fit, the classifier has no usable `{name}` "
                                 f"({type_name(t.attribute_errors[name])}): set self.{name} = [] in fit and "
                                 "append one float per epoch.")
        value = t.attributes[name]
        require(isinstance(value, (list, tuple, np.ndarray)),
                f"`{name}` is a {type_name(value)}, expected a list with one float per epoch.")
        try:
            values = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise AssertionError(f"`{name}` should hold one number per epoch, got {short(value)}.") from None
        require(len(values) == len(value), f"`{name}` should hold one number per epoch, got {short(value)}.")
        require(len(values) >= 1, f"`{name}` is empty after fit: append one value per epoch.")
        bad = ~np.isfinite(values)
        if bad.any():
            raise AssertionError(f"`{name}` contains NaN or inf (epoch {int(np.argmax(bad)) + 1}): "
                                 "use a numerically stable softmax (subtract the row maximum) and clip inside the log.")
        lengths[name] = len(values)
    require(lengths["loss_history_"] == lengths["accuracy_history_"],
            f"loss_history_ has {lengths['loss_history_']} entries but accuracy_history_ has "
            f"{lengths['accuracy_history_']}: one of each per epoch.")
    epochs = t.attributes.get("epochs")
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0:
        # At most one per epoch: a classifier may stop early; more means per batch, or lists never reset.
        require(lengths["loss_history_"] <= epochs,
                f"loss_history_ has {lengths['loss_history_']} entries for epochs={epochs}: append once per epoch "
                "(not per batch), and reset the lists at the start of fit.")
    acc = np.asarray(t.attributes["accuracy_history_"], dtype=np.float64)
    require(np.all((acc >= 0) & (acc <= 1)) or np.all((acc >= 0) & (acc <= 100)),
            "accuracy_history_ values should be accuracies (fractions between 0 and 1).")

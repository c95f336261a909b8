"""Problem 7 (15 points): Scratch2dCNNClassifier trained on harness data, scored on held-out images.

The classifier is fitted ONCE per grading run (the result is cached for the pytest session, see
``training``): ``Scratch2dCNNClassifier(random_state=0).fit(X_train, y_train)`` on 2,000 MNIST
images within ``course.FIT_SECONDS`` of the sandbox's CPU time (the notebook asks for well under a
minute; CPU time, so a busy grading machine costs nothing), then ``predict`` on 1,000 held-out
images within ``course.PREDICT_SECONDS`` of CPU time (both in ``autograder/course.py``). The held-out labels never leave this
process; the accuracy is computed here.

Every point of this problem is gated on a held-out accuracy clearly above chance (>= 0.30), so a
constant or random predictor scores 0 throughout. Accuracy bands (fraction of the 11 points):

    >= 0.90: 1.0    >= 0.85: 0.85    >= 0.80: 0.7    >= 0.70: 0.5    >= 0.50: 0.3    >= 0.30: 0.1
    below 0.30: 0 (chance is 0.10)

A small from-scratch CNN (a few 3x3 filters, max-pool, one dense layer, softmax, SGD) reaches
about 0.9 on these images within the budget; the lower bands reward classifiers that learn but
are under-trained or mis-tuned.

Too slow, retrained (``retrain``). A classifier whose ``fit`` runs out of time (typically correct
loop-based layers) is not scored 0 straight away: a new one is trained in the fresh sandbox on a
small budget, ``RETRAIN_IMAGES`` training images (as many of each class) for ``RETRAIN_EPOCHS``
epoch (``epochs=`` if its constructor takes it, else its default), under the same time limit, then
predicts the held-out images as usual. Every check is scored from that reduced training, capped at
``RETRAIN_CAP`` of its points, and says why. Accuracy bands after a retrain (fraction of the 11
points):

    >= 0.65: 0.5    >= 0.55: 0.4    >= 0.45: 0.3    >= 0.35: 0.2    >= 0.30: 0.1    below 0.30: 0

At this budget (500 images, 1 epoch) the source classifier reaches 0.67 (0.50 to 0.78 over
random states 0 to 5, 0.69 on average; 0.96 after the full fit), the catalogue's correct variants
0.65 and 0.72: the top band is about what a good classifier learns from so little.

A classifier that fails the reduced training too (another time-out, an error) keeps the first
time-out as its message and scores 0. A classifier that finishes in time is never retrained.
"""
from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pytest

from autograder.checks.assertions import as_array, require, short, type_name
from autograder.course import FIT_SECONDS, PREDICT_SECONDS
from autograder.sandbox.errors import SandboxTimeout, StudentError
from autograder.sandbox.proxy import time_limit

PROBLEM = 7
NOTEBOOK = "01_scratch_cnn"

GATE = 0.30
BANDS = ((0.90, 1.0), (0.85, 0.85), (0.80, 0.7), (0.70, 0.5), (0.50, 0.3), (0.30, 0.1))

# After a fit that timed out: the reduced training, and what it can earn (see the docstring).
RETRAIN_IMAGES = 500
RETRAIN_EPOCHS = 1
RETRAIN_CAP = 0.5
RETRAIN_BANDS = ((0.65, 0.5), (0.55, 0.4), (0.45, 0.3), (0.35, 0.2), (0.30, 0.1))


@dataclass
class Training:
    error: BaseException | None = None          # fit/predict failed: every check reports it
    predictions: object = None
    accuracy: float | None = None
    prediction_problem: str = ""                # why the predictions are not valid labels
    attributes: dict = field(default_factory=dict)
    attribute_errors: dict = field(default_factory=dict)
    retrained: str = ""                         # after a time-out: how the reduced training ran ("" if it did not)
    limit: str = ""                             # after a time-out: the limit it ran out of ("120 s of CPU time")


_CACHE: dict = {"key": None, "training": None}


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


def _fitted(student, X, y, **params):
    """A new classifier, ``random_state=0`` and ``params`` (left out if its constructor refuses them),
    fitted on X, y within FIT_SECONDS; returns it and the params it took."""
    try:
        clf = student.Scratch2dCNNClassifier(random_state=0, **params)
    except StudentError:
        if not params:
            raise
        clf, params = student.Scratch2dCNNClassifier(random_state=0), {}
    with time_limit(student, FIT_SECONDS):
        clf.fit(X, y)
    return clf, params


def _evaluate(student, clf, data, retrained: str = "") -> Training:
    """Predict the held-out images; the accuracy and the attributes the checks need."""
    t = Training(retrained=retrained)
    try:
        with time_limit(student, PREDICT_SECONDS):
            t.predictions = clf.predict(data.X_heldout)
    except Exception as exc:  # student errors and timeouts: reported by every check of this problem
        t.error = exc
        return t
    labels, t.prediction_problem = _labels(t.predictions, len(data.y_heldout))
    if labels is not None:
        t.accuracy = float(np.mean(labels == data.y_heldout))
    for name in ("loss_history_", "accuracy_history_", "epochs"):
        try:
            t.attributes[name] = getattr(clf, name)
        except Exception as exc:  # reported by the check that needs the attribute
            t.attribute_errors[name] = exc
    return t


def retrain_sample(data) -> tuple[np.ndarray, np.ndarray]:
    """The first ``RETRAIN_IMAGES // 10`` training images of each class, in the sample's own
    (random) order."""
    per_class = RETRAIN_IMAGES // 10
    chosen = np.sort(np.concatenate([np.flatnonzero(data.y_train == c)[:per_class] for c in range(10)]))
    return data.X_train[chosen], data.y_train[chosen]


def retrain(student, data, timeout: SandboxTimeout) -> Training:
    """After a fit that timed out (the sandbox has restarted): a new classifier on the reduced budget.
    If that fails too, in any way, the time-out stands."""
    X, y = retrain_sample(data)
    try:
        clf, params = _fitted(student, X, y, epochs=RETRAIN_EPOCHS)
    except Exception:
        return Training(error=timeout)
    epochs = (f"for {RETRAIN_EPOCHS} epoch{'s' if RETRAIN_EPOCHS != 1 else ''}" if params
              else "with your default epochs (your constructor does not take epochs=)")
    t = _evaluate(student, clf, data, retrained=f"retrained on {len(y):,} images {epochs}")
    found = re.search(r"did not finish within (\d+ s(?: of (?:CPU|wall) time)?)", str(timeout))
    t.limit = found.group(1) if found else "its time limit"
    return Training(error=timeout) if t.error is not None else t


def _train(student, data) -> Training:
    try:
        clf, _ = _fitted(student, data.X_train, data.y_train)
    except SandboxTimeout as timeout:
        return retrain(student, data, timeout)
    except Exception as exc:  # student errors: reported by every check of this problem
        return Training(error=exc)
    return _evaluate(student, clf, data)


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
    if t.accuracy is None:
        raise AssertionError(f"No held-out accuracy could be computed: {t.prediction_problem}.")
    require(t.accuracy >= GATE,
            f"Held-out accuracy is {t.accuracy:.3f} (chance is 0.10); the points of this problem need a classifier "
            f"that learns (at least {GATE:.2f}).{nan_note(t)}")


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


def retrain_note(t: Training) -> str:
    """Why a check of a retrained classifier gives at most RETRAIN_CAP of its points ("" if not retrained)."""
    if not t.retrained:
        return ""
    why = f" Your classifier did not finish training within {t.limit or 'its time limit'}, so it was {t.retrained}"
    vectorise = "vectorise Conv2d and the pooling layers (see the notebook's note on vectorising)"
    if t.accuracy is None or t.accuracy < GATE:
        return (f"{why}, but even that classifier does not pass this check: fix what it says first (the layers' "
                f"own problems show whether they are correct), then {vectorise}.")
    return (f"{why}: your layers are correct but too slow; {vectorise}. "
            f"After a retrain each check of this problem gives at most {RETRAIN_CAP:.0%} of its points.")


@contextlib.contextmanager
def explained(t: Training):
    """A check's failure, with the reason for the retrain if there was one."""
    try:
        yield
    except AssertionError as exc:
        if not t.retrained:
            raise
        raise AssertionError(f"{exc}{retrain_note(t)}") from None


def award(t: Training, partial, fraction: float = 1.0, message: str = "") -> None:
    """A passed check's points: ``fraction`` of them with ``message`` (all of them and nothing to say
    by default); after a retrain at most RETRAIN_CAP, with the reason."""
    if t.retrained:
        fraction = min(fraction, RETRAIN_CAP)
        message = (message or "Passed on the reduced training.") + retrain_note(t)
    if fraction < 1.0:
        partial(fraction, message)


def bands_text(bands) -> str:
    """"full points from 0.90; bands 0.85 / ..." (after a retrain: "at most 50%, from ...")."""
    top, fraction = bands[0]
    first = f"full points from {top:.2f}" if fraction >= 1.0 else f"at most {fraction:.0%}, from {top:.2f}"
    return f"{first}; bands " + " / ".join(f"{threshold:.2f}" for threshold, _ in bands[1:])


@pytest.mark.check(points=11, name="held-out accuracy after fit on 2,000 images",
                   hint=f"train for enough epochs within {FIT_SECONDS:g} s (aim for well under a minute) with a sensible learning rate; check the softmax/cross-entropy gradient and that every layer's update runs")
def check_heldout_accuracy(student, grading_data, request, partial):
    t = training(student, grading_data, request)
    with explained(t):
        gate(t)
    note = f" ({t.prediction_problem})" if t.prediction_problem else ""
    bands = RETRAIN_BANDS if t.retrained else BANDS
    after = " after the reduced training" if t.retrained else ""
    for threshold, fraction in bands:
        if t.accuracy >= threshold:
            award(t, partial, fraction, f"Held-out accuracy {t.accuracy:.3f}{after}: {fraction:.0%} of the points "
                                        f"({bands_text(bands)}).{note}")
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

"""Problem 7 (15 points): Scratch2dCNNClassifier trained on harness data, scored on held-out images.

The classifier is fitted ONCE per grading run (the result is cached for the pytest session, see
``training``): ``Scratch2dCNNClassifier(random_state=0).fit(X_train, y_train)`` on 2,000 MNIST
images within ``course.FIT_SECONDS`` (the notebook asks for well under a minute: the rest is
headroom for a busy grader), then ``predict`` on 1,000 held-out images within
``course.PREDICT_SECONDS`` (both in ``autograder/course.py``). The held-out labels never leave this
process; the accuracy is computed here.

Every point of this problem is gated on a held-out accuracy clearly above chance (>= 0.30), so a
constant or random predictor scores 0 throughout. Accuracy bands (fraction of the 11 points):

    >= 0.90: 1.0    >= 0.85: 0.85    >= 0.80: 0.7    >= 0.70: 0.5    >= 0.50: 0.3    >= 0.30: 0.1
    below 0.30: 0 (chance is 0.10)

A small from-scratch CNN (a few 3x3 filters, max-pool, one dense layer, softmax, SGD) reaches
about 0.9 on these images within the budget; the lower bands reward classifiers that learn but
are under-trained or mis-tuned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from autograder.checks.assertions import as_array, require, short, type_name
from autograder.course import FIT_SECONDS, PREDICT_SECONDS
from autograder.sandbox.proxy import time_limit

PROBLEM = 7
NOTEBOOK = "01_scratch_cnn"

GATE = 0.30
BANDS = ((0.90, 1.0), (0.85, 0.85), (0.80, 0.7), (0.70, 0.5), (0.50, 0.3), (0.30, 0.1))


@dataclass
class Training:
    error: BaseException | None = None          # fit/predict failed: every check reports it
    predictions: object = None
    accuracy: float | None = None
    prediction_problem: str = ""                # why the predictions are not valid labels
    attributes: dict = field(default_factory=dict)
    attribute_errors: dict = field(default_factory=dict)


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


def _train(student, data) -> Training:
    t = Training()
    try:
        clf = student.Scratch2dCNNClassifier(random_state=0)
        with time_limit(student, FIT_SECONDS):
            clf.fit(data.X_train, data.y_train)
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


@pytest.mark.check(points=11, name="held-out accuracy after fit on 2,000 images",
                   hint=f"train for enough epochs within {FIT_SECONDS:g} s (aim for well under a minute) with a sensible learning rate; check the softmax/cross-entropy gradient and that every layer's update runs")
def check_heldout_accuracy(student, grading_data, request, partial):
    t = training(student, grading_data, request)
    gate(t)
    note = f" ({t.prediction_problem})" if t.prediction_problem else ""
    for threshold, fraction in BANDS:
        if t.accuracy >= threshold:
            if fraction < 1.0:
                partial(fraction, f"Held-out accuracy {t.accuracy:.3f}: {fraction:.0%} of the points "
                                  f"(full points from 0.90; bands 0.85 / 0.80 / 0.70 / 0.50 / 0.30).{note}")
            return
    raise AssertionError(f"Held-out accuracy is {t.accuracy:.3f}.")  # unreachable past the gate


@pytest.mark.check(points=2, name="predict returns one integer label in 0..9 per image",
                   hint="predict(X) returns a (N,) array of ints 0..9, e.g. np.argmax(scores, axis=1)")
def check_predict_contract(student, grading_data, request):
    t = training(student, grading_data, request)
    gate(t)
    require(not t.prediction_problem, t.prediction_problem + ".")


@pytest.mark.check(points=2, name="loss_history_ and accuracy_history_ have one finite value per epoch",
                   hint="append the epoch's mean loss and training accuracy (floats) to self.loss_history_ and self.accuracy_history_ at the end of every epoch")
def check_histories(student, grading_data, request):
    t = training(student, grading_data, request)
    gate(t)
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

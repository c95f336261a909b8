"""Problem 8 (10 points): ``build_lenet()``, a compiled LeNet-style keras.Sequential.

The architecture is read from ``model.to_json()`` with ``json.loads`` only (whitelisted layers and
fields) and rebuilt here with real Keras layers (see ``keras_models.student_model``). The compile
settings come from ``model.get_compile_config()`` (a plain dict). Then the student's model is
trained briefly in the sandbox on the harness's images and scored here on held-out images whose
labels never leave this process.

Training: ``model.fit(X, y, epochs=2, batch_size=64, verbose=0)`` on 2,000 images (one-hot y if
the loss is categorical_crossentropy), within ``course.FIT_SECONDS``, then ``model.predict`` on 1,000
held-out images within ``course.PREDICT_SECONDS`` (both in ``autograder/course.py``). A model returned
uncompiled loses the compile check's point and is compiled here with Adam and sparse categorical
cross-entropy for training. Bands on the held-out accuracy (fraction of the 4 points):
>= 0.70: 1.0, >= 0.50: 0.75, >= 0.30: 0.5, >= 0.20: 0.25, below: 0 (chance 0.10).
LeNet with Adam or RMSprop reaches 0.73-0.89 after these two epochs, depending on its random
initialisation; plain SGD at its default rate learns far more slowly.
"""
from __future__ import annotations

import numpy as np
import pytest

from autograder.checks.assertions import as_array, require, short, type_name
from autograder.checks.keras_models import LayerSpec, analyse, student_model
from autograder.course import FIT_SECONDS, PREDICT_SECONDS
from autograder.sandbox.proxy import time_limit

PROBLEM = 8
NOTEBOOK = "02_keras"

INPUT = (28, 28, 1)
BANDS = ((0.70, 1.0), (0.50, 0.75), (0.30, 0.5), (0.20, 0.25))


def conv(filters, k):
    return LayerSpec("Conv2D", filters=filters, kernel_size=(k, k), strides=(1, 1), padding="valid",
                     activation="relu", use_bias=True)


def dense(units, activation):
    return LayerSpec("Dense", units=units, activation=activation, use_bias=True)


def pool():
    return LayerSpec("MaxPooling2D", pool_size=(2, 2), strides=(2, 2), padding="valid")


LENET = [conv(6, 5), pool(), conv(16, 5), pool(), LayerSpec("Flatten"),
         dense(120, "relu"), dense(84, "relu"), dense(10, "softmax")]
# Derived: (24,24,6) (12,12,6) (8,8,16) (4,4,16) (256,) (120,) (84,) (10,); 156 + 2,416 + 30,840 + 10,164 + 850 = 44,426.


def lenet(student):
    return student_model(student.build_lenet(), "build_lenet()")


def loss_name(loss) -> str:
    """'sparse_categorical_crossentropy' for the string, the class and the function alike."""
    if isinstance(loss, dict):
        cls, cfg = loss.get("class_name"), loss.get("config")
        if cls == "function" and isinstance(cfg, str):
            loss = cfg
        elif isinstance(cls, str):
            loss = cls
    if not isinstance(loss, str):
        return ""
    flat = loss.replace("_", "").lower()
    return {"sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
            "categoricalcrossentropy": "categorical_crossentropy"}.get(flat, loss)


def compile_config(model) -> dict:
    config = model.get_compile_config()
    require(isinstance(config, dict),
            f"model.get_compile_config() returned a {type_name(config)}; expected the compile settings.")
    require(config, "build_lenet() returns a model that is not compiled: call model.compile(optimizer=..., "
                    "loss='sparse_categorical_crossentropy', metrics=['accuracy']) before returning it.")
    return config


@pytest.mark.check(points=2, name="layers in the LeNet order with ReLU and a softmax output",
                   hint="keras.Input((28, 28, 1)) -> Conv2D(6, 5, relu) -> MaxPooling2D(2) -> Conv2D(16, 5, relu) -> MaxPooling2D(2) -> Flatten -> Dense(120, relu) -> Dense(84, relu) -> Dense(10, softmax)")
def check_layer_kinds(student):
    shape, specs, _ = lenet(student)
    require(tuple(shape) == INPUT, f"build_lenet() takes input of shape {tuple(shape)}, expected {INPUT}.")
    got = [s.kind for s in specs]
    want = [s.kind for s in LENET]
    require(got == want, f"build_lenet() has the layers {' -> '.join(got) or 'none'}; expected {' -> '.join(want)}.")
    for i, (g, w) in enumerate(zip(specs, LENET)):
        for key in ("filters", "units", "kernel_size", "pool_size"):
            if key in w.fields and g.fields.get(key) != w.fields[key]:
                raise AssertionError(f"layer {i + 1} ({w.kind}) has {key}={g.fields.get(key)!r}, expected {w.fields[key]!r}.")
        if w.kind in ("Conv2D", "Dense") and g.activation != w.activation:
            raise AssertionError(f"layer {i + 1} ({g.describe()}) has activation {g.activation!r}, expected {w.activation!r}.")


@pytest.mark.check(points=2, name="every layer has the LeNet output shape",
                   hint="(24, 24, 6), (12, 12, 6), (8, 8, 16), (4, 4, 16), (256,), (120,), (84,), (10,): 'valid' 5x5 convolutions with stride 1 and 2x2 pooling")
def check_output_shapes(student):
    shape, specs, rows = lenet(student)
    want = analyse(INPUT, LENET)
    require(tuple(shape) == INPUT, f"build_lenet() takes input of shape {tuple(shape)}, expected {INPUT}.")
    got_shapes = [r["shape"] for r in rows]
    want_shapes = [r["shape"] for r in want]
    for i, (g, w) in enumerate(zip(got_shapes, want_shapes)):
        if g != w:
            raise AssertionError(f"layer {i + 1} ({rows[i]['layer']}) outputs {g}, expected {w}. "
                                 f"All shapes: {', '.join(map(str, got_shapes))}; expected {', '.join(map(str, want_shapes))}.")
    require(len(got_shapes) == len(want_shapes),
            f"build_lenet() has {len(got_shapes)} layers with shapes {', '.join(map(str, got_shapes))}; "
            f"expected {', '.join(map(str, want_shapes))}.")


@pytest.mark.check(points=1, name="44,426 parameters, all trainable",
                   hint="conv 5*5*1*6 + 6, conv 5*5*6*16 + 16, dense 256*120 + 120, 120*84 + 84, 84*10 + 10")
def check_parameter_count(student):
    _, _, rows = lenet(student)
    total = sum(r["params"] for r in rows)
    frozen = sum(r["non_trainable"] for r in rows)
    if (total, frozen) != (44_426, 0):
        want = analyse(INPUT, LENET)
        mine = ", ".join(f"{r['layer']}: {r['params']:,}" for r in rows if r["params"])
        theirs = ", ".join(f"{r['layer']}: {r['params']:,}" for r in want if r["params"])
        raise AssertionError(f"build_lenet() has {total:,} parameters ({frozen:,} non-trainable); expected 44,426, all "
                             f"trainable. Yours: {mine}. Expected: {theirs}.")


@pytest.mark.check(points=1, name="compiled with sparse categorical cross-entropy",
                   hint="model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']); the labels are integers 0..9")
def check_compiled_loss(student):
    config = compile_config(student.build_lenet())
    name = loss_name(config.get("loss"))
    require(name in ("sparse_categorical_crossentropy", "categorical_crossentropy"),
            f"The model is compiled with the loss {short(config.get('loss'), 80)}; for 10 classes with a softmax output "
            "use loss='sparse_categorical_crossentropy' (integer labels).")


@pytest.mark.check(points=4, name="trains: held-out accuracy after 2 epochs on 2,000 images",
                   hint="a compiled LeNet with Adam (or RMSprop) and a softmax output learns MNIST quickly; check the activations and the loss")
def check_training(student, grading_data, partial):
    model = student.build_lenet()
    config = model.get_compile_config()
    if not config:  # not compiled: that costs the compile check's point, not this one's
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        config = {"loss": "sparse_categorical_crossentropy"}
    require(isinstance(config, dict),
            f"model.get_compile_config() returned a {type_name(config)}; expected the compile settings.")
    y = grading_data.y_train
    if loss_name(config.get("loss")) == "categorical_crossentropy":
        y = np.eye(10, dtype=np.float32)[y]
    X = np.ascontiguousarray(grading_data.X_train.transpose(0, 2, 3, 1))
    Xh = np.ascontiguousarray(grading_data.X_heldout.transpose(0, 2, 3, 1))
    with time_limit(student, FIT_SECONDS):
        model.fit(X, y, epochs=2, batch_size=64, verbose=0)
    with time_limit(student, PREDICT_SECONDS):
        probs = as_array(model.predict(Xh, verbose=0), "model.predict(X)")
    n = len(grading_data.y_heldout)
    require(probs.shape == (n, 10), f"model.predict(X) returned shape {probs.shape} for {n} images, expected ({n}, 10).")
    require(np.all(np.isfinite(probs)), "model.predict(X) returned NaN or inf after training: check the loss and the "
                                        "output activation.")
    accuracy = float(np.mean(np.argmax(probs, axis=1) == grading_data.y_heldout))
    for threshold, fraction in BANDS:
        if accuracy >= threshold:
            if fraction < 1.0:
                partial(fraction, f"Held-out accuracy after 2 epochs: {accuracy:.3f}; {fraction:.0%} of the points "
                                  "(full points from 0.70; bands 0.50 / 0.30 / 0.20).")
            return
    raise AssertionError(f"Held-out accuracy after 2 epochs is {accuracy:.3f} (chance is 0.10): the model does not learn.")

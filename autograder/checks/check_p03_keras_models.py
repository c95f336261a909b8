"""Problem 3, Keras part (6 points): ``build_padding_model`` and ``build_single_conv_model``.

The models are read as ``model.to_json()`` text only (``json.loads``, a whitelist of layer classes and
fields, see ``keras_models.parse_model_json``) and rebuilt here with real Keras layers; nothing of the
student's model is ever deserialised by Keras. Expected architectures are written out below and
their numbers derived with the usual formulas (``keras_models.analyse``):

    build_padding_model("valid", 1)  2,002,698 parameters      ("valid", 2)    36,618
    build_padding_model("same", 1)   3,231,498                 ("same", 2)     85,770
    batch_norm=True adds 3 x 128 = 384 (3 x 64 = 192 non-trainable moving statistics)
    build_single_conv_model()          692,906
"""
from __future__ import annotations

import pytest

from autograder.checks.assertions import require, run_cases, short, type_name
from autograder.checks.keras_models import LayerSpec, architecture_problems, student_model

PROBLEM = 3
NOTEBOOK = "02_keras"

INPUT = (28, 28, 1)


def conv(filters, k, strides=1, padding="valid", activation="relu"):
    return LayerSpec("Conv2D", filters=filters, kernel_size=(k, k), strides=(strides, strides), padding=padding,
                     activation=activation, use_bias=True)


def dense(units, activation):
    return LayerSpec("Dense", units=units, activation=activation, use_bias=True)


def padding_model(padding: str, strides: int, batch_norm: bool) -> list[LayerSpec]:
    specs = []
    for _ in range(3):
        specs.append(conv(32, 3, strides, padding))
        if batch_norm:
            specs.append(LayerSpec("BatchNormalization", center=True, scale=True))
    return specs + [LayerSpec("Flatten"), dense(128, "relu"), dense(10, "softmax")]


def single_conv_model() -> list[LayerSpec]:
    return [conv(32, 3), LayerSpec("Flatten"), dense(32, "relu"), dense(10, "softmax")]


def verify_padding_model(student, args):
    """``args`` = (padding, strides, batch_norm), or () to call with the defaults."""
    padding, strides, batch_norm = args or ("valid", 1, False)
    call = f"build_padding_model({padding!r}, {strides}, {batch_norm})" if args else "build_padding_model()"
    handle = student.build_padding_model(*args)
    shape, specs, rows = student_model(handle, call)
    problems = architecture_problems(call, shape, specs, rows, INPUT, padding_model(padding, strides, batch_norm))
    if not problems:
        return
    hint = ""
    text = " ".join(problems)
    if "padding=" in text:
        hint = f" Pass padding={padding!r} to every Conv2D."
    elif "strides=" in text:
        hint = f" Pass strides={strides} to every Conv2D."
    elif "BatchNormalization" in text and batch_norm:
        hint = " With batch_norm=True, put a BatchNormalization layer after each of the three Conv2D layers."
    elif "BatchNormalization" in text:
        hint = " With batch_norm=False there is no BatchNormalization layer."
    raise AssertionError(" ".join(problems[:3]) + hint)


def padding_cases(student, combos):
    return [("padding={!r}, strides={}, batch_norm={}".format(*c) if c else "the default arguments",
             lambda c=c: verify_padding_model(student, c)) for c in combos]


@pytest.mark.check(points=1, name="build_padding_model('valid', 1) has the right layers and 2,002,698 parameters",
                   hint="3 x Conv2D(32, 3, relu) -> Flatten -> Dense(128, relu) -> Dense(10, softmax) on keras.Input((28, 28, 1)); defaults padding='valid', strides=1, batch_norm=False")
def check_valid_stride1(student, partial):
    run_cases(padding_cases(student, [("valid", 1, False), ()]), partial, "build_padding_model")


@pytest.mark.check(points=1, name="build_padding_model('same', 1) keeps 28x28 maps (3,231,498 parameters)",
                   hint="padding='same' with stride 1 keeps the 28x28 size through all three convolutions")
def check_same_stride1(student, partial):
    run_cases(padding_cases(student, [("same", 1, False)]), partial, "build_padding_model")


@pytest.mark.check(points=1, name="build_padding_model with strides=2 (85,770 parameters for 'same')",
                   hint="pass strides to every Conv2D: 'same' gives ceil(N / 2) per layer (28 -> 14 -> 7 -> 4), 'valid' gives (N - 3)//2 + 1")
def check_strides2(student, partial):
    run_cases(padding_cases(student, [("same", 2, False), ("valid", 2, False)]), partial, "build_padding_model")


@pytest.mark.check(points=1, name="build_padding_model with batch_norm=True adds BatchNormalization after each conv",
                   hint="each BatchNormalization on 32 channels adds 4 x 32 parameters, 2 x 32 of them non-trainable (moving mean and variance)")
def check_batch_norm(student, partial):
    combos = [("valid", 1, True), ("same", 1, True), ("same", 2, True), ("valid", 2, True)]
    run_cases(padding_cases(student, combos), partial, "build_padding_model with batch_norm=True")


@pytest.mark.check(points=1, name="build_single_conv_model has the right layers and 692,906 parameters",
                   hint="Conv2D(32, 3, relu) -> Flatten -> Dense(32, relu) -> Dense(10, softmax) on keras.Input((28, 28, 1))")
def check_single_conv_architecture(student):
    call = "build_single_conv_model()"
    shape, specs, rows = student_model(student.build_single_conv_model(), call)
    problems = architecture_problems(call, shape, specs, rows, INPUT, single_conv_model())
    require(not problems, " ".join(problems[:3]))


@pytest.mark.check(points=1, name="build_single_conv_model is compiled with RMSprop",
                   hint="call model.compile(optimizer='rmsprop', loss=..., metrics=['accuracy']) before returning the model")
def check_single_conv_compiled(student):
    config = student.build_single_conv_model().get_compile_config()
    require(isinstance(config, dict),
            f"model.get_compile_config() returned a {type_name(config)}; expected the compile settings.")
    require(config, "build_single_conv_model() returns a model that is not compiled: call model.compile(...) "
                    "with optimizer='rmsprop' before returning it.")
    optimizer = config.get("optimizer")
    name = optimizer if isinstance(optimizer, str) else (optimizer or {}).get("class_name") if isinstance(optimizer, dict) else None
    require(isinstance(name, str) and name.lower() == "rmsprop",
            f"The model is compiled with the optimizer {short(name, 60)}; this model uses RMSprop "
            "(optimizer='rmsprop' or keras.optimizers.RMSprop()).")
    require(config.get("loss") is not None, "The model is compiled without a loss: pass loss=... to compile.")

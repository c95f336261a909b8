"""The checks' reading of a student's Keras model (Problems 3 and 8): parse ``model.to_json()`` into
whitelisted ``LayerSpec``s, derive shapes and parameter counts (``analyse``), rebuild the layers
with real Keras (``rebuild``) and word the differences from an expected architecture.

A student's model is read ONLY as JSON text (``model.to_json()`` run in the sandbox) with
``json.loads``; nothing of it is ever deserialised by Keras (Keras config deserialisation has had
code-execution bugs). A whitelist of layer classes and of the few fields the checks need is
extracted, validated, and the model is rebuilt here from real Keras layers to count its
parameters and shapes.
"""
from __future__ import annotations

import json

import numpy as np

from autograder.checks import oracles
from autograder.checks.assertions import is_fatal, short, type_name
from autograder.sandbox.proxy import StudentObject

KERAS_LAYERS = ("InputLayer", "Conv2D", "BatchNormalization", "Flatten", "Dense", "MaxPooling2D",
                "AveragePooling2D", "Activation", "Dropout", "ReLU")
ACTIVATIONS = {"relu", "softmax", "linear", "sigmoid", "tanh", "elu", "selu", "gelu", "softplus", "softsign",
               "swish", "silu", "leaky_relu", "relu6", "exponential", "hard_sigmoid", "mish", "log_softmax"}
MAX_JSON_CHARS = 2_000_000
MAX_PARAMS = 50_000_000


def keras_module():
    """Keras on the TensorFlow backend, imported on first use with TensorFlow (``oracles.tensorflow``)."""
    oracles.tensorflow()
    import keras  # noqa: PLC0415 - deliberately lazy

    return keras


class LayerSpec:
    """One whitelisted layer: its class name and validated fields (plain ints, strings, bools)."""

    def __init__(self, kind: str, **fields):
        self.kind = kind
        self.fields = fields
        self.activation = fields.get("activation", "linear")  # the effective one, after merging

    def describe(self) -> str:
        f = self.fields
        if self.kind == "Conv2D":
            k = f["kernel_size"]
            s = f["strides"]
            return (f"Conv2D({f['filters']}, {k[0]}x{k[1]}, strides={s[0] if s[0] == s[1] else tuple(s)}, "
                    f"padding={f['padding']!r}, {self.activation})")
        if self.kind == "Dense":
            return f"Dense({f['units']}, {self.activation})"
        if self.kind in ("MaxPooling2D", "AveragePooling2D"):
            p = f["pool_size"]
            return f"{self.kind}({p[0] if p[0] == p[1] else tuple(p)})"
        return self.kind

    def __repr__(self) -> str:
        return self.describe()


def _int(value, what: str, low: int = 1, high: int = 4096) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AssertionError(f"{what} is {short(value, 60)}; expected a whole number from {low} to {high}.")
    return value


def _pair_field(value, what: str, high: int = 64) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise AssertionError(f"{what} is {short(value, 60)}; expected an int or a pair of ints.")
    return _int(value[0], what, 1, high), _int(value[1], what, 1, high)


def _activation_name(value) -> str:
    """'relu' for 'relu', keras.activations.relu and keras.layers.ReLU(); 'custom' for anything else."""
    if value is None:
        return "linear"
    if isinstance(value, str):
        name = value.lower()
    elif isinstance(value, dict):
        cls, cfg = value.get("class_name"), value.get("config")
        if cls == "function" and isinstance(cfg, str):
            name = cfg.lower()  # a function such as keras.activations.relu or tf.nn.relu
        elif cls in ("ReLU", "Softmax"):
            name = cls.lower()  # a layer used as the activation
        else:
            name = "custom"
    else:
        name = "custom"
    return name if name in ACTIVATIONS else "custom"


def _layer_spec(layer: dict, index: int) -> LayerSpec | None:
    cls = layer.get("class_name")
    cfg = layer.get("config")
    if not isinstance(cls, str) or not isinstance(cfg, dict):
        raise AssertionError(f"layer {index} of the model's JSON has no class name/config; is it a Keras model?")
    if cls not in KERAS_LAYERS:
        raise AssertionError(f"layer {index} is a `{cls[:60]}`, which this problem does not use (expected only "
                             f"{', '.join(k for k in KERAS_LAYERS if k != 'InputLayer')}).")
    where = f"layer {index} ({cls})"
    fmt = cfg.get("data_format")
    if fmt not in (None, "channels_last"):
        raise AssertionError(f"{where} uses data_format={short(fmt, 40)}: keep the default channels_last (H, W, C).")
    if cls == "InputLayer":
        shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
        if not isinstance(shape, list) or len(shape) < 2:
            raise AssertionError(f"{where} has no input shape.")
        return LayerSpec("InputLayer", shape=tuple(_int(d, f"{where} input shape", 1, 1024) for d in shape[1:]))
    if cls == "Conv2D":
        if _pair_field(cfg.get("dilation_rate", 1), f"{where} dilation_rate", 8) != (1, 1):
            raise AssertionError(f"{where} uses dilation, which this problem does not ask for.")
        if cfg.get("groups", 1) != 1:
            raise AssertionError(f"{where} uses groups, which this problem does not ask for.")
        padding = cfg.get("padding")
        if padding not in ("valid", "same"):
            raise AssertionError(f"{where} has padding={short(padding, 40)}; expected 'valid' or 'same'.")
        return LayerSpec("Conv2D", filters=_int(cfg.get("filters"), f"{where} filters"),
                         kernel_size=_pair_field(cfg.get("kernel_size"), f"{where} kernel_size"),
                         strides=_pair_field(cfg.get("strides", 1), f"{where} strides"), padding=padding,
                         activation=_activation_name(cfg.get("activation")),
                         use_bias=bool(cfg.get("use_bias", True)))
    if cls == "Dense":
        return LayerSpec("Dense", units=_int(cfg.get("units"), f"{where} units", 1, 100_000),
                         activation=_activation_name(cfg.get("activation")), use_bias=bool(cfg.get("use_bias", True)))
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        pool = _pair_field(cfg.get("pool_size", 2), f"{where} pool_size")
        strides = cfg.get("strides")
        padding = cfg.get("padding", "valid")
        if padding not in ("valid", "same"):
            raise AssertionError(f"{where} has padding={short(padding, 40)}; expected 'valid' or 'same'.")
        return LayerSpec(cls, pool_size=pool,
                         strides=pool if strides is None else _pair_field(strides, f"{where} strides"), padding=padding)
    if cls == "BatchNormalization":
        axis = cfg.get("axis", -1)
        if isinstance(axis, list) and len(axis) == 1:
            axis = axis[0]
        if axis not in (-1, 3):
            raise AssertionError(f"{where} normalises axis {short(axis, 40)}; use the channel axis (-1).")
        return LayerSpec("BatchNormalization", center=bool(cfg.get("center", True)), scale=bool(cfg.get("scale", True)))
    if cls == "Activation":
        return LayerSpec("Activation", activation=_activation_name(cfg.get("activation")))
    if cls == "ReLU":
        return LayerSpec("Activation", activation="relu")
    if cls == "Flatten":
        return LayerSpec("Flatten")
    return None  # Dropout: no parameters, no change of shape, nothing to grade


def parse_model_json(text, what: str) -> tuple[tuple, list[LayerSpec]]:
    """(input shape without the batch axis, whitelisted layers) from ``model.to_json()``."""
    if not isinstance(text, str):
        raise AssertionError(f"{what}.to_json() returned a {type_name(text)}, expected a JSON string: "
                             "return the keras model itself.")
    if len(text) > MAX_JSON_CHARS:
        raise AssertionError(f"{what}: the model's JSON is {len(text):,} characters, far more than this model needs.")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise AssertionError(f"{what}.to_json() is not valid JSON ({e}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise AssertionError(f"{what} is not a Keras model.")
    cls = data.get("class_name")
    if cls not in ("Sequential", "Functional", "Model"):
        raise AssertionError(f"{what} is a `{short(cls, 60)}`; expected a keras.Sequential model.")
    layers = data["config"].get("layers")
    if not isinstance(layers, list) or not layers:
        raise AssertionError(f"{what} has no layers.")
    if len(layers) > 64:
        raise AssertionError(f"{what} has {len(layers)} layers, far more than this model needs.")
    specs = [s for s in (_layer_spec(layer if isinstance(layer, dict) else {}, i) for i, layer in enumerate(layers))
             if s is not None]
    shape = None
    if specs and specs[0].kind == "InputLayer":
        shape = specs.pop(0).fields["shape"]
    if any(s.kind == "InputLayer" for s in specs):
        raise AssertionError(f"{what} has more than one input layer.")
    if shape is None:
        raise AssertionError(f"{what} has no input shape: start it with keras.Input(shape=(28, 28, 1)).")
    return shape, merge_activations(specs)


def merge_activations(specs: list[LayerSpec]) -> list[LayerSpec]:
    """Fold separate Activation/ReLU layers into the Conv2D/Dense they follow (BatchNormalization may sit
    in between), so Conv2D(..., activation='relu') and Conv2D(...) + ReLU() compare equal."""
    out: list[LayerSpec] = []
    last = None
    for s in specs:
        if s.kind == "Activation":
            if last is not None and last.activation == "linear":
                last.activation = s.activation
                continue
            out.append(s)
            continue
        if s.kind in ("Conv2D", "Dense"):
            last = s
        elif s.kind != "BatchNormalization":
            last = None
        out.append(s)
    return out


def analyse(input_shape, specs: list[LayerSpec]) -> list[dict]:
    """Per layer: output shape and parameter counts, computed with the usual formulas (no Keras).
    Used for the expected architectures and as a size guard before rebuilding."""
    shape = tuple(input_shape)
    rows = []
    for s in specs:
        f = s.fields
        params = non_trainable = 0
        if s.kind == "Conv2D" or s.kind in ("MaxPooling2D", "AveragePooling2D"):
            if len(shape) != 3:
                raise AssertionError(f"{s.describe()} needs an (H, W, C) input but gets {shape}.")
            (kh, kw) = f["kernel_size"] if s.kind == "Conv2D" else f["pool_size"]
            sh, sw = f["strides"]
            H, W, C = shape
            if f["padding"] == "same":
                Ho, Wo = -(-H // sh), -(-W // sw)
            else:
                Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
            if Ho < 1 or Wo < 1:
                raise AssertionError(f"{s.describe()} gets a {H}x{W} input, smaller than its window.")
            if s.kind == "Conv2D":
                params = kh * kw * C * f["filters"] + (f["filters"] if f["use_bias"] else 0)
                shape = (Ho, Wo, f["filters"])
            else:
                shape = (Ho, Wo, C)
        elif s.kind == "BatchNormalization":
            C = shape[-1]
            non_trainable = 2 * C
            params = (int(f["center"]) + int(f["scale"])) * C + non_trainable
        elif s.kind == "Flatten":
            shape = (int(np.prod(shape)),)
        elif s.kind == "Dense":
            params = shape[-1] * f["units"] + (f["units"] if f["use_bias"] else 0)
            shape = shape[:-1] + (f["units"],)
        rows.append({"layer": s.describe(), "kind": s.kind, "shape": shape, "params": params,
                     "non_trainable": non_trainable})
    return rows


def rebuild(input_shape, specs: list[LayerSpec]) -> list[dict]:
    """Rebuild the whitelisted layers with real Keras and report, per layer, the output shape and
    the parameter counts Keras computes (the authority on what the student's model holds)."""
    total = sum(r["params"] for r in analyse(input_shape, specs))
    if total > MAX_PARAMS:
        raise AssertionError(f"the model would hold about {total:,} parameters, far more than expected.")
    keras = keras_module()
    L = keras.layers
    built = []
    for s in specs:
        f = s.fields
        act = s.activation if s.activation in ACTIVATIONS else "linear"
        if s.kind == "Conv2D":
            built.append(L.Conv2D(f["filters"], f["kernel_size"], strides=f["strides"], padding=f["padding"],
                                  activation=act, use_bias=f["use_bias"]))
        elif s.kind == "Dense":
            built.append(L.Dense(f["units"], activation=act, use_bias=f["use_bias"]))
        elif s.kind == "MaxPooling2D":
            built.append(L.MaxPooling2D(f["pool_size"], strides=f["strides"], padding=f["padding"]))
        elif s.kind == "AveragePooling2D":
            built.append(L.AveragePooling2D(f["pool_size"], strides=f["strides"], padding=f["padding"]))
        elif s.kind == "BatchNormalization":
            built.append(L.BatchNormalization(center=f["center"], scale=f["scale"]))
        elif s.kind == "Flatten":
            built.append(L.Flatten())
        elif s.kind == "Activation":
            built.append(L.Activation(act))
    model = keras.Sequential([keras.Input(tuple(input_shape)), *built])
    rows = []
    for s, layer in zip(specs, model.layers):
        weights = layer.weights
        rows.append({"layer": s.describe(), "kind": s.kind, "shape": tuple(int(d) for d in layer.output.shape[1:]),
                     "params": int(sum(int(np.prod(w.shape)) for w in weights)),
                     "non_trainable": int(sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights))})
    return rows


def student_model(handle, what: str) -> tuple[tuple, list[LayerSpec], list[dict]]:
    """Input shape, whitelisted layers and rebuilt per-layer numbers of a student's Keras model handle."""
    if handle is None:
        raise AssertionError(f"{what} returned None: return the model.")
    if not isinstance(handle, StudentObject):
        raise AssertionError(f"{what} returned a {type_name(handle)}, expected a keras.Sequential model.")
    try:
        to_json = handle.to_json
    except BaseException as exc:
        if is_fatal(exc):
            raise
        raise AssertionError(f"{what} returned a {type_name(handle)}, expected a keras.Sequential model "
                             "(it has no to_json()).") from None
    shape, specs = parse_model_json(to_json(), what)
    return shape, specs, rebuild(shape, specs)


def architecture_problems(what: str, got_shape, got_specs, got_rows, want_shape, want_specs) -> list[str]:
    """Differences between a student's model and the expected one, most basic first."""
    want_rows = analyse(want_shape, want_specs)
    if tuple(got_shape) != tuple(want_shape):
        return [f"{what} takes input of shape {tuple(got_shape)}, expected {tuple(want_shape)}."]
    got_kinds = [s.kind for s in got_specs]
    want_kinds = [s.kind for s in want_specs]
    if got_kinds != want_kinds:
        return [f"{what} has the layers {' -> '.join(got_kinds)}; expected {' -> '.join(want_kinds)}."]
    problems = []
    for i, (g, w) in enumerate(zip(got_specs, want_specs)):
        for key in ("filters", "units", "kernel_size", "strides", "padding", "pool_size", "use_bias", "center", "scale"):
            if key in w.fields and g.fields.get(key) != w.fields[key]:
                problems.append(f"layer {i + 1} ({w.kind}) has {key}={g.fields.get(key)!r}, expected {w.fields[key]!r}.")
        if w.kind in ("Conv2D", "Dense") and g.activation != w.activation:
            problems.append(f"layer {i + 1} ({w.kind}) has activation {g.activation!r}, expected {w.activation!r}.")
    for i, (g, w) in enumerate(zip(got_rows, want_rows)):
        if g["shape"] != w["shape"]:
            problems.append(f"layer {i + 1} ({w['kind']}) outputs {g['shape']}, expected {w['shape']}.")
            break
    tot = lambda rows, k="params": sum(r[k] for r in rows)  # noqa: E731
    if tot(got_rows) != tot(want_rows) or tot(got_rows, "non_trainable") != tot(want_rows, "non_trainable"):
        problems.append(f"{what} has {tot(got_rows):,} parameters ({tot(got_rows) - tot(got_rows, 'non_trainable'):,} "
                        f"trainable, {tot(got_rows, 'non_trainable'):,} non-trainable); expected {tot(want_rows):,} "
                        f"({tot(want_rows) - tot(want_rows, 'non_trainable'):,} trainable, "
                        f"{tot(want_rows, 'non_trainable'):,} non-trainable).")
    return problems

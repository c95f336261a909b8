"""Shared helpers for the hidden checks. Every message here is read by students: it says what
came back, what was expected, and where to look.

Tolerances: ``assert_close`` compares ``|actual - expected| <= atol * scale + rtol * |expected|``
with ``scale = max(1, max |expected|)``, so a float32 implementation of a large sum is judged
relative to the size of the numbers; a float32/float16 ``actual`` widens the tolerance to what
that dtype can hold. Nothing here ever requires a dtype beyond "real numbers".
"""
from __future__ import annotations

import json

import numpy as np

# Exceptions that mean the sandbox or the answer as a whole is unusable: never turned into a
# partial-credit sub-case failure, always passed on to the harness (which words them).
FATAL = {"SandboxTimeout", "SandboxCrash", "MissingAnswer", "NotImplementedAnswer", "KeyboardInterrupt"}

# Tolerance for comparing student results with a float64 oracle; wide enough for float32 code.
TOL = {"rtol": 1e-4, "atol": 1e-5}


# ----------------------------------------------------------------------------- describing values
HANDLE_TYPES = {"RemoteObject", "_LocalObject"}  # autograder.sandbox's handles (sandbox / nbgrader kernel)


def type_name(value) -> str:
    """The type of ``value`` as the student would name it (a handle reports the remote type)."""
    if isinstance(value, BaseException) and isinstance(getattr(value, "exc_type", None), str):
        return value.exc_type  # a StudentError carries the student's exception type
    if _is_handle(value):
        try:
            name = object.__getattribute__(value, "_type")  # RemoteObject
        except AttributeError:
            try:
                name = type(object.__getattribute__(value, "_obj")).__name__  # _LocalObject
            except AttributeError:
                name = ""
        if isinstance(name, str) and name:
            return name.replace("class ", "")
    return type(value).__name__


def _is_handle(value) -> bool:
    return type(value).__name__ in HANDLE_TYPES


def short(value, limit: int = 200) -> str:
    """A one-line, length-limited repr for messages."""
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=4, suppress=True, threshold=20, edgeitems=2, linewidth=1000):
            text = np.array2string(value, separator=", ")
    else:
        try:
            text = repr(value)
        except Exception:
            text = f"<{type_name(value)}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unanswered(value) -> bool:
    """A placeholder left in a stated answer: None, ``...`` or NotImplemented (handles included)."""
    if value is None or value is Ellipsis or value is NotImplemented:
        return True
    return _is_handle(value) and type_name(value) in ("ellipsis", "NotImplementedType")


def is_fatal(exc: BaseException) -> bool:
    return type(exc).__name__ in FATAL or not isinstance(exc, Exception)


def describe_error(exc: BaseException) -> str:
    """``TypeError: ...`` for a sub-case message (student errors included)."""
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type_name(exc)}: {text}" if text else type_name(exc)


def require(condition, message: str) -> None:
    """``assert`` without pytest's rewritten explanation appended to the student's message."""
    if not condition:
        raise AssertionError(message)


# ----------------------------------------------------------------------------- arrays
def as_array(value, what: str) -> np.ndarray:
    """``value`` as a plain ndarray of real numbers (bool, int or float), or an AssertionError
    saying what came back instead. Lists/tuples of numbers are accepted."""
    if value is None:
        raise AssertionError(f"{what} returned None, expected a numpy array: is a `return` missing?")
    if _is_handle(value):
        raise AssertionError(f"{what} returned an object of type {type_name(value)}, expected a numpy array")
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (list, tuple, int, float, np.generic)) and not isinstance(value, str):
        try:
            arr = np.asarray(value)
        except Exception:  # ragged lists
            raise AssertionError(f"{what} returned a {type(value).__name__} that is not a rectangular "
                                 f"array of numbers: {short(value)}") from None
        if arr.dtype.kind not in "biuf":
            raise AssertionError(f"{what} returned a {type(value).__name__} that is not an array of "
                                 f"numbers: {short(value)}")
    else:
        raise AssertionError(f"{what} returned an object of type {type_name(value)}, expected a numpy array")
    if arr.dtype.kind not in "biuf":
        kind = "complex numbers" if arr.dtype.kind == "c" else f"dtype {arr.dtype}"
        raise AssertionError(f"{what} is an array of {kind}, expected real numbers (float)")
    return np.asarray(arr)


def assert_shape(arr, expected, what: str, hint: str = "") -> np.ndarray:
    arr = as_array(arr, what)
    expected = tuple(int(d) for d in expected)
    if arr.shape != expected:
        msg = f"{what} has shape {arr.shape}, expected {expected}"
        raise AssertionError(msg + (f". {hint}" if hint else ""))
    return arr


def _tolerances(actual: np.ndarray, rtol: float, atol: float) -> tuple[float, float]:
    if actual.dtype.kind == "f" and actual.dtype.itemsize < 8:
        floor = (1e-4, 1e-5) if actual.dtype.itemsize >= 4 else (1e-2, 1e-3)
        rtol, atol = max(rtol, floor[0]), max(atol, floor[1])
    return rtol, atol


def mismatch(actual, expected, rtol: float = TOL["rtol"], atol: float = TOL["atol"]) -> np.ndarray | None:
    """Boolean mask of the wrong elements, or None when everything is within tolerance.
    Shapes must match; non-finite values count as wrong unless they equal the expected ones."""
    a = np.asarray(actual)
    e = np.asarray(expected, dtype=np.float64)
    rtol, atol = _tolerances(a, rtol, atol)
    a = a.astype(np.float64)
    scale = max(1.0, float(np.max(np.abs(e)))) if e.size and np.all(np.isfinite(e)) else 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~(np.abs(a - e) <= atol * scale + rtol * np.abs(e))
    bad &= ~((a == e) & ~np.isfinite(e))
    return bad if bad.any() else None


def close(actual, expected, rtol: float = TOL["rtol"], atol: float = TOL["atol"]) -> bool:
    """True when ``actual`` is a real array of the expected shape and within tolerance (no raise)."""
    try:
        a = np.asarray(actual)
    except Exception:
        return False
    if a.dtype.kind not in "biuf" or a.shape != np.shape(expected):
        return False
    return mismatch(a, expected, rtol, atol) is None


def _excerpt(a: np.ndarray, e: np.ndarray, idx: tuple) -> str:
    """The 3x3 neighbourhood (last two axes) of the worst element, got vs expected."""
    if a.ndim < 2:
        lo = max(0, idx[-1] - 2) if a.ndim else 0
        sl = (slice(lo, lo + 5),) if a.ndim else ()
    else:
        i, j = idx[-2], idx[-1]
        sl = tuple(idx[:-2]) + (slice(max(0, i - 1), i + 2), slice(max(0, j - 1), j + 2))
    return f" Nearby: got {short(np.asarray(a[sl]), 160)}, expected {short(np.asarray(e[sl]), 160)}."


def assert_close(actual, expected, what: str, rtol: float = 1e-5, atol: float = 1e-6, hint: str = "",
                 lead: str = "") -> np.ndarray:
    """Shape first, then NaN/inf, then values; the message says where and by how much.
    ``hint`` is appended to a failure message; ``lead`` (a recognised bug) is put first."""
    expected = np.asarray(expected, dtype=np.float64)
    a = assert_shape(actual, expected.shape, what, hint)
    af = a.astype(np.float64)
    suffix = f" {hint}" if hint else ""
    nonfinite = ~np.isfinite(af) & np.isfinite(expected)
    if nonfinite.any():
        idx = tuple(int(i) for i in np.argwhere(nonfinite)[0])
        raise AssertionError(f"{what} contains {'NaN' if np.isnan(af[idx]) else 'inf'} "
                             f"({int(nonfinite.sum())} of {af.size} values, first at index {idx})."
                             f"{suffix}")
    bad = mismatch(a, expected, rtol, atol)
    if bad is None:
        return a
    err = np.where(bad, np.abs(af - expected), -1.0)
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
    where = f" at index {idx}" if af.ndim else ""
    lead = (lead if lead.endswith(("?", "!", ".")) else lead + ".") + " " if lead else ""
    msg = (f"{what}: {lead}{int(bad.sum())} of {af.size} values are wrong; the largest error is "
           f"{float(err[idx]):.4g}{where} (got {float(af[idx]):.6g}, expected {float(expected[idx]):.6g}).")
    if af.ndim and af.size > 1:
        msg += _excerpt(af, expected, idx)
    raise AssertionError(msg + suffix)


def distinct(rng: np.random.Generator, shape, low: float = -3.0, high: float = 3.0) -> np.ndarray:
    """Random float64 values with no two closer than about (high - low) / size: no ties anywhere."""
    shape = tuple(shape)
    n = int(np.prod(shape))
    grid = np.linspace(low, high, n) if n > 1 else np.array([0.5 * (low + high)])
    return rng.permutation(grid).reshape(shape)


# ----------------------------------------------------------------------------- student objects
def read_attr(obj, name: str, what: str, hint: str = ""):
    """``getattr(obj, name)`` with a student-facing message when the attribute does not exist."""
    try:
        return getattr(obj, name)
    except BaseException as exc:
        if is_fatal(exc):
            raise
        if isinstance(exc, AttributeError) or type_name(exc) == "AttributeError":
            raise AssertionError(f"{what}: the object has no attribute `{name}`." + (f" {hint}" if hint else "")) from None
        raise


# ----------------------------------------------------------------------------- sub-cases
def run_cases(cases, partial, what: str) -> None:
    """Run ``cases`` (pairs ``(label, fn)``); each ``fn()`` raises AssertionError (or a student
    error) on failure. All pass: return. None pass: raise the first failure. Some pass: award the
    passing fraction through ``partial`` with the first failure as the message."""
    failures = []
    first_exc = None
    for label, fn in cases:
        try:
            fn()
        except BaseException as exc:
            if is_fatal(exc):
                raise
            if first_exc is None:
                first_exc = exc
            text = str(exc) if isinstance(exc, AssertionError) else describe_error(exc)
            failures.append(f"{label}: {text}")
    if not failures:
        return
    n = len(cases)
    if len(failures) == n:
        if not isinstance(first_exc, AssertionError):
            raise first_exc  # the harness words student errors itself
        more = f" (all {n} cases fail)" if n > 1 else ""
        raise AssertionError(f"{failures[0]}{more}")
    passed = n - len(failures)
    partial(passed / n, f"{what}: {passed} of {n} cases pass. First failing case, {failures[0]}")


# ----------------------------------------------------------------------------- pooling (Problems 4 and 5)
def pair(v) -> tuple[int, int]:
    """An int or an (h, w) pair as (h, w)."""
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def pool_out_shape(x_shape, pool, stride=None) -> tuple[int, int, int, int]:
    (ph, pw), (sh, sw) = pair(pool), pair(pool if stride is None else stride)
    N, C, H, W = x_shape
    return N, C, (H - ph) // sh + 1, (W - pw) // sw + 1


def pool_label(x_shape, pool, stride=None) -> str:
    s = "None (= pool size)" if stride is None else repr(stride)
    return f"x of shape {tuple(x_shape)}, pool_size={pool!r}, stride={s}"


def make_pool(student, cls: str, pool, stride=None):
    """``student.MaxPool2D(pool_size=..., stride=...)``; stride is left out when it is None."""
    factory = getattr(student, cls)
    return factory(pool_size=pool) if stride is None else factory(pool_size=pool, stride=stride)


def pool_shape_hint(got, x_shape, pool, stride=None) -> str:
    (ph, pw), (sh, sw) = pair(pool), pair(pool if stride is None else stride)
    N, C, H, W = x_shape
    exp = pool_out_shape(x_shape, pool, stride)
    got = tuple(got)
    if len(got) != 4:
        return "The output must be 4-D: (N, C, H', W')."
    if got[:2] != (N, C):
        return "Pooling keeps the batch and channel axes: (N, C, H', W')."
    if got[2:] == (exp[3], exp[2]) and exp[2] != exp[3]:
        return "Height and width are swapped."
    if got[2:] == (-(-(H - ph) // sh) + 1, -(-(W - pw) // sw) + 1):
        return "A partial window at the edge is counted: H' = (H - ph) // sh + 1 drops it (floor)."
    if got[2:] == ((H - ph) // ph + 1, (W - pw) // pw + 1) and (sh, sw) != (ph, pw):
        return "The stride is ignored: windows start every `stride` rows/columns (stride None means stride = pool size)."
    if (ph, pw) != (ph, ph) and got[2:] == ((H - ph) // sh + 1, (W - ph) // sw + 1):
        return "A tuple pool_size (h, w) uses h for rows and w for columns."
    return "H' = (H - pool_h) // stride_h + 1 and W' = (W - pool_w) // stride_w + 1 (no padding)."


def window_view(x: np.ndarray, pool, stride=None) -> np.ndarray:
    """(N, C, H', W', ph, pw) view of the pooling windows of x."""
    from numpy.lib.stride_tricks import sliding_window_view

    (ph, pw), (sh, sw) = pair(pool), pair(pool if stride is None else stride)
    return sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::sh, ::sw]


# ----------------------------------------------------------------------------- Keras models (Problems 3 and 8)
# A student's model is read ONLY as JSON text (``model.to_json()`` run in the sandbox) with
# ``json.loads``; nothing of it is ever deserialised by Keras (Keras config deserialisation has had
# code-execution bugs). A whitelist of layer classes and of the few fields the checks need is
# extracted, validated, and the model is rebuilt here from real Keras layers to count its
# parameters and shapes.
KERAS_LAYERS = ("InputLayer", "Conv2D", "BatchNormalization", "Flatten", "Dense", "MaxPooling2D",
                "AveragePooling2D", "Activation", "Dropout", "ReLU")
ACTIVATIONS = {"relu", "softmax", "linear", "sigmoid", "tanh", "elu", "selu", "gelu", "softplus", "softsign",
               "swish", "silu", "leaky_relu", "relu6", "exponential", "hard_sigmoid", "mish", "log_softmax"}
MAX_JSON_CHARS = 2_000_000
MAX_PARAMS = 50_000_000

_KERAS = None


def keras_module():
    """Keras (TensorFlow backend), imported on first use, once per process."""
    global _KERAS
    if _KERAS is None:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras  # noqa: PLC0415 - deliberately lazy

        _KERAS = keras
    return _KERAS


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
    if not _is_handle(handle):
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

"""The grader's correctness catalogue.

* Realistic buggy implementations (``BUGS``): each must lose points on its problem, in the check the
  table names, with a message that says what to look at, and keep full marks on every other problem
  of its notebook, except the problems that build on the buggy cell (``DEPENDENTS``).
* Different correct implementations (``CORRECT``): each must get full marks.
* A bug in a layer the classifier uses is judged again by Problem 7 (``LAYER_BUGS_IN_PROBLEM_7``):
  Problem 7 grades what the classifier achieves, so a layer bug costs Problem 7 points exactly when the
  classifier no longer learns well; the layer's own problem is where such a bug is caught.

A bug is either patches on the source solution (``(grade_id, old, new)``; every ``old`` must occur, so
a bug stays real when the solution is edited) or a complete answer cell in ``fixtures/catalogue/bugs``.
Correct variants are complete answer cells in ``fixtures/catalogue/correct`` (the other cells stay the
source solution), or patches where the variant is a small change of the solution. Only the notebook the cell lives in is graded, with ``select=`` its check modules
(each notebook runs in a sandbox of its own); Problem 7 (it trains) only where the table says so.

Grading is deterministic: the checks seed their inputs from their names, the classifier is fitted with
``random_state=0`` on the harness's fixed sample, so an xfail here is a finding, not flakiness.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import pytest

from autograder.assignment.solutions import source_solutions
from tests.conftest import FIXTURES, modules_of, problem_of

CATALOGUE = FIXTURES / "catalogue"
SOLUTIONS = source_solutions()
NOTEBOOK_OF = {gid: nb for nb, cells in SOLUTIONS.items() for gid in cells}

# Problems whose checks run another problem's answer cell and may legitimately lose points with it:
# Problem 2 runs the student's Conv2d on the worked example; the Problem 7 classifier is built from
# Conv2d, MaxPool2D and Flatten (not AveragePool2D). Verified against the solutions below.
DEPENDENTS = {"p1_conv2d": {2, 7}, "p4_maxpool": {7}, "p6_flatten": {7}}


# ----------------------------------------------------------------------------- the catalogue
@dataclass(frozen=True)
class Bug:
    name: str
    problem: int                  # the problem that must lose points
    check: str                    # part of the name of the check that must catch it (exactly one check)
    message: str                  # regex (case-insensitive) its output must match: what to look at
    what: str                     # the mistake, in words
    patches: tuple = ()           # (grade_id, old, new) on the source solution
    file: tuple | None = None     # (grade_id, file under fixtures/catalogue/bugs/): a complete answer cell
    missed: str = ""              # a finding: why the checks do not catch it yet (the test is a strict xfail)

    @property
    def cells(self) -> set[str]:
        return {p[0] for p in self.patches} | ({self.file[0]} if self.file else set())

    def overrides(self) -> dict[str, str]:
        return {self.file[0]: (CATALOGUE / "bugs" / self.file[1]).read_text()} if self.file else {}


C1, C2, C3, C4, C5, C6, C7 = "p1_conv2d", "p2_small_array", "p3_output_size", "p4_maxpool", "p5_avgpool", "p6_flatten", "p7_classifier"
KERAS, LENET, P10 = "p3_keras_models", "p8_lenet", "p10_answers"

NAIVE_SOFTMAX = (C7, """    shifted = logits - logits.max(axis=1, keepdims=True)                 # log-sum-exp trick
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))""", """    exp = np.exp(logits)
    log_p = np.log(exp / exp.sum(axis=1, keepdims=True))""")

BUGS = [
    # --- Problem 1: Conv2d
    Bug("seed_dweights_never_stored", 1, "backward stores d_weights", r"d_weights is all zeros",
        "the seed's bug: backward computes the weight gradient into a local and never stores it",
        patches=((C1, "self.d_weights = (d_mat @ cols.T)", "d_weights = (d_mat @ cols.T)"),)),
    Bug("bias_gradient_written_into_bias", 1, "backward leaves weights and biases unchanged",
        r"wrote the bias gradient into self\.biases", "self.biases = d_out.sum(...) instead of self.d_biases",
        patches=((C1, "self.d_biases = d_mat.sum(axis=1)", "self.biases = d_mat.sum(axis=1)"),)),
    Bug("pad_slice_empty_when_p0", 1, "backward returns d_x", r"\[p:-p\] gives an empty array",
        "d_x cropped with [p:-p], empty when padding is 0", file=(C1, "conv_pad_slice_when_p0.py")),
    Bug("stride_ignored_in_backward", 1, "backward returns d_x", r"how the stride maps output positions",
        "backward steps the windows by 1 whatever the stride", file=(C1, "conv_stride_ignored_in_backward.py")),
    Bug("height_width_swapped", 1, "forward output shape", r"height and width are swapped",
        "forward returns (N, F, W', H')",
        patches=((C1, "[..., :Wo].transpose(1, 0, 2, 3))", "[..., :Wo].transpose(1, 0, 3, 2))"),)),
    Bug("flipped_kernel", 1, "forward matches tf.nn.conv2d (stride 1", r"flipped the kernel",
        "true convolution (kernel flipped) instead of cross-correlation",
        patches=((C1, "w_mat = self.weights.reshape(self.out_channels, -1)",
                  "w_mat = self.weights[:, :, ::-1, ::-1].reshape(self.out_channels, -1)"),)),
    Bug("bias_per_input_channel", 1, "forward matches tf.nn.conv2d (stride 1", r"once per input channel",
        "the bias is added inside the loop over input channels", file=(C1, "conv_bias_per_input_channel.py")),
    Bug("conv_output_size_off_by_one", 1, "forward output shape", r"off by one",
        "H' = (H + 2p - k) // s, without the + 1",
        patches=((C1, "Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1",
                  "Ho, Wo = (H + 2 * p - k) // s, (W + 2 * p - k) // s"),)),
    Bug("stride_ignored_in_forward", 1, "forward output shape", r"stride is ignored", "forward slides the window by 1",
        patches=((C1, "k, s, p = self.kernel_size, self.stride, self.padding\n        N, C, H, W = x.shape",
                  "k, s, p = self.kernel_size, 1, self.padding\n        N, C, H, W = x.shape"),)),
    Bug("padding_ignored_in_forward", 1, "forward output shape", r"padding is missing", "forward never pads x",
        patches=((C1, "k, s, p = self.kernel_size, self.stride, self.padding\n        N, C, H, W = x.shape",
                  "k, s, p = self.kernel_size, self.stride, 0\n        N, C, H, W = x.shape"),)),
    Bug("padding_not_removed_from_dx", 1, "backward returns d_x", r"still includes the padding",
        "backward returns the padded d_x", file=(C1, "conv_padding_left_in_dx.py")),
    Bug("dbiases_summed_over_wrong_axes", 1, "backward stores d_biases", r"axes 0, 2, 3",
        "d_biases summed over the spatial axes only: shape (N, F)",
        patches=((C1, "self.d_biases = d_mat.sum(axis=1)", "self.d_biases = d_out.sum(axis=(2, 3))"),)),
    Bug("update_adds_gradient", 1, "update(learning_rate) applies one SGD step", r"update adds the gradient",
        "weights += lr * d_weights",
        patches=((C1, "self.weights = self.weights - learning_rate", "self.weights = self.weights + learning_rate"),
                 (C1, "self.biases = self.biases - learning_rate", "self.biases = self.biases + learning_rate"))),
    Bug("update_inside_backward", 1, "backward leaves weights and biases unchanged", r"no update inside backward",
        "backward takes the SGD step itself",
        patches=((C1, "return np.ascontiguousarray(d_x.transpose(1, 0, 2, 3))",
                  "self.update(0.01)  # take the step right away\n        return np.ascontiguousarray(d_x.transpose(1, 0, 2, 3))"),)),
    Bug("forward_keeps_state", 1, "repeated calls give the same results", r"modify x or keep state",
        "forward accumulates into an output buffer kept from the previous call", file=(C1, "conv_forward_keeps_state.py")),
    Bug("backward_pads_cached_input_in_place", 1, "repeated calls give the same results", r"cached by forward",
        "backward pads the cached input in place (self.x = np.pad(self.x)), so a second call pads twice",
        file=(C1, "conv_backward_pads_cached_input.py")),
    Bug("dweights_divided_by_batch", 1, "backward stores d_weights", r"divided by the batch size",
        "d_weights averaged over the batch",
        patches=((C1, "self.d_weights = (d_mat @ cols.T).reshape(self.weights.shape)",
                  "self.d_weights = (d_mat @ cols.T).reshape(self.weights.shape) / N"),)),
    Bug("dx_with_flipped_kernel", 1, "backward returns d_x", r"flipped kernel",
        "backward flips the kernel for d_x ('full convolution with the rotated filter') on top of im2col",
        patches=((C1, "w_mat = self.weights.reshape(F, -1)", "w_mat = self.weights[:, :, ::-1, ::-1].reshape(F, -1)"),)),
    Bug("init_not_he", 1, "He initialisation", r"sqrt\(2 / \(C \* k \* k\)\)", "weights = 0.01 * randn",
        patches=((C1, "draws * np.sqrt(2.0 / (in_channels * kernel_size * kernel_size))", "draws * 0.01"),)),
    Bug("init_lecun_scale", 1, "He initialisation", r"sqrt\(2 / \(C \* k \* k\)\)",
        "weights ~ N(0, 1 / (C k k)) (LeCun / 'Xavier' scale): std = He / sqrt(2)",
        patches=((C1, "np.sqrt(2.0 / (in_channels * kernel_size * kernel_size))",
                  "np.sqrt(1.0 / (in_channels * kernel_size * kernel_size))"),)),
    Bug("dweights_accumulated_across_calls", 1, "repeated calls give the same results", r"doubled",
        "self.d_weights += ... (never reset between backward calls)",
        patches=((C1, "self.d_weights = (d_mat @ cols.T)", "self.d_weights = self.d_weights + (d_mat @ cols.T)"),)),
    Bug("col2im_assigns_overlapping_windows", 1, "backward returns d_x", r"wrong where windows overlap.*\+=",
        "col2im writes each window's d_x with = instead of +=: overlapping windows overwrite each other",
        file=(C1, "conv_col2im_assigns_overlaps.py")),
    Bug("dx_crop_hard_coded_for_padding_1", 1, "backward returns d_x", r"\[1:-1\].*but the padding here is 0",
        "d_x cropped with [1:-1], right only for padding 1", file=(C1, "conv_dx_crop_for_padding_1.py")),
    Bug("pad_every_axis_crash_hides_missing_bias", 1, "forward matches tf.nn.conv2d with stride and padding",
        r"ValueError.*second problem behind the first.*the bias is missing",
        "np.pad(x, p) pads N and C too (a crash whenever padding > 0), and the bias is never added: the crash "
        "must not hide the second bug", file=(C1, "conv_pads_every_axis_no_bias.py")),
    # --- Problem 2: the worked example
    Bug("p2_forward_on_3d_input_raises", 2, "small_out and small_dx hold",
        r"answer cell raised ValueError.*before it got there",
        "the example's forward called on x_small[0] (no batch axis): the answer cell raises and small_out stays None",
        patches=((C2, "small_out = small_conv.forward(x_small)", "small_out = small_conv.forward(x_small[0])"),)),
    Bug("p2_dx_transposed", 2, "small_out and small_dx hold", r"small_dx: .*values are wrong", "small_dx stored transposed",
        patches=((C2, "small_dx = small_conv.backward(delta_small)", "small_dx = small_conv.backward(delta_small)[0, 0].T"),)),
    Bug("p2_out_by_hand_with_flipped_kernel", 2, "small_out and small_dx hold", r"flipped the kernel",
        "small_out worked out by hand as a true convolution",
        patches=((C2, "small_out = small_conv.forward(x_small)",
                  "small_conv.forward(x_small)\nsmall_out = np.array([[[[4, 4], [4, 4]], [[-1, -1], [-1, -1]]]], dtype=float)"),)),
    # --- Problem 3: calculate_output_size
    Bug("size_float_division", 3, "does not divide evenly", r"//, not /", "(N + 2P - F) / S + 1",
        patches=((C3, "return int((N_in + 2 * P - F) // S + 1)", "return (N_in + 2 * P - F) / S + 1"),)),
    Bug("size_off_by_one", 3, "without padding", r"off by one", "forgets the + 1",
        patches=((C3, "return int((N_in + 2 * P - F) // S + 1)", "return int((N_in + 2 * P - F) // S)"),)),
    Bug("size_rounds_up", 3, "does not divide evenly", r"rounded up", "ceil instead of floor",
        patches=((C3, "return int((N_in + 2 * P - F) // S + 1)", "return int(np.ceil((N_in + 2 * P - F) / S)) + 1"),)),
    Bug("size_padding_one_side", 3, "with padding", r"both sides", "N + P - F: padding counted once",
        patches=((C3, "return int((N_in + 2 * P - F) // S + 1)", "return int((N_in + P - F) // S + 1)"),)),
    # --- Problem 4: MaxPool2D
    Bug("maxpool_grad_to_every_cell", 4, "backward routes d_out to the arg-max (stride = pool size)",
        r"goes to every cell of the window", "backward gives d_out to every cell of the window",
        patches=((C4, "+= np.where(arg == a, d_out, 0)", "+= d_out"),)),
    Bug("maxpool_stride_ignored", 4, "forward output shape", r"stride is ignored", "stride assumed = pool size",
        patches=((C4, "self._sh, self._sw = pair(pool_size if stride is None else stride)",
                  "self._sh, self._sw = pair(pool_size)"),)),
    Bug("maxpool_default_stride_1", 4, "forward matches tf.nn.max_pool2d (stride = pool size)",
        r"stride=None \(= pool size\)", "def __init__(self, pool_size=2, stride=1): overlapping windows by default",
        patches=((C4, "def __init__(self, pool_size=2, stride=None):", "def __init__(self, pool_size=2, stride=1):"),)),
    Bug("maxpool_ties_to_all_maxima", 4, "ties", r"one max position",
        "equality mask: every tied maximum gets the whole d_out", file=(C4, "maxpool_ties_all_maxima.py")),
    Bug("maxpool_overlap_assigned_not_added", 4, "backward with overlapping windows", r"collects the sum",
        "d_x[window] = ... instead of +=: overlapping windows overwrite each other",
        patches=((C4, "+= np.where(arg == a, d_out, 0)", "= np.where(arg == a, d_out, 0)"),)),
    Bug("maxpool_pool_height_used_for_width", 4, "backward with overlapping windows",
        r"IndexError.*use the pool height and row stride for rows",
        "the window's width taken from the pool height: an IndexError for a (3, 2) pool, hidden behind a wrong value",
        file=(C4, "maxpool_pool_height_for_width.py")),
    # --- Problem 5: AveragePool2D
    Bug("avgpool_backward_equality_mask", 5, "backward spreads d_out equally", r"average pooling has no mask",
        "backward copied from max pooling (equality mask)", file=(C5, "avgpool_backward_equality_mask.py")),
    Bug("avgpool_forward_sums", 5, "forward matches tf.nn.avg_pool2d", r"sum of each window", "forgets / (ph * pw)",
        patches=((C5, "return total / (ph * pw)", "return total"),)),
    Bug("avgpool_backward_not_divided", 5, "backward spreads d_out equally", r"not divided by the window size",
        "backward spreads d_out without / (ph * pw)", patches=((C5, "share = d_out / (ph * pw)", "share = d_out"),)),
    Bug("avgpool_default_stride_1", 5, "forward matches tf.nn.avg_pool2d", r"stride=None \(= pool size\)",
        "def __init__(self, pool_size=2, stride=1)",
        patches=((C5, "def __init__(self, pool_size=2, stride=None):", "def __init__(self, pool_size=2, stride=1):"),)),
    Bug("avgpool_overlap_assigned_not_added", 5, "backward with overlapping windows", r"add up \(\+=\)",
        "d_x[window] = share instead of +=",
        patches=((C5, "v:v + sw * (Wo - 1) + 1:sw] += share", "v:v + sw * (Wo - 1) + 1:sw] = share"),)),
    # --- Problem 6: Flatten
    Bug("flatten_channels_last", 6, "forward gives (N, D)", r"reordered \(channels last\)", "flattens channels-last, as Keras does",
        patches=((C6, "return x.reshape(x.shape[0], -1)", "return x.transpose(0, 2, 3, 1).reshape(x.shape[0], -1)"),)),
    Bug("flatten_mixes_samples", 6, "forward gives (N, D)", r"mixed across samples",
        "x.reshape(-1, N).T: the right shape, values from other samples",
        patches=((C6, "return x.reshape(x.shape[0], -1)", "return x.reshape(-1, x.shape[0]).T"),)),
    Bug("flatten_backward_forgets_batch", 6, "backward restores", r"shape of the x given to forward",
        "forward stores x.shape[1:], backward reshapes d_out to it",
        patches=((C6, "self._shape = x.shape", "self._shape = x.shape[1:]"),)),
    Bug("flatten_squeezes_single_sample", 6, "single sample", r"batch axis is gone", "forward ends in .squeeze()",
        patches=((C6, "return x.reshape(x.shape[0], -1)", "return x.reshape(x.shape[0], -1).squeeze()"),)),
    # --- Problem 7: the classifier (trains: graded with check_p07_classifier.py)
    Bug("softmax_overflow_nan", 7, "held-out accuracy", r"NaN.*subtract each row's maximum",
        "softmax without max-subtraction; the classifier works in pixel units (X * 255, learning rate 3e-5 to "
        "match), so exp overflows float32 on the first batch and every weight turns NaN (with the stable "
        "softmax the same classifier still learns)",
        patches=(NAIVE_SOFTMAX, (C7, "X = np.asarray(X, np.float32)", "X = np.asarray(X, np.float32) * 255"),
                 (C7, "learning_rate=0.05", "learning_rate=3e-5"))),
    Bug("histories_per_batch", 7, "loss_history_ and accuracy_history_", r"one of each per epoch",
        "loss_history_ gets one value per batch",
        patches=((C7, "loss_sum += loss * len(batch)", "loss_sum += loss * len(batch)\n                self.loss_history_.append(loss)"),
                 (C7, "            self.loss_history_.append(loss_sum / N)\n", ""))),
    Bug("predict_returns_scores", 7, "predict returns one integer label", r"return the class labels",
        "predict returns the (N, 10) scores, no argmax",
        patches=((C7, "labels.append(out.argmax(axis=1))", "labels.append(out)"),
                 (C7, "return np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)",
                  "return np.concatenate(labels)"))),
    # --- Problem 3, Keras part
    Bug("keras_padding_model_forgets_strides", 3, "strides=2", r"pass strides=2 to every Conv2D", "strides never passed to Conv2D",
        patches=((KERAS, 'layers.Conv2D(32, 3, strides=strides, padding=padding, activation="relu")',
                  'layers.Conv2D(32, 3, padding=padding, activation="relu")'),)),
    Bug("keras_padding_model_forgets_batchnorm", 3, "batch_norm=True", r"put a BatchNormalization layer after each", "batch_norm ignored",
        patches=((KERAS, "model.add(layers.BatchNormalization())", "pass"),)),
    Bug("keras_single_conv_compiled_with_adam", 3, "compiled with RMSprop", r"compiled with the optimizer 'adam'", "adam instead of RMSprop",
        patches=((KERAS, "optimizer=keras.optimizers.RMSprop()", 'optimizer="adam"'),)),
    # --- Problem 8: LeNet
    Bug("lenet_same_padding", 8, "44,426 parameters", r"expected 44,426", "'same' padding: wrong shapes and parameter count",
        patches=((LENET, 'layers.Conv2D(6, 5, activation="relu")', 'layers.Conv2D(6, 5, padding="same", activation="relu")'),
                 (LENET, 'layers.Conv2D(16, 5, activation="relu")', 'layers.Conv2D(16, 5, padding="same", activation="relu")'))),
    Bug("lenet_compiled_with_sgd", 8, "trains", r"with Adam", "optimizer='sgd' where the notebook asks for adam",
        patches=((LENET, 'optimizer="adam"', 'optimizer="sgd"'),)),
    Bug("lenet_no_softmax", 8, "layers in the LeNet order", r"expected 'softmax'", "linear output layer",
        patches=((LENET, 'layers.Dense(10, activation="softmax")', "layers.Dense(10)"),)),
    Bug("lenet_not_compiled", 8, "compiled with sparse categorical", r"not compiled: call model\.compile",
        "build_lenet returns the model without compiling it (02's visible tests read model.optimizer)",
        patches=((LENET, '    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])\n', ""),)),
    Bug("lenet_not_built", 8, "layers in the LeNet order", r"no input shape: start it with keras\.Input",
        "no keras.Input: the model is not built until it is trained",
        patches=((LENET, "        keras.Input(shape=(28, 28, 1)),\n        layers.Conv2D(6, 5", "        layers.Conv2D(6, 5"),)),
    Bug("keras_single_conv_not_compiled", 3, "compiled with RMSprop", r"not compiled: call model\.compile",
        "build_single_conv_model returns the model without compiling it",
        patches=((KERAS, '    model.compile(optimizer=keras.optimizers.RMSprop(), loss="sparse_categorical_crossentropy",\n'
                         '                  metrics=["accuracy"])\n', ""),)),
    # --- Problem 10: conv arithmetic
    Bug("p10_seed_b_parameters_31152", 10, "layer b: parameters", r"\(k\*k\*C_in \+ 1\) \* F",
        "the seed's 31,152 for layer b", patches=((P10, '"parameters": (3 * 3 * 24 + 1) * 48}', '"parameters": 31152}'),)),
    Bug("p10_seed_c_stride_1", 10, "layer c: output shape", r"uses stride 2", "the seed's (18, 18, 20): stride 1 for layer c",
        patches=((P10, '"output_shape": (9, 9, 20)', '"output_shape": (18, 18, 20)'),)),
    Bug("p10_channels_first", 10, "layer a: output shape", r"channels last", "(C, H, W) instead of (H, W, C)",
        patches=((P10, '"output_shape": (142, 142, 6)', '"output_shape": (6, 142, 142)'),)),
]


@dataclass(frozen=True)
class Variant:
    name: str
    files: dict = field(default_factory=dict)    # grade_id -> file under fixtures/catalogue/correct/
    what: str = ""
    patches: tuple = ()                          # (grade_id, old, new) on the source solution
    misjudged: str = ""                          # a finding: why the checks fail it (the test is a strict xfail)

    @property
    def cells(self) -> set[str]:
        return set(self.files) | {p[0] for p in self.patches}

    def overrides(self) -> dict[str, str]:
        return {gid: (CATALOGUE / "correct" / f).read_text() for gid, f in self.files.items()}


CORRECT = [
    Variant("conv_loops", {C1: "conv_loops.py"}, "explicit loops over output pixels and filters"),
    Variant("conv_einsum", {C1: "conv_einsum.py"}, "a loop over kernel offsets, einsum per offset"),
    Variant("conv_as_strided_im2col", {C1: "conv_as_strided_im2col.py"}, "as_strided im2col, np.add.at col2im"),
    Variant("conv_sliding_window_view", {C1: "conv_sliding_window_view.py"}, "sliding_window_view + einsum"),
    Variant("conv_float32", {C1: "conv_float32.py"}, "float32 parameters, buffers and results"),
    Variant("conv_naive_cs231n", {C1: "conv_naive_cs231n.py"}, "CS231n's naive loops over images, filters and pixels"),
    Variant("conv_per_pixel", {C1: "conv_per_pixel.py"}, "loops over images, filters, pixels and channels"),
    Variant("p2_literals_without_batch_axis", {C2: "p2_literals_no_batch_axis.py"}, "hand-computed, shapes (2,2,2), (4,4), (2,3,3)"),
    Variant("size_math_floor", {C3: "size_math_floor.py"}, "math.floor of a true division"),
    Variant("size_int_division", {C3: "size_int_division.py"}, "// without int()"),
    Variant("maxpool_reshape_with_fallback", {C4: "maxpool_reshape_fallback.py"}, "reshape for stride = pool, loops otherwise"),
    Variant("avgpool_loops_tuples_and_ints", {C5: "avgpool_loops_tuples.py"}, "int or (h, w) sizes, loops"),
    Variant("flatten_len_reshape", {C6: "flatten_len_reshape.py"}, "x.reshape(len(x), -1)"),
    Variant("flatten_np_prod", {C6: "flatten_np_prod.py"}, "np.reshape(x, (N, np.prod(x.shape[1:])))"),
    Variant("classifier_adam_one_conv", {C7: "classifier_adam_one_conv.py"}, "one conv layer, Adam, float64"),
    Variant("classifier_two_conv_sgd_via_update", {C7: "classifier_two_conv_sgd.py"}, "two conv layers, plain SGD through update()"),
    Variant("keras_separate_activation_layers", {KERAS: "keras_separate_activations.py"}, "Conv2D -> BatchNorm -> ReLU layers"),
    Variant("lenet_functional_api", {LENET: "lenet_functional.py"}, "keras.Model(inputs, outputs)"),
    Variant("lenet_categorical_crossentropy", {LENET: "lenet_categorical.py"}, "one-hot loss, RMSprop"),
    Variant("p10_lists", {P10: "p10_lists.py"}, "output shapes as lists"),
    Variant("p10_computed_with_numpy", {P10: "p10_numpy.py"}, "numpy integers from a helper"),
    Variant("size_numpy_floor_divide", {C3: "size_numpy_floor_divide.py"}, "np.floor_divide: a numpy integer"),
    Variant("p2_nested_lists", {C2: "p2_nested_lists.py"}, "the stated answers as nested lists"),
    Variant("classifier_early_stopping", what="the source classifier, stopping once the training accuracy passes 0.95",
            patches=((C7, "            self.accuracy_history_.append(correct / N)\n",
                      "            self.accuracy_history_.append(correct / N)\n"
                      "            if correct / N > 0.95:  # good enough: stop early\n"
                      "                break\n"),)),
]

# Layer bugs graded again with Problem 7: True = the classifier still learns well, Problem 7 keeps its
# points (the bug is caught by the layer's own problem); False = the classifier no longer learns, so
# Problem 7 loses points too. Measured held-out accuracies (source classifier, random_state=0).
LAYER_BUGS_IN_PROBLEM_7 = {
    "seed_dweights_never_stored": True,    # ~0.91: the frozen random conv features still feed a learning dense layer
    "maxpool_grad_to_every_cell": True,    # ~0.95: a wrong but still useful gradient
    "flatten_mixes_samples": False,        # ~0.10: every sample's features come from other samples
}

BUG_BY_NAME = {b.name: b for b in BUGS}


# ----------------------------------------------------------------------------- helpers
def notebook_of(cells) -> str:
    notebooks = {NOTEBOOK_OF[gid] for gid in cells}
    assert len(notebooks) == 1, f"one notebook per catalogue entry, got {notebooks}"
    return notebooks.pop()


def modules_for(cells, with_problem_7: bool = False) -> list[str]:
    notebook = notebook_of(cells)
    modules = modules_of(notebook)
    if with_problem_7 or C7 in cells:
        modules = modules_of(notebook, include_slow=True)
    return modules


def report(result) -> str:
    """Every check's score and output, for assertion messages."""
    lines = []
    for c in result.checks:
        lines.append(f"[{c.score:g}/{c.max_score:g}] {c.name} ({c.status})")
        if c.output:
            lines += ["      " + ln for ln in c.output.splitlines()[:6]]
    if result.cell_errors:
        lines.append(f"cell errors: {result.cell_errors}")
    return "\n".join(lines)


def grade_bug(grader, submission, bug: Bug, with_problem_7: bool = False):
    path = submission(overrides=bug.overrides(), patches=list(bug.patches))
    modules = modules_for(bug.cells, with_problem_7)
    result = grader.grade(path, select=modules)
    assert set(result.by_problem()) == {problem_of(m) for m in modules}, report(result)
    return result


def assert_caught(result, bug: Bug) -> None:
    """The bug's problem loses points, in the named check, with a message that says what to look at."""
    details = report(result)
    score, possible, _ = result.by_problem()[bug.problem]
    assert score < possible, f"{bug.name}: Problem {bug.problem} kept {score:g}/{possible:g}\n{details}"
    named = [c for c in result.checks if c.problem == bug.problem and bug.check in c.name]
    assert len(named) == 1, f"{bug.name}: {len(named)} checks of Problem {bug.problem} match {bug.check!r}\n{details}"
    check = named[0]
    assert check.score < check.max_score, f"{bug.name}: {check.name!r} passed\n{details}"
    assert re.search(bug.message, check.output, re.IGNORECASE | re.DOTALL), \
        f"{bug.name}: the output of {check.name!r} does not match {bug.message!r}:\n{check.output}"


def assert_full_marks_elsewhere(result, bug: Bug, also_exempt=()) -> None:
    exempt = {bug.problem, *also_exempt}
    for gid in bug.cells:
        exempt |= DEPENDENTS.get(gid, set())
    lost = {p: (s, poss) for p, (s, poss, _) in result.by_problem().items() if p not in exempt and s < poss}
    assert not lost, f"{bug.name} also cost points on {lost}\n{report(result)}"


# ----------------------------------------------------------------------------- the catalogue itself
def test_catalogue_size_and_coverage():
    assert len(BUGS) >= 25 and len(CORRECT) >= 8
    assert len({b.name for b in BUGS}) == len(BUGS) and len({v.name for v in CORRECT}) == len(CORRECT)
    assert {b.problem for b in BUGS} == {1, 2, 3, 4, 5, 6, 7, 8, 10}
    assert sum(C7 in v.cells and not v.misjudged for v in CORRECT) <= 3  # each one trains: keep the module fast
    assert set(LAYER_BUGS_IN_PROBLEM_7) <= set(BUG_BY_NAME)
    assert all(BUG_BY_NAME[n].cells <= set(DEPENDENTS) for n in LAYER_BUGS_IN_PROBLEM_7)
    assert set(LAYER_BUGS_IN_PROBLEM_7.values()) == {True, False}  # both outcomes are shown


def test_every_bug_applies_and_every_fixture_is_used(tmp_path):
    """Each patch's ``old`` occurs in the solution (make_submission raises otherwise), each fixture parses,
    changes its cell, and is referenced by exactly one entry."""
    from autograder.assignment.solutions import make_submission

    for bug in BUGS:
        assert bug.cells, bug.name
        assert all(gid in NOTEBOOK_OF for gid in bug.cells), bug.name
        make_submission(tmp_path / bug.name, overrides=bug.overrides(), patches=list(bug.patches))
        for gid, code in bug.overrides().items():
            ast.parse(code)
            assert code.strip() != SOLUTIONS[NOTEBOOK_OF[gid]][gid].strip(), bug.name
    used = {("bugs", b.file[1]) for b in BUGS if b.file} | {("correct", f) for v in CORRECT for f in v.files.values()}
    present = {(d, p.name) for d in ("bugs", "correct") for p in (CATALOGUE / d).glob("*.py")}
    assert used == present, f"unused: {present - used}; missing: {used - present}"
    for v in CORRECT:
        assert v.cells and all(gid in NOTEBOOK_OF for gid in v.cells), v.name
        make_submission(tmp_path / v.name, overrides=v.overrides(), patches=list(v.patches))
        for gid, code in v.overrides().items():
            ast.parse(code)


def test_declared_dependencies_match_the_solutions():
    """DEPENDENTS lists exactly the answer cells whose classes/functions another problem's cell uses."""
    cells = SOLUTIONS["01_scratch_cnn"]
    defined = {gid: {n.name for n in ast.parse(code).body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
               for gid, code in cells.items()}
    problem = {C1: 1, C2: 2, C3: 3, C4: 4, C5: 5, C6: 6, C7: 7}
    found: dict[str, set[int]] = {}
    for user, code in cells.items():
        used = {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}
        for gid, names in defined.items():
            if gid != user and names & used:
                found.setdefault(gid, set()).add(problem[user])
    assert found == DEPENDENTS


# ----------------------------------------------------------------------------- grading


def xfail(reason: str):
    return [pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)] if reason else []


@pytest.mark.parametrize("bug", [pytest.param(b, id=b.name, marks=xfail(b.missed)) for b in BUGS])
def test_bug_loses_points_on_its_problem_only(grader, submission, bug):
    result = grade_bug(grader, submission, bug)
    assert_caught(result, bug)
    assert_full_marks_elsewhere(result, bug)


@pytest.mark.parametrize("name", list(LAYER_BUGS_IN_PROBLEM_7), ids=list(LAYER_BUGS_IN_PROBLEM_7))
def test_layer_bug_is_judged_by_problem_7_by_what_the_classifier_learns(grader, submission, name):
    bug = BUG_BY_NAME[name]
    result = grade_bug(grader, submission, bug, with_problem_7=True)
    assert_caught(result, bug)
    assert_full_marks_elsewhere(result, bug, also_exempt=(7,))
    score, possible, _ = result.by_problem()[7]
    accuracy = next(c for c in result.checks if c.problem == 7 and "held-out accuracy" in c.name)
    if LAYER_BUGS_IN_PROBLEM_7[name]:
        assert score == possible, f"{name}: the classifier should still learn well\n{report(result)}"
    else:
        assert score < possible and accuracy.score < accuracy.max_score, \
            f"{name}: the classifier should no longer learn\n{report(result)}"
        assert re.search(r"held-out accuracy is 0\.\d+", accuracy.output, re.IGNORECASE), accuracy.output


@pytest.mark.parametrize("variant", [pytest.param(v, id=v.name, marks=xfail(v.misjudged)) for v in CORRECT])
def test_correct_variant_gets_full_marks(grader, submission, variant):
    path = submission(overrides=variant.overrides(), patches=list(variant.patches))
    modules = modules_for(variant.cells)
    result = grader.grade(path, select=modules)
    assert set(result.by_problem()) == {problem_of(m) for m in modules}, report(result)
    assert not result.cell_errors, report(result)
    failed = [c for c in result.checks if c.status != "passed"]
    assert not failed, report(result)
    assert result.total == result.possible > 0

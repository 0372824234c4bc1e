"""Golden numbers: every cell, in every loop form the engine runs it in, reproduces the same
hard-coded outputs, final states and gradients.

The setup (B = 2, T = 3, 2 features, 3 units; frames 3x3x1 and 2 filters of 2x2 for the
convolutional cells): inputs ``linspace(-1, 1)`` over their shape, each initial state
``linspace(-0.3, 0.3)``, weight i of ``layer.trainable_weights`` ``linspace(-0.5 + 0.1 i,
0.6 - 0.05 i)``, the mask ``[[1, 1, 1], [1, 1, 0]]`` with ``zero_output_for_mask=True``. The
loss is ``Σ_r Σ r ⊙ linspace(-1, 1)`` over ``[outputs, *final_states]``; the gradients are those
of the inputs, the initial states and the weights.

The numbers (``golden_values.py``) were computed once by a NumPy script in float64 from these
equations (σ the sigmoid; masked steps keep the states and emit zeros), the gradients by
central differences:

* SimpleRNN: ``h' = tanh(x W + h U + b)``.
* LSTM: ``i, f, o = σ(z_i, z_f, z_o)``, ``c' = f c + i tanh(z_c)``, ``h' = o tanh(c')`` with
  ``z = x W + b + h U`` (gates i, f, c, o); without forget gate ``c' = c + i tanh(z_c)`` (gates
  i, c, o); peephole ``z_i += p_i c``, ``z_f += p_f c``, ``z_o += p_o c'``; layer norm ``z =
  LN(x W) + b + LN(h U)``, ``c' = LN(f c + i tanh(z_c))`` (``LN(v) = (v - mean) / sqrt(var +
  1e-3) γ + β``); projection ``h' = (o tanh(c')) P``.
* GRU: ``z = σ(x W_z + h U_z + b_z)``, ``r = σ(x W_r + h U_r + b_r)``, ``h' = z h + (1 - z) h̃``
  with ``h̃ = tanh(x W_h + b_h + r (h U_h + b'_h))`` (``reset_after``) or
  ``h̃ = tanh(x W_h + b_h + (r h) U_h)``.
* Jordan: ``h = tanh(x W + b + ŷ U)``, ``ŷ' = softmax(h V + c)``.
* ConvLSTM2D, ConvGRU2D: the LSTM and the ``reset_after`` GRU with ``x W`` a ``valid`` and ``h U``
  a ``same`` (TensorFlow's padding: the extra row and column at the end) convolution.
"""

import contextlib
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.layers.cudnn import gpu_available
from kzoo.layers.scan import plan as plan_module
from tests.layers.golden_values import GOLDEN

L = kzoo.layers

CELLS = {
    "simple_rnn": lambda **kw: L.SimpleRNN(3, **kw),
    "lstm": lambda **kw: L.LSTM(3, **kw),
    "lstm_peephole": lambda **kw: L.LSTM(3, peephole=True, **kw),
    "lstm_no_forget_gate": lambda **kw: L.LSTM(3, use_forget_gate=False, **kw),
    "lstm_layer_norm": lambda **kw: L.LSTM(3, layer_norm=True, **kw),
    "lstm_projection": lambda **kw: L.LSTM(3, proj_units=2, **kw),
    "gru": lambda **kw: L.GRU(3, **kw),
    "gru_reset_before": lambda **kw: L.GRU(3, reset_after=False, **kw),
    "jordan": lambda **kw: L.Jordan(3, 2, **kw),
    "conv_lstm": lambda **kw: L.ConvLSTM2D(2, 2, **kw),
    "conv_gru": lambda **kw: L.ConvGRU2D(2, 2, **kw),
}
ENGINE_CELLS = ("simple_rnn", "lstm", "gru")       # those with an engine step
CUDNN_CELLS = ("lstm", "gru")
MASK = np.array([[1, 1, 1], [1, 1, 0]], bool)


def layer_and_inputs(name):
    layer = CELLS[name](return_sequences=True, return_state=True, zero_output_for_mask=True)
    frame = (3, 3, 1) if name.startswith("conv") else (2,)
    x = np.linspace(-1, 1, 6 * int(np.prod(frame))).reshape((2, 3) + frame).astype("float32")
    layer.build(x.shape)
    for i, weight in enumerate(layer.trainable_weights):
        weight.assign(np.linspace(-0.5 + 0.1 * i, 0.6 - 0.05 * i,
                                  int(np.prod(weight.shape))).reshape(weight.shape))
    initial = [np.linspace(-0.3, 0.3, 2 * int(np.prod(s))).reshape((2,) + tuple(np.atleast_1d(s)))
               .astype("float32") for s in layer.cell.state_size]
    return layer, x, initial


def forward_and_gradients(layer, x, initial, compiled, signature=None, train=True):
    """``(results, gradients)``: the results of a call without a tape (the inference loop), and
    (with ``train``) the gradients of the loss from a call under one (the training loop)."""
    def forward(x, initial):
        return layer(x, initial_state=initial, mask=MASK)

    def gradients(x, initial):
        with tf.GradientTape() as tape:
            tape.watch([x, *initial])
            results = layer(x, initial_state=initial, mask=MASK)
            loss = sum(tf.reduce_sum(r * tf.reshape(tf.linspace(-1.0, 1.0, tf.size(r)),
                                                    tf.shape(r))) for r in results)
        return tape.gradient(loss, [x, *initial, *layer.trainable_weights])

    if compiled:
        forward = tf.function(forward, input_signature=signature)
        gradients = tf.function(gradients, input_signature=signature)
    args = (tf.constant(x), [tf.constant(s) for s in initial])
    return forward(*args), gradients(*args) if train else None


def dynamic_signature(x, initial):
    """Batch and time unknown: the graph of a model with dynamic shapes."""
    return [tf.TensorSpec((None, None, *x.shape[2:])),
            [tf.TensorSpec((None, *s.shape[1:])) for s in initial]]


def _in(context, compiled=True, dynamic=False, train=True):
    """A form: the call and the training call traced (or run eagerly) in ``context``."""
    def run(layer, x, initial):
        with context():
            return forward_and_gradients(
                layer, x, initial, compiled,
                dynamic_signature(x, initial) if dynamic else None, train)
    return run


@contextlib.contextmanager
def _row_groups():
    with mock.patch.object(plan_module, "available_cores", lambda: 2), \
            mock.patch.object(plan_module, "MIN_GROUP_ROWS", 1):
        yield


# form: (run, the loops expected for (inference, training) of an engine cell, every cell?).
# TFLite traces are checked forward only: nothing trains through them.
FORMS = {
    "eager": (_in(contextlib.nullcontext, compiled=False), ("tensorarray", "bptt"), True),
    "tensorarray": (_in(lambda: L.scan_mode("tensorarray")), ("tensorarray", "bptt"), True),
    "auto_fixed_shapes": (_in(contextlib.nullcontext), ("xla", "bptt"), False),
    "auto_dynamic_shapes": (_in(contextlib.nullcontext, dynamic=True), ("tensorarray", "bptt"),
                            False),
    "xla_dynamic_shapes": (_in(lambda: L.scan_mode("xla"), dynamic=True), ("xla", "bptt"),
                           False),
    "row_groups": (_in(_row_groups), ("xla", "bptt"), False),
    # The cell's own step, differentiated by TensorFlow (the engine step switched off).
    "tensorflow_gradient": (_in(contextlib.nullcontext), ("tensorarray", "tensorarray"), False),
    "tflite": (_in(lambda: L.trace_target("tflite"), train=False), ("tflite",), True),
    "tflite_int8": (_in(lambda: L.trace_target("tflite_int8"), train=False), ("tflite_int8",),
                    True),
    "cudnn": (_in(contextlib.nullcontext), ("cudnn", "cudnn"), False),
}


def cases():
    for cell in CELLS:
        for form, (_, _, every_cell) in FORMS.items():
            if form == "cudnn":
                if cell in CUDNN_CELLS:
                    yield pytest.param(cell, form, id=f"{cell}-{form}", marks=pytest.mark.skipif(
                        not gpu_available(), reason="needs a GPU"))
            elif every_cell or cell in ENGINE_CELLS:
                yield pytest.param(cell, form, id=f"{cell}-{form}")


def check(got, want, what):
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=2e-6, err_msg=what)


@pytest.mark.parametrize("cell,form", list(cases()))
def test_every_loop_form_reproduces_the_golden_numbers(cell, form):
    layer, x, initial = layer_and_inputs(cell)
    run, loops, _ = FORMS[form]
    patch = contextlib.nullcontext()
    if form == "tensorflow_gradient":
        patch = mock.patch.object(type(layer.cell), "engine_step", lambda self, mask=None: None)
    if cell not in ENGINE_CELLS:
        loops = tuple("tensorarray" if loop in ("xla", "bptt") else loop for loop in loops)
    with patch, L.record_plans() as plans:
        results, gradients = run(layer, x, initial)
    # The form ran the loops it stands for: first the call's, then the training call's.
    assert tuple(dict.fromkeys(plan.loop for _, plan in plans)) in (loops, loops[:1])
    assert plans[-1][1].loop == loops[-1]
    if form == "row_groups":
        assert all(plan.row_groups == 2 for _, plan in plans)
    golden = GOLDEN[cell]
    check(results[0], golden["outputs"], "outputs")
    for k, state in enumerate(results[1:]):
        check(state, golden["states"][k], f"final state {k}")
    if gradients is None:
        return
    d_inputs, *rest = gradients
    d_initial, d_weights = rest[:len(initial)], rest[len(initial):]
    check(d_inputs, golden["d_inputs"], "gradient of the inputs")
    for k, d in enumerate(d_initial):
        check(d, golden["d_initial"][k], f"gradient of initial state {k}")
    for weight, d, want in zip(layer.trainable_weights, d_weights, golden["d_weights"]):
        check(d, want, f"gradient of {weight.path}")

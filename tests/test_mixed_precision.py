"""Mixed precision: every public layer and every registered model under Keras' ``mixed_float16``
and ``mixed_bfloat16`` policies builds, trains a step (finite loss and gradients), decodes
(seq2seq) and exports; its outputs are the float32 layer's or model's with the same weights,
within the 16-bit format's rounding; its exports equal the float32 model's.

Keras keeps the variables in float32 under these policies and computes in 16 bits inside a layer's
``__call__`` only; the public methods that callers run outside it (``cell.step``,
``AttentionWrapper.unroll``, ``Seq2Seq.search``...) cast themselves
(``kzoo.layers.cell.in_compute_dtype``). Exports trace in float32
(``kzoo.export.signatures.float32_compute``).

Tolerances. A 16-bit result carries the rounding of every operation that made it: float16 keeps
11 significant bits (unit roundoff 2**-11, about 5e-4), bfloat16 8 (2**-8, about 4e-3). The
layers here are small (widths up to 6, 5 time steps, inputs of unit scale): an output is a sum of
a few dozen rounded terms of order 1 through a tanh or a softmax, so about 20 roundoffs bound it:
1e-2 and 8e-2 (the largest differences measured are a fifth and a tenth of that). A model's
outputs (probabilities over 3 to 50 classes, logits of freshly initialized weights) are a fifth
as large, and so are the bounds. Exports compute in float32, so they meet the float32 export
tests' 1e-4.
"""

import contextlib
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo
import kzoo.export
import kzoo.layers as L
import kzoo.models as km

from .export.conftest import FAST_MODELS, assert_matches_keras, keras_reference, sample_feed, \
    small_config

POLICIES = ("mixed_float16", "mixed_bfloat16")
LAYER_ATOL = {"mixed_float16": 1e-2, "mixed_bfloat16": 8e-2}
MODEL_ATOL = {"mixed_float16": 2e-3, "mixed_bfloat16": 1.6e-2}
EXPORT_ATOL = 1e-4


@pytest.fixture(params=POLICIES)
def policy(request):
    """The global policy set to ``request.param`` for the test, float32 again after it."""
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy("float32")


@contextlib.contextmanager
def float32_policy():
    """The float32 policy inside the block (to build a reference), the test's policy after."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _floats(outputs):
    return [o for o in tf.nest.flatten(outputs)
            if tf.is_tensor(o) and o.dtype.is_floating]


def _as_float32(values):
    return [np.asarray(tf.cast(v, tf.float32)) for v in values]


# -- every public layer -----------------------------------------------------------------------
_rng = np.random.default_rng(0)
X = _rng.normal(size=(2, 5, 3)).astype("float32")
X_MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
MEMORY = _rng.normal(size=(2, 4, 6)).astype("float32")
MEMORY_MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
QUERY = _rng.normal(size=(2, 6)).astype("float32")
FRAMES = _rng.normal(size=(2, 3, 5, 5, 2)).astype("float32")
TOKENS = np.array([[4, 9, 7, 0], [5, 3, 0, 0]], "int32")


def _built(layer, shape):
    layer.build(shape)
    return layer


def _step_twice(cell, x):
    """A cell stepped by hand, as a decoder does: ``step(project_inputs(x_t), states)``."""
    states = cell.get_initial_state(x.shape[0])
    outputs = []
    for t in range(2):
        output, states = cell.step(cell.project_inputs(tf.constant(x[:, t])), states)
        outputs.append(output)
    return [*outputs, *states]


def _attention_built(layer):
    layer(QUERY, MEMORY)
    return layer


def _wrapper(cell, attention, **kwargs):
    wrapper = L.AttentionWrapper(cell, attention, memory_dim=MEMORY.shape[-1], **kwargs)
    return _built(wrapper, (None, X.shape[-1]))


def _wrapper_in_keras_rnn(wrapper):
    wrapper.setup_memory(MEMORY, MEMORY_MASK)
    rnn = keras.layers.RNN(wrapper, return_sequences=True)
    return rnn(X, initial_state=wrapper.get_initial_state(memory=MEMORY))


def _wrapper_step(wrapper):
    states = wrapper.get_initial_state(memory=MEMORY)
    output, states, alignments = wrapper.step(tf.constant(X[:, 0]), states, MEMORY,
                                              memory_mask=MEMORY_MASK)
    return [output, *states, alignments]


# name: (make() -> layer, run(layer) -> outputs). Each public layer class of kzoo.layers appears
# in at least one (test_every_public_layer_has_a_case); cells run in their sequence layers and
# stepped by hand.
LAYER_CASES = {
    "SimpleRNN": (lambda: L.SimpleRNN(4, return_sequences=True),
                  lambda layer: layer(X, mask=X_MASK)),
    "LSTM": (lambda: L.LSTM(4, return_sequences=True, return_state=True),
             lambda layer: layer(X, mask=X_MASK)),
    "LSTM peephole layer_norm": (lambda: L.LSTM(4, peephole=True, layer_norm=True),
                                 lambda layer: layer(X)),
    "GRU": (lambda: L.GRU(4, return_sequences=True), lambda layer: layer(X, mask=X_MASK)),
    "GRU reset_before": (lambda: L.GRU(4, reset_after=False), lambda layer: layer(X)),
    "Jordan": (lambda: L.Jordan(4, 3), lambda layer: layer(X, mask=X_MASK)),
    "Bidirectional": (lambda: L.Bidirectional(L.LSTM(4, return_sequences=True)),
                      lambda layer: layer(X, mask=X_MASK)),
    "Bidirectional sum": (lambda: L.Bidirectional(L.GRU(4), merge_mode="sum"),
                          lambda layer: layer(X)),
    "ConvLSTM2D": (lambda: L.ConvLSTM2D(2, 3, padding="same"), lambda layer: layer(FRAMES)),
    "ConvGRU2D": (lambda: L.ConvGRU2D(2, 3, return_sequences=True),
                  lambda layer: layer(FRAMES)),
    "TimeDistributed": (lambda: L.TimeDistributed(L.Dense(3)),
                        lambda layer: layer(X, mask=X_MASK)),
    "ConvLSTM1D": (lambda: L.ConvLSTM1D(2, 3, padding="same"),
                   lambda layer: layer(FRAMES[:, :, 0])),
    "ConvLSTM3D": (lambda: L.ConvLSTM3D(2, 3, padding="same"),
                   lambda layer: layer(FRAMES[:, :, None])),
    "ConvLSTM1DCell in kzoo.layers.RNN": (
        lambda: L.RNN(L.ConvLSTM1DCell(2, 3, padding="same")),
        lambda layer: layer(FRAMES[:, :, 0])),
    "ConvLSTM3DCell in kzoo.layers.RNN": (
        lambda: L.RNN(L.ConvLSTM3DCell(2, 2, padding="same")),
        lambda layer: layer(FRAMES[:, :, None])),
    "RNN over a stack of Keras and kzoo cells": (
        lambda: L.RNN([keras.layers.LSTMCell(4), L.GRUCell(3)], return_sequences=True),
        lambda layer: layer(X, mask=X_MASK)),
    "SimpleRNNCell in keras.layers.RNN": (lambda: keras.layers.RNN(L.SimpleRNNCell(4)),
                                          lambda layer: layer(X)),
    "LSTMCell in keras.layers.RNN": (lambda: keras.layers.RNN(L.LSTMCell(4)),
                                     lambda layer: layer(X)),
    "GRUCell in keras.layers.RNN": (lambda: keras.layers.RNN(L.GRUCell(4)),
                                    lambda layer: layer(X)),
    "SimpleRNNCell.step": (lambda: _built(L.SimpleRNNCell(4), (None, 3)),
                           lambda cell: _step_twice(cell, X)),
    "LSTMCell.step": (lambda: _built(L.LSTMCell(4), (None, 3)),
                      lambda cell: _step_twice(cell, X)),
    "GRUCell.step": (lambda: _built(L.GRUCell(4), (None, 3)), lambda cell: _step_twice(cell, X)),
    "JordanCell.step": (lambda: _built(L.JordanCell(4, 3), (None, 3)),
                        lambda cell: _step_twice(cell, X)),
    "ConvLSTM2DCell.step": (lambda: _built(L.ConvLSTM2DCell(2, 3, padding="same"),
                                           (None, 5, 5, 2)),
                            lambda cell: _step_twice(cell, FRAMES)),
    "ConvGRU2DCell.step": (lambda: _built(L.ConvGRU2DCell(2, 3, padding="same"),
                                          (None, 5, 5, 2)),
                           lambda cell: _step_twice(cell, FRAMES)),
    "BahdanauAttention": (lambda: L.BahdanauAttention(5, normalize=True),
                          lambda layer: layer(QUERY, MEMORY, mask=MEMORY_MASK)),
    "BahdanauAttention.project_keys": (
        lambda: _attention_built(L.BahdanauAttention(5)),
        lambda layer: layer(QUERY, MEMORY, keys=layer.project_keys(MEMORY))),
    "LuongAttention dot": (lambda: L.LuongAttention("dot", scale=True),
                           lambda layer: layer(QUERY, MEMORY, mask=MEMORY_MASK)),
    "LuongAttention general": (lambda: _attention_built(L.LuongAttention("general")),
                               lambda layer: layer(X[:, :, :1] * QUERY[:, None], MEMORY,
                                                   keys=layer.project_keys(MEMORY))),
    "LuongAttention concat": (lambda: L.LuongAttention("concat", units=5),
                              lambda layer: layer(QUERY, MEMORY, mask=MEMORY_MASK)),
    "BahdanauMonotonicAttention": (lambda: L.BahdanauMonotonicAttention(5),
                                   lambda layer: layer(QUERY, MEMORY, mask=MEMORY_MASK)),
    "LuongMonotonicAttention": (lambda: L.LuongMonotonicAttention("general"),
                                lambda layer: layer(X[:, :, :1] * QUERY[:, None], MEMORY,
                                                    mask=MEMORY_MASK)),
    "AttentionWrapper.unroll": (
        lambda: _wrapper(L.LSTMCell(6), L.BahdanauAttention(5), attention_layer_size=5),
        lambda wrapper: wrapper.unroll(X, MEMORY, MEMORY_MASK, mask=X_MASK)),
    # Built by its first unroll, as a user builds it: no memory_dim, float32 memory and inputs.
    "AttentionWrapper.unroll unbuilt": (
        lambda: L.AttentionWrapper(L.LSTMCell(6), L.LuongAttention("general", scale=True),
                                   attention_layer_size=4),
        lambda wrapper: wrapper.unroll(X, MEMORY, MEMORY_MASK)),
    "AttentionWrapper in keras.layers.RNN": (
        lambda: _wrapper(L.GRUCell(6), L.LuongAttention("general")), _wrapper_in_keras_rnn),
    # (dot: no weights, as hardmax passes no gradient to the score's)
    "LuongAttention dot hardmax": (lambda: L.LuongAttention("dot", probability_fn="hardmax"),
                                   lambda layer: layer(QUERY, MEMORY, mask=MEMORY_MASK)),
    "AttentionWrapper.unroll several mechanisms": (
        lambda: _wrapper(L.GRUCell(6), [L.BahdanauAttention(5), L.LuongMonotonicAttention()],
                         attention_layer=[keras.layers.Dense(3), L.Dense(2)]),
        lambda wrapper: wrapper.unroll(X, MEMORY, MEMORY_MASK, mask=X_MASK)),
    "AttentionWrapper.step monotonic": (
        lambda: _wrapper(L.SimpleRNNCell(6), L.LuongMonotonicAttention("dot")),
        _wrapper_step),
    "Dense": (lambda: L.Dense(4, activation="tanh"), lambda layer: layer(X)),
    "TokenEmbedding": (lambda: L.TokenEmbedding(10, 4, mask_zero=True),
                       lambda layer: layer(TOKENS)),
    "TokenVectorizer": (lambda: L.TokenVectorizer(["a", "b", "c"]),
                        lambda layer: layer(tf.constant(["a b d", "c"]))),
}


def test_every_public_layer_has_a_case():
    bases = (L.RecurrentCell, L.Recurrent)
    public = {name for name, value in vars(L).items()
              if isinstance(value, type) and issubclass(value, keras.layers.Layer)
              and value not in bases}
    covered = {name.split(" ")[0].split(".")[0] for name in LAYER_CASES}
    assert sorted(public - covered) == []


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_trains_and_equals_float32(case, policy):
    make, run = LAYER_CASES[case]
    compute_dtype = keras.mixed_precision.global_policy().compute_dtype
    layer = make()
    with tf.GradientTape() as tape:
        outputs = run(layer)
        floats = _floats(outputs)
        loss = tf.add_n([tf.reduce_sum(tf.square(tf.cast(o, tf.float32))) for o in floats]) \
            if floats else tf.constant(0.0)
    assert np.isfinite(loss.numpy())
    assert all(o.dtype == compute_dtype for o in floats), [o.dtype.name for o in floats]
    assert all(w.dtype == "float32" for w in layer.weights)
    variables = layer.trainable_variables
    for variable, gradient in zip(variables, tape.gradient(loss, variables)):
        assert gradient is not None, variable.path
        assert np.all(np.isfinite(tf.convert_to_tensor(gradient).numpy())), variable.path

    with float32_policy():
        reference = make()
        run(reference)
        reference.set_weights(layer.get_weights())
        expected = tf.nest.flatten(run(reference))
    actual = tf.nest.flatten(outputs)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        if want.dtype.is_floating:
            np.testing.assert_allclose(*_as_float32([got, want]), atol=LAYER_ATOL[policy])
        else:
            np.testing.assert_array_equal(got, want)


# -- every registered model -------------------------------------------------------------------
def _built_pair(name):
    """The model ``name`` (small) under the test's policy, and the float32 model with its
    weights."""
    config = small_config(name)
    keras.utils.set_random_seed(0)
    model = kzoo.build(name, **config)
    with float32_policy():
        reference = kzoo.build(name, **config)
    reference.set_weights(model.get_weights())
    return model, reference, config


def _call(model, inputs):
    return model(tuple(inputs) if isinstance(inputs, (tuple, list)) else inputs, training=False)


@pytest.mark.parametrize("name", kzoo.list_models())
def test_model_trains_decodes_and_equals_float32(name, policy):
    model, reference, config = _built_pair(name)
    compute_dtype = keras.mixed_precision.global_policy().compute_dtype
    assert model.compute_dtype == compute_dtype
    assert all(w.dtype == "float32" for w in model.weights)
    inputs, targets = km.example_batch(name, config, batch_size=3, seed=0)

    outputs = _call(model, inputs)
    np.testing.assert_allclose(*_as_float32([outputs, _call(reference, inputs)]),
                               atol=MODEL_ATOL[policy])

    # Eager, as tests/models/test_zoo.py: tracing every model's training graph twice costs
    # minutes; the seq2seq generate graphs below are traced.
    model.compile(optimizer="adam", run_eagerly=True, **km.compile_args(name, **config))
    loss = model.train_on_batch(inputs, targets)
    assert np.isfinite(np.ravel(loss)[0]), loss
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())

    if name.startswith("seq2seq"):
        vocab = config["target_vocab_size"]
        for method in ("greedy", "beam"):
            result = model.generate(inputs[0], max_length=4, method=method, beam_width=2)
            tokens = result["tokens"].numpy()
            assert tokens.shape == (3, 4) and tokens.min() >= 0 and tokens.max() < vocab
            assert np.all(np.isfinite(result["scores"].numpy()))
            if "attention" in result:
                assert result["attention"].dtype == tf.float32
    elif name.startswith("one_to_many"):
        tokens = model.generate(inputs[0], max_length=4).numpy()
        assert tokens.shape == (3, 4) and tokens.min() >= 0


# -- exports ----------------------------------------------------------------------------------
def _check_exports(name, directory):
    """SavedModel and TFLite of the model under the test's policy: float32 signatures whose
    serving_default equals the float32 model with the same weights (seq2seq: the same
    tokens)."""
    from ai_edge_litert.interpreter import Interpreter

    model, reference, _ = _built_pair(name)
    saved = kzoo.export.saved_model(model, os.path.join(directory, name))
    path = kzoo.export.tflite(model, os.path.join(directory, f"{name}.tflite"))
    assert keras.mixed_precision.global_policy().name != "float32"
    assert model.compute_dtype != "float32"  # the export left the model's policy as it was

    feed = sample_feed(reference)
    expected = keras_reference(reference, feed)
    served = tf.saved_model.load(saved)
    for signature in served.signatures.values():
        specs = [*signature.structured_input_signature[1].values(),
                 *signature.structured_outputs.values()]
        assert all(not s.dtype.is_floating or s.dtype == tf.float32 for s in specs), specs
    outputs = served.signatures["serving_default"](
        **{key: tf.constant(value) for key, value in feed.items()})
    assert_matches_keras(reference, {k: v.numpy() for k, v in outputs.items()}, expected,
                         atol=EXPORT_ATOL)

    runner = Interpreter(model_path=path).get_signature_runner("serving_default")
    assert_matches_keras(reference, runner(**feed), expected, atol=EXPORT_ATOL)


@pytest.mark.parametrize("name", FAST_MODELS)
def test_export_of_one_model_per_pattern_equals_float32(name, policy, tmp_path):
    _check_exports(name, str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(kzoo.list_models()) - set(FAST_MODELS)))
def test_export_of_every_model_equals_float32(name, policy, tmp_path):
    _check_exports(name, str(tmp_path))

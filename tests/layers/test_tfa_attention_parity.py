"""TensorFlow Addons' attention expectations, held by kzoo's attention layers and wrapper.

The nine hard-coded ``AttentionWrapper`` runs of TF Addons
(``tensorflow_addons/seq2seq/tests/attention_wrapper_test.py``: ``test_bahdanau_not_normalized``,
``test_bahdanau_normalized``, ``test_luong_not_normalized``, ``test_luong_scaled``,
``test_not_use_attention_layer``, ``test_bahdanau_monotonic_not_normalized``,
``test_bahdanau_monotonic_normalized``, ``test_luong_monotonic_not_normalized``,
``test_luong_monotonic_scaled``) are reproduced number for number: the same NumPy draws (TF
Addons seeds NumPy with 87654321 and draws its ``DummyData2`` before each test's own inputs), the
same weights (every kernel of the cell, the memory and query layers and Bahdanau's v is ones;
the attention layer is ``GlorotUniform(seed=1337)``, which TF 2's Keras 2 drew as
``tf.random.uniform(seed=1337)`` under the graph seed 87654321, drawn here the same way) and the
same run (``BasicDecoder`` with a ``TrainingSampler`` steps every row for max(decoder lengths) =
3 steps). TF Addons' expected values are its summary statistics (shape and mean of each output
and state) and are compared with TF Addons' own tolerance, atol 1e-3; the runs meet 1e-6.

The functions ``monotonic_attention``, ``safe_cumprod`` and ``hardmax`` are checked against the
expectations of TF Addons' (and tf.contrib.seq2seq's) ``test_monotonic_attention`` and
``test_safe_cumprod``: the explicit recurrence, ``tf.math.cumprod`` and the sampled alignment.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.layers import (AttentionWrapper, BahdanauAttention, BahdanauMonotonicAttention,
                         LSTMCell, LuongAttention, LuongMonotonicAttention)
from kzoo.layers.attention import hardmax, monotonic_attention, safe_cumprod

ENCODER_LENGTHS = [3, 2, 3, 1, 1]
DECODER_STEPS = 3          # max(decoder_sequence_length = [2, 0, 1, 2, 3])


@pytest.fixture(scope="module")
def tfa_inputs():
    """TF Addons' ``set_random_state_for_tf_and_np`` and ``_test_with_attention`` draws."""
    state = np.random.get_state()
    try:
        np.random.seed(87654321)
        np.random.randn(64, 10, 256)                      # DummyData2: encoder_outputs,
        np.random.randint(1, high=10, size=(64,))         # encoder_sequence_length,
        np.random.randn(64, 12, 128)                      # decoder_inputs,
        np.random.randint(12, size=(64,))                 # decoder_sequence_length
        decoder_inputs = np.random.randn(5, 4, 7).astype(np.float32)
        encoder_outputs = np.random.randn(5, 8, 10).astype(np.float32)
    finally:
        np.random.set_state(state)
    return decoder_inputs, encoder_outputs


def glorot_uniform_seed_1337(shape):
    """``tf.keras.initializers.GlorotUniform(seed=1337)`` as Keras 2 drew it for TF Addons: a
    stateful ``random_uniform`` with op seed 1337 under the graph seed 87654321."""
    limit = math.sqrt(6.0 / sum(shape))
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(87654321)
        values = tf.compat.v1.random_uniform(shape, -limit, limit, seed=1337)
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run(values)


def tfa_run(attention, inputs, attention_layer_size=6):
    decoder_inputs, encoder_outputs = inputs
    cell = LSTMCell(9, kernel_initializer="ones", recurrent_initializer="ones")
    wrapper = AttentionWrapper(cell, attention, attention_layer_size=attention_layer_size,
                               attention_activation=None, memory_dim=10)
    wrapper.build((None, 7))
    for weight in attention.weights:
        if weight.name in ("query_kernel", "key_kernel", "kernel", "v"):
            weight.assign(np.ones(weight.shape, "float32"))
    if attention_layer_size is not None:
        kernel = wrapper.attention_layer.kernel
        kernel.assign(glorot_uniform_seed_1337(tuple(kernel.shape)))
    memory_mask = tf.sequence_mask(ENCODER_LENGTHS, 8)
    outputs, history, (h, c, attention_state, alignments) = wrapper.unroll(
        decoder_inputs[:, :DECODER_STEPS], encoder_outputs, memory_mask)
    outputs = outputs.numpy()
    return {
        "rnn_output": outputs, "sample_id": outputs.argmax(-1), "h": h.numpy(), "c": c.numpy(),
        "attention": attention_state.numpy(), "alignments": alignments.numpy(),
        "alignment_history": history.numpy(),
    }


# name: (attention factory, attention_layer_size, TF Addons' expected means: rnn_output,
# sample_id, cell_state h, cell_state c, attention, alignments, alignment_history or None).
TFA_RUNS = {
    "test_bahdanau_not_normalized": (
        lambda: BahdanauAttention(3), 6,
        (-0.003204414, 3.2, 0.40868404, 0.89017969, 0.041453815, 0.125, 0.125)),
    "test_bahdanau_normalized": (
        lambda: BahdanauAttention(3, normalize=True), 6,
        (-0.008089137, 2.8, 0.49166861, 1.01068615, 0.042427111, 0.125, None)),
    "test_luong_not_normalized": (
        lambda: LuongAttention("general"), 6,
        (-0.06124732, 2.73333333, 0.52021580, 1.0964939, -0.0318060, 0.125, None)),
    "test_luong_scaled": (
        lambda: LuongAttention("general", scale=True), 6,
        (-0.06124732, 2.73333333, 0.52021580, 1.0964939, -0.0318060, 0.125, None)),
    "test_not_use_attention_layer": (
        lambda: BahdanauAttention(3), None,
        (0.078317143, 4.2, 0.89382392, 1.722382, 0.026356646, 0.125, None)),
    "test_bahdanau_monotonic_not_normalized": (
        lambda: BahdanauMonotonicAttention(3), 6,
        (-0.009921653, 3.13333333, 0.44612807, 0.95786464, 0.038682378, 0.09778417,
         0.10261579603)),
    "test_bahdanau_monotonic_normalized": (
        lambda: BahdanauMonotonicAttention(3, normalize=True), 6,
        (0.007140680, 3.26666666, 0.47012400, 1.0249618, 0.068432882, 0.0615656, 0.07909643)),
    "test_luong_monotonic_not_normalized": (
        lambda: LuongMonotonicAttention("general"), 6,
        (0.003664831, 3.06666666, 0.54318606, 1.12592840, 0.059128221, 0.05112994,
         0.06994973868)),
    "test_luong_monotonic_scaled": (
        lambda: LuongMonotonicAttention("general", scale=True), 6,
        (0.003664831, 3.06666666, 0.54318606, 1.12592840, 0.059128221, 0.05112994,
         0.06994973868)),
}


@pytest.mark.parametrize("name", sorted(TFA_RUNS))
def test_tfa_attention_wrapper_run(name, tfa_inputs):
    make, attention_layer_size, expected = TFA_RUNS[name]
    result = tfa_run(make(), tfa_inputs, attention_layer_size)
    depth = attention_layer_size or 10
    shapes = {"rnn_output": (5, 3, depth), "sample_id": (5, 3), "h": (5, 9), "c": (5, 9),
              "attention": (5, depth), "alignments": (5, 8), "alignment_history": (5, 3, 8)}
    assert {key: value.shape for key, value in result.items()} == shapes
    keys = ("rnn_output", "sample_id", "h", "c", "attention", "alignments",
            "alignment_history")
    for key, want in zip(keys, expected):
        if want is not None:
            assert result[key].mean() == pytest.approx(want, abs=1e-3), key
            # TF Addons' tolerance; the reproduction is closer than that.
            if key != "sample_id":
                assert result[key].mean() == pytest.approx(want, abs=1e-6), key


# -- monotonic_attention, safe_cumprod, hardmax ------------------------------------------------
def explicit_monotonic_attention(p_choose_i, previous_attention):
    """TF Addons' test reference: q_j = (1 - p_{j-1}) q_{j-1} + α_{i-1,j}, α_ij = p_ij q_j."""
    out = [previous_attention[0]]
    for j in range(1, p_choose_i.shape[0]):
        out.append((1 - p_choose_i[j - 1]) * out[j - 1] + previous_attention[j])
    return p_choose_i * np.array(out)


def test_monotonic_attention_follows_the_recurrence_in_every_mode():
    rng = np.random.default_rng(11)
    previous = rng.uniform(size=(10, 20)).astype(np.float32)
    previous /= previous.sum(axis=1, keepdims=True)
    # "recursive" for any p; "parallel" for p < 0.9 (unstable near 1, as TF Addons notes).
    for mode, high in (("recursive", 1.0), ("parallel", 0.9)):
        p_choose = rng.uniform(0, high, size=(10, 20)).astype(np.float32)
        expected = np.array([explicit_monotonic_attention(p, a)
                             for p, a in zip(p_choose, previous)])
        got = monotonic_attention(p_choose, previous, mode).numpy()
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-5)
    # "hard": p in {0, 1}, a one-hot previous attention.
    p_choose = rng.choice(np.array([0, 1], np.float32), (10, 20))
    previous = np.zeros((10, 20), np.float32)
    previous[np.arange(10), rng.integers(0, 20, 10)] = 1
    expected = np.array([explicit_monotonic_attention(p, a) for p, a in zip(p_choose, previous)])
    np.testing.assert_allclose(monotonic_attention(tf.constant(p_choose), tf.constant(previous),
                                                   "hard"), expected, atol=1e-5)


def test_monotonic_attention_is_the_expectation_of_sampled_alignments():
    """TF Addons' check: chained ``"recursive"`` alignments equal the mean of sampled hard
    alignments (stop at key j with probability p_ij, from the last stop on)."""
    rng = np.random.default_rng(5)
    p_choose = rng.uniform(size=(4, 5)).astype(np.float32)
    n = 100_000
    sampled = np.zeros((n, 4, 5))
    start = np.zeros(n, int)
    for i in range(4):
        stopped = np.zeros(n, bool)
        for j in range(5):
            stop = ~stopped & (start <= j) & (rng.uniform(size=n) <= p_choose[i, j])
            sampled[stop, i, j] = 1
            start = np.where(stop, j, start)
            stopped |= stop
        start = np.where(stopped, start, 5)     # never stopped: nothing after
    alignment = np.array([[1, 0, 0, 0, 0]], np.float32)
    chained = []
    for i in range(4):
        alignment = monotonic_attention(p_choose[i][None], alignment, "recursive").numpy()
        chained.append(alignment[0])
    np.testing.assert_allclose(np.array(chained), sampled.mean(0), atol=1e-2)


def test_monotonic_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"`mode` must be one of \('recursive', 'parallel', "):
        monotonic_attention([[0.5]], [[1.0]], "expected")
    with pytest.raises(ValueError, match="must both be \\(batch, memory_time\\)"):
        monotonic_attention([[0.5, 0.5]], [[1.0, 0.0, 0.0]], "parallel")


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("exclusive", [True, False])
def test_safe_cumprod_equals_cumprod(axis, exclusive):
    x = np.random.default_rng(3).uniform(size=(10, 20))
    np.testing.assert_allclose(safe_cumprod(x, axis=axis, exclusive=exclusive),
                               tf.math.cumprod(x, axis=axis, exclusive=exclusive), atol=1e-5)
    np.testing.assert_allclose(safe_cumprod([0.1, 0.2, 0.3, 0.4, 0.5]),
                               [0.1, 0.02, 0.006, 0.0024, 0.0012], rtol=1e-5)


def test_hardmax_is_one_hot_at_the_first_maximum():
    logits = np.array([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [9, 8, 7]],
                       [[3, 2, 1], [6, 5, 4], [9, 8, 7], [4, 6, 6]]], np.float32)
    np.testing.assert_array_equal(hardmax(logits), [[[0, 0, 1], [0, 0, 1], [0, 0, 1], [1, 0, 0]],
                                                    [[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0]]])
    assert hardmax(tf.constant(logits, tf.float16)).dtype == tf.float16


# -- TF Addons' behaviours of the mechanisms and the wrapper ------------------------------------
@pytest.mark.parametrize("layer_class", [BahdanauMonotonicAttention, LuongMonotonicAttention])
def test_hard_monotonic_attention_is_hard(layer_class):
    """TF Addons' ``testBahdanauMonotonicHard`` / ``testLuongMonotonicHard``: every weight is
    0 or 1 and each row sums to 0 or 1, from the previous attention [1, 0, 0, ...]."""
    keras.utils.set_random_seed(4)
    layer = layer_class(40, mode="hard") if layer_class is BahdanauMonotonicAttention \
        else layer_class("concat", units=40, mode="hard")
    memory = tf.random.normal((10, 20, 30))
    _, weights = layer(tf.random.normal((10, 40)), memory,
                       previous_alignment=tf.one_hot([0] * 10, 20))
    weights = weights.numpy()
    assert np.all((weights == 0) | (weights == 1))
    assert np.all(np.isin(weights.sum(1), [0, 1])) and weights.sum() > 0


def test_masked_keys_get_no_weight():
    """TF Addons' ``test_masking``: memory lengths 1..4, no weight above the diagonal."""
    layer = LuongAttention("general")
    _, weights = layer(tf.ones([4, 5]), tf.ones([4, 4, 5]),
                       mask=tf.sequence_mask([1, 2, 3, 4], 4))
    assert np.sum(np.triu(weights, k=1)) == 0


def test_custom_attention_layer_sets_the_attention_size():
    """TF Addons' ``test_custom_attention_layer``: an ``attention_layer`` of 2 * units."""
    units = 8
    wrapper = AttentionWrapper(
        LSTMCell(units), LuongAttention("general"),
        attention_layer=keras.layers.Dense(units * 2, use_bias=False, activation="tanh"))
    with pytest.raises(ValueError, match="needs a memory"):
        wrapper.get_initial_state(batch_size=3)
    memory = tf.random.normal((3, 5, 6))
    wrapper.setup_memory(memory, tf.sequence_mask([5, 2, 4], 5))
    states = wrapper.get_initial_state()
    assert states[2].shape == (3, units * 2)
    output, _ = wrapper(tf.random.normal((3, 4)), states)
    assert output.shape == (3, units * 2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_wrapper_runs_in_the_layers_dtype(dtype, tfa_inputs):
    """TF Addons' ``test_bahdanau_normalized_dtype`` / ``test_luong_scaled_dtype``: the
    outputs have the dtype of the layers."""
    decoder_inputs, encoder_outputs = tfa_inputs
    for attention in (BahdanauAttention(4, normalize=True, dtype=dtype),
                      LuongAttention("general", scale=True, dtype=dtype)):
        wrapper = AttentionWrapper(LSTMCell(4, dtype=dtype), attention, dtype=dtype)
        outputs, history, _ = wrapper.unroll(decoder_inputs.astype(dtype),
                                             encoder_outputs.astype(dtype),
                                             tf.sequence_mask(ENCODER_LENGTHS, 8))
        assert outputs.dtype == dtype and history.dtype == dtype

"""Determinism and numerical stability: the same seed trains to the same weights bit for bit on
the CPU (in this process and in a fresh one), long sequences stay finite, and the trainer's
default gradient clipping keeps a constructed exploding recurrence finite.

What is and is not deterministic is written down in the README (Reliability).
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

import kzoo
from kzoo.training import DEFAULT_CLIPNORM, default_clipnorm

L = kzoo.layers

# A deep model with dropout between layers: weights, data order and dropout noise all come from
# the seed.
DETERMINISM_MODEL = "many_to_one_deep_lstm"
DETERMINISM_CONFIG = dict(vocab_size=50, embedding_dim=8, units=8, num_layers=2, dropout=0.2)

TRAIN_AND_HASH = textwrap.dedent(f"""
    import hashlib
    import keras
    import numpy as np
    import tensorflow as tf
    import kzoo
    import kzoo.models as km
    from kzoo.training import default_clipnorm

    def train_and_hash(seed, name={DETERMINISM_MODEL!r}, config={DETERMINISM_CONFIG!r}):
        keras.utils.set_random_seed(seed)
        model = kzoo.build(name, **config)
        model.compile(optimizer=keras.optimizers.Adam(1e-2, clipnorm=default_clipnorm(name)),
                      **km.compile_args(name, **config))
        x, y = km.example_batch(name, config, batch_size=48, seed=1)
        batches = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(48, seed=seed).batch(16)
        model.fit(batches, epochs=2, verbose=0, shuffle=False)   # 6 steps
        digest = hashlib.sha256()
        for weight in model.get_weights():
            digest.update(np.ascontiguousarray(weight).tobytes())
        return digest.hexdigest()
""")


def train_and_hash(seed):
    namespace = {}
    exec(TRAIN_AND_HASH, namespace)  # the same code as the fresh process below runs
    return namespace["train_and_hash"](seed)


def test_same_seed_gives_identical_weights_in_process_and_in_a_fresh_process():
    # Op determinism picks other kernels (other roundings); it is process-wide and on once any
    # earlier test of this worker ran the trainer, so the fresh process matches this one's.
    determinism = ("tf.config.experimental.enable_op_determinism()\n"
                   if tf_config.is_op_determinism_enabled() else "")
    fresh = subprocess.Popen(
        [sys.executable, "-c", TRAIN_AND_HASH + determinism + "print(train_and_hash(5))"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    first, second = train_and_hash(5), train_and_hash(5)
    assert first == second
    out, err = fresh.communicate(timeout=300)
    assert fresh.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == first


@pytest.mark.parametrize("layer", [
    pytest.param(lambda: L.LSTM(8, return_sequences=True), id="lstm"),
    pytest.param(lambda: L.LSTM(8, use_forget_gate=False, return_sequences=True),
                 id="lstm_no_forget_gate"),
])
def test_5000_steps_stay_finite_forward_and_backward(layer):
    keras.utils.set_random_seed(0)
    rnn = layer()
    # Large inputs saturate the gates; without a forget gate the cell state grows with t.
    x = tf.constant(np.random.default_rng(0).normal(0, 5, (2, 5000, 4)), tf.float32)

    @tf.function
    def outputs_and_gradients(x):
        with tf.GradientTape() as tape:
            outputs = rnn(x)
            loss = tf.reduce_mean(tf.square(outputs))
        return outputs, tape.gradient(loss, rnn.trainable_weights)

    outputs, gradients = outputs_and_gradients(x)
    assert outputs.shape == (2, 5000, 8)
    assert np.all(np.isfinite(outputs.numpy()))
    assert all(np.all(np.isfinite(g.numpy())) for g in gradients)
    # Still an RNN at the end, not a constant: late outputs depend on late inputs.
    assert np.std(outputs.numpy()[:, -100:]) > 1e-3


def exploding_model():
    """A linear Elman RNN whose recurrent matrix has spectral radius 1.25: over 40 steps the
    state and the gradients grow like 1.25^t, large but still finite at the first step."""
    inputs = keras.Input((40, 3))
    rnn = L.SimpleRNN(6, activation="linear", use_bias=False)
    outputs = keras.layers.Dense(1, use_bias=False)(rnn(inputs))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    orthogonal = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    rnn.set_weights([rng.normal(0, 0.5, (3, 6)), 1.25 * orthogonal])
    return model


def train_exploding(optimizer, steps=15):
    model = exploding_model()
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 40, 3)), rng.normal(size=(32, 1))
    losses = [float(model.train_on_batch(x, y)) for _ in range(steps)]
    return losses, model.get_weights()


def test_default_gradient_clipping_keeps_an_exploding_recurrence_finite():
    assert default_clipnorm("many_to_one_rnn") == DEFAULT_CLIPNORM is not None
    assert default_clipnorm("one_to_one_mlp") is None
    # The case does explode without clipping (plain SGD follows the gradient's size) ...
    losses, _ = train_exploding(keras.optimizers.SGD(0.01))
    assert not np.all(np.isfinite(losses)), losses
    # ... and stays finite with the trainer's default clipping, with SGD and with the trainer's
    # optimizer (Adam), and learns.
    for optimizer in (keras.optimizers.SGD(0.01, clipnorm=DEFAULT_CLIPNORM),
                      keras.optimizers.Adam(1e-3, clipnorm=default_clipnorm("many_to_one_rnn"))):
        losses, weights = train_exploding(optimizer)
        assert np.all(np.isfinite(losses)), (optimizer, losses)
        assert all(np.all(np.isfinite(w)) for w in weights)
        assert losses[-1] < losses[0], (optimizer, losses)

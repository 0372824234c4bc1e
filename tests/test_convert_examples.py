"""The models people build from the Keras examples convert to kzoo and export to builtins-only
TFLite that the plain LiteRT interpreter runs.

Each model is built here the way its keras.io example builds it (tiny sizes), trained one step,
converted with ``kzoo.convert``, compared with the Keras model, exported with
``kzoo.export.tflite`` and run with ``ai_edge_litert``'s ``Interpreter`` (no Flex delegate),
whose outputs must equal the Keras model's:

* lstm_seq2seq ("Character-level recurrent sequence-to-sequence model"): the decoder LSTM starts
  from the encoder LSTM's states;
* bidirectional_lstm_imdb: a masked Embedding, two Bidirectional LSTMs, a sigmoid;
* timeseries_weather_forecasting, stacked: LSTM(return_sequences) -> LSTM -> Dense;
* conv_lstm ("Next-frame video prediction with convolutional LSTMs"): ConvLSTM2D,
  BatchNormalization, ConvLSTM2D, Conv3D;
* a GRU sequence tagger: masked Embedding -> GRU(return_sequences) -> TimeDistributed(Dense).

The default run converts and compares two of them and runs one in LiteRT; the rest is slow.
"""

import functools

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import kzoo
import kzoo.export

ATOL = 1e-5
BATCH = 4
TIME = 5


def _char_seq2seq(rng):
    encoder_tokens, decoder_tokens, latent = 7, 6, 8
    encoder_inputs = keras.Input((None, encoder_tokens), name="encoder_inputs")
    _, state_h, state_c = keras.layers.LSTM(latent, return_state=True)(encoder_inputs)
    decoder_inputs = keras.Input((None, decoder_tokens), name="decoder_inputs")
    decoder_outputs, _, _ = keras.layers.LSTM(latent, return_sequences=True, return_state=True)(
        decoder_inputs, initial_state=[state_h, state_c])
    outputs = keras.layers.Dense(decoder_tokens, activation="softmax")(decoder_outputs)
    model = keras.Model([encoder_inputs, decoder_inputs], outputs)
    model.compile("rmsprop", "categorical_crossentropy")
    source = np.eye(encoder_tokens, dtype="float32")[rng.integers(0, encoder_tokens,
                                                                  (BATCH, TIME))]
    target = np.eye(decoder_tokens, dtype="float32")[rng.integers(0, decoder_tokens,
                                                                  (BATCH, TIME - 1))]
    return model, [source, target], target


def _sentiment(rng):
    vocab = 20
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(vocab, 6, mask_zero=True)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(4))(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "binary_crossentropy")
    ids = rng.integers(1, vocab, (BATCH, TIME)).astype("int32")
    ids[1, 3:] = 0
    ids[2, 1:] = 0
    return model, ids, rng.integers(0, 2, (BATCH, 1)).astype("float32")


def _forecaster(rng):
    model = keras.Sequential([keras.Input((TIME, 3)),
                              keras.layers.LSTM(6, return_sequences=True),
                              keras.layers.LSTM(6),
                              keras.layers.Dense(1)])
    model.compile("adam", "mse")
    return model, rng.normal(size=(BATCH, TIME, 3)).astype("float32"), \
        rng.normal(size=(BATCH, 1)).astype("float32")


def _next_frame(rng):
    inputs = keras.Input((None, 6, 6, 1))
    x = keras.layers.ConvLSTM2D(3, (3, 3), padding="same", return_sequences=True,
                                activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ConvLSTM2D(3, (1, 1), padding="same", return_sequences=True,
                                activation="relu")(x)
    outputs = keras.layers.Conv3D(1, (3, 3, 3), activation="sigmoid", padding="same")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "binary_crossentropy")
    frames = rng.uniform(size=(2, 3, 6, 6, 1)).astype("float32")
    return model, frames, (frames > 0.5).astype("float32")


def _tagger(rng):
    vocab, tags = 15, 5
    model = keras.Sequential([keras.Input((None,), dtype="int32"),
                              keras.layers.Embedding(vocab, 6, mask_zero=True),
                              keras.layers.GRU(8, return_sequences=True),
                              keras.layers.TimeDistributed(
                                  keras.layers.Dense(tags, activation="softmax"))])
    model.compile("adam", "sparse_categorical_crossentropy")
    ids = rng.integers(1, vocab, (BATCH, TIME)).astype("int32")
    ids[0, 2:] = 0
    return model, ids, rng.integers(0, tags, (BATCH, TIME))


BUILDERS = {"char_seq2seq": _char_seq2seq, "sentiment": _sentiment, "forecaster": _forecaster,
            "next_frame": _next_frame, "tagger": _tagger}
DEFAULT = ("sentiment", "tagger")   # the rest is slow
# Keras layers whose loops need Flex ops in TFLite: none is left after conversion.
FLEX_LAYERS = (keras.layers.LSTM, keras.layers.GRU, keras.layers.ConvLSTM2D,
               keras.layers.Bidirectional, keras.layers.TimeDistributed)


def _cases(names):
    return [name if name in names else pytest.param(name, marks=pytest.mark.slow)
            for name in BUILDERS]


@functools.cache
def converted(name):
    """``(keras model trained a step, its weights before conversion, kzoo model, inputs)``."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model, inputs, targets = BUILDERS[name](rng)
    model.train_on_batch(inputs, targets)
    weights = [w.copy() for w in model.get_weights()]
    return model, weights, kzoo.convert(model), inputs


def _every_layer(model):
    return model._flatten_layers(include_self=False, recursive=True)


@pytest.mark.parametrize("name", _cases(DEFAULT))
def test_converted_model_computes_what_the_keras_model_computes(name):
    model, weights, kzoo_model, inputs = converted(name)
    assert not any(type(layer) in FLEX_LAYERS for layer in _every_layer(kzoo_model))
    assert any(type(layer).__module__.startswith("kzoo.") for layer in _every_layer(kzoo_model))
    expected = model.predict(inputs, verbose=0)
    np.testing.assert_allclose(kzoo_model.predict(inputs, verbose=0), expected, atol=ATOL)
    # The original is untouched: its layers and weights are the ones it was trained to.
    assert any(type(layer) in FLEX_LAYERS for layer in _every_layer(model))
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("name", _cases(("tagger",)))
def test_converted_model_runs_in_litert(name, tmp_path):
    model, _, kzoo_model, inputs = converted(name)
    path = kzoo.export.tflite(kzoo_model, tmp_path / f"{name}.tflite")
    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    feeds = inputs if isinstance(inputs, list) else [inputs]
    names = [tensor._keras_history.operation.name for tensor in kzoo_model.inputs]
    outputs = runner(**dict(zip(names, feeds)))
    np.testing.assert_allclose(outputs["outputs"], model.predict(inputs, verbose=0), atol=ATOL)

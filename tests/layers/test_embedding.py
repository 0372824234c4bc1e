"""TokenEmbedding: keras.layers.Embedding for valid ids; ids outside [0, vocab) fail clearly
everywhere a zoo model runs (eager, predict, SavedModel, LiteRT) instead of wrapping around."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import kzoo
import kzoo.export

L = kzoo.layers
BAD_IDS = {"too_large": [[1, 50, 2]], "negative": [[1, -1, 2]]}
MESSAGE = r"token ids must be in \[0, 50\)"


def tagger():
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="inputs")
    x = L.TokenEmbedding(50, 4, mask_zero=True, name="inputs_embedding")(ids)
    return keras.Model(ids, L.LSTM(3)(x))


def test_valid_ids_equal_keras_embedding_and_survive_a_keras_file(tmp_path):
    layer = L.TokenEmbedding(50, 4, mask_zero=True)
    reference = keras.layers.Embedding(50, 4, mask_zero=True)
    layer.build((None, None))
    reference.build((None, None))
    reference.set_weights(layer.get_weights())
    ids = np.array([[0, 1, 49, 7]], np.int32)
    np.testing.assert_array_equal(layer(ids), reference(ids))
    np.testing.assert_array_equal(layer.compute_mask(ids), reference.compute_mask(ids))
    model = tagger()
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(restored.get_layer("inputs_embedding"), L.TokenEmbedding)
    with pytest.raises(tf.errors.InvalidArgumentError, match=MESSAGE):
        restored(np.array(BAD_IDS["too_large"], np.int32))


@pytest.mark.parametrize("kind", sorted(BAD_IDS))
def test_bad_ids_fail_in_eager_predict_and_saved_model(kind, tmp_path):
    model = tagger()
    ids = np.array(BAD_IDS[kind], np.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=MESSAGE):
        model(ids)
    with pytest.raises(tf.errors.InvalidArgumentError, match=MESSAGE):
        model.predict(ids, verbose=0)
    served = tf.saved_model.load(kzoo.export.saved_model(model, tmp_path / "m"))
    with pytest.raises(tf.errors.InvalidArgumentError, match=MESSAGE):
        served.signatures["serving_default"](inputs=tf.constant(ids))


def test_bad_ids_fail_in_litert_instead_of_wrapping(tmp_path):
    model = tagger()
    path = kzoo.export.tflite(model, tmp_path / "m.tflite")
    runner = Interpreter(model_path=path).get_signature_runner("serving_default")
    good = np.array([[1, 49, 2]], np.int32)
    np.testing.assert_allclose(runner(inputs=good)["outputs"], model(good), atol=1e-5)
    for ids in BAD_IDS.values():
        with pytest.raises(RuntimeError, match="gather index out of bounds"):
            runner(inputs=np.array(ids, np.int32))


def test_non_numeric_ids_are_a_type_error():
    layer = L.TokenEmbedding(50, 4)
    with pytest.raises(TypeError, match="expects integer token ids, got string"):
        layer(tf.constant([["a"]]))

"""kzoo.convert and the model files of kzoo.conversion: what is replaced, what is kept, and one
clear error (nothing written) for each input it cannot take."""

import os

import keras
import numpy as np
import pytest

import kzoo
from kzoo.conversion import ConversionError, NoRecurrentLayerWarning, UnconvertedLayerWarning
from kzoo.conversion.files import convert_file, load_keras_model

ATOL = 1e-5


@keras.saving.register_keras_serializable("test_convert")
class CustomCell(keras.layers.Layer):
    """A cell kzoo does not know (a custom recurrent cell, as users write them)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units))

    def call(self, inputs, states):
        output = keras.ops.tanh(inputs @ self.kernel + states[0])
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable("test_convert")
class CustomRNN(keras.layers.RNN):
    def __init__(self, cell=None, **kwargs):
        super().__init__(cell or CustomCell(3), **kwargs)


def _model(*layers, shape=(None, 3)):
    return keras.Sequential([keras.Input(shape), *layers])


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")


def test_every_recurrent_layer_is_replaced_with_its_weights(features):
    # RNN over stacked standard cells, `unroll`, stateful with its current states, a Dense.
    inputs = keras.Input(batch_shape=(2, 4, 3))
    x = keras.layers.SimpleRNN(4, return_sequences=True, unroll=True)(inputs)
    cells = keras.layers.StackedRNNCells([keras.layers.LSTMCell(3), keras.layers.GRUCell(2)])
    x = keras.layers.RNN(cells, return_sequences=True)(x)
    x = keras.layers.GRU(5, stateful=True, reset_after=False)(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    model(features)                          # the stateful GRU now holds non-zero states
    converted = kzoo.convert(model)
    layers = converted.layers
    assert [type(layer) for layer in layers[1:]] == [
        kzoo.layers.SimpleRNN, kzoo.layers.RNN, kzoo.layers.GRU, keras.layers.Dense]
    assert layers[1].unroll and type(layers[2].cell.cells[1]) is kzoo.layers.GRUCell
    assert layers[3].stateful and not layers[3].cell.reset_after
    assert [layer.name for layer in layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(layers[3].states[0], model.layers[3].states[0], atol=0)
    np.testing.assert_allclose(converted(features), model(features), atol=ATOL)


def test_nested_model_is_converted_and_the_original_kept(features):
    inner = _model(keras.layers.LSTM(4, return_sequences=True))
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, keras.layers.GRU(2)(inner(inputs)))
    converted = kzoo.convert(model)
    assert type(converted.layers[1].layers[0]) is kzoo.layers.LSTM
    assert type(inner.layers[0]) is keras.layers.LSTM
    np.testing.assert_allclose(converted(features), model(features), atol=ATOL)


def test_a_model_without_recurrent_layer_is_copied_with_a_warning(features):
    model = _model(keras.layers.Dense(2), shape=(3,))
    with pytest.warns(NoRecurrentLayerWarning, match="no Keras recurrent layer"):
        copy = kzoo.convert(model)
    assert copy is not model and copy.layers[0] is not model.layers[0]
    np.testing.assert_array_equal(copy(features[:, 0]), model(features[:, 0]))


def test_a_custom_cell_is_named_or_kept_with_strict_false(features):
    model = _model(keras.layers.RNN(CustomCell(3), name="custom"), keras.layers.Dense(1))
    with pytest.raises(ConversionError, match=r"'custom'.*CustomCell"):
        kzoo.convert(model)
    with pytest.warns(UnconvertedLayerWarning, match="'custom'"):
        kept = kzoo.convert(model, strict=False)
    assert type(kept.layers[0]) is keras.layers.RNN
    np.testing.assert_allclose(kept(features), model(features), atol=ATOL)


@pytest.mark.parametrize("make_layer, match", [
    (lambda: keras.layers.Bidirectional(CustomRNN(), name="both"),
     r"CustomRNN.*inside layer 'both'"),
    (lambda: CustomRNN(name="mine"), r"layer 'mine' \(.*CustomRNN\) is a recurrent layer"),
])
def test_custom_recurrent_layers_are_named(make_layer, match):
    with pytest.raises(ConversionError, match=match):
        kzoo.convert(_model(make_layer()))


def test_bad_models_get_one_clear_error():
    with pytest.raises(TypeError, match="must be a keras.Model"):
        kzoo.convert(keras.layers.LSTM(3))
    inputs = keras.Input((None, 3))
    shared = keras.layers.LSTM(3, return_sequences=True, name="shared")
    with pytest.raises(ConversionError, match="'shared'.*called at 2 places"):
        kzoo.convert(keras.Model(inputs, shared(shared(inputs))))
    with pytest.raises(ConversionError, match="not built"):
        kzoo.convert(keras.Sequential([keras.layers.LSTM(3)]))


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "lstm.keras"
    _model(keras.layers.LSTM(4), keras.layers.Dense(2)).save(path)
    return path


def test_convert_file_round_trips(keras_file, features, tmp_path):
    out = tmp_path / "sub" / "lstm.kzoo.keras"
    converted = convert_file(keras_file, out)
    assert os.listdir(out.parent) == ["lstm.kzoo.keras"]       # no temporary file left
    loaded = keras.saving.load_model(out)
    assert type(loaded.layers[0]) is kzoo.layers.LSTM
    np.testing.assert_allclose(loaded(features), converted(features), atol=0)
    np.testing.assert_allclose(loaded(features), load_keras_model(keras_file)(features),
                               atol=ATOL)
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_file(keras_file, out)


def test_bad_files_write_nothing(keras_file, tmp_path):
    out = tmp_path / "out.keras"
    (tmp_path / "text.keras").write_text("not a model")
    custom = tmp_path / "custom.keras"
    _model(keras.layers.RNN(CustomCell(3))).save(custom)
    registered = keras.saving.get_custom_objects()
    cell = registered.pop("test_convert>CustomCell")   # a process that lacks the class
    cases = [(tmp_path / "missing.keras", FileNotFoundError, "no model file"),
             (tmp_path / "text.keras", ConversionError, "not a Keras model file Keras can load"),
             (custom, ConversionError, r"needs custom object\(s\) .*CustomCell"),
             (keras_file, ConversionError, "written as a .keras file")]
    for source, error, match in cases:
        with pytest.raises(error, match=match):
            convert_file(source, out if source != keras_file else tmp_path / "out.h5")
    registered["test_convert>CustomCell"] = cell
    assert sorted(os.listdir(tmp_path)) == ["custom.keras", "text.keras"]


def test_a_legacy_h5_file_converts(features, tmp_path):
    model = _model(keras.layers.GRU(4), keras.layers.Dense(2))
    model.save(tmp_path / "legacy.h5")
    converted = convert_file(tmp_path / "legacy.h5", tmp_path / "legacy.keras")
    assert type(converted.layers[0]) is kzoo.layers.GRU
    np.testing.assert_allclose(converted(features), model(features), atol=ATOL)

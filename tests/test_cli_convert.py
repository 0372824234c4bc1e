"""`kzoo convert IN OUT` and `kzoo export FILE.keras`: a Keras model file in, a converted file or
verified SavedModel + builtins-only TFLite out; errors are one line, exit 2, nothing written."""

import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import kzoo
from kzoo import cli
from kzoo.conversion import ConversionError
from kzoo.conversion.files import _read_samples

from .test_cli import assert_ok, run

# Saves a Keras model with Keras alone: the file `kzoo export` gets owes nothing to kzoo.
SAVE_WITHOUT_KZOO = """
import sys
import keras
inputs = keras.Input((None,), dtype="int32", name="tokens")
x = keras.layers.Embedding(12, 4, mask_zero=True)(inputs)
x = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))(x)
x = keras.layers.GRU(4)(x)
model = keras.Model(inputs, keras.layers.Dense(2)(x))
model.compile("adam", "mse")
model.save(sys.argv[1])
assert not any(name.split(".")[0] == "kzoo" for name in sys.modules)
"""


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "gru.keras"
    keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(4), keras.layers.Dense(1)]) \
        .save(path)
    return path


def test_convert_command(keras_file, tmp_path, capsys):
    out = tmp_path / "gru.kzoo.keras"
    assert cli.main(["convert", str(keras_file), str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert type(keras.saving.load_model(out).layers[0]) is kzoo.layers.GRU
    before = out.read_bytes()
    assert cli.main(["convert", str(keras_file), str(out)]) == 2
    assert "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert cli.main(["convert", str(tmp_path / "missing.keras"), str(tmp_path / "x.keras")]) == 2
    assert capsys.readouterr().err.strip() == \
        f"kzoo convert: error: no model file {str(tmp_path / 'missing.keras')!r}"
    assert sorted(os.listdir(tmp_path)) == ["gru.kzoo.keras"]


def test_export_samples_file_is_read_by_input_name(tmp_path):
    model = keras.Sequential([keras.Input((None, 3), name="frames"), keras.layers.GRU(2)])
    x = np.ones((2, 4, 3), "float32")
    for name, arrays in [("named", {"frames": x}), ("positional", {"arr_0": x})]:
        np.savez(tmp_path / f"{name}.npz", **arrays)
        np.testing.assert_array_equal(_read_samples(tmp_path / f"{name}.npz", model)["frames"], x)
    np.savez(tmp_path / "other.npz", tokens=x)
    with pytest.raises(ConversionError, match=r"holds \['tokens'\]; the model takes \['frames'\]"):
        _read_samples(tmp_path / "other.npz", model)


@pytest.mark.slow
def test_export_a_file_saved_by_a_script_that_never_imported_kzoo(tmp_path):
    path = tmp_path / "classifier.keras"
    subprocess.run([sys.executable, "-c", textwrap.dedent(SAVE_WITHOUT_KZOO), str(path)],
                   check=True, capture_output=True)
    result = run("export", path, "--out", tmp_path / "exported")
    assert_ok(result)
    assert "wrote " + str(tmp_path / "exported" / "model.tflite") in result.stdout
    lengths = re.findall(r"on random inputs, time length (\d+):", result.stdout)
    assert lengths == ["1", "5", "12"]
    diffs = [float(d) for d in re.findall(r"(?:saved_model/1|model\.tflite)\s+\S+\s+[\d.]+ \w?B"
                                          r"\s+(?:[\d.]+ \w?B\s+)?([\d.e+-]+)", result.stdout)]
    assert len(diffs) == 6 and max(diffs) < 1e-5, result.stdout
    conversion = float(re.search(r"vs the Keras model: max \|diff\| (\S+)", result.stdout)[1])
    assert conversion < 1e-5
    # The plain LiteRT interpreter (no Flex delegate) runs the file, as the Keras model computes.
    runner = Interpreter(model_path=str(tmp_path / "exported" / "model.tflite")) \
        .get_signature_runner("serving_default")
    tokens = np.array([[3, 5, 7, 0, 0], [1, 2, 3, 4, 11]], "int32")
    expected = keras.saving.load_model(path)(tokens)
    np.testing.assert_allclose(runner(tokens=tokens)["outputs"], expected, atol=1e-5)

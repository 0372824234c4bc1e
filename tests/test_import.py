"""What a bare ``import kzoo`` gives a fresh process: every class a kzoo model file can hold is
registered with keras.saving, so ``keras.saving.load_model`` needs nothing else."""

import configparser
import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np

import kzoo
import kzoo.models as km

ROOT = pathlib.Path(__file__).parents[1]


def run_python(script, *args, timeout=300):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def installed_packages():
    """The packages setup.cfg installs (kzoo, kzoo.models, kzoo.datasets...)."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    return setup["options"]["packages"].split()


WALK = """
    import importlib, json, pkgutil, sys

    import kzoo
    import keras


    def kzoo_classes():
        return sorted(key for key, value in keras.saving.get_custom_objects().items()
                      if getattr(value, "__module__", "").split(".")[0] == "kzoo")


    after_import = kzoo_classes()
    for package in json.loads(sys.argv[1]):
        module = importlib.import_module(package)
        for found in pkgutil.walk_packages(module.__path__, package + "."):
            importlib.import_module(found.name)
    print(json.dumps({"after_import": after_import, "every_module": kzoo_classes()}))
"""


def test_bare_import_registers_every_serializable_class_of_the_package():
    classes = json.loads(run_python(WALK, json.dumps(installed_packages())).splitlines()[-1])
    assert {"kzoo>LSTM", "kzoo>Seq2Seq", "kzoo>SequenceLoss"} <= set(classes["every_module"])
    missing = sorted(set(classes["every_module"]) - set(classes["after_import"]))
    assert not missing, f"registered only once their module is imported: {missing}"


# One model of each pattern (and the seq2seq variants whose files hold more classes: monotonic
# attention, the scheduled sampler), tiny, compiled as kzoo train compiles them.
SAVED_MODELS = {
    "one_to_one_mlp": dict(input_dim=6, units=4, num_classes=3),
    "one_to_many_gru": dict(feature_dim=5, vocab_size=12, embedding_dim=4, units=4),
    "many_to_one_lstm": dict(vocab_size=12, embedding_dim=4, units=4),
    "many_to_many_bi_rnn": dict(vocab_size=12, embedding_dim=4, units=4, num_classes=3),
    "many_to_many_jordan": dict(vocab_size=12, embedding_dim=4, units=4, num_classes=3),
    "many_to_many_convlstm": dict(rows=4, cols=4, channels=1, filters=2, num_classes=3),
    "seq2seq_attention": dict(source_vocab_size=12, target_vocab_size=12, units=4,
                              source_embedding_dim=4, target_embedding_dim=4,
                              scheduled_sampling=0.5),
    "seq2seq_luong": dict(source_vocab_size=12, target_vocab_size=12, units=4,
                          source_embedding_dim=4, target_embedding_dim=4, monotonic=True),
}

LOAD = """
    import sys

    import kzoo
    import keras
    import numpy as np

    directory = sys.argv[1]
    inputs = np.load(f"{directory}/inputs.npz")
    outputs = {}
    for name in sys.argv[2:]:
        model = keras.saving.load_model(f"{directory}/{name}.keras")
        arrays = [inputs[key] for key in sorted(inputs.files) if key.startswith(f"{name}/")]
        outputs[name] = np.asarray(model(tuple(arrays) if len(arrays) > 1 else arrays[0],
                                         training=False))
    np.savez(f"{directory}/outputs.npz", **outputs)
"""


def test_a_model_saved_in_one_process_loads_in_another_after_import_kzoo(tmp_path):
    expected, inputs = {}, {}
    for name, config in SAVED_MODELS.items():
        model = kzoo.build(name, **config)
        model.compile(optimizer="adam", **km.compile_args(name, **config))
        x, _ = km.example_batch(name, config, batch_size=2)
        x = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        inputs.update({f"{name}/{i}": array for i, array in enumerate(x)})
        expected[name] = np.asarray(model(x if len(x) > 1 else x[0], training=False))
        model.save(tmp_path / f"{name}.keras")
    np.savez(tmp_path / "inputs.npz", **inputs)

    run_python(LOAD, tmp_path, *SAVED_MODELS)

    outputs = np.load(tmp_path / "outputs.npz")
    for name in SAVED_MODELS:
        np.testing.assert_allclose(outputs[name], expected[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)

"""Every registered model, briefly trained on its built-in dataset, keeps its accuracy on a
held-out split when its TFLite file is dynamic-range quantized (int8 weights): the export report
measures the change and prints it, for every name in ``kzoo.list_models()``.

Slow (two TFLite conversions per model); each report is printed as its test ends, and a summary
table at the end of the run (both through ``tests/conftest.py``, which also shows them when
pytest-xdist runs the tests in workers).
The dataset of each model and the brief training: :mod:`tests.export.held_out`.
"""

import numpy as np
import pytest

import kzoo
import kzoo.export

from . import held_out
from ..conftest import SHOW, SUMMARY_ROW

# Training batches of 32: enough to leave chance level in seconds (a decoder spelling numbers
# character by character needs more).
STEPS = {"seq2seq": 120}
DEFAULT_STEPS = 40
HELD_OUT = {held_out.CONVLSTM: 32}   # the 8-frame videos are slow to run: fewer of them
DEFAULT_HELD_OUT = 128               # examples of the test split the report scores
MAX_ACCURACY_LOSS = 0.03
# The converter quantizes a weight to int8 from this many elements on (smaller ones stay float).
QUANTIZED_FROM = 1024


def float_matrices(content):
    """The float32 constant tensors of rank >= 2 with at least QUANTIZED_FROM elements in a
    TFLite file (every subgraph: the loop bodies too), as "subgraph/tensor" indices (the export
    drops internal tensor names)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(content, 0)
    names = set()
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else ()
            if tensor.Type() == schema.TensorType.FLOAT32 and len(shape) >= 2 and \
                    int(np.prod(shape)) >= QUANTIZED_FROM and \
                    model.Buffers(tensor.Buffer()).DataLength() > 0:
                names.add(f"{g}/{t}")
    return sorted(names)


def test_latency_runs_must_be_a_whole_number(tmp_path):
    from .conftest import build_small

    model = build_small("one_to_one_mlp")
    path = kzoo.export.tflite(model, tmp_path / "m.tflite")
    samples = np.zeros((2, 6), np.float32)
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="latency_runs"):
            kzoo.export.verify(model, path, samples, latency_runs=bad)
    assert kzoo.export.verify(model, path, samples, latency_runs=1)[path].latency_ms > 0


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("kzoo_data"))


@pytest.mark.slow
@pytest.mark.parametrize("name", kzoo.list_models())
def test_dynamic_quantization_keeps_held_out_accuracy(name, data_dir, tmp_path, record_property):
    pattern = kzoo.model_info(name).pattern
    model = held_out.trained(name, data_dir, STEPS.get(pattern, DEFAULT_STEPS))
    samples = held_out.held_out(name, data_dir, HELD_OUT.get(name, DEFAULT_HELD_OUT))
    files = kzoo.export.tflite_files(model, {None: tmp_path / f"{name}.tflite",
                                             "dynamic": tmp_path / f"{name}.dyn.tflite"})
    paths = [files[None], files["dynamic"]]
    # One timed call per artifact: the test asserts the differences, not the latencies.
    report = kzoo.export.verify(model, paths, samples, latency_runs=1)
    record_property(SHOW, str(report))
    plain, dynamic = report.artifacts
    assert report.metric_name == "accuracy"
    assert abs(plain.metric_change) <= 0.01, str(report)   # the float file decides as Keras
    assert dynamic.metric is not None and abs(dynamic.metric_change) <= MAX_ACCURACY_LOSS, \
        str(report)
    # Every weight matrix the converter quantizes is int8, inside the loop bodies too. The file
    # shrinks 3-4x where such weights dominate it; in a small model most of the file is the
    # graph (the loops' subgraphs, one set per signature), and a model without a matrix of
    # QUANTIZED_FROM elements (the Jordan net here) does not change at all.
    with open(paths[0], "rb") as handle:
        large = float_matrices(handle.read())
    with open(paths[1], "rb") as handle:
        assert float_matrices(handle.read()) == [], str(report)
    if large:
        assert plain.weight_bytes > 2 * dynamic.weight_bytes, str(report)
        assert plain.size_bytes > dynamic.size_bytes, str(report)
    dataset, options = held_out.dataset_of(name)
    record_property(SUMMARY_ROW, (
        name, " ".join([dataset] + [f"{k}={v}" for k, v in options.items()]),
        str(report.num_samples), f"{plain.size_bytes / 1024:.0f} KB",
        f"{dynamic.size_bytes / 1024:.0f} KB", f"{plain.size_bytes / dynamic.size_bytes:.2f}x",
        f"{plain.weight_bytes / dynamic.weight_bytes:.2f}x", f"{report.keras_metric:.4f}",
        f"{dynamic.metric_change:+.4f}"))

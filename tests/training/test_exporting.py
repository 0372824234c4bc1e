"""``export_run``: rerunning an export whose files are up to date exports nothing; a changed
model.keras makes them stale and they are exported again; unknown formats and quantizations
are refused before any file is written."""

import json

import pytest

from kzoo import training

from ..conftest import file_snapshot as files
from .conftest import TINY_GRU


def test_export_again_is_a_no_op_until_the_model_changes(tmp_path):
    run_dir = tmp_path / "run"
    training.train("many_to_one_gru", "example", out=run_dir, epochs=1, **TINY_GRU)
    first = training.export_run(run_dir, samples=4)
    out = run_dir / "export"
    assert first.written == first.paths == [str(out / "saved_model" / "1"),
                                            str(out / "model.tflite")]
    before = files(out)

    again = training.export_run(run_dir, samples=4)
    assert again.written == [] and again.paths == first.paths
    assert again.report == str(first.report)
    assert files(out) == before

    # Training on changes model.keras: both artifacts are stale; the SavedModel becomes the
    # next version (TF Serving moves to it), the TFLite file is replaced.
    training.train("many_to_one_gru", "example", out=run_dir, epochs=2, **TINY_GRU)
    changed = training.export_run(run_dir, samples=4)
    assert changed.written == [str(out / "saved_model" / "2"), str(out / "model.tflite")]
    assert (out / "model.tflite").read_bytes() != before["model.tflite"][1]
    assert (out / "saved_model" / "1" / "saved_model.pb").is_file()
    for artifact in changed.report.artifacts:
        assert artifact.max_abs_diff < 1e-5, artifact
    record = json.loads((out / "report.json").read_text())
    assert record["paths"] == changed.paths
    assert training.export_run(run_dir, samples=4).written == []

    # A quantized file asked for later is the only one exported.
    dynamic = training.export_run(run_dir, formats=("tflite",), quantize="dynamic", samples=4)
    assert dynamic.written == [str(out / "model.dynamic.tflite")]

    forced = training.export_run(run_dir, formats=("tflite",), samples=4, overwrite=True)
    assert forced.written == [str(out / "model.tflite")]



def test_unknown_formats_and_quantizations_are_refused_before_any_file(tmp_path):
    run_dir = tmp_path / "run"
    training.train("many_to_one_gru", "example", out=run_dir, epochs=1, **TINY_GRU)
    refused = [({"formats": ("onnx",)}, r"export_run: `formats` must be one of \('saved_model', "
                                        r"'tflite'\), got 'onnx'"),
               ({"formats": ()}, r"`formats` must name at least one of"),
               ({"quantize": "int4"}, r"export_run: `quantize` must be one of \(None, "
                                      r"'dynamic', 'float16', 'int8'\), got 'int4'")]
    for arguments, message in refused:
        with pytest.raises(ValueError, match=message):
            training.export_run(run_dir, samples=4, **arguments)
    assert not (run_dir / "export").exists()
    # One format may be given as a string.
    only = training.export_run(run_dir, formats="tflite", samples=4)
    assert only.written == [str(run_dir / "export" / "model.tflite")]

"""kzoo.export: a model as a TensorFlow Serving SavedModel and a builtins-only LiteRT file.

    kzoo.export.saved_model(model, "serving/translator")        # -> serving/translator/1
    kzoo.export.tflite(model, "translator.tflite", quantize="dynamic")
    kzoo.export.tflite_files(model, {None: "t.tflite", "dynamic": "t.dyn.tflite"})  # one trace
    print(kzoo.export.verify(model, ["serving/translator/1", "translator.tflite"], samples))

``FlexOpsNeeded`` is what ``tflite`` raises for a model that would need TensorFlow (Flex) ops.
Signature names and tensor names: :mod:`kzoo.export.signatures`; the guide: docs/export.md.
"""

from kzoo.export.lite import FlexOpsNeeded
from kzoo.export.serving import saved_model
from kzoo.export.tflite_export import tflite, tflite_files
from kzoo.export.report import verify

__all__ = ["saved_model", "tflite", "tflite_files", "verify", "FlexOpsNeeded"]

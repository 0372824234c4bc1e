"""The values an argument may take where both the ``kzoo`` command and the library check it.

The command checks its flags before it imports TensorFlow, so these live here, in a module that
imports nothing; the library's modules import them from here.
"""

# kzoo.export.tflite's `quantize`: float32, int8 weights, float16 weights, int8 throughout.
QUANTIZE_MODES = (None, "dynamic", "float16", "int8")

# kzoo.training.train's `strategy`: one device, tf.distribute's mirrored and multi-worker.
STRATEGIES = ("default", "mirrored", "multiworker")

"""What a trace is for: the one context every kzoo layer reads to shape a graph for where it runs.

A graph traced for TensorFlow in this process may use anything TensorFlow runs here (XLA-compiled
loops, Keras' cuDNN kernels); a graph saved for TensorFlow Serving must run on any CPU server;
a graph traced for the TFLite converter must lower to builtin ops. The layers read the target
from :func:`trace_target` rather than guessing it from the loop form (:func:`kzoo.layers.scan_mode`
chooses how a loop runs; the target says what the graph may hold).
"""

import contextlib
import threading

TRACE_TARGETS = ("keras", "portable", "tflite", "tflite_int8")
TFLITE_TARGETS = ("tflite", "tflite_int8")

_local = threading.local()


def get_trace_target():
    """The trace target of this thread (see :func:`trace_target`).

    Returns:
      One of :data:`TRACE_TARGETS`; ``"keras"`` outside any :func:`trace_target` block.

    Example:

    ```python
    import kzoo

    with kzoo.layers.trace_target("portable"):
        assert kzoo.layers.get_trace_target() == "portable"
    assert kzoo.layers.get_trace_target() == "keras"
    ```
    """
    return getattr(_local, "target", "keras")


def tracing_for_tflite():
    """True while this thread traces for the TFLite converter (either TFLite target)."""
    return get_trace_target() in TFLITE_TARGETS


@contextlib.contextmanager
def trace_target(target):
    """Trace every kzoo layer called inside the block for ``target`` (this thread only).

    * ``"keras"`` (the default): the graph runs in this process. The scan engine may compile
      loops with XLA and run Keras' cuDNN kernels where a GPU is visible.
    * ``"portable"``: a graph saved for another TensorFlow runtime (a SavedModel that TensorFlow
      Serving runs on any CPU): plain TensorFlow ops only, no XLA, no cuDNN kernel.
    * ``"tflite"``: a graph for the TFLite converter, builtin ops only. The loops hold no
      TensorList; no assert op is traced (``TokenEmbedding`` maps bad ids past the end, decoding
      caps ``max_length``); padding is not zeroed (a TFLite file computes no gradient).
    * ``"tflite_int8"``: as ``"tflite"``, with loops in the form TensorFlow's int8 calibrator runs
      (its MinMax logging crashes on the fast TFLite loops).

    ``kzoo.export`` enters the right target itself; call this only to trace by hand.

    Args:
      target: one of :data:`TRACE_TARGETS`.

    Yields:
      None; the target is set for the block and restored after it.

    Raises:
      ValueError: ``target`` is not one of :data:`TRACE_TARGETS`.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    model = kzoo.layers.GRU(4)
    with kzoo.layers.trace_target("tflite"):
        concrete = tf.function(model).get_concrete_function(
            tf.TensorSpec([None, None, 8], tf.float32))
    ```
    """
    if target not in TRACE_TARGETS:
        raise ValueError(f"trace_target must be one of {TRACE_TARGETS}, got {target!r}")
    previous = get_trace_target()
    _local.target = target
    try:
        yield
    finally:
        _local.target = previous

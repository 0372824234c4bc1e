"""The loop plan: which loop the scan engine runs, decided in one place from explicit facts.

:func:`observe` gathers the facts of a call (:class:`LoopFacts`: the trace target, the loop form
asked for with :func:`scan_mode`, eager or graph, static shapes, a recording gradient tape, the
cell's capabilities, the step size, the batch and the cores), :func:`plan_loop` turns them into a
:class:`LoopPlan`, and :func:`kzoo.layers.scan.scan` runs the plan. ``docs/scan_engine.md``
gives the rules as a table (checked against :func:`plan_loop` by the tests).

The plan is made when a call is traced (every call, eagerly). Set ``KZOO_LOG_PLAN=1`` to log
each plan (logger ``kzoo.layers.scan``), or collect them with :func:`record_plans`.
"""

import contextlib
import dataclasses
import logging
import os
import threading
from typing import Optional

import tensorflow as tf

from kzoo.layers import cudnn
from kzoo.layers.scan.tape import tape_is_active
from kzoo.layers.target import TFLITE_TARGETS, TRACE_TARGETS, get_trace_target

SCAN_MODES = ("auto", "tensorarray", "xla")

# What each loop of a plan is (LoopPlan.loop), in the words of docs/scan_engine.md.
LOOPS = {
    "cudnn": "Keras' fused cuDNN kernel (kzoo.layers.cudnn)",
    "tensorarray": "a tf.while_loop collecting outputs in a TensorArray (scan/tensorarray.py)",
    "xla": "the engine's step as one XLA computation, inference only (scan/xla.py)",
    "bptt": "the engine's own backpropagation through time (scan/bptt.py)",
    "tflite": "TensorList-free loops for the TFLite converter (scan/tflite.py)",
    "tflite_int8": "the blocked TFLite loops int8 calibration runs (scan/tflite_int8.py)",
}

# Largest batch × units whose inference "auto" compiles with XLA (fixed shapes only): above it
# the TensorFlow loop was as fast (docs/scan_engine.md; `python benchmarks/rnn_speed.py`).
XLA_INFERENCE_MAX_STEP = 16384

# Rows per group below which splitting a batch across cores costs more than it saves.
MIN_GROUP_ROWS = 16

_local = threading.local()
_logger = logging.getLogger("kzoo.layers.scan")


def get_scan_mode():
    """The loop form asked for in this thread (see :func:`scan_mode`).

    Returns:
      One of :data:`SCAN_MODES`; ``"auto"`` outside any :func:`scan_mode` block.

    Example:

    ```python
    import kzoo

    with kzoo.layers.scan_mode("tensorarray"):
        assert kzoo.layers.get_scan_mode() == "tensorarray"
    assert kzoo.layers.get_scan_mode() == "auto"
    ```
    """
    return getattr(_local, "mode", "auto")


@contextlib.contextmanager
def scan_mode(mode):
    """Run every kzoo recurrent layer traced inside the block with the given loop form.

    * ``"auto"`` (the default): the engine picks (see ``docs/scan_engine.md``): XLA-compiled
      loops where a graph's shapes are fixed (training, and inference of small steps), the
      TensorFlow loop elsewhere, and Keras' cuDNN kernels for the standard LSTM/GRU where a GPU
      is visible.
    * ``"tensorarray"``: TensorFlow's loops only, no XLA and no cuDNN.
    * ``"xla"``: the standard cells' loops as XLA computations at every step size and with
      dynamic shapes too (compiled once per input shape): the fastest inference on a CPU, but not
      for graphs you export (TensorFlow Serving does not run XLA on a CPU by default).

    Exports do not depend on it: ``kzoo.export`` traces for a :func:`kzoo.layers.trace_target`,
    which rules out XLA and cuDNN whatever the form.

    Args:
      mode: one of :data:`SCAN_MODES`.

    Yields:
      None; the mode is set for the block and restored after it.

    Raises:
      ValueError: an unknown mode (``"tflite"`` names the trace target instead).

    Example:

    ```python
    import keras
    import numpy as np
    import kzoo

    model = keras.Sequential([keras.Input((5, 3)), kzoo.layers.LSTM(4)])
    x = np.zeros((2, 5, 3), "float32")
    with kzoo.layers.scan_mode("xla"):
        predictions = model.predict(x, verbose=0)     # traced (and compiled) inside the block
    ```
    """
    if mode not in SCAN_MODES:
        hint = (" (tracing for TFLite is kzoo.layers.trace_target('tflite'))"
                if mode == "tflite" else "")
        raise ValueError(f"scan_mode must be one of {SCAN_MODES}, got {mode!r}{hint}")
    previous = get_scan_mode()
    _local.mode = mode
    try:
        yield
    finally:
        _local.mode = previous


def available_cores():
    """The cores TensorFlow may run independent ops on: its inter-op threads if configured,
    else (its default) the cores this process may use."""
    configured = tf.config.threading.get_inter_op_parallelism_threads()
    if configured:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:     # pragma: no cover (not Linux)
        return os.cpu_count() or 1


@contextlib.contextmanager
def concurrent_loops(count):
    """Layers traced inside the block run beside ``count - 1`` independent others (the two
    directions of a ``Bidirectional``): their row groups share the cores instead of each taking
    all of them."""
    previous = getattr(_local, "concurrent", 1)
    _local.concurrent = previous * count
    try:
        yield
    finally:
        _local.concurrent = previous


@dataclasses.dataclass(frozen=True)
class LoopFacts:
    """What the engine knows about a call when it plans its loop.

    Attributes:
      target: the trace target (:func:`kzoo.layers.trace_target`).
      form: the loop form asked for (:func:`scan_mode`).
      eager: the call runs eagerly (no graph is traced).
      static_shapes: the inputs' shape is fully known (XLA then compiles once).
      taped: a gradient tape is recording.
      engine_step: the cell hands the engine its step with a hand-derived gradient.
      affine_projection: that step's input projection is ``x W + b``.
      projects: the inputs are raw and the cell's projection is given.
      step_size: batch × units of a step's state, None when unknown.
      batch: the batch size, None when unknown.
      cores: the cores this loop may use (shared among :func:`concurrent_loops`).
      independent_rows: the step treats every batch row on its own.
      cudnn: the cell and call qualify for a cuDNN kernel (:func:`kzoo.layers.cudnn.cudnn_refusal`).
      gpu: TensorFlow sees a GPU.
    """

    target: str = "keras"
    form: str = "auto"
    eager: bool = False
    static_shapes: bool = True
    taped: bool = False
    engine_step: bool = False
    affine_projection: bool = False
    projects: bool = False
    step_size: Optional[int] = None
    batch: Optional[int] = None
    cores: int = 1
    independent_rows: bool = False
    cudnn: bool = False
    gpu: bool = False


@dataclasses.dataclass(frozen=True)
class LoopPlan:
    """How the engine runs a loop.

    Attributes:
      loop: one of :data:`LOOPS`.
      jit: the loops are compiled by XLA.
      step: ``"cell"`` (the cell's own step) or ``"engine"`` (its step gradient's step, the
        weights read once before the loop).
      projection: ``"none"`` (the inputs come projected), ``"all_steps"`` (one matmul over every
        step before the loop) or ``"each_step"`` (inside the loop, step by step; in the engine's
        loops also differentiated by the engine).
      gradient: who differentiates the loop: ``"none"`` (no tape), ``"tensorflow"`` or
        ``"engine"``.
      row_groups: the batch runs as this many loops over groups of rows, side by side (XLA
        loops only).
    """

    loop: str
    jit: bool = False
    step: str = "cell"
    projection: str = "none"
    gradient: str = "none"
    row_groups: int = 1


def plan_loop(facts):
    """The loop to run for ``facts``; the one place the engine decides it.

    Args:
      facts: a :class:`LoopFacts`.

    Returns:
      A :class:`LoopPlan`.

    Raises:
      ValueError: ``facts.target`` or ``facts.form`` is unknown.

    Example:

    ```python
    plan_loop(LoopFacts(taped=True, engine_step=True, affine_projection=True, projects=True,
                        batch=64, cores=2, independent_rows=True))
    # LoopPlan(loop='bptt', jit=True, step='engine', projection='each_step',
    #          gradient='engine', row_groups=2)
    ```
    """
    if facts.target not in TRACE_TARGETS:
        raise ValueError(f"trace target must be one of {TRACE_TARGETS}, got {facts.target!r}")
    if facts.form not in SCAN_MODES:
        raise ValueError(f"scan mode must be one of {SCAN_MODES}, got {facts.form!r}")
    differentiated = "tensorflow" if facts.taped else "none"
    if facts.target in TFLITE_TARGETS:
        return LoopPlan(loop=facts.target, gradient=differentiated,
                        projection="all_steps" if facts.projects else "none")
    in_keras = facts.target == "keras"
    if in_keras and facts.form == "auto" and facts.cudnn and facts.gpu:
        return LoopPlan(loop="cudnn", gradient=differentiated)
    # XLA compiles each shape once: "auto" compiles fixed shapes only (a dynamic time axis
    # would compile again for every new length).
    compile_auto = in_keras and facts.form == "auto" and not facts.eager and facts.static_shapes
    compile_forced = in_keras and facts.form == "xla"
    small_step = 0 < (facts.step_size or 0) <= XLA_INFERENCE_MAX_STEP
    if facts.engine_step and facts.taped:
        loop, jit, gradient = "bptt", compile_auto or compile_forced, "engine"
    elif facts.engine_step and (compile_forced or (compile_auto and small_step)):
        loop, jit, gradient = "xla", True, "none"
    else:
        loop, jit, gradient = "tensorarray", False, differentiated
    if not facts.projects:
        projection = "none"
    elif loop == "tensorarray":
        # TensorFlow's gradient wants the projection's gradient as one matmul over all steps.
        projection = "all_steps" if facts.taped else "each_step"
    else:
        projection = "each_step" if facts.affine_projection else "all_steps"
    # Rows of a batch never meet, so groups of rows can run as loops side by side on as many
    # cores. That pays for XLA-compiled loops, each of which runs on one thread; TensorFlow's
    # executor already spreads a loop's ops over its threads, and its loops (inference, its own
    # gradient, the engine's backward loop) ran slower split: `python benchmarks/row_groups.py`.
    groups = 1
    if jit and facts.independent_rows and facts.batch:
        groups = max(1, min(facts.cores, facts.batch // MIN_GROUP_ROWS))
    return LoopPlan(loop=loop, jit=jit, step="engine" if facts.engine_step else "cell",
                    projection=projection, gradient=gradient, row_groups=groups)


def observe(inputs_tm, initial_states, *, engine_step, project, independent_rows, cudnn_ok):
    """The :class:`LoopFacts` of a call of :func:`kzoo.layers.scan.scan` in this thread."""
    concurrent = getattr(_local, "concurrent", 1)
    return LoopFacts(
        target=get_trace_target(), form=get_scan_mode(), eager=tf.executing_eagerly(),
        static_shapes=inputs_tm.shape.is_fully_defined(), taped=tape_is_active(),
        engine_step=engine_step is not None,
        affine_projection=engine_step is not None and engine_step.projection is not None,
        projects=project is not None, step_size=initial_states[0].shape.num_elements(),
        batch=inputs_tm.shape[1], cores=max(1, available_cores() // concurrent),
        independent_rows=bool(independent_rows), cudnn=bool(cudnn_ok),
        gpu=cudnn.gpu_available())


def describe(plan, facts):
    """One line: the plan, then the facts it came from (what :func:`record_plans` logs)."""
    plan_text = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(plan).items())
    facts_text = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(facts).items())
    return f"scan plan: {plan_text} (from {facts_text})"


@contextlib.contextmanager
def record_plans():
    """Collect the plan of every loop traced (or run eagerly) in this thread inside the block.

    Yields:
      A list that fills with ``(facts, plan)`` pairs, in call order.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    model = kzoo.layers.GRU(4)
    with kzoo.layers.record_plans() as plans:
        tf.function(model)(tf.zeros((2, 5, 3)))
    print(plans[0][1].loop)      # e.g. "xla"
    ```
    """
    previous = getattr(_local, "records", None)
    _local.records = []
    try:
        yield _local.records
    finally:
        _local.records = previous


def report(facts, plan):
    """Hand ``(facts, plan)`` to :func:`record_plans` and, with ``KZOO_LOG_PLAN``, the log."""
    records = getattr(_local, "records", None)
    if records is not None:
        records.append((facts, plan))
    if os.environ.get("KZOO_LOG_PLAN", "") not in ("", "0"):
        if not _logger.handlers:
            _logger.addHandler(logging.StreamHandler())
            _logger.setLevel(logging.INFO)
        _logger.info(describe(plan, facts))

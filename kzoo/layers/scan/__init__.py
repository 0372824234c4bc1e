"""The one scan engine every kzoo recurrent layer runs on.

``scan(step, inputs, initial_states)`` folds ``(y_t, s_t) = step(x_t, s_{t-1})`` over the time
axis of ``inputs``. Which loop runs is planned in one place (:mod:`kzoo.layers.scan.plan`) and
each loop form is a module of its own:

* :mod:`~kzoo.layers.scan.tensorarray`: TensorFlow's ``tf.while_loop`` with a ``TensorArray``;
* :mod:`~kzoo.layers.scan.xla`: a cell's engine step as one XLA computation (inference);
* :mod:`~kzoo.layers.scan.bptt`: the engine's own backpropagation through time;
* :mod:`~kzoo.layers.scan.tflite` and :mod:`~kzoo.layers.scan.tflite_int8`: TensorList-free
  loops for the TFLite converter;
* Keras' cuDNN kernels (:mod:`kzoo.layers.cudnn`), where a GPU is visible.

``docs/scan_engine.md`` describes the plan and how to see which loop ran.
"""

import dataclasses

import tensorflow as tf

from kzoo.layers.scan import masking
from kzoo.layers.scan.bptt import scan_bptt
from kzoo.layers.scan.plan import (LOOPS, SCAN_MODES, LoopFacts, LoopPlan, concurrent_loops,
                                   get_scan_mode, observe, plan_loop, record_plans, report,
                                   scan_mode)
from kzoo.layers.scan.tensorarray import scan_tensorarray
from kzoo.layers.scan.tflite import scan_tflite
from kzoo.layers.scan.tflite_int8 import scan_tflite_int8
from kzoo.layers.scan.xla import scan_xla

__all__ = ["LOOPS", "SCAN_MODES", "LoopFacts", "LoopPlan", "concurrent_loops", "get_scan_mode",
           "plan_loop", "record_plans", "scan", "scan_mode"]


def scan(
    step,
    inputs,
    initial_states,
    *,
    mask=None,
    go_backwards=False,
    return_sequences=True,
    zero_output_for_mask=False,
    time_major=False,
    output_is_state=False,
    project=None,
    independent_rows=False,
    engine_step=None,
    cudnn=None,
    plan=None,
):
    """Run ``step`` over the time axis of ``inputs``.

    Equation::

        (y_t, s_t) = step(x_t, s_{t-1}),   t = 1 ... T

    Masked steps (``mask[b, t] == False``) carry the previous state through and emit the previous
    output (or zeros with ``zero_output_for_mask``), as ``keras.layers.RNN``; a fully masked row
    returns its initial state. Which loop runs follows :func:`plan_loop` (see
    ``docs/scan_engine.md``); every loop computes the same numbers.

    Args:
      step: ``step(x_t, states) -> (y_t, new_states)`` with ``states`` a list of tensors. ``y_t``
        has the shape and dtype of ``states[0]`` (true of every kzoo cell).
      inputs: ``(B, T, ...)`` projected inputs (raw inputs with ``project``).
      initial_states: list of ``(B, ...)`` tensors.
      mask: optional ``(B, T)`` boolean.
      go_backwards: process time in reverse; outputs stay in processing order (as Keras).
      return_sequences: if False, ``outputs`` is None and no per-step buffer is built.
      zero_output_for_mask: masked steps emit zeros instead of the previous output.
      time_major: ``inputs`` are ``(T, B, ...)`` (``mask`` stays ``(B, T)``); the outputs are
        batch-major either way.
      output_is_state: the step's output is its first new state (true of every kzoo cell); an
        unmasked loop then carries no separate last output.
      project: optional input transform (a cell's ``project_inputs``): ``inputs`` are then the
        raw ``(B, T, F)`` sequence and step t reads ``project(x_t)``, projected inside the loop
        or for all steps in one matmul first, as the plan says.
      independent_rows: ``step`` treats every batch row on its own and closes over no
        batch-shaped tensor; a large enough batch may then run as several loops over groups of
        rows, one per core.
      engine_step: optional :class:`kzoo.layers.step_gradient.EngineStep` of the same step: the
        engine may then run it in XLA and, under a gradient tape, compute the gradient itself.
      cudnn: optional ``cudnn(portable) -> (last_output, outputs, final_states)`` running the
        whole loop on Keras' cuDNN kernel (``portable()`` runs this engine's own loop instead).
      plan: a :class:`LoopPlan` to run instead of :func:`plan_loop`'s (for tests and
        measurements; it must fit the call).

    Returns:
      ``(last_output, outputs, final_states)``: ``outputs`` is ``(B, T, ...)`` (None without
      ``return_sequences``), ``final_states`` a list.

    Raises:
      ValueError: ``plan`` needs an ``engine_step``, a ``cudnn`` kernel or a ``project`` that
        was not given.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    def step(x_t, states):                 # a running sum
        total = states[0] + x_t
        return total, [total]

    last, outputs, (total,) = kzoo.layers.scan(step, tf.ones((2, 5, 3)), [tf.zeros((2, 3))])
    # outputs[:, t] == t + 1
    ```
    """
    initial_states = [tf.convert_to_tensor(s) for s in initial_states]
    inputs_tm = inputs if time_major else masking.time_major(inputs)
    facts = observe(inputs_tm, initial_states, engine_step=engine_step, project=project,
                    independent_rows=independent_rows, cudnn_ok=cudnn is not None)
    plan = plan or plan_loop(facts)
    _check_fits(plan, engine_step, cudnn, project)
    report(facts, plan)
    if plan.loop == "cudnn":
        portable = plan_loop(dataclasses.replace(facts, cudnn=False))
        return cudnn(lambda: _run(portable, step, inputs_tm, initial_states, mask, go_backwards,
                                  return_sequences, zero_output_for_mask, output_is_state,
                                  project, engine_step))
    return _run(plan, step, inputs_tm, initial_states, mask, go_backwards, return_sequences,
                zero_output_for_mask, output_is_state, project, engine_step)


def _check_fits(plan, engine_step, cudnn, project):
    missing = [name for name, needed, given in (
        ("engine_step", plan.loop in ("xla", "bptt") or plan.step == "engine", engine_step),
        ("cudnn", plan.loop == "cudnn", cudnn),
        ("project", plan.projection != "none", project)) if needed and given is None]
    if missing:
        raise ValueError(f"scan: the plan {plan} needs `{missing[0]}`, which was not given")


def _run(plan, step, inputs_tm, initial_states, mask, go_backwards, return_sequences,
         zero_output_for_mask, output_is_state, project, engine_step):
    """Run ``plan`` (not ``"cudnn"``) on time-major inputs."""
    mask_tm = None if mask is None else tf.transpose(tf.cast(mask, tf.bool))
    if go_backwards:
        inputs_tm = tf.reverse(inputs_tm, [0])
        mask_tm = None if mask_tm is None else tf.reverse(mask_tm, [0])
    if plan.projection == "all_steps":
        inputs_tm = project(inputs_tm)
    in_loop = plan.projection == "each_step"

    def run(inputs_tm, mask_tm, initial_states):
        if plan.loop == "bptt":
            return scan_bptt(engine_step, inputs_tm, mask_tm, initial_states,
                             collect=return_sequences, zero_output_for_mask=zero_output_for_mask,
                             jit=plan.jit, projection=engine_step.projection if in_loop else None)
        if plan.loop == "xla":
            return scan_xla(engine_step, inputs_tm, mask_tm, initial_states,
                            collect=return_sequences, zero_output_for_mask=zero_output_for_mask,
                            projection=engine_step.projection if in_loop else None)
        zero_output = tf.zeros_like(initial_states[0])
        masked_step = masking.masked(step if plan.step == "cell" else _weights_read_once(
            engine_step), zero_output, zero_output_for_mask)
        if plan.loop == "tensorarray":
            return scan_tensorarray(masked_step, inputs_tm, mask_tm, initial_states, zero_output,
                                    collect=return_sequences,
                                    carry_output=mask_tm is not None or not output_is_state,
                                    project=project if in_loop else None,
                                    taped=plan.gradient == "tensorflow")
        form = scan_tflite if plan.loop == "tflite" else scan_tflite_int8
        return form(masked_step, inputs_tm, mask_tm, initial_states, zero_output,
                    collect=return_sequences)

    if plan.row_groups == 1:
        last_output, outputs, final_states = run(inputs_tm, mask_tm, initial_states)
    else:
        # Batch rows never meet, so groups of rows run as independent loops, side by side on
        # as many cores.
        sizes = _group_sizes(inputs_tm.shape[1], plan.row_groups)
        results = [run(*group) for group in zip(
            tf.split(inputs_tm, sizes, axis=1),
            [None] * len(sizes) if mask_tm is None else tf.split(mask_tm, sizes, axis=1),
            zip(*[tf.split(s, sizes, axis=0) for s in initial_states]))]
        last_outputs, outputs, final_states = zip(*results)
        last_output = tf.concat(last_outputs, 0)
        outputs = None if outputs[0] is None else tf.concat(outputs, 0)
        final_states = [tf.concat(parts, 0) for parts in zip(*final_states)]
    if outputs is not None:
        # A loop's stacked outputs lose the static time axis (their length is a tensor); the
        # next layer needs it to know its shapes are fixed (and to compile its loops with XLA).
        outputs.set_shape(outputs.shape.merge_with(tf.TensorShape(
            [inputs_tm.shape[1], inputs_tm.shape[0]]).concatenate(initial_states[0].shape[1:])))
    return last_output, outputs, final_states


def _weights_read_once(engine_step):
    """The engine step as a cell step, its weights read once before the loop rather than on
    every step."""
    weights = [tf.convert_to_tensor(w) for w in engine_step.weights]

    def cell_step(x_t, states):
        new_states, _ = engine_step.gradient.step(x_t, states, weights)
        return new_states[0], new_states
    return cell_step


def _group_sizes(batch, groups):
    """``batch`` rows in ``groups`` near-equal parts."""
    return [batch // groups + (1 if g < batch % groups else 0) for g in range(groups)]

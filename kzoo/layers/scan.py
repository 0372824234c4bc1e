"""The one scan engine every kzoo recurrent layer runs on.

``scan(step, inputs, initial_states)`` folds ``(y_t, s_t) = step(x_t, s_{t-1})`` over the time axis
of ``inputs`` (batch-major, ``(B, T, ...)``), where ``x_t`` is the projected input of step t. The
layers hand over ``project`` (the cell's input projection). The TensorFlow loops apply it step by
step inside the loop: the projections of later steps run beside the recurrence (on a second
core), and no ``(T, B, k·units)`` tensor is held; the engine's own backpropagation and the XLA
inference loop project (and differentiate) it step by step too. The TFLite form, and cells
TensorFlow differentiates, project all steps in one matmul first. A batch of independent rows
large enough for it runs its XLA-compiled loops (training, XLA inference) as one loop per core
over groups of rows (:func:`_batch_groups`).

The loop is a single ``tf.while_loop`` that carries the states. Its form depends on where the
graph is going, chosen with :func:`scan_mode`:

* ``"tensorarray"`` (what the default ``"auto"`` runs on the CPU, but for small fixed-shape
  inference steps, see below): outputs collected in a ``TensorArray``, linear in T in the
  TensorFlow runtime. Under a gradient tape, cells with a hand-derived step gradient
  (:mod:`kzoo.layers.bptt`) run the engine's own backpropagation through time
  (:func:`_scan_bptt`, XLA-compiled under ``"auto"`` when shapes are fixed); other cells are
  differentiated by TensorFlow.
* ``"xla"``: the forward pass of those cells as one XLA computation. ``"auto"`` takes it for
  graphs with fixed shapes whose step has at most :data:`XLA_INFERENCE_MAX_STEP` elements;
  ``scan_mode("xla")`` for every step.
* ``"tflite"``: no TensorArray/TensorList at all, so the TFLite converter lowers the loop to
  builtin ``WHILE`` ops with dynamic batch and time. One step per iteration with static shapes
  inside the body (so LiteRT's XNNPACK delegate runs it), no mask ops before the first masked
  step (for steps that are not wide, see :func:`_is_wide`), and outputs shifted through small
  registers (:data:`TFLITE_CHUNKS` rows, fewer for wide outputs) rather than a loop-carried
  buffer the runtime would copy every step (see :func:`_scan_unrolled`); int8 exports trace
  the older blocked form (:func:`tflite_calibration_safe`).

Masked steps (``mask[b, t] == False``) carry the previous state through, and emit the previous
output (or zeros with ``zero_output_for_mask``), exactly as ``keras.layers.RNN`` does; a fully
masked row therefore returns its initial state.
"""

import contextlib
import math
import os
import threading

import tensorflow as tf

from kzoo.layers.bptt import bias_gradient, kernel_gradient
from kzoo.layers.cell import dense

try:    # A private module, stable since TF 2.0; without it the engine always lets TF differentiate.
    from tensorflow.python.eager.record import could_possibly_record as _tape_is_active
    from tensorflow.python.eager.record import should_record_backprop as _is_watched
except ImportError:     # pragma: no cover
    def _tape_is_active():
        return False

    def _is_watched(tensors):
        return True

SCAN_MODES = ("auto", "tensorarray", "xla", "tflite")

_local = threading.local()


def get_scan_mode():
    """The output-collection form layers trace with in this thread (see :func:`scan_mode`)."""
    return getattr(_local, "mode", "auto")


@contextlib.contextmanager
def scan_mode(mode):
    """Trace every kzoo recurrent layer called inside the block with the given loop form.

    ``"auto"`` is the default: the ``"tensorarray"`` loops (XLA-compiled where shapes are
    fixed: training, and inference of small steps), or Keras' cuDNN kernels for the standard
    LSTM/GRU where a GPU is present (:mod:`kzoo.layers.cudnn`). ``"tensorarray"`` is the
    portable graph exports trace with: TensorFlow ops any CPU server runs, no XLA.
    ``scan_mode("xla")`` runs the forward pass of the standard
    cells (those with a :class:`kzoo.layers.bptt.StepGradient`) as one XLA computation when no
    gradient tape is recording: the fastest inference on CPU, compiled once per input shape,
    but not for graphs you export (TF Serving does not run XLA:CPU by default); training is as
    in ``"tensorarray"``. ``scan_mode("tflite")`` is what ``kzoo.export.tflite`` uses while it
    traces a model for the converter.
    """
    if mode not in SCAN_MODES:
        raise ValueError(f"scan_mode must be one of {SCAN_MODES}, got {mode!r}")
    previous = get_scan_mode()
    _local.mode = mode
    try:
        yield
    finally:
        _local.mode = previous


# Rows of the TFLite form's output registers, innermost first (see _scan_unrolled): a step
# copies about 3 * (16 + 16 + T / 256) output rows, linear in T up to a few thousand steps.
TFLITE_CHUNKS = (16, 16)
# Most bytes per batch row the output registers may hold beyond the sequence itself. A wide step
# output (a ConvLSTM frame of 64x64x32 floats is 512 KB) gets one level of fewer rows instead
# (see _register_chunks): with TFLITE_CHUNKS its registers alone would take 256 MB per row.
TFLITE_REGISTER_BYTES = 4 << 20


@contextlib.contextmanager
def tflite_calibration_safe():
    """Trace the ``"tflite"`` form as :func:`_scan_blocks` inside the block (this thread only).

    ``kzoo.export`` traces files for int8 quantization in it: TensorFlow's int8 calibrator
    crashes (a segfault in its MinMax logging) running the loops of :func:`_scan_unrolled`.
    """
    previous = _calibration_safe()
    _local.calibration_safe = True
    try:
        yield
    finally:
        _local.calibration_safe = previous


def _calibration_safe():
    return getattr(_local, "calibration_safe", False)


def _time_major(x):
    perm = [1, 0] + list(range(2, x.shape.rank))
    return tf.transpose(x, perm)


def _batch_major(x):
    return _time_major(x)


def _expand_mask(mask_t, like):
    """(B,) bool -> broadcastable to ``like`` (B, ...)."""
    return tf.reshape(mask_t, [-1] + [1] * (like.shape.rank - 1))


def _masked_update(mask_t, new, old):
    return tf.where(_expand_mask(mask_t, new), new, old)


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
    mode=None,
    step_gradient=None,
    output_is_state=False,
    project=None,
    independent_rows=False,
):
    """Run ``step`` over time. Returns ``(last_output, outputs, final_states)``.

    Args:
      step: ``step(x_t, states) -> (y_t, new_states)`` with ``states`` a list of tensors.
        ``y_t`` has the shape and dtype of ``states[0]`` (true of every kzoo cell).
      inputs: ``(B, T, ...)`` projected inputs (raw inputs with ``project``).
      initial_states: list of ``(B, ...)`` tensors.
      mask: optional ``(B, T)`` boolean.
      go_backwards: process time in reverse; outputs stay in processing order (as Keras).
      return_sequences: if False, ``outputs`` is None and no per-step buffer is built.
      zero_output_for_mask: masked steps emit zeros instead of the previous output.
      time_major: ``inputs`` are ``(T, B, ...)`` (``mask`` stays ``(B, T)``); the outputs are
        batch-major either way.
      mode: one of :data:`SCAN_MODES`; default :func:`get_scan_mode` (``"auto"`` is
        ``"tensorarray"`` or ``"xla"`` here, see the module docstring: the cuDNN dispatch
        happens in the layers).
      output_is_state: the step's output is its first new state (true of every kzoo cell);
        then an unmasked loop carries no separate last output.
      project: optional input transform (a cell's ``project_inputs``): ``inputs`` are then the
        raw ``(B, T, F)`` sequence and step t reads ``project(x_t)``. The TensorFlow inference
        loop projects inside the loop, where the next steps' projections run beside the
        recurrence (on a second core) and no ``(T, B, k·units)`` tensor is ever held; the
        other forms project every step in one matmul first.
      independent_rows: ``step`` treats every batch row on its own and closes over no
        batch-shaped tensor; then a large enough batch runs as several loops over groups of
        rows, one per core (see :func:`_batch_groups`).
      step_gradient: optional :class:`kzoo.layers.bptt.StepGradient` of the same step. When a
        gradient tape is recording, the ``"tensorarray"`` form then runs the step through it and
        computes the gradient itself (one reverse loop, :func:`_scan_bptt`). Without a tape
        (inference, serving signatures) nothing is kept for a backward pass.
    """
    mode = mode or get_scan_mode()
    if mode not in SCAN_MODES:
        raise ValueError(f"mode must be one of {SCAN_MODES}, got {mode!r}")
    # "auto": XLA for the engine's own BPTT when the graph's shapes are fixed (each shape is
    # compiled once; with a dynamic time axis every new length would compile again).
    jit_bptt = mode == "auto" and not tf.executing_eagerly() and inputs.shape.is_fully_defined()
    initial_states = [tf.convert_to_tensor(s) for s in initial_states]
    if mode == "auto":
        # Inference too, where a step is small enough for the runtime's per-op dispatch to
        # dominate it (XLA fuses the step's elementwise ops; it only pays off there).
        small_step = initial_states[0].shape.num_elements() or 0
        mode = "xla" if (jit_bptt and step_gradient is not None and not _tape_is_active()
                         and 0 < small_step <= XLA_INFERENCE_MAX_STEP) else "tensorarray"
    inputs_tm = inputs if time_major else _time_major(inputs)
    mask_tm = None
    if mask is not None:
        mask_tm = tf.transpose(tf.cast(mask, tf.bool))
    if go_backwards:
        inputs_tm = tf.reverse(inputs_tm, [0])
        if mask_tm is not None:
            mask_tm = tf.reverse(mask_tm, [0])
    if mode == "xla" and step_gradient is None:
        mode = "tensorarray"
    # The engine's own backpropagation differentiates a plain `x W + b` projection inside its
    # loops (no (T, B, k·units) tensor then exists in either direction).
    projection = None
    if (project is not None and step_gradient is not None
            and step_gradient.projection is not None
            and (mode == "xla" or (mode == "tensorarray" and _tape_is_active()))):
        projection, project = step_gradient.projection, None
    if project is not None and (mode != "tensorarray" or _tape_is_active()):
        # TensorFlow's backpropagation wants the projection's gradient as one matmul over all
        # steps, and the XLA and TFLite forms take the projected sequence.
        inputs_tm, project = project(inputs_tm), None

    def run(inputs_tm, mask_tm, initial_states):
        zero_output = tf.zeros_like(initial_states[0])
        cell_step = step
        if mode in ("xla", "tensorarray") and step_gradient is not None:
            if _tape_is_active():
                return _scan_bptt(step_gradient, inputs_tm, mask_tm, initial_states,
                                  collect=return_sequences,
                                  zero_output_for_mask=zero_output_for_mask,
                                  jit=jit_bptt or mode == "xla", projection=projection)
            if mode == "xla":
                return _scan_xla(step_gradient, inputs_tm, mask_tm, initial_states,
                                 collect=return_sequences,
                                 zero_output_for_mask=zero_output_for_mask,
                                 projection=projection)
            # The same forward step, its weights read once before the loop rather than per step.
            weights = [tf.convert_to_tensor(w) for w in step_gradient.weights]

            def cell_step(x_t, states):
                new_states, _ = step_gradient.step(x_t, states, weights)
                return new_states[0], new_states
        masked_step = _masked(cell_step, zero_output, zero_output_for_mask)
        if mode == "tensorarray":
            return _scan_flat(masked_step, inputs_tm, mask_tm, initial_states, zero_output,
                              collect=return_sequences,
                              carry_output=mask_tm is not None or not output_is_state,
                              project=project)
        return _scan_unrolled(masked_step, inputs_tm, mask_tm, initial_states, zero_output,
                              collect=return_sequences)

    groups = _batch_groups(inputs_tm, mode) if independent_rows else 1
    if groups == 1:
        last_output, outputs, final_states = run(inputs_tm, mask_tm, initial_states)
    else:
        # Batch rows never meet, so groups of rows run as independent loops, side by side on
        # as many cores (one loop over a small batch keeps a single core busy).
        sizes = _group_sizes(inputs_tm.shape[1], groups)
        results = [run(*group) for group in zip(
            tf.split(inputs_tm, sizes, axis=1),
            [None] * groups if mask_tm is None else tf.split(mask_tm, sizes, axis=1),
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


def _masked(step, zero_output, zero_output_for_mask):
    """``step`` as the loops run it: ``(x_t, m_t, prev_output, states) -> (emitted, carried,
    new_states)``, where a masked row (``m_t`` False) keeps its states and output."""
    def masked_step(x_t, m_t, prev_output, states):
        output, new_states = step(x_t, states)
        new_states = list(new_states)
        if m_t is None:
            return output, output, new_states
        new_states = [_masked_update(m_t, n, s) for n, s in zip(new_states, states)]
        carried = _masked_update(m_t, output, prev_output)
        emitted = _masked_update(m_t, output, zero_output) if zero_output_for_mask else carried
        return emitted, carried, new_states
    return masked_step


# Largest batch × units whose inference "auto" compiles with XLA (fixed shapes only): the
# largest step measured (2-core x86, README Performance) where XLA was not slower than the
# TensorFlow loop. It halves a (16, 64) step; at (64, 128) it is 0.70-0.80x Keras on both cores
# (one core alone: about even); at (64, 256) and (128, 128) even or faster.
XLA_INFERENCE_MAX_STEP = 16384

# Rows per group below which splitting a batch across cores costs more than it saves.
MIN_GROUP_ROWS = 16


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
    directions of a ``Bidirectional``): their row groups share the cores instead of each
    taking all of them."""
    previous = getattr(_local, "concurrent", 1)
    _local.concurrent = previous * count
    try:
        yield
    finally:
        _local.concurrent = previous


def _batch_groups(inputs_tm, mode):
    """How many row groups of this batch run as separate loops: one per available core (shared
    among :func:`concurrent_loops`), each of at least :data:`MIN_GROUP_ROWS` rows, where the
    loops are XLA-compiled (training, and "xla" inference: such a loop runs on one thread; two
    groups took (64, 100, 64, 128) inference from 0.77x to 0.53-0.64x Keras' time for the
    LSTM, 0.84x to 0.50x for the GRU); 1 for the TensorFlow inference loop (it already runs
    the next steps' input projections on a second core, and splitting measured slower), for an
    unknown batch size and in the TFLite form."""
    batch = inputs_tm.shape[1]
    if mode == "tflite" or batch is None or (mode != "xla" and not _tape_is_active()):
        return 1
    cores = available_cores() // getattr(_local, "concurrent", 1)
    return max(1, min(cores, batch // MIN_GROUP_ROWS))


def _group_sizes(batch, groups):
    """``batch`` rows in ``groups`` near-equal parts."""
    return [batch // groups + (1 if g < batch % groups else 0) for g in range(groups)]


def _scan_flat(masked_step, inputs_tm, mask_tm, initial_states, zero_output, collect,
               carry_output=True, project=None):
    """One step per iteration; outputs written to a TensorArray. Without ``carry_output`` the
    last output is the final first state; with ``project`` each step projects its own input."""
    time_steps = tf.shape(inputs_tm)[0]
    n_states = len(initial_states)
    # Under a gradient tape, step t is read from a TensorArray: its gradient is O(1) per step,
    # where slicing the tensor inside the loop would build a dense (T, B, ...) gradient on every
    # step (quadratic in T). Without a tape, x[t] is a view and saves unstacking (copying) x.
    if _tape_is_active():
        read = tf.TensorArray(inputs_tm.dtype, size=time_steps,
                              element_shape=inputs_tm.shape[1:]).unstack(inputs_tm).read
    else:
        def read(t):
            return inputs_tm[t]
    if project is not None:
        read_raw = read

        def read(t):
            return project(read_raw(t))

    def body(t, *rest):
        prev_output = rest[0] if carry_output else None
        rest = rest[1:] if carry_output else rest
        states = list(rest[:n_states])
        m_t = None if mask_tm is None else mask_tm[t]
        emitted, carried, new_states = masked_step(read(t), m_t, prev_output, states)
        out = (t + 1, carried, *new_states) if carry_output else (t + 1, *new_states)
        if collect:
            out += (rest[n_states].write(t, emitted),)
        return out

    loop_vars = (tf.constant(0), *([zero_output] if carry_output else []), *initial_states)
    if collect:
        loop_vars += (tf.TensorArray(zero_output.dtype, size=time_steps,
                                     element_shape=zero_output.shape),)
    result = tf.while_loop(lambda t, *_: t < time_steps, body, loop_vars,
                           maximum_iterations=time_steps, parallel_iterations=32)
    result = result[1:] if carry_output else (result[1], *result[1:])
    last_output = result[0]
    final_states = list(result[1:1 + n_states])
    outputs = None
    if collect:
        outputs = _batch_major(result[1 + n_states].stack())
    return last_output, outputs, final_states


def _forward_loop(step, inputs_tm, mask_tm, states0, weights, keep, n_projection=0,
                  recorded=None):
    """The loop of the engine's own forms: ``step(x_t, states, weights) -> (new_states, saved)``.
    With ``n_projection`` the last weights are ``kernel[, bias]`` and step t reads
    ``x_t kernel + bias``.

    Returns ``(final_states, states_ta, saved_ta)``: ``states_ta[k]`` holds s_0 ... s_T
    (post-mask; step t reads index t and writes t + 1) for the first ``recorded`` states (all
    by default); with ``keep`` the saved tensors of every step are kept too (references, not
    copies), else ``saved_ta`` is empty.
    """
    time_steps = tf.shape(inputs_tm)[0]
    # clear_after_read=False: the backward pass reads every state twice, and eagerly a
    # TensorArray forgets what was read.
    states_ta = [tf.TensorArray(s.dtype, size=time_steps + 1, element_shape=s.shape,
                                clear_after_read=False).write(0, s)
                 for s in states0[:len(states0) if recorded is None else recorded]]

    def body(t, states, states_ta, saved_ta):
        # x[t] of the time-major tensor is a view (gather would copy the step).
        x_t = inputs_tm[t]
        if n_projection:
            x_t = dense(x_t, *weights[-n_projection:])
        new_states, saved = step(x_t, states, weights[:len(weights) - n_projection])
        if mask_tm is not None:
            new_states = [_masked_update(mask_tm[t], n, s) for n, s in zip(new_states, states)]
        states_ta = [ta.write(t + 1, n) for ta, n in zip(states_ta, new_states)]
        if keep:
            if saved_ta is None:
                saved_ta = [tf.TensorArray(v.dtype, size=time_steps, element_shape=v.shape,
                                           clear_after_read=False) for v in saved]
            saved_ta = [ta.write(t, v) for ta, v in zip(saved_ta, saved)]
        return t + 1, new_states, states_ta, saved_ta or []

    # The saved tensors' number and shapes are known once a step is traced, so the first step
    # runs before the loop.
    first = body(tf.constant(0), states0, states_ta, None)
    _, final_states, states_ta, saved_ta = tf.while_loop(
        lambda t, *_: t < time_steps, body, first, maximum_iterations=time_steps - 1,
        parallel_iterations=32)
    return final_states, states_ta, saved_ta


def _emitted(mask_tm, zero_output_for_mask, last_output, sequence):
    """What a masked loop emits, as keras.layers.RNN: a masked step repeats the last output of
    an unmasked step, zeros before the first one (always zeros with ``zero_output_for_mask``);
    ``sequence`` is the time-major post-mask first state (or None)."""
    if mask_tm is None:
        return last_output, sequence
    seen = tf.math.cumsum(tf.cast(mask_tm, tf.int32), axis=0) > 0
    last_output = tf.where(_expand_mask(seen[-1], last_output), last_output,
                           tf.zeros_like(last_output))
    if sequence is not None:
        emitted = mask_tm if zero_output_for_mask else seen
        sequence = tf.where(_expand_mask_seq(emitted, sequence), sequence,
                            tf.zeros_like(sequence))
    return last_output, sequence


# Steps whose weight gradients the XLA backward loop sums in one matmul (see _backward_loop).
BPTT_WEIGHT_BLOCK = 8


def _backward_loop(step_gradient, x_step, mask_tm, states_ta, saved_ta, d_sequence, d_states,
                   weights, raw_inputs=None, n_projection=0, need_d_x=True, block=1):
    """Backpropagation through the loop :func:`_forward_loop` ran with ``keep``: returns the
    gradients with respect to the inputs (time-major; None without ``need_d_x``), the initial
    states and the weights.
    ``x_step`` is ``(shape, dtype)`` of one input step: the inputs themselves are not needed, and
    holding them until the backward pass would keep a whole (T, B, k·units) tensor alive. With
    ``n_projection`` the forward loop projected ``raw_inputs`` itself, and this loop returns
    the gradients of the raw inputs and of the projection's weights too.

    With ``block`` > 1 (the XLA loops) the weights' gradients are summed over ``block`` steps
    at a time: an inner loop of ``block`` steps files each step's factors into (block, B, ·)
    buffers, and one matmul with ``block`` times the rows adds them up after it. A step's own
    (B, U)ᵀ @ (B, 4U) outer product is a slow shape for XLA's matmul, and XLA does not fuse the
    add of the whole gradient into it (an LSTM at 32 rows and 128 units: 40 + 21 µs a step,
    blocked about 18 µs). A conditional flush in a single loop was slower still: XLA copies the
    buffers into the conditional on every step. The buffers hold ``block`` steps, not T.
    """
    n_recurrent = len(weights) - n_projection
    projection = weights[n_recurrent:]
    weights = weights[:n_recurrent]
    kernel_t = tf.transpose(weights[0])
    projection_t = tf.transpose(projection[0]) if n_projection and need_d_x else None
    time_steps = states_ta[0].size() - 1
    # d_x is d_recurrent for the LSTM and SimpleRNN: it is then not filed a second time.
    shared = step_gradient.recurrent_gradient_is_input_gradient

    def factors(h_prev, d_rec, x, d_x):
        """What a step files for its weights' gradients (values, or their widths)."""
        return [h_prev, d_rec] + ([x] + ([] if shared else [d_x]) if n_projection else [])

    def weight_gradients(h_prev, d_rec, x=None, d_x=None):
        """The weights' gradients from :func:`factors` of one step, or of a stack of steps."""
        grads = step_gradient.weight_gradients(h_prev, d_rec, weights)
        if n_projection:
            d_x = d_rec if d_x is None else d_x
            grads.append(kernel_gradient(x, d_x))
            if n_projection > 1:
                grads.append(bias_gradient(d_x))
        return grads

    def back(i, d_states, d_x_ta):
        """Step ``time_steps - 1 - i``: the previous states' gradients, and the factors of its
        weights' gradients."""
        t = time_steps - 1 - i
        states = [ta.read(t) for ta in states_ta]
        new_states = [ta.read(t + 1) for ta in states_ta]
        saved = [ta.read(t) for ta in saved_ta]
        d_states = list(d_states)
        if d_sequence is not None:
            d_states[0] = d_states[0] + d_sequence[t]
        kept = None
        if mask_tm is not None:
            m = _expand_mask(mask_tm[t], d_states[0])
            kept = [tf.where(m, tf.zeros_like(d), d) for d in d_states]
            d_states = [tf.where(m, d, tf.zeros_like(d)) for d in d_states]
        d_x, d_prev, d_rec = step_gradient.backward(d_states, states, new_states, saved,
                                                    kernel_t)
        if kept is not None:
            d_prev = [a + b for a, b in zip(d_prev, kept)]
        filed = factors(states[0], d_rec, raw_inputs[t] if n_projection else None, d_x)
        if n_projection and need_d_x:
            d_x = tf.matmul(d_x, projection_t)
        return d_prev, [ta.write(t, d_x) for ta in d_x_ta], filed

    def step_body(i, d_states, d_weights, d_x_ta):
        d_prev, d_x_ta, filed = back(i, d_states, d_x_ta)
        return i + 1, d_prev, [a + g for a, g in zip(d_weights, weight_gradients(*filed))], \
            d_x_ta

    def block_body(i, d_states, d_weights, d_x_ta, pending):
        def file_step(slot, i, d_states, d_x_ta, pending):
            d_prev, d_x_ta, filed = back(i, d_states, d_x_ta)
            pending = [tf.tensor_scatter_nd_update(buffer, [[slot]], value[None])
                       for buffer, value in zip(pending, filed)]
            return slot + 1, i + 1, d_prev, d_x_ta, pending

        # The first block takes the remainder of T / block: its unused slots are still zero.
        steps = tf.where(tf.equal(i, 0), (time_steps - 1) % block + 1, block)
        _, i, d_states, d_x_ta, pending = tf.while_loop(
            lambda slot, *_: slot < steps, file_step,
            (tf.constant(0), i, d_states, d_x_ta, pending),
            maximum_iterations=block, parallel_iterations=32)
        d_weights = [a + g for a, g in zip(d_weights, weight_gradients(*pending))]
        return i, d_states, d_weights, d_x_ta, pending

    d_x_ta = [tf.TensorArray(x_step[1], size=time_steps, element_shape=x_step[0])] \
        if need_d_x else []
    d_weights = [tf.zeros_like(w) for w in weights + projection]
    loop_vars = (tf.constant(0), list(d_states), d_weights, d_x_ta)
    if block == 1:
        body = step_body
    else:
        body = block_body
        # The batch size as a tensor: under scan_mode("xla") the graph's batch may be unknown
        # (XLA still compiles each call's concrete shapes).
        batch = tf.shape(d_states[0])[0]
        widths = factors(states_ta[0].element_shape[-1], weights[0].shape[-1], x_step[0][-1],
                         projection[0].shape[-1] if n_projection else None)
        loop_vars += ([tf.zeros(tf.stack([block, batch, w]), x_step[1]) for w in widths],)
    _, d_initial, d_weights, d_x_ta = tf.while_loop(
        lambda i, *_: i < time_steps, body, loop_vars, maximum_iterations=time_steps,
        parallel_iterations=32)[:4]
    return (d_x_ta[0].stack() if need_d_x else None), list(d_initial), d_weights


def _scan_bptt(step_gradient, inputs_tm, mask_tm, initial_states, collect,
               zero_output_for_mask, jit=False, projection=None):
    """The engine's own backpropagation through time (under a gradient tape, see :func:`scan`).

    Forward: :func:`_forward_loop` keeping every step's saved tensors. Backward:
    :func:`_backward_loop`, one loop from the last step to the first over
    ``step_gradient.backward``, masked steps passing their state gradient straight through and
    the weights' gradients summed as it goes (:data:`BPTT_WEIGHT_BLOCK` steps per matmul in
    XLA). With ``jit`` (scan mode ``"xla"``) each of the two loops is one XLA computation. With
    ``projection`` (``kernel[, bias]``) ``inputs_tm`` are raw and both loops run the projection
    step by step.
    """
    n_states = len(initial_states)
    projection = list(projection or [])
    n_projection = len(projection)
    weights = [tf.convert_to_tensor(w) for w in step_gradient.weights + projection]
    masks = [] if mask_tm is None else [mask_tm]
    x_step = (tuple(inputs_tm.shape[1:]), inputs_tm.dtype)
    # Inputs no tape watches (a first layer's data) need no gradient: TensorFlow would prune
    # its computation outside a loop, but not inside one.
    need_d_x = bool(_is_watched([inputs_tm]))

    @tf.custom_gradient
    def run(inputs_tm, *flat):
        states0, weights = list(flat[:n_states]), list(flat[n_states:])
        time_steps = tf.shape(inputs_tm)[0]
        if jit:
            forward, backward = _xla_bptt(step_gradient, n_states, n_projection, need_d_x)
            # Eagerly the tape would record the call and ask XLA for its intermediates (which
            # cannot leave XLA); this gradient is the custom one, so nothing is recorded.
            final_states, states_seq, saved_seq = forward(
                *tf.nest.map_structure(tf.stop_gradient, (inputs_tm, masks, states0, weights)))
            sequence = [states_seq[0][1:]] if collect else []
        else:
            final_states, states_ta, saved_ta = _forward_loop(
                step_gradient.step, inputs_tm, mask_tm, states0, weights, keep=True,
                n_projection=n_projection)
            sequence = [states_ta[0].gather(tf.range(1, time_steps + 1))] if collect else []

        def grad(*upstream):
            upstream = list(upstream)
            d_sequence = [upstream.pop(0)] if collect else []
            d_states = [tf.zeros_like(s) if d is None else d
                        for d, s in zip(upstream, final_states)]
            # Raw inputs are needed backward only by a projection run inside the loops.
            raw = [inputs_tm] if n_projection else []
            if jit:
                d_x, d_initial, d_weights = backward(x_step, masks, states_seq, saved_seq,
                                                     d_sequence, d_states, weights, raw)
            else:
                d_x, d_initial, d_weights = _backward_loop(
                    step_gradient, x_step, mask_tm, states_ta, saved_ta,
                    d_sequence[0] if d_sequence else None, d_states, weights, *raw,
                    n_projection=n_projection, need_d_x=need_d_x)
            return [d_x, *d_initial, *d_weights]

        return (*sequence, *final_states), grad

    result = run(inputs_tm, *initial_states, *weights)
    final_states = list(result[1:] if collect else result)
    last_output, sequence = _emitted(mask_tm, zero_output_for_mask, final_states[0],
                                     result[0] if collect else None)
    return last_output, None if sequence is None else _batch_major(sequence), final_states


_XLA_BPTT = {}


def _xla_bptt(step_gradient, n_states, n_projection=0, need_d_x=True):
    """The forward and backward loops of :func:`_scan_bptt` as XLA computations that exchange
    stacked tensors (TensorArrays cannot cross the boundary; inside XLA, stacking is free)."""
    key = (type(step_gradient), n_states, n_projection, need_d_x)
    if key in _XLA_BPTT:
        return _XLA_BPTT[key]

    def unstack(sequence):
        return tf.TensorArray(sequence.dtype, size=tf.shape(sequence)[0],
                              element_shape=sequence.shape[1:],
                              clear_after_read=False).unstack(sequence)

    def forward(inputs_tm, masks, states0, weights):
        final_states, states_ta, saved_ta = _forward_loop(
            step_gradient.step, inputs_tm, masks[0] if masks else None, states0, weights,
            keep=True, n_projection=n_projection)
        return final_states, [ta.stack() for ta in states_ta], [ta.stack() for ta in saved_ta]

    def backward(x_step, masks, states_seq, saved_seq, d_sequence, d_states, weights, raw):
        return _backward_loop(step_gradient, x_step, masks[0] if masks else None,
                              [unstack(s) for s in states_seq], [unstack(s) for s in saved_seq],
                              d_sequence[0] if d_sequence else None, d_states, weights, *raw,
                              n_projection=n_projection, need_d_x=need_d_x,
                              block=BPTT_WEIGHT_BLOCK)

    _XLA_BPTT[key] = (tf.function(forward, jit_compile=True, autograph=False),
                      tf.function(backward, jit_compile=True, autograph=False))
    return _XLA_BPTT[key]


# One compiled function per cell kind and loop shape; XLA then compiles it once per input shape.
_XLA_FORWARDS = {}


def _scan_xla(step_gradient, inputs_tm, mask_tm, initial_states, collect,
              zero_output_for_mask, projection=None):
    """The forward pass of a standard cell as one XLA computation (``scan_mode("xla")``).

    XLA fuses each step's elementwise work into a few kernels where the TensorFlow runtime
    dispatches a dozen ops per step; it compiles once per input shape (about 0.3 s on 2 cores).
    With ``projection`` (``kernel[, bias]``) ``inputs_tm`` are raw and each step projects its
    own; only the output sequence (with ``collect``) is kept across steps.
    """
    projection = list(projection or [])
    key = (type(step_gradient), len(initial_states), collect, mask_tm is not None,
           zero_output_for_mask, len(projection))
    if key not in _XLA_FORWARDS:
        _XLA_FORWARDS[key] = tf.function(
            _xla_forward_fn(step_gradient, collect, zero_output_for_mask, len(projection)),
            jit_compile=True, autograph=False)
    weights = [tf.convert_to_tensor(w) for w in step_gradient.weights + projection]
    masks = [] if mask_tm is None else [mask_tm]
    last_output, sequence, final_states = _XLA_FORWARDS[key](inputs_tm, masks,
                                                             list(initial_states), weights)
    return last_output, None if sequence is None else _batch_major(sequence), list(final_states)


def _xla_forward_fn(step_gradient, collect, zero_output_for_mask, n_projection):
    def forward(inputs_tm, masks, states0, weights):
        mask_tm = masks[0] if masks else None
        projection = weights[len(weights) - n_projection:]
        weights = weights[:len(weights) - n_projection]
        scale, step = None, step_gradient.step
        form = step_gradient.inference_form(weights)
        if form is not None:
            scale, weights, step = form
        if scale is not None:
            # (x W + b) * s = x (W * s) + b * s: the scale goes where the projection happens.
            if projection:
                projection = [p * scale for p in projection]
            else:
                inputs_tm = inputs_tm * scale
        final_states, states_ta, _ = _forward_loop(
            step, inputs_tm, mask_tm, states0, weights + projection, keep=False,
            n_projection=n_projection, recorded=1 if collect else 0)
        sequence = None
        if collect:
            sequence = states_ta[0].gather(tf.range(1, tf.shape(inputs_tm)[0] + 1))
        last_output, sequence = _emitted(mask_tm, zero_output_for_mask, final_states[0],
                                         sequence)
        return last_output, sequence, final_states
    return forward


def _expand_mask_seq(mask_tm, like):
    """(T, B) bool -> broadcastable to ``like`` (T, B, ...)."""
    return tf.reshape(mask_tm, tf.concat([tf.shape(mask_tm), [1] * (like.shape.rank - 2)], 0))


def _shift_in(register, value):
    """``register`` (n, ...) without its first row and with ``value`` (...) as its last: an
    output write whose shapes are all static. (A scatter at a computed index has a computed
    output shape, which makes LiteRT reallocate the loop body on every iteration and keeps the
    XNNPACK delegate out of it.)"""
    return tf.concat([register[1:], tf.expand_dims(value, 0)], 0)


def _leading_valid_steps(mask_tm):
    """How many first steps of the time-major (T, B) mask are unmasked in every row (0..T)."""
    valid = tf.reduce_min(tf.cast(mask_tm, tf.int32), axis=1)
    # The first step with a masked row: argmin returns the first minimum; T if none.
    return tf.argmin(tf.concat([valid, [0]], 0), output_type=tf.int32)


def _scan_unrolled(masked_step, inputs_tm, mask_tm, initial_states, zero_output, collect):
    """TensorList-free form for TFLite: one step per ``WHILE`` iteration, shapes static inside.

    What makes a loop fast in LiteRT (measured on a 64-unit LSTM at batch 1, README
    "Decoding, LiteRT and memory"): every tensor inside a loop body has a static shape. A
    computed shape (a reshape into blocks, a scatter) makes the interpreter reallocate the body
    on every iteration and keeps the XNNPACK delegate, which runs the step's matmul and
    elementwise ops, out of it. Unrolling several steps per iteration saved no time (a WHILE
    iteration itself costs little) and multiplied the graph, so the body holds one step, which
    reads ``x[t]`` and ``mask[t]`` with ``GATHER``.

    Masks: the steps before the first step with a masked row run in a loop without any mask
    op; the rest in a loop over ``masked_step``. A full-length batch never runs the second. A
    wide step (:func:`_is_wide`) runs every step in the masked loop: its three selects are a
    tiny part of its work, and a second loop body is a second copy of the step in the file.

    Outputs (``collect``): a loop-carried buffer is copied on every iteration, so the outputs go
    through registers of :data:`TFLITE_CHUNKS` rows (a step shifts its output into the
    innermost, a full register is shifted into the next, the outermost holds the whole
    sequence), each written by :func:`_shift_in`. Blocks are aligned to the end of the
    sequence: the first block of each level is the partial one, its rows land at the end of
    its register, and the sequence is the last T rows of the outermost.
    """
    if _calibration_safe():
        return _scan_blocks(masked_step, inputs_tm, mask_tm, initial_states, zero_output, collect)
    time_steps = tf.shape(inputs_tm)[0]
    n_states = len(initial_states)
    # Split at the first masked step: an unmasked loop, then a masked one (not for wide steps).
    split_at_mask = mask_tm is not None and not _is_wide(zero_output)
    n_full = _leading_valid_steps(mask_tm) if split_at_mask else None
    def loop(start, stop, carry, masked, collecting):
        # carry: (prev_output, *states[, innermost register]); steps start .. stop - 1.
        def body(t, prev_output, *rest):
            m_t = tf.gather(mask_tm, t) if masked else None
            emitted, prev_output, states = masked_step(tf.gather(inputs_tm, t), m_t,
                                                       prev_output, list(rest[:n_states]))
            out = (t + 1, prev_output, *states)
            if collecting:
                out += (_shift_in(rest[n_states], emitted),)
            return out

        return tf.while_loop(lambda t, *_: t < stop, body, (start, *carry))[1:]

    def steps(start, stop, carry, collecting=False):
        if not split_at_mask:
            return loop(start, stop, carry, mask_tm is not None, collecting)
        split = tf.minimum(tf.maximum(n_full, start), stop)
        carry = loop(start, split, carry, False, collecting)
        return loop(split, stop, carry, True, collecting)

    if not collect:
        carry = steps(tf.constant(0), time_steps, (zero_output, *initial_states))
        return carry[0], None, list(carry[1:])

    # Virtual step v is step v - pad; the first `pad` virtual steps do not exist.
    chunks = _register_chunks(zero_output)
    spans = [1]     # virtual steps per entry of each level's register
    for size in chunks:
        spans.append(spans[-1] * size)
    n_top = (time_steps + (spans[-1] - 1)) // spans[-1]
    pad = n_top * spans[-1] - time_steps
    sizes = list(chunks) + [n_top]
    registers, row_shape = [], tf.shape(zero_output)
    for size in sizes:
        row_shape = tf.concat([[size], row_shape], 0)
        registers.append(tf.zeros(row_shape, zero_output.dtype))

    def fill(level, start, carry):
        """Virtual steps start .. start + spans[level + 1] - 1 into registers[level];
        carry: (prev_output, *states, *registers[:level + 1])."""
        if level == 0:
            return steps(tf.maximum(start, pad) - pad, start + sizes[0] - pad, carry, True)
        unit = spans[level]

        def body(j, *carry):
            inner = fill(level - 1, start + j * unit, carry[:-1])
            return (j + 1, *inner, _shift_in(carry[-1], inner[-1]))

        # Entries holding only virtual steps are skipped (their rows stay at the front).
        first = tf.maximum(0, (pad - start) // unit)
        return tf.while_loop(lambda j, *_: j < sizes[level], body, (first, *carry))[1:]

    carry = fill(len(chunks), tf.constant(0),
                 (zero_output, *initial_states, *registers))
    rows = tf.reshape(carry[-1], tf.concat([[-1], tf.shape(zero_output)], 0))
    return carry[0], _batch_major(rows[pad:]), list(carry[1:1 + n_states])


def _row_bytes(zero_output):
    """Bytes of one batch row of a step output, None where its shape is not static."""
    row = zero_output.shape[1:].num_elements()
    return None if row is None else row * zero_output.dtype.size


def _is_wide(zero_output):
    """Whether a step output row is wide: :data:`TFLITE_CHUNKS` registers of it would exceed
    :data:`TFLITE_REGISTER_BYTES` (over 4096 floats; a 64x64x32 ConvLSTM frame is 131072).
    A step that wide computes far more than it copies or selects, so LiteRT's per-op costs,
    which the extra loops and register levels of :func:`_scan_unrolled` save, do not show."""
    row_bytes = _row_bytes(zero_output)
    return row_bytes is not None and row_bytes * math.prod(TFLITE_CHUNKS) > TFLITE_REGISTER_BYTES


def _register_chunks(zero_output):
    """The register rows of :func:`_scan_unrolled` for this step output: :data:`TFLITE_CHUNKS`,
    or for a wide one (:func:`_is_wide`) one level of at most :data:`TFLITE_REGISTER_BYTES`
    per batch row (a step then copies more rows, but computes far more than it copies)."""
    if not _is_wide(zero_output):
        return TFLITE_CHUNKS
    return (max(1, min(TFLITE_CHUNKS[0], TFLITE_REGISTER_BYTES // _row_bytes(zero_output))),)


def _blocks(x, n_blocks, unroll):
    """The first ``n_blocks * unroll`` steps of time-major ``x`` as (n_blocks, unroll, ...)."""
    return tf.reshape(x[:n_blocks * unroll], tf.concat([[n_blocks, unroll], tf.shape(x)[1:]], 0))


def _scan_blocks(masked_step, inputs_tm, mask_tm, initial_states, zero_output, collect):
    """The blocked TFLite form, for files quantized to int8 (see tflite_calibration_safe): its
    loops bodies are resized on every iteration, which the calibrator runs without crashing
    and LiteRT about 3x slower than :func:`_scan_unrolled`'s.

    Full blocks of 8 steps run unrolled; with ``collect`` a block's outputs are
    stacked and written into a chunk buffer, and each chunk of 16 blocks into the
    output buffer. The last ``T mod 8`` steps run one per iteration into a small
    tail buffer. Nothing is padded or masked beyond the caller's own mask.
    """
    unroll, chunk = 8, 16      # steps per iteration, blocks per chunk
    time_steps = tf.shape(inputs_tm)[0]
    n_blocks = time_steps // unroll
    n_states = len(initial_states)
    x_blocks = _blocks(inputs_tm, n_blocks, unroll)
    m_blocks = None if mask_tm is None else _blocks(mask_tm, n_blocks, unroll)
    out_shape = tf.shape(zero_output)
    dtype = zero_output.dtype

    def run_block(b, prev_output, states):
        x_block = tf.gather(x_blocks, b)
        m_block = None if m_blocks is None else tf.gather(m_blocks, b)
        emitted_steps = []
        for u in range(unroll):
            emitted, prev_output, states = masked_step(
                x_block[u], None if m_block is None else m_block[u], prev_output, states)
            emitted_steps.append(emitted)
        return emitted_steps, prev_output, states

    if not collect:
        def block_body(b, prev_output, *states):
            _, prev_output, states = run_block(b, prev_output, list(states))
            return (b + 1, prev_output, *states)

        result = tf.while_loop(lambda b, *_: b < n_blocks, block_body,
                               (tf.constant(0), zero_output, *initial_states))
        main_outputs = None
    else:
        n_chunks = (n_blocks + chunk - 1) // chunk

        def chunk_body(c, prev_output, buffer, *states):
            def block_body(j, prev_output, chunk_buffer, *states):
                emitted_steps, prev_output, states = run_block(c * chunk + j, prev_output,
                                                               list(states))
                chunk_buffer = tf.tensor_scatter_nd_update(
                    chunk_buffer, [[j]], tf.expand_dims(tf.stack(emitted_steps), 0))
                return (j + 1, prev_output, chunk_buffer, *states)

            blocks_here = tf.minimum(chunk, n_blocks - c * chunk)
            chunk_buffer = tf.zeros(tf.concat([[chunk, unroll], out_shape], 0), dtype)
            inner = tf.while_loop(lambda j, *_: j < blocks_here, block_body,
                                  (tf.constant(0), prev_output, chunk_buffer, *states))
            buffer = tf.tensor_scatter_nd_update(buffer, [[c]], tf.expand_dims(inner[2], 0))
            return (c + 1, inner[1], buffer, *inner[3:])

        # At least one chunk, so that shape inference never sees an empty buffer being written.
        buffer = tf.zeros(tf.concat([[tf.maximum(n_chunks, 1), chunk, unroll], out_shape], 0),
                          dtype)
        result = tf.while_loop(lambda c, *_: c < n_chunks, chunk_body,
                               (tf.constant(0), zero_output, buffer, *initial_states))
        main_outputs = tf.reshape(result[2], tf.concat([[-1], out_shape], 0))
        main_outputs = main_outputs[:n_blocks * unroll]
        result = (result[0], result[1], *result[3:])

    # The tail: fewer than `unroll` steps, one per iteration.
    def tail_body(t, prev_output, tail_buffer, *states):
        m_t = None if mask_tm is None else tf.gather(mask_tm, t)
        emitted, prev_output, states = masked_step(tf.gather(inputs_tm, t), m_t, prev_output,
                                                   list(states))
        if collect:
            tail_buffer = tf.tensor_scatter_nd_update(
                tail_buffer, [[t - n_blocks * unroll]], tf.expand_dims(emitted, 0))
        return (t + 1, prev_output, tail_buffer, *states)

    tail_buffer = tf.zeros(tf.concat([[unroll if collect else 1], out_shape], 0), dtype)
    tail = tf.while_loop(lambda t, *_: t < time_steps, tail_body,
                         (n_blocks * unroll, result[1], tail_buffer, *result[2:2 + n_states]))
    last_output = tail[1]
    final_states = list(tail[3:3 + n_states])
    outputs = None
    if collect:
        tail_outputs = tail[2][:time_steps - n_blocks * unroll]
        outputs = _batch_major(tf.concat([main_outputs, tail_outputs], 0))
    return last_output, outputs, final_states

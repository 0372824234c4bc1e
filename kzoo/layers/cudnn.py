"""cuDNN: where a GPU is present, standard LSTM/GRU layers run Keras' own cuDNN kernels.

The kernels are ``keras.src.backend.tensorflow.rnn.lstm/gru``, the functions
``keras.layers.LSTM/GRU`` call, fed with our weights (same names, shapes and gate order), so the
numerics are Keras'. Which cell configuration a kernel computes is the cell's own knowledge
(:meth:`kzoo.layers.RecurrentCell.cudnn_kernel`: the LSTM with a forget gate and no peephole,
layer norm or projection; the GRU with ``reset_after``). This module holds what every kernel
shares: :func:`cudnn_refusal` adds ``tanh`` and ``sigmoid`` activations, ``use_bias``, no
recurrent dropout while training (input dropout is applied before, as on the portable path) and
a float16/float32 dtype; :func:`run_cudnn` runs a kernel, and the scan engine's portable loop
instead for a mask cuDNN cannot take. Whether the kernel runs at all (a visible GPU, the
``"auto"`` loop form, a trace for Keras rather than an export) is the scan engine's plan
(:func:`kzoo.layers.scan.plan_loop`), so an exported graph never holds a ``CudnnRNN`` op and a
SavedModel made on a GPU machine serves on a CPU-only server.

A mask, if any, goes to cuDNN only right-padded with no fully masked row and no ``go_backwards``:
that is checked when the graph runs, and any other mask takes the portable loop (Keras asserts
and fails on a fully masked row); with ``return_sequences`` a mask also needs
``zero_output_for_mask``, since cuDNN emits zeros at padded steps.
"""

import importlib

import keras
import tensorflow as tf


def keras_rnn_module():
    """``keras.src.backend.tensorflow.rnn`` (its package exports a function of that name)."""
    return importlib.import_module("keras.src.backend.tensorflow.rnn")


def gpu_available():
    """Whether TensorFlow sees a GPU in this process."""
    return bool(tf.config.list_logical_devices("GPU"))


def cudnn_refusal(cell, recurrent_mask=None):
    """Why ``cell`` may not run on a cuDNN kernel in this call, or ``None`` when it may.

    Whether it then does is the scan engine's plan (a GPU, the ``"auto"`` loop form, a trace for
    Keras).

    Args:
      cell: a :class:`kzoo.layers.RecurrentCell`, built.
      recurrent_mask: the call's recurrent dropout mask, or None.

    Returns:
      ``None``, or a short reason (``"GRU with reset_after=False"``).
    """
    try:
        cell.cudnn_kernel()
    except NotImplementedError as refusal:
        return str(refusal)
    if cell.activation is not keras.activations.tanh \
            or cell.recurrent_activation is not keras.activations.sigmoid:
        return "activations other than tanh/sigmoid"
    if not cell.use_bias:
        return "use_bias=False"
    if recurrent_mask is not None:
        return "recurrent dropout while training"
    if tf.as_dtype(cell.compute_dtype) not in (tf.float16, tf.float32):
        return f"dtype {cell.compute_dtype}"
    return None


def mask_fits_cudnn(mask):
    """Right-padded (True then False) with at least one step in every row."""
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    right_padded = tf.reduce_all(tf.equal(tf.sequence_mask(lengths, tf.shape(mask)[1]), mask))
    return tf.logical_and(right_padded, tf.reduce_all(lengths > 0))


def run_cudnn(kernel, sequences, states, mask, go_backwards, return_sequences, portable):
    """Run a cell's cuDNN ``kernel`` (:meth:`kzoo.layers.RecurrentCell.cudnn_kernel`).

    Args:
      kernel: the cell's kernel function.
      sequences: ``(B, T, F)`` inputs; ``states``: the initial states.
      mask: ``(B, T)`` bool or None.
      go_backwards, return_sequences: as the layer's.
      portable: ``portable() -> (last_output, outputs, final_states)``, the same on the scan
        engine's portable loop; it runs instead for a mask cuDNN cannot take, and where Keras
        finds no kernel after all.

    Returns:
      ``(last_output, outputs, final_states)``, ``outputs`` None without ``return_sequences``.
    """
    def flat(last, outputs, new_states):
        return [last, *new_states] + ([outputs] if return_sequences else [])

    def fast():
        last, outputs, new_states = kernel(sequences, states, mask, go_backwards)
        new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
        return flat(last, outputs, new_states)

    def slow():
        return flat(*portable())

    try:
        if mask is None:
            result = fast()
        elif go_backwards:
            result = slow()
        else:
            result = tf.cond(mask_fits_cudnn(mask), fast, slow)
    except NotImplementedError:      # Keras found no cuDNN kernel after all
        result = slow()
    n_states = len(states)
    outputs = result[1 + n_states] if return_sequences else None
    return result[0], outputs, list(result[1:1 + n_states])

"""cuDNN dispatch: where a GPU is present, standard LSTM/GRU layers run Keras' own cuDNN kernels.

The kernels are ``keras.src.backend.tensorflow.rnn.lstm/gru``, the functions
``keras.layers.LSTM/GRU`` call, fed with our weights (same names, shapes and gate order), so the
numerics are Keras'. :func:`cudnn_refusal` decides, as Keras does, plus what cuDNN cannot
represent:

* a GPU is visible to TensorFlow, and the scan mode is the default ``"auto"``: exports trace
  with ``"tensorarray"`` (or ``"tflite"``), so an exported graph never holds a ``CudnnRNN`` op
  and a SavedModel made on a GPU machine serves on a CPU-only server;
* LSTM with a forget gate and no peephole, layer norm or projection; GRU with ``reset_after``;
  ``tanh`` activation and ``sigmoid`` recurrent activation; ``use_bias``; no recurrent dropout
  while training (input dropout is applied before, as on the portable path);
* a mask, if any, right-padded with no fully masked row and no ``go_backwards``: that is checked
  when the graph runs, and any other mask takes the portable loop (Keras asserts and fails on
  a fully masked row); with ``return_sequences`` a mask also needs ``zero_output_for_mask``,
  since cuDNN emits zeros at padded steps.
"""

import importlib

import keras
import tensorflow as tf


def keras_rnn_module():
    """``keras.src.backend.tensorflow.rnn`` (its package exports a function of that name)."""
    return importlib.import_module("keras.src.backend.tensorflow.rnn")


def gpu_available():
    return bool(tf.config.list_logical_devices("GPU"))


def cudnn_refusal(cell, *, mode, recurrent_mask=None, gpu=None):
    """``None`` when ``cell`` may run on cuDNN in this call, else the reason it may not."""
    from kzoo.layers.gru import GRUCell
    from kzoo.layers.lstm import LSTMCell

    if mode != "auto":
        return f"scan mode {mode!r} (cuDNN only in the default 'auto' mode)"
    if type(cell) not in (LSTMCell, GRUCell):
        return f"{type(cell).__name__} has no cuDNN kernel"
    if isinstance(cell, LSTMCell) and (not cell.use_forget_gate or cell.peephole
                                       or cell.layer_norm or cell.proj_units):
        return "LSTM variant (no forget gate, peephole, layer norm or projection)"
    if isinstance(cell, GRUCell) and not cell.reset_after:
        return "GRU with reset_after=False"
    if cell.activation is not keras.activations.tanh \
            or cell.recurrent_activation is not keras.activations.sigmoid:
        return "activations other than tanh/sigmoid"
    if not cell.use_bias:
        return "use_bias=False"
    if recurrent_mask is not None:
        return "recurrent dropout while training"
    if tf.as_dtype(cell.compute_dtype) not in (tf.float16, tf.float32):
        return f"dtype {cell.compute_dtype}"
    if not (gpu_available() if gpu is None else gpu):
        return "no GPU"
    return None


def _mask_fits_cudnn(mask):
    """Right-padded (True then False) with at least one step in every row."""
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    right_padded = tf.reduce_all(tf.equal(tf.sequence_mask(lengths, tf.shape(mask)[1]), mask))
    return tf.logical_and(right_padded, tf.reduce_all(lengths > 0))


def run_cudnn(cell, sequences, states, mask, go_backwards, return_sequences, portable):
    """``(last_output, outputs, final_states)`` from Keras' cuDNN kernel (``outputs`` None
    without ``return_sequences``); ``portable()`` computes the same on the scan engine and runs
    instead for masks cuDNN cannot take."""
    from kzoo.layers.lstm import LSTMCell

    keras_rnn = keras_rnn_module()

    def flat(last, outputs, new_states):
        return [last, *new_states] + ([outputs] if return_sequences else [])

    def fast():
        args = dict(kernel=cell.kernel, recurrent_kernel=cell.recurrent_kernel, bias=cell.bias,
                    activation=cell.activation, recurrent_activation=cell.recurrent_activation,
                    return_sequences=True, go_backwards=go_backwards)
        if isinstance(cell, LSTMCell):
            last, outputs, new_states = keras_rnn.lstm(sequences, states[0], states[1], mask,
                                                       **args)
        else:
            last, outputs, new_states = keras_rnn.gru(sequences, states[0], mask, **args)
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
            result = tf.cond(_mask_fits_cudnn(mask), fast, slow)
    except NotImplementedError:      # Keras found no cuDNN kernel after all
        result = slow()
    n_states = len(states)
    outputs = result[1 + n_states] if return_sequences else None
    return result[0], outputs, list(result[1:1 + n_states])

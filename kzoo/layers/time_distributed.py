"""``TimeDistributed``: a layer applied to every time step, as one call on the folded batch.

``keras.layers.TimeDistributed`` loops over a dynamic time axis with ``vectorized_map``, whose
TensorList ops TFLite cannot lower (the file would need Flex ops). Folding time into the batch,
``(batch, time, ...) -> (batch * time, ...)``, runs the layer once and exports to builtin ops.
"""

import keras
import tensorflow as tf


def _fold(tensor):
    return tf.reshape(tensor, tf.concat([[-1], tf.shape(tensor)[2:]], axis=0))


@keras.saving.register_keras_serializable(package="kzoo")
class TimeDistributed(keras.layers.TimeDistributed):
    """``keras.layers.TimeDistributed`` that folds the time axis into the batch.

    The wrapped layer runs once on ``(batch * time, ...)`` and its outputs are unfolded to
    ``(batch, time, ...)``: the same result as Keras' step-by-step map for any layer that treats
    the rows of a batch independently (``Dense``, convolutions, a recurrent layer over an inner
    axis...), in one call, and exportable to builtin TFLite ops where the time axis is dynamic.
    A mask of shape ``(batch, time, ...)`` is folded the same way for a layer that takes one, and
    passed on to the next layer as Keras does.

    Args:
      layer: the ``keras.layers.Layer`` applied to every time step.
      **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
      inputs: ``(batch, time, ...)``.
      training: passed to the layer.
      mask: ``(batch, time)`` bool (or of more axes), passed on folded.

    Returns:
      The layer's output for every step, ``(batch, time, ...)``.

    Example:

    ```python
    import tensorflow as tf
    import keras
    import kzoo

    layer = kzoo.layers.TimeDistributed(keras.layers.Dense(3))
    outputs = layer(tf.zeros((2, 5, 4)))      # (2, 5, 3)
    ```
    """

    def call(self, inputs, training=None, mask=None):
        batch_and_time = tf.shape(inputs)[:2]
        kwargs = {}
        if self.layer._call_has_training_arg:
            kwargs["training"] = training
        if mask is not None and self.layer._call_has_mask_arg:
            kwargs["mask"] = _fold(mask)
        outputs = self.layer.call(_fold(inputs), **kwargs)

        def unfold(output):
            unfolded = tf.reshape(output, tf.concat([batch_and_time, tf.shape(output)[1:]], 0))
            unfolded.set_shape([inputs.shape[0], inputs.shape[1], *output.shape[1:]])
            return unfolded

        return tf.nest.map_structure(unfold, outputs)

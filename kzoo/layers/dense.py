"""A dense layer for sequences whose exported form is one op.

``keras.layers.Dense`` on a (batch, time, features) tensor traces to ``tf.tensordot``: the input
is reshaped to rank 2 around the matmul with shapes computed at run time, eleven TFLite ops
(SHAPE, GATHER, REDUCE_PROD, PACK, RESHAPE, ...). A broadcasting ``tf.matmul`` computes the same
``y = x W + b`` and converts to a single ``FULLY_CONNECTED`` (``keep_num_dims``, bias fused).
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kzoo")
class Dense(keras.layers.Dense):
    """``keras.layers.Dense`` (same arguments, weights and results): ``y = activation(x W + b)``
    over the last axis, written as one broadcasting matmul for inputs of rank 3 and more, so
    a TFLite file holds one ``FULLY_CONNECTED`` op for it.

    Args:
      units: positive int, the size of ``y``.
      activation: the activation; default None (linear).
      use_bias: whether to add ``b``; default True.
      kernel_initializer: initializer of ``W``; default ``"glorot_uniform"``.
      bias_initializer: initializer of ``b``; default ``"zeros"``.
      kernel_regularizer: regularizer of ``W``; default None.
      bias_regularizer: regularizer of ``b``; default None.
      activity_regularizer: regularizer of ``y``; default None.
      kernel_constraint: constraint on ``W``; default None.
      bias_constraint: constraint on ``b``; default None.
      lora_rank: rank of a LoRA update of ``W`` (Keras' ``enable_lora``); default None.
      lora_alpha: the LoRA scale; default None (``lora_rank``).
      quantization_config: Keras' quantization configuration; default None.
      **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
      inputs: ``(..., features)``.
      training: unused; Keras' usual argument.

    Returns:
      ``(..., units)``.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    y = kzoo.layers.Dense(3, activation="softmax")(tf.zeros((2, 5, 4)))   # (2, 5, 3)
    ```
    """

    def call(self, inputs, training=None):
        if isinstance(inputs, (tf.SparseTensor, tf.RaggedTensor)) or self.quantization_mode:
            return super().call(inputs, training=training)
        inputs = tf.convert_to_tensor(inputs)
        if inputs.shape.rank is None or inputs.shape.rank <= 2:
            return super().call(inputs, training=training)
        x = tf.matmul(inputs, tf.cast(self.kernel, inputs.dtype))
        if self.bias is not None:
            x = tf.nn.bias_add(x, tf.cast(self.bias, x.dtype))
        if self.activation is not None:
            x = self.activation(x)
        return x

    def quantize(self, mode=None, type_check=True, config=None):
        # Keras refuses to quantize subclasses of Dense, whose call may compute something else;
        # this one's call is Dense's own once the layer is quantized.
        return super().quantize(mode, type_check=False, config=config)

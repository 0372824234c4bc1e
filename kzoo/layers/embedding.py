"""Token embedding that refuses ids outside the vocabulary, where token ids enter a zoo model.

``keras.layers.Embedding`` turns a negative id into a row counted from the end (-1 is the last
row) and, on a GPU, an id past the end into a zero vector: both silently. On a CPU an id past the
end fails deep inside TensorFlow's gather. ``TokenEmbedding`` checks ``0 <= id < input_dim``
first and fails with a message that names the layer and the vocabulary size.
"""

import keras
import tensorflow as tf

from kzoo.layers.target import tracing_for_tflite


@keras.saving.register_keras_serializable(package="kzoo")
class TokenEmbedding(keras.layers.Embedding):
    """``keras.layers.Embedding`` whose ids must satisfy ``0 <= id < input_dim``.

    An id outside raises ``tf.errors.InvalidArgumentError`` ("... token ids must be in
    [0, input_dim) ...") in eager calls, ``fit``/``predict`` and exported SavedModels. In a TFLite
    file (which has no assert op) a negative id is mapped past the end, so LiteRT's GATHER fails
    ("gather index out of bounds") for every bad id instead of wrapping negatives around.

    Args:
      input_dim: positive int, the vocabulary size (ids are ``0 .. input_dim - 1``).
      output_dim: positive int, the size of each embedding vector.
      embeddings_initializer: initializer of the table; default ``"uniform"``.
      embeddings_regularizer: regularizer of the table; default None.
      embeddings_constraint: constraint on the table; default None.
      mask_zero: id 0 is padding, and the layer emits a mask; default False.
      weights: an initial table ``(input_dim, output_dim)``; default None.
      lora_rank: rank of a LoRA update of the table; default None.
      lora_alpha: the LoRA scale; default None (``lora_rank``).
      quantization_config: Keras' quantization configuration; default None.
      **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
      inputs: integer token ids of any shape (floats are cast to int32, as Keras).

    Returns:
      ``(*inputs.shape, output_dim)`` embeddings.

    Raises:
      TypeError: ids that are neither integer nor floating point.
      tf.errors.InvalidArgumentError: an id outside ``[0, input_dim)``.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    embedding = kzoo.layers.TokenEmbedding(10, 4, mask_zero=True)
    vectors = embedding(tf.constant([[5, 9, 0]]))       # (1, 3, 4); id 0 is masked
    ```
    """

    def call(self, inputs):
        ids = tf.convert_to_tensor(inputs)
        if not (ids.dtype.is_integer or ids.dtype.is_floating):
            raise TypeError(f"TokenEmbedding layer '{self.name}' expects integer token ids, got "
                            f"{ids.dtype.name}")
        if not ids.dtype.is_integer:
            ids = tf.cast(ids, "int32")   # as keras.layers.Embedding does
        if tracing_for_tflite():
            ids = tf.where(ids < 0, tf.constant(self.input_dim, ids.dtype), ids)
        else:
            message = (f"TokenEmbedding layer '{self.name}': token ids must be in "
                       f"[0, {self.input_dim}) (the vocabulary size; 0 is padding)")
            checks = [tf.debugging.assert_non_negative(ids, message=message),
                      tf.debugging.assert_less(ids, tf.constant(self.input_dim, ids.dtype),
                                               message=message)]
            with tf.control_dependencies(checks):
                ids = tf.identity(ids)
        return super().call(ids)

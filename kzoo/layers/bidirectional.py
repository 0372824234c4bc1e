"""Bidirectional wrapper: a forward and a backward kzoo layer, merged by concat/sum/mul/ave.

The backward layer reads time in reverse; masked steps carry its state through, so the backward
pass of each sequence starts at that sequence's own last valid step (not at the padding), and its
outputs are flipped back into input order before merging.
"""

import keras

from kzoo.layers.cell import check_choice
from kzoo.layers.scan import concurrent_loops

# How the two directions merge (None: a list of both).
MERGE_MODES = ("concat", "sum", "mul", "ave")


@keras.saving.register_keras_serializable(package="kzoo")
class Bidirectional(keras.layers.Bidirectional):
    """``keras.layers.Bidirectional`` for kzoo layers, with arguments checked up front.

    The backward layer reads each sequence from its own last valid step (masked steps carry its
    state), and its outputs are flipped back into input order before merging. The two
    directions run side by side.

    Args:
      layer: a recurrent layer with ``go_backwards`` (e.g. :class:`kzoo.layers.LSTM`), the
        forward direction; its copy with ``go_backwards`` flipped is the backward one.
      merge_mode: how the two outputs merge: ``"concat"`` (default), ``"sum"``, ``"mul"``,
        ``"ave"``, or None for a list of both.
      weights: initial weights to load, forward then backward; default None.
      backward_layer: the backward layer, when it should differ from a copy of ``layer``.
      **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
      sequences: ``(batch, time, features)``.
      initial_state: the forward states followed by the backward states; zeros by default.
      mask: ``(batch, time)`` bool, False at padded steps.
      training: apply dropout.

    Returns:
      The merged output; with the layer's ``return_state``, then the forward and backward
      final states.

    Raises:
      ValueError: an unknown ``merge_mode``, or a ``layer`` that is not a recurrent layer.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    layer = kzoo.layers.Bidirectional(kzoo.layers.GRU(3, return_sequences=True))
    outputs = layer(tf.zeros((2, 5, 4)), mask=tf.sequence_mask([5, 2], 5))   # (2, 5, 6)
    ```
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        check_choice("Bidirectional", "merge_mode", merge_mode, (*MERGE_MODES, None))
        if not isinstance(layer, keras.layers.Layer) or not hasattr(layer, "go_backwards"):
            raise ValueError("Bidirectional: `layer` must be a recurrent layer with "
                             f"`go_backwards` (e.g. kzoo.layers.LSTM), got {layer!r}")
        super().__init__(layer, merge_mode=merge_mode, weights=weights,
                         backward_layer=backward_layer, **kwargs)

    def call(self, sequences, initial_state=None, mask=None, training=None):
        # The two directions are independent loops that run side by side, one per core.
        with concurrent_loops(2):
            return super().call(sequences, initial_state=initial_state, mask=mask,
                                training=training)

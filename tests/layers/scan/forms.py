"""What the engine's tests share: a layer's outputs and gradients traced in a given context."""

import numpy as np
import tensorflow as tf


def traced(layer, inputs, mask, context):
    """``(outputs, gradients)`` of ``layer(inputs, mask=mask)`` and of the sum of squares of its
    first output, both from one ``tf.function`` traced inside ``context()``."""
    @tf.function
    def forward_backward(inputs):
        with context():
            with tf.GradientTape() as tape:
                result = layer(inputs, mask=mask)
                loss = tf.reduce_sum(tf.square(result[0]))
        return result, tape.gradient(loss, layer.trainable_weights)

    result, grads = forward_backward(tf.constant(inputs))
    return [np.asarray(r) for r in result], grads


def second_row_half_masked(time):
    """A (2, time) mask whose second row is right-padded after time // 2 + 1 steps."""
    mask = np.ones((2, time), bool)
    mask[1, time // 2 + 1:] = False
    return mask


def xla_compiled(graph):
    """Whether a traced graph calls a function XLA must compile."""
    return any(f.definition.attr["_XlaMustCompile"].b for f in graph._functions.values()
               if hasattr(f, "definition"))

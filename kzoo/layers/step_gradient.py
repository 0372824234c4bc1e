"""Hand-derived step gradients: what a cell hands the scan engine to run backpropagation itself.

TensorFlow's automatic gradient of a ``tf.while_loop`` that reads a precomputed input from a
``TensorArray`` accumulates a zero-filled copy of the whole ``(T, B, k·units)`` list and adds
lists on every step. For the standard cells the engine instead keeps the few tensors the backward
step needs and runs one reverse loop of the cell's derivatives (:mod:`kzoo.layers.scan.bptt`),
accumulating the weights' gradients as it goes, so that no whole-sequence gradient tensor is ever
held. Each cell writes its :class:`StepGradient` beside its own step (``kzoo/layers/lstm.py``
holds ``LSTMCell`` and ``LSTMStepGradient``).

A :class:`StepGradient` is a frozen dataclass: its fields are all the configuration its methods
read, so two equal ones compute the same thing (the engine's XLA functions are cached by it).
Weights reach the methods as arguments; the cell pairs them with the equations in an
:class:`EngineStep`.
"""

import dataclasses
from typing import ClassVar, NamedTuple, Optional

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class StepGradient:
    """A cell's step and its derivatives, for the engine's own backpropagation through time.

    Subclasses implement:

    * ``step(x_t, states, weights) -> (new_states, saved)``: the forward step on the projected
      input ``x_t`` (``new_states[0]`` is the output); ``saved`` are the tensors of this step the
      backward step reads.
    * ``backward(d_states, states, new_states, saved, kernel_t) -> (d_x_t, d_states_prev,
      d_recurrent)``: given the loss's gradient with respect to ``new_states``, the gradients with
      respect to the step's projected input and its previous states, and ``d_recurrent``, the
      gradient with respect to the recurrent matmul's output ``states[0] @ weights[0]`` (plus its
      bias). ``kernel_t`` is ``weights[0]`` transposed (once, before the loop: XLA runs a matmul
      with a transposed operand more slowly).
    * ``weight_gradients(h_prev, d_recurrent, weights)``: the gradients of ``weights`` from
      ``states[0]`` before a step and the step's ``d_recurrent``, or from stacks of both (the
      engine sums blocks of steps in one matmul).
    * optionally ``inference_form(weights)`` (see below).
    """

    # True when ``backward``'s ``d_recurrent`` is always its ``d_x_t`` (one buffer serves both).
    recurrent_gradient_is_input_gradient: ClassVar[bool] = True

    def inference_form(self, weights):
        """A cheaper equivalent of ``step`` for an XLA forward pass nobody differentiates.

        Returns:
          ``(input_scale, weights, step)``: run ``step`` with these ``weights`` on the projected
          inputs times ``input_scale`` (a vector, or None); or ``None`` to run ``step`` itself.
        """
        return None


class EngineStep(NamedTuple):
    """A cell's step as the engine runs and differentiates it itself.

    Attributes:
      gradient: the :class:`StepGradient` (the equations and their derivatives).
      weights: the tensors or variables the step reads, the recurrent kernel first.
      projection: ``[kernel]`` or ``[kernel, bias]`` when the cell's input projection is exactly
        ``x kernel + bias`` (the engine may then run and differentiate it inside its loops), else
        None.
    """

    gradient: StepGradient
    weights: list
    projection: Optional[list] = None


def sigmoid_grad(y, dy):
    """``dy * y * (1 - y)`` for ``y = sigmoid(x)``, in one kernel."""
    return tf.raw_ops.SigmoidGrad(y=y, dy=dy)


def tanh_grad(y, dy):
    """``dy * (1 - y²)`` for ``y = tanh(x)``, in one kernel."""
    return tf.raw_ops.TanhGrad(y=y, dy=dy)


def kernel_gradient(h_prev, d_recurrent):
    """``h_{t-1}ᵀ d_t`` summed over the batch rows (and the steps, for stacks of them)."""
    return tf.matmul(_rows(h_prev), _rows(d_recurrent), transpose_a=True)


def bias_gradient(d_output):
    """``d_t`` summed over the batch rows (and the steps, for stacks of them)."""
    return tf.reduce_sum(_rows(d_output), 0)


def _rows(x):
    """``x`` as a matrix of rows, its width static where it is known. (A (1, n) kernel gradient
    of unknown shape, added to the accumulated one, was taken for a bias add by TensorFlow's
    graph optimizer with oneDNN, whose kernel then refused the (1, n) "bias".)"""
    width = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]
    return tf.reshape(x, [-1, width])


def standard_activations(cell):
    """True when ``cell`` uses tanh (and sigmoid gates), the activations the cells derive."""
    recurrent = getattr(cell, "recurrent_activation", keras.activations.sigmoid)
    return (cell.activation is keras.activations.tanh
            and recurrent is keras.activations.sigmoid)

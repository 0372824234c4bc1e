"""Training-time samplers and the masked sequence loss of the seq2seq models (tfa.seq2seq's
``TrainingSampler``, ``ScheduledEmbeddingTrainingSampler``, ``sequence_loss``, ``SequenceLoss``).

A sampler decides, for every decoder step t of a teacher-forced batch, whether the decoder reads
the ground-truth token y_{t-1} (teacher forcing) or its own prediction at step t-1 (scheduled
sampling, Bengio et al. 2015). The decisions (and, for ``mode="sample"``, the Gumbel noise that
turns an argmax into a draw from softmax(logits)) are drawn for all steps at once *before* the
decoder loop, so the loop itself holds no random op.

``sequence_loss(labels, logits)`` is the token-level cross-entropy averaged over the non-pad
tokens of the whole batch (pad id 0): sum_{b,t: y_bt != 0} -log p(y_bt) / #{y_bt != 0}.
"""

import keras
import tensorflow as tf

from kzoo.layers.cell import check_choice
from kzoo.layers.text import PAD_ID

SAMPLING_MODES = ("argmax", "sample")


def _token_mask(labels, pad_id, dtype):
    return tf.cast(tf.not_equal(labels, pad_id), dtype)


def sequence_loss(labels, logits, weights=None, *, pad_id=PAD_ID, from_logits=True):
    """Cross-entropy of ``logits`` (B, T, V) against ``labels`` (B, T), averaged over the tokens
    that are not ``pad_id`` (and weighted by ``weights`` (B, T) if given): a scalar.

    A batch with no non-pad token gives 0, not NaN.
    """
    labels = tf.cast(labels, tf.int32)
    logits = tf.convert_to_tensor(logits)
    if logits.shape.rank != 3 or labels.shape.rank != 2:
        raise ValueError(f"sequence_loss: expects logits (batch, time, vocab) and labels "
                         f"(batch, time), got shapes {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    if from_logits:
        token_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    else:
        token_losses = keras.losses.sparse_categorical_crossentropy(labels, logits)
    mask = _token_mask(labels, pad_id, token_losses.dtype)
    if weights is not None:
        mask = mask * tf.cast(weights, token_losses.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(token_losses * mask), tf.reduce_sum(mask))


@keras.saving.register_keras_serializable(package="kzoo")
class SequenceLoss(keras.losses.Loss):
    """``sequence_loss`` as a Keras loss for ``compile``: the mean over non-pad tokens.

    It masks by the labels itself and reduces with "sum" over already normalized token losses,
    so a Keras mask carried by the predictions (which only multiplies under "sum") cannot count
    the padding twice. Under a ``tf.distribute`` strategy of N replicas the mean is divided by
    N, as Keras divides its own mean reductions: the replicas' gradients are summed.
    """

    def __init__(self, pad_id=PAD_ID, from_logits=True, name="sequence_loss", **kwargs):
        kwargs.setdefault("reduction", "sum")
        super().__init__(name=name, **kwargs)
        self.pad_id = int(pad_id)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        labels = tf.cast(y_true, tf.int32)
        if self.from_logits:
            token_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, y_pred)
        else:
            token_losses = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
        mask = _token_mask(labels, self.pad_id, token_losses.dtype)
        count = tf.maximum(tf.reduce_sum(mask), 1.0)
        if self.reduction == "sum":
            # (Keras scales only its mean reductions, and multiplies the loss it reports back.)
            count = count * tf.distribute.get_strategy().num_replicas_in_sync
        return token_losses * mask / count

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="kzoo")
class SequenceAccuracy(keras.metrics.Mean):
    """Token accuracy over the non-pad labels (argmax of the logits == label)."""

    def __init__(self, pad_id=PAD_ID, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_id = int(pad_id)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.cast(y_true, tf.int32)
        correct = tf.cast(tf.equal(tf.argmax(y_pred, -1, output_type=tf.int32), labels),
                          self.dtype)
        mask = _token_mask(labels, self.pad_id, self.dtype)
        if sample_weight is not None:
            mask = mask * tf.cast(sample_weight, self.dtype)
        return super().update_state(correct, sample_weight=mask)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@keras.saving.register_keras_serializable(package="kzoo")
class TeacherForcingSampler(keras.layers.Layer):
    """Teacher forcing: step t always reads the ground-truth y_{t-1} (tfa's ``TrainingSampler``)."""

    probability = None

    def plan(self, target_in_ids, vocab_size, training=None):
        """``None``: no step reads the model's own prediction."""
        return None


@keras.saving.register_keras_serializable(package="kzoo")
class ScheduledSampler(keras.layers.Layer):
    """Scheduled sampling: with probability ``probability`` step t > 0 reads the model's own
    prediction at step t-1 instead of y_{t-1} (tfa's ``ScheduledEmbeddingTrainingSampler``).

    ``mode="argmax"`` feeds the most likely token, ``"sample"`` a token drawn from
    softmax(logits) (argmax of logits + Gumbel noise). Only in training; at inference the decoder
    always reads its own prediction. ``probability`` is a non-trainable variable, so a schedule
    (a callback) can raise it during training: ``sampler.probability.assign(0.25)``.
    """

    def __init__(self, probability=0.25, mode="argmax", seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or \
                not 0.0 <= float(probability) <= 1.0:
            raise ValueError(f"ScheduledSampler: `probability` must be a float in [0, 1], got "
                             f"{probability!r}")
        self.initial_probability = float(probability)
        self.mode = check_choice("ScheduledSampler", "mode", mode, SAMPLING_MODES)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.probability = self.add_weight(
            name="probability", shape=(), trainable=False,
            initializer=keras.initializers.Constant(self.initial_probability))

    def plan(self, target_in_ids, vocab_size, training=None):
        """``(use_prediction (B, T) bool, gumbel_noise (B, T, V) or None)`` for one batch, or
        ``None`` outside training. Step 0 always reads the start token."""
        if not training:
            return None
        shape = tf.shape(target_in_ids)
        draws = keras.random.uniform(shape, seed=self.seed_generator)
        use_prediction = tf.logical_and(draws < tf.cast(self.probability, draws.dtype),
                                        tf.range(shape[1])[None, :] > 0)
        noise = None
        if self.mode == "sample":
            uniform = keras.random.uniform(tf.concat([shape, [vocab_size]], 0),
                                           minval=1e-20, maxval=1.0, seed=self.seed_generator)
            noise = -tf.math.log(-tf.math.log(uniform))
        return use_prediction, noise

    def get_config(self):
        config = {"probability": self.initial_probability, "mode": self.mode, "seed": self.seed}
        return {**super().get_config(), **config}

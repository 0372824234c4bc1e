"""Training-time samplers and the masked sequence loss of the seq2seq models (tfa.seq2seq's
``TrainingSampler``, ``ScheduledEmbeddingTrainingSampler``, ``ScheduledOutputTrainingSampler``,
``sequence_loss``, ``SequenceLoss``).

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
# What a Seq2Seq's scheduled sampling may feed: a token (the argmax or a draw), or the output
# itself as the expected embedding (ScheduledOutputSampler).
SCHEDULED_SAMPLING_MODES = (*SAMPLING_MODES, "output")


def _token_mask(labels, pad_id, dtype):
    return tf.cast(tf.not_equal(labels, pad_id), dtype)


def sequence_loss(labels, logits, weights=None, *, pad_id=PAD_ID, from_logits=True):
    """Token-level cross-entropy averaged over the tokens that are not padding.

    With m_bt = [y_bt != pad_id] and w_bt the ``weights`` (1 without):

        sequence_loss = Σ_{b,t} w_bt m_bt (-log p_bt(y_bt)) / Σ_{b,t} w_bt m_bt,
        p_bt = softmax(logits_bt) (``from_logits``) or ``logits_bt`` itself (probabilities)

    a mean over the non-pad tokens of the whole batch (tfa's ``sequence_loss`` with
    ``average_across_timesteps`` and ``average_across_batch``). A batch without a non-pad token
    (or of zero total weight) gives 0, not NaN.

    Args:
        labels: integer token ids (batch, time).
        logits: float (batch, time, vocab): logits, or probabilities with
            ``from_logits=False``.
        weights: None, or float (batch, time) weights of the tokens.
        pad_id: int, the padding id left out of the mean (default 0).
        from_logits: bool, whether ``logits`` are logits (default) or probabilities.

    Returns:
        A float scalar tensor.

    Raises:
        ValueError: if ``logits`` is not of rank 3 or ``labels`` not of rank 2.

    Example:

    ```python
    import numpy as np
    from kzoo.models import sequence_loss

    labels = np.array([[4, 5, 2, 0]])              # the last token is padding
    logits = np.zeros((1, 4, 6), "float32")        # uniform over 6 ids
    print(float(sequence_loss(labels, logits)))    # 1.7917... = log(6), over 3 tokens
    ```
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
    """:func:`sequence_loss` as a Keras loss, for ``compile``: the mean over non-pad tokens.

    Each token's term is -log p_bt(y_bt) / N, N the number of non-pad tokens of the batch (at
    least 1), and the terms are summed (reduction "sum"): the loss is the mean over the
    non-pad tokens, a ``sample_weight`` multiplying each token's term (N stays the token
    count). It masks by the labels itself and sums already normalized terms, so a Keras mask
    carried by the predictions (which only multiplies under "sum") cannot count the padding
    twice. Under a ``tf.distribute`` strategy of R replicas each term is divided by R too, as
    Keras divides its own mean reductions: the replicas' gradients are summed.

    Args:
        pad_id: int, the padding id left out of the mean (default 0).
        from_logits: bool, whether the predictions are logits (default) or probabilities.
        name: str, the loss' name (default "sequence_loss").
        **kwargs: ``keras.losses.Loss`` arguments (``dtype``; ``reduction``, default "sum":
            another reduction is not the mean over tokens).

    Call arguments:
        y_true: integer token ids (batch, time).
        y_pred: logits (or probabilities) (batch, time, vocab).
        sample_weight: None, or weights broadcastable to (batch, time).

    Returns:
        (from a call) the scalar loss.

    Example:

    ```python
    import numpy as np
    import kzoo

    loss = kzoo.models.SequenceLoss()
    labels = np.array([[4, 5, 2, 0]])              # the last token is padding
    logits = np.zeros((1, 4, 6), "float32")        # uniform over 6 ids
    print(float(loss(labels, logits)))             # 1.7917... = log(6), over 3 tokens
    # model.compile("adam", loss=loss, metrics=[kzoo.models.SequenceAccuracy()])
    ```
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
    """Token accuracy over the non-pad labels: the fraction of them where argmax(y_pred) = y_true.

    A running mean over batches (``keras.metrics.Mean``) of [argmax_v y_pred_btv = y_bt],
    each token weighted by [y_bt != pad_id] times its ``sample_weight``. Under teacher forcing
    every step reads the true previous token, so this is per-token accuracy, not the exact match
    of whole decoded sequences.

    Args:
        pad_id: int, the padding id left out (default 0).
        name: str, the metric's name (default "token_accuracy").
        **kwargs: ``keras.metrics.Mean`` arguments (``dtype``).

    Call arguments:
        y_true: integer token ids (batch, time) (to ``update_state``).
        y_pred: logits or probabilities (batch, time, vocab).
        sample_weight: None, or weights broadcastable to (batch, time).

    Example:

    ```python
    import numpy as np
    import kzoo

    metric = kzoo.models.SequenceAccuracy()
    labels = np.array([[4, 5, 2, 0]])              # the last token is padding
    logits = np.eye(6)[[4, 1, 2, 3]][None]         # predicts 4, 1, 2 (and 3 on the padding)
    metric.update_state(labels, logits)
    print(float(metric.result()))                  # 0.6666... : 2 of the 3 non-pad tokens
    ```
    """

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
    """Teacher forcing: step t always reads the ground-truth y_{t-1} (tfa's ``TrainingSampler``).

    The sampler of a :class:`Seq2Seq` built with ``scheduled_sampling=0`` (the default): its
    :meth:`plan` is None, so no step reads the model's own prediction.

    Args:
        *args: ``keras.layers.Layer`` arguments (none are needed).
        **kwargs: ``keras.layers.Layer`` arguments (``name``...).

    Example:

    ```python
    import numpy as np
    import kzoo

    sampler = kzoo.models.TeacherForcingSampler()
    print(sampler.plan(np.array([[1, 4, 5]]), vocab_size=8, training=True))   # None
    ```
    """

    probability = None

    def plan(self, target_in_ids, vocab_size, training=None):
        """No step reads the model's own prediction.

        Args:
            target_in_ids: the decoder inputs (batch, time) (unused).
            vocab_size: the target vocabulary size (unused).
            training: whether the model is training (unused).

        Returns:
            None.
        """
        return None


@keras.saving.register_keras_serializable(package="kzoo")
class ScheduledSampler(keras.layers.Layer):
    """Scheduled sampling (Bengio et al. 2015): step t > 0 may read the model's own prediction.

    While training, with probability ``probability`` (drawn for every row and step), decoder
    step t > 0 reads the model's own prediction at step t-1 instead of the ground-truth
    y_{t-1} (tfa's ``ScheduledEmbeddingTrainingSampler``). ``mode="argmax"`` feeds the most
    likely token, ``"sample"`` a token drawn from softmax(logits) (the argmax of the logits
    plus Gumbel noise, -log(-log u), u ~ U(0, 1)). The draws are made for all steps at once,
    before the decoder loop. At inference the decoder always reads its own prediction.
    ``probability`` is a non-trainable variable, so a schedule (a callback) can raise it during
    training: ``sampler.probability.assign(0.25)``. A :class:`Seq2Seq` built with
    ``scheduled_sampling=p`` has one.

    Args:
        probability: float in [0, 1], the initial probability of reading the prediction
            (default 0.25).
        mode: "argmax" (default) or "sample".
        seed: None or an int, the seed of the draws.
        **kwargs: ``keras.layers.Layer`` arguments (``name``...).

    Raises:
        ValueError: if ``probability`` is not in [0, 1] or ``mode`` is not one of
            "argmax", "sample".

    Example:

    ```python
    import numpy as np
    import kzoo

    sampler = kzoo.models.ScheduledSampler(probability=0.5, mode="sample", seed=0)
    target_in_ids = np.array([[1, 4, 5, 6], [1, 7, 0, 0]])
    use_prediction, noise = sampler.plan(target_in_ids, vocab_size=8, training=True)
    print(use_prediction.shape, noise.shape)        # (2, 4) (2, 4, 8)
    print(use_prediction.numpy()[:, 0])             # [False False]: step 0 reads the start
    sampler.probability.assign(0.75)                # a schedule raises it
    print(sampler.plan(target_in_ids, vocab_size=8))   # None: not training
    ```
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
        """Draws which steps of one batch read the prediction, before the decoder loop.

        Args:
            target_in_ids: the decoder inputs (batch, time), for their shape.
            vocab_size: the target vocabulary size (the width of the Gumbel noise).
            training: whether the model is training; otherwise nothing is drawn.

        Returns:
            None outside training; else ``(use_prediction, gumbel_noise)``:
            ``use_prediction`` bool (batch, time), False at step 0 (which reads the start
            token), and for ``mode="sample"`` the noise (batch, time, vocab) added to the logits
            before the argmax (None for ``"argmax"``).
        """
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


@keras.saving.register_keras_serializable(package="kzoo")
class ScheduledOutputSampler(ScheduledSampler):
    """Scheduled sampling of the outputs: step t > 0 may read the model's own output at t-1.

    While training, with probability ``probability`` (drawn for every row and step), decoder
    step t > 0 reads, instead of the embedding e(y_{t-1}) of the ground-truth token, the
    expected embedding of the model's own output at step t-1,

        x_t = softmax(logits_{t-1}) E          (E the target embedding matrix, V x d)

    the output mapped back into the input space and differentiable, so the gradient flows
    through the fed-back output as in tfa's ``ScheduledOutputTrainingSampler`` (which feeds
    the cell output itself; a kzoo decoder's output and input widths differ, the expected
    embedding is the output in the input's units). At inference the decoder reads its own
    prediction, as with :class:`ScheduledSampler`; ``probability`` is a non-trainable variable
    a schedule may raise. A :class:`Seq2Seq` built with ``scheduled_sampling=p`` and
    ``scheduled_sampling_mode="output"`` has one.

    Args:
        probability: float in [0, 1], the initial probability of reading the output
            (default 0.25).
        seed: None or an int, the seed of the draws.
        **kwargs: ``keras.layers.Layer`` arguments (``name``...).

    Raises:
        ValueError: if ``probability`` is not in [0, 1].

    Example:

    ```python
    import numpy as np
    import kzoo

    sampler = kzoo.models.ScheduledOutputSampler(probability=0.5, seed=0)
    use_output, noise = sampler.plan(np.array([[1, 4, 5, 6]]), vocab_size=8, training=True)
    print(use_output.shape, noise)                  # (1, 4) None
    model = kzoo.build("seq2seq_gru", units=4, source_vocab_size=9, target_vocab_size=9,
                       scheduled_sampling=0.5, scheduled_sampling_mode="output")
    print(type(model.sampler).__name__)             # ScheduledOutputSampler
    ```
    """

    def __init__(self, probability=0.25, seed=None, **kwargs):
        kwargs.pop("mode", None)  # (a config of ScheduledSampler's form)
        super().__init__(probability, mode="argmax", seed=seed, **kwargs)
        self.mode = "output"

    def next_inputs(self, logits, embeddings):
        """The expected embedding softmax(logits) E, (batch, d), of (batch, V) logits."""
        probabilities = tf.nn.softmax(logits)
        return tf.matmul(probabilities, tf.cast(embeddings, probabilities.dtype))

    def get_config(self):
        config = super().get_config()
        config.pop("mode")
        return config

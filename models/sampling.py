"""Training-time samplers and the masked sequence loss of the seq2seq models (tfa.seq2seq's
``TrainingSampler``, ``ScheduledEmbeddingTrainingSampler``, ``ScheduledOutputTrainingSampler``,
``sequence_loss``, ``SequenceLoss``).

A sampler decides, for every decoder step t of a teacher-forced batch, whether the decoder reads
the ground-truth token y_{t-1} (teacher forcing) or its own prediction at step t-1 (scheduled
sampling, Bengio et al. 2015). The decisions (and, for ``mode="sample"``, the Gumbel noise that
turns an argmax into a draw from softmax(logits)) are drawn for all steps at once *before* the
decoder loop, so the loop itself holds no random op.

``sequence_loss(labels, logits)`` is by default the token-level cross-entropy averaged over the
non-pad tokens of the whole batch (pad id 0): sum_{b,t: y_bt != 0} -log p(y_bt) / #{y_bt != 0};
it has TF Addons' averages and sums over either axis too.
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


def _check_reductions(where, average_across_timesteps, average_across_batch, sum_over_timesteps,
                      sum_over_batch):
    """TF Addons' rules: per axis one of average/sum, and no average over one axis with a
    sum over the other (which to take first would change the result)."""
    pairs = (("average_across_timesteps", average_across_timesteps, "sum_over_timesteps",
              sum_over_timesteps, ""),
             ("average_across_batch", average_across_batch, "sum_over_batch", sum_over_batch,
              ""),
             ("average_across_batch", average_across_batch, "sum_over_timesteps",
              sum_over_timesteps, " because of ambiguous order"),
             ("sum_over_batch", sum_over_batch, "average_across_timesteps",
              average_across_timesteps, " because of ambiguous order"))
    for name_a, a, name_b, b, why in pairs:
        if a and b:
            raise ValueError(f"{where}: `{name_a}` and `{name_b}` cannot both be True{why}")


def sequence_loss(labels, logits, weights=None, *, pad_id=PAD_ID, from_logits=True,
                  average_across_timesteps=True, average_across_batch=True,
                  sum_over_timesteps=False, sum_over_batch=False, softmax_loss_function=None):
    """Weighted token-level cross-entropy of a batch of sequences (tfa's ``sequence_loss``).

    With ℓ_bt = -log p_bt(y_bt) the cross-entropy of token t of row b, m_bt = [y_bt != pad_id]
    and w_bt the ``weights`` (1 without), each token counts with the weight v_bt = w_bt m_bt:

        both averages (the default):  Σ_bt v_bt ℓ_bt / Σ_bt v_bt
        average_across_timesteps only:  (B,)  Σ_t v_bt ℓ_bt / Σ_t v_bt
        average_across_batch only:      (T,)  Σ_b v_bt ℓ_bt / Σ_b v_bt
        sum_over_timesteps and sum_over_batch:  Σ_bt v_bt ℓ_bt / #{v_bt != 0}
        sum_over_timesteps only:        (B,)  Σ_t v_bt ℓ_bt / #_t{v_bt != 0}
        sum_over_batch only:            (T,)  Σ_b v_bt ℓ_bt / #_b{v_bt != 0}
        none of them:                   (B, T)  v_bt ℓ_bt

    (TF Addons' definitions: its "sum over" divides by the count of tokens of non-zero weight;
    with 0/1 weights it equals the average.) A division by 0 (no token of non-zero weight)
    gives 0, not NaN. The default is the mean over the non-pad tokens of the whole batch.
    Unlike TF Addons' ``sequence_loss(logits, targets, weights)``, the labels come first, as in
    every Keras loss; ``pad_id=None`` masks nothing, as TF Addons.

    Args:
        labels: integer token ids (batch, time), or one-hot (or soft) labels
            (batch, time, vocab); a one-hot row's token is its argmax.
        logits: float (batch, time, vocab): logits, or probabilities with
            ``from_logits=False``.
        weights: None, or float (batch, time) weights of the tokens.
        pad_id: int, the padding id left out (default 0), or None to mask nothing.
        from_logits: bool, whether ``logits`` are logits (default) or probabilities.
        average_across_timesteps: bool, average over time (default True).
        average_across_batch: bool, average over the batch (default True).
        sum_over_timesteps: bool, sum over time, divided by the tokens of non-zero weight.
        sum_over_batch: bool, sum over the batch, divided by the tokens of non-zero weight.
        softmax_loss_function: None, or ``f(labels=..., logits=...)`` giving the loss of each
            token from the flattened (batch * time,) labels and (batch * time, vocab) logits,
            instead of the softmax cross-entropy (e.g. a sampled softmax).

    Returns:
        A float32 tensor of rank 0, 1 or 2, as above.

    Raises:
        ValueError: if ``logits`` is not of rank 3, ``labels`` not of rank 2 or 3,
            ``weights`` not of rank 2, or an average and a sum over the same axis (or an
            average over one axis and a sum over the other, whose order is ambiguous) are
            both asked.

    Example:

    ```python
    import numpy as np
    from kzoo.models import sequence_loss

    labels = np.array([[4, 5, 2, 0]])              # the last token is padding
    logits = np.zeros((1, 4, 6), "float32")        # uniform over 6 ids
    print(float(sequence_loss(labels, logits)))    # 1.7917... = log(6), over 3 tokens
    print(sequence_loss(labels, logits, average_across_timesteps=False,
                        average_across_batch=False).numpy())   # [[1.79 1.79 1.79 0.  ]]
    ```
    """
    where = "sequence_loss"
    _check_reductions(where, average_across_timesteps, average_across_batch,
                      sum_over_timesteps, sum_over_batch)
    logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
    labels = tf.convert_to_tensor(labels)
    if logits.shape.rank != 3 or labels.shape.rank not in (2, 3):
        raise ValueError(f"{where}: expects logits (batch, time, vocab) and labels (batch, "
                         f"time) or one-hot (batch, time, vocab), got shapes "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    one_hot = labels.shape.rank == 3
    ids = tf.argmax(labels, -1, output_type=tf.int32) if one_hot else tf.cast(labels, tf.int32)
    if softmax_loss_function is not None:
        vocab = tf.shape(logits)[2]
        token_losses = tf.reshape(
            softmax_loss_function(labels=tf.reshape(ids, [-1]),
                                  logits=tf.reshape(logits, [-1, vocab])), tf.shape(ids))
    elif one_hot:
        soft = tf.cast(labels, tf.float32)
        token_losses = tf.nn.softmax_cross_entropy_with_logits(soft, logits) if from_logits \
            else keras.losses.categorical_crossentropy(soft, logits)
    elif from_logits:
        token_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(ids, logits)
    else:
        token_losses = keras.losses.sparse_categorical_crossentropy(ids, logits)
    token_losses = tf.cast(token_losses, tf.float32)
    mask = tf.ones_like(token_losses) if pad_id is None else \
        _token_mask(ids, pad_id, tf.float32)
    if weights is not None:
        weights = tf.cast(weights, tf.float32)
        if weights.shape.rank != 2:
            raise ValueError(f"{where}: `weights` must be (batch, time), got shape "
                             f"{tuple(weights.shape)}")
        mask = mask * weights
    weighted = token_losses * mask
    if average_across_timesteps and average_across_batch:
        return tf.math.divide_no_nan(tf.reduce_sum(weighted), tf.reduce_sum(mask))
    if sum_over_timesteps and sum_over_batch:
        return tf.math.divide_no_nan(tf.reduce_sum(weighted), _nonzero(mask))
    if average_across_timesteps or average_across_batch:
        axis = 0 if average_across_batch else 1
        return tf.math.divide_no_nan(tf.reduce_sum(weighted, axis), tf.reduce_sum(mask, axis))
    if sum_over_timesteps or sum_over_batch:
        axis = 0 if sum_over_batch else 1
        return tf.math.divide_no_nan(tf.reduce_sum(weighted, axis), _nonzero(mask, axis))
    return weighted


def _nonzero(x, axis=None):
    return tf.reduce_sum(tf.cast(tf.not_equal(x, 0.0), tf.float32), axis)


@keras.saving.register_keras_serializable(package="kzoo")
class SequenceLoss(keras.losses.Loss):
    """:func:`sequence_loss` as a Keras loss, for ``compile`` (tfa's ``SequenceLoss``).

    ``SequenceLoss(...)(y_true, y_pred, sample_weight)`` is exactly
    ``sequence_loss(y_true, y_pred, sample_weight, ...)`` with the same options: by default the
    mean over the non-pad tokens, ``sample_weight`` weighting each token in the numerator and
    the denominator alike. It masks by the labels itself, so a Keras mask carried by the
    predictions cannot count the padding twice (it is not used). Under a ``tf.distribute``
    strategy of R replicas a scalar loss is divided by R too, as Keras divides its own mean
    reductions: the replicas' gradients are summed. TF Addons' class defaults to
    ``sum_over_timesteps=sum_over_batch=True`` (divide by the count of tokens of non-zero
    weight), this one to the averages of its function: the same with 0/1 weights.

    Args:
        pad_id: int, the padding id left out (default 0), or None.
        from_logits: bool, whether the predictions are logits (default) or probabilities.
        average_across_timesteps: bool (default True), see :func:`sequence_loss`.
        average_across_batch: bool (default True).
        sum_over_timesteps: bool (default False).
        sum_over_batch: bool (default False).
        softmax_loss_function: None, or ``f(labels=..., logits=...)``, see
            :func:`sequence_loss` (a registered Keras object to save the loss with a model).
        name: str, the loss' name (default "sequence_loss").
        **kwargs: ``keras.losses.Loss`` arguments (``dtype``; ``reduction``, default "sum",
            which is not used: the options above reduce).

    Call arguments:
        y_true: integer token ids (batch, time), or one-hot labels (batch, time, vocab).
        y_pred: logits (or probabilities) (batch, time, vocab).
        sample_weight: None, or weights (batch, time).

    Returns:
        (from a call) the loss, of rank 0, 1 or 2 as :func:`sequence_loss`'s.

    Raises:
        ValueError: for the combinations of options :func:`sequence_loss` refuses.

    Example:

    ```python
    import numpy as np
    import kzoo

    loss = kzoo.models.SequenceLoss()
    labels = np.array([[4, 5, 2, 0]])              # the last token is padding
    logits = np.zeros((1, 4, 6), "float32")        # uniform over 6 ids
    print(float(loss(labels, logits)))             # 1.7917... = log(6), over 3 tokens
    print(float(loss(labels, logits, sample_weight=np.array([[1., 1., 0., 0.]]))))  # the same
    # model.compile("adam", loss=loss, metrics=[kzoo.models.SequenceAccuracy()])
    ```
    """

    def __init__(self, pad_id=PAD_ID, from_logits=True, average_across_timesteps=True,
                 average_across_batch=True, sum_over_timesteps=False, sum_over_batch=False,
                 softmax_loss_function=None, name="sequence_loss", **kwargs):
        kwargs.setdefault("reduction", "sum")
        super().__init__(name=name, **kwargs)
        _check_reductions("SequenceLoss", average_across_timesteps, average_across_batch,
                          sum_over_timesteps, sum_over_batch)
        self.pad_id = None if pad_id is None else int(pad_id)
        self.from_logits = bool(from_logits)
        self.average_across_timesteps = bool(average_across_timesteps)
        self.average_across_batch = bool(average_across_batch)
        self.sum_over_timesteps = bool(sum_over_timesteps)
        self.sum_over_batch = bool(sum_over_batch)
        self.softmax_loss_function = softmax_loss_function

    def __call__(self, y_true, y_pred, sample_weight=None):
        # The whole reduction is sequence_loss's (Keras' would weight the terms but not the
        # count they are divided by).
        loss = self.call(y_true, y_pred, sample_weight)
        if loss.shape.rank == 0:
            loss = loss / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype)
        return loss

    def call(self, y_true, y_pred, sample_weight=None):
        return sequence_loss(
            y_true, y_pred, sample_weight, pad_id=self.pad_id, from_logits=self.from_logits,
            average_across_timesteps=self.average_across_timesteps,
            average_across_batch=self.average_across_batch,
            sum_over_timesteps=self.sum_over_timesteps, sum_over_batch=self.sum_over_batch,
            softmax_loss_function=self.softmax_loss_function)

    def get_config(self):
        function = self.softmax_loss_function
        return {**super().get_config(), "pad_id": self.pad_id, "from_logits": self.from_logits,
                "average_across_timesteps": self.average_across_timesteps,
                "average_across_batch": self.average_across_batch,
                "sum_over_timesteps": self.sum_over_timesteps,
                "sum_over_batch": self.sum_over_batch,
                "softmax_loss_function": None if function is None else
                keras.saving.serialize_keras_object(function)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("softmax_loss_function") is not None:
            config["softmax_loss_function"] = keras.saving.deserialize_keras_object(
                config["softmax_loss_function"])
        return cls(**config)


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

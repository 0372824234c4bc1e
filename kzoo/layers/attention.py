"""Attention of a decoder state s over encoder states h_1..h_Tv.

    score_j = score(s, h_j),   α = softmax(score) over the unmasked keys,   context = Σ_j α_j h_j

* ``BahdanauAttention`` (additive):  score_j = vᵀ tanh(W₁ s + W₂ h_j)
* ``LuongAttention`` (multiplicative): dot sᵀ h_j, general sᵀ W h_j, concat vᵀ tanh(W [s; h_j])
* ``BahdanauMonotonicAttention`` / ``LuongMonotonicAttention`` (Raffel et al. 2017): the same
  scores, but the weights are the expected monotonic alignment computed from the previous one.

Every layer is called as ``context, weights = layer(query, values, mask=None)`` with
``query`` (B, d_q) for one decoder step or (B, Tq, d_q) for all steps at once (teacher forcing),
``values`` (B, Tv, d_v) and ``mask`` (B, Tv) over the values (Keras' propagated mask of
``values``, e.g. from ``Embedding(mask_zero=True)``, is used too: both are combined). It
returns ``context`` (B, d_v) / (B, Tq, d_v) and
``weights`` (B, Tv) / (B, Tq, Tv). Masked keys get exactly zero weight; a fully masked row gives
zero weights and a zero context.

The key-side projection (W₂ h_j, W h_j) depends only on the source sequence:
``keys = layer.project_keys(values)`` computes it once, and ``layer(query_t, values, keys=keys)``
reuses it at every decoder step.

``BahdanauAttention`` and ``LuongAttention`` take ``probability_fn``: ``"softmax"`` (the
default), ``"hardmax"`` (all weight on the best key, :func:`hardmax`) or a callable of
``(scores)`` or ``(scores, previous_alignment)`` as TensorFlow Addons' ``probability_fn``. The
functions :func:`monotonic_attention`, :func:`safe_cumprod` and :func:`hardmax` are TensorFlow
Addons' ones, under their names and signatures.
"""

import inspect
import math
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend import get_keras_mask

from kzoo.layers.cell import check_choice, check_positive_int, dense, in_compute_dtype
from kzoo.layers.scan import scan

LUONG_SCORES = ("dot", "general", "concat")
MONOTONIC_MODES = ("recursive", "parallel", "hard")
PROBABILITY_FNS = ("softmax", "hardmax")


class BaseAttention(keras.layers.Layer):
    """The contract every kzoo attention layer shares (see the module docstring).

    Subclasses create their weights in ``_build_weights(query_dim, values_dim)`` and define
    ``project_keys(values)`` and ``_score(query, keys) -> (B, Tq, Tv)`` for a rank-3 query.
    """

    def __init__(self, kernel_initializer="glorot_uniform", kernel_regularizer=None,
                 kernel_constraint=None, probability_fn="softmax", **kwargs):
        super().__init__(**kwargs)
        self.probability_fn = check_probability_fn(type(self).__name__, probability_fn)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.query_dim = None
        self.values_dim = None

    def _describe(self):
        return f"{type(self).__name__} layer '{self.name}'"

    def _add_kernel(self, name, shape, initializer=None):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer or self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    # -- shapes and validation ------------------------------------------------------------------
    def _check_query_shape(self, shape):
        shape = tuple(shape)
        if len(shape) not in (2, 3):
            raise ValueError(f"{self._describe()} expects `query` of shape (batch, features) or "
                             f"(batch, query_time, features), got shape {shape}")
        if shape[-1] is None:
            raise ValueError(f"{self._describe()} needs the last dimension of `query` to be "
                             f"known, got shape {shape}")
        if self.query_dim is not None and shape[-1] != self.query_dim:
            raise ValueError(f"{self._describe()} was built for `query` with last dimension "
                             f"{self.query_dim}, got shape {shape}")

    def _check_values_shape(self, shape):
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError(f"{self._describe()} expects `values` of shape "
                             f"(batch, value_time, features), got shape {shape}")
        if shape[-1] is None:
            raise ValueError(f"{self._describe()} needs the last dimension of `values` to be "
                             f"known, got shape {shape}")
        if self.values_dim is not None and shape[-1] != self.values_dim:
            raise ValueError(f"{self._describe()} was built for `values` with last dimension "
                             f"{self.values_dim}, got shape {shape}")

    def build(self, query_shape, values_shape):
        self._check_query_shape(query_shape)
        self._check_values_shape(values_shape)
        self._build_weights(int(query_shape[-1]), int(values_shape[-1]))
        self.query_dim = int(query_shape[-1])
        self.values_dim = int(values_shape[-1])
        self.built = True

    def _build_weights(self, query_dim, values_dim):
        pass

    def compute_output_shape(self, query_shape, values_shape):
        leading = tuple(query_shape[:-1])
        return leading + (values_shape[-1],), leading + (values_shape[1],)

    def compute_mask(self, query, previous_mask=None):
        # The outputs follow the query's time axis, so they carry the query's mask (the values'
        # mask is consumed here and must not leak onto the outputs).
        query_mask = get_keras_mask(query)
        if query_mask is None or len(query.shape) != 3:
            return None
        return query_mask, query_mask

    # -- the forward pass -----------------------------------------------------------------------
    def project_keys(self, values):
        """The key-side projection of ``values`` (B, Tv, d_v), reusable across decoder steps."""
        raise NotImplementedError

    def _score(self, query, keys):
        raise NotImplementedError

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"{self._describe()} is not built: call it once or call "
                             f"`build(query_shape, values_shape)` before `{what}`")

    def _values_mask(self, values, mask, values_mask):
        masks = [m for m in (mask, values_mask) if m is not None]
        if not masks:
            return None
        combined = None
        for m in masks:
            m = tf.convert_to_tensor(m)
            if m.shape.rank != 2:
                raise ValueError(f"{self._describe()} expects `mask` of shape (batch, value_time) "
                                 f"over the values, got shape {tuple(m.shape)}")
            if m.shape[1] is not None and values.shape[1] is not None \
                    and m.shape[1] != values.shape[1]:
                raise ValueError(f"{self._describe()}: `mask` shape {tuple(m.shape)} does not "
                                 f"match `values` shape {tuple(values.shape)}")
            m = tf.cast(m, tf.bool)
            combined = m if combined is None else tf.logical_and(combined, m)
        return combined

    def _prepare(self, query, values, mask, keys, values_mask):
        """Validated tensors: (query, values, keys, mask or None, query is rank 2, i.e. one
        step); a rank-2 query is left as it is (callers that need rank 3 expand it)."""
        query = tf.convert_to_tensor(query)
        values = tf.convert_to_tensor(values)
        self._check_query_shape(query.shape)
        self._check_values_shape(values.shape)
        for name, tensor in (("query", query), ("values", values)):
            if not tf.as_dtype(tensor.dtype).is_floating:
                raise TypeError(f"{self._describe()} expects floating-point `{name}`, got "
                                f"{tf.as_dtype(tensor.dtype).name}")
        query = tf.cast(query, self.compute_dtype)
        values = tf.cast(values, self.compute_dtype)
        single_step = query.shape.rank == 2
        if keys is None:
            keys = self.project_keys(values)
        else:
            keys = tf.cast(tf.convert_to_tensor(keys), self.compute_dtype)
            if keys.shape.rank != 3:
                raise ValueError(f"{self._describe()} expects `keys` of shape "
                                 f"(batch, value_time, key_features) from `project_keys`, got "
                                 f"shape {tuple(keys.shape)}")
        mask = self._values_mask(values, mask, values_mask)
        return query, values, keys, mask, single_step

    def _step_score(self, query, keys):
        """``_score`` of one decoder step: query (B, d_q) -> scores (B, Tv). Subclasses whose
        score has a cheaper rank-2 form override it (a decoding loop runs it at every step)."""
        return tf.squeeze(self._score(tf.expand_dims(query, 1), keys), 1)

    @property
    def uses_previous_alignment(self):
        """True when the weights depend on the previous step's alignment (a ``probability_fn``
        of ``(scores, previous_alignment)``, or monotonic attention): a decoder then passes it
        as ``previous_alignment``."""
        return takes_state(self.probability_fn)

    def _probabilities(self, scores, mask, previous_alignment):
        """The weights from ``scores`` by ``probability_fn``; masked keys get exactly 0."""
        if self.probability_fn == "softmax":
            return masked_softmax(scores, mask)
        if mask is not None and scores.shape.rank == 3:
            mask = tf.expand_dims(mask, 1)
        if mask is not None:
            scores = tf.where(mask, scores, tf.cast(large_negative(scores.dtype), scores.dtype))
        if self.probability_fn == "hardmax":
            weights = hardmax(scores)
        elif takes_state(self.probability_fn):
            if previous_alignment is None:
                previous_alignment = tf.zeros_like(scores)
            weights = self.probability_fn(
                scores, tf.cast(tf.convert_to_tensor(previous_alignment), scores.dtype))
        else:
            weights = self.probability_fn(scores)
        weights = tf.cast(weights, scores.dtype)
        if mask is not None:
            weights = tf.where(mask, weights, tf.zeros([], weights.dtype))
        return weights

    def call(self, query, values, mask=None, keys=None, previous_alignment=None, training=None,
             values_mask=None):
        query, values, keys, mask, single_step = self._prepare(query, values, mask, keys,
                                                               values_mask)
        if single_step:
            # One decoder step: scores and weights stay (B, Tv), no query axis to add and drop.
            weights = self._probabilities(self._step_score(query, keys), mask, previous_alignment)
            context = tf.squeeze(tf.matmul(tf.expand_dims(weights, 1), values), 1)
            return context, weights
        if self.uses_previous_alignment:
            raise ValueError(f"{self._describe()}: a `probability_fn` of (scores, "
                             f"previous_alignment) chains the steps, so it takes one query step "
                             f"(batch, features) at a time, got `query` of shape "
                             f"{tuple(query.shape)}")
        scores = self._score(query, keys)
        weights = self._probabilities(scores, mask, None)
        return self._finish(weights, values, single_step=False)   # one step returned above

    @staticmethod
    def _finish(weights, values, single_step):
        context = tf.matmul(weights, values)
        if single_step:
            return tf.squeeze(context, 1), tf.squeeze(weights, 1)
        return context, weights

    def get_config(self):
        s = keras.saving.serialize_keras_object
        config = {
            "kernel_initializer": s(self.kernel_initializer),
            "kernel_regularizer": s(self.kernel_regularizer),
            "kernel_constraint": s(self.kernel_constraint),
            "probability_fn": serialize_callable(self._describe(), "probability_fn",
                                                 self.probability_fn),
        }
        return {**super().get_config(), **config}


def serialize_callable(where, name, value):
    """``value`` as a config entry: strings and None as they are, a function through
    ``keras.saving.serialize_keras_object``.

    Raises:
      ValueError: a function that Keras cannot load back (a lambda, or a function not decorated
        with ``keras.saving.register_keras_serializable``).
    """
    if value is None or isinstance(value, str):
        return value
    try:
        with warnings.catch_warnings():   # Keras warns of a lambda; the error below says more
            warnings.simplefilter("ignore")
            config = keras.saving.serialize_keras_object(value)
            keras.saving.deserialize_keras_object(config)
    except (TypeError, ValueError, OSError) as error:
        raise ValueError(
            f"{where}: `{name}` {getattr(value, '__name__', value)!r} cannot be saved in a "
            f"config: decorate it with `@keras.saving.register_keras_serializable()` (lambdas "
            f"cannot be saved) [{type(error).__name__}: {str(error)[:120]}]") from None
    return config


def deserialize_callable(where, name, value):
    """The inverse of :func:`serialize_callable`, with one clear error when Keras cannot find
    the function."""
    if not isinstance(value, dict):
        return value
    try:
        return keras.saving.deserialize_keras_object(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: cannot load `{name}` {value.get('config')!r}: register it "
                         f"with `@keras.saving.register_keras_serializable()` and import it "
                         f"before loading [{str(error)[:120]}]") from None


def takes_state(function):
    """True for a callable with two or more required positional parameters (TensorFlow
    Addons' ``probability_fn(scores, state)``), False for ``fn(scores)`` and for strings."""
    if not callable(function):
        return False
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is p.empty]
    return len(required) >= 2


def check_probability_fn(where, probability_fn):
    """``"softmax"``, ``"hardmax"`` or a callable (a serialized one is loaded)."""
    probability_fn = deserialize_callable(where, "probability_fn", probability_fn)
    if isinstance(probability_fn, str):
        return check_choice(where, "probability_fn", probability_fn, PROBABILITY_FNS)
    if not callable(probability_fn):
        raise ValueError(f"{where}: `probability_fn` must be 'softmax', 'hardmax' or a callable "
                         f"of (scores) or (scores, previous_alignment), got {probability_fn!r}")
    return probability_fn


def hardmax(logits, name=None):
    """The one-hot encoding of the argmax of ``logits`` over the last axis (TensorFlow Addons'
    ``tfa.seq2seq.hardmax``); ties go to the first maximum.

    Args:
      logits: a tensor of any rank >= 1.
      name: an optional name scope.

    Returns:
      A tensor of the shape and dtype of ``logits``, 1 at the argmax and 0 elsewhere.

    Example:

    ```python
    from kzoo.layers.attention import hardmax

    print(hardmax([[1.0, 3.0, 2.0]]).numpy())        # [[0. 1. 0.]]
    ```
    """
    with tf.name_scope(name or "hardmax"):
        logits = tf.convert_to_tensor(logits)
        return tf.one_hot(tf.argmax(logits, -1), tf.shape(logits)[-1], dtype=logits.dtype)


def large_negative(dtype):
    """The score given to masked keys: finite, not -inf, so a fully masked row does not produce
    NaN (-inf - -inf) in the softmax; and not near the dtype's max either: LiteRT's softmax
    turns -0.7 * float32 max into NaN."""
    return -min(1e9, 0.5 * float(np.finfo(tf.as_dtype(dtype).as_numpy_dtype).max))


def masked_softmax(scores, mask):
    """softmax over the last axis of ``scores`` (B, Tq, Tv), or (B, Tv) for one query step,
    restricted to ``mask`` (B, Tv).

    Masked keys get a large negative score before the softmax (so they take no mass from the
    others) and are set to exactly 0 after it; a fully masked row, which the softmax makes
    uniform, becomes all zeros.
    """
    if mask is None:
        return tf.nn.softmax(scores, axis=-1)
    if scores.shape.rank == 3:
        mask = tf.expand_dims(mask, 1)
    scores = tf.where(mask, scores, tf.cast(large_negative(scores.dtype), scores.dtype))
    weights = tf.nn.softmax(scores, axis=-1)
    # A scalar zero, broadcast by the select: one node fewer than zeros_like.
    return tf.where(mask, weights, tf.zeros([], weights.dtype))


def additive_score(processed_query, keys, v):
    """Σ_u v_u tanh(q_u + k_u) for every (query step, key).

    (B, Tq, U), (B, Tv, U) -> (B, Tq, Tv).
    """
    # expand_dims, not [:, None]: TFLite's builtin STRIDED_SLICE has no new-axis form.
    hidden = tf.tanh(tf.expand_dims(processed_query, 2) + tf.expand_dims(keys, 1))
    return tf.reduce_sum(hidden * v, axis=-1)


def additive_step_score(processed_query, keys, v):
    """:func:`additive_score` of one query step: (B, U), (B, Tv, U) -> (B, Tv).

    A decoding loop runs it at every step, so it takes the cheaper layout: a rank-3 broadcast
    add instead of rank 4, and the sum over units weighted by v as one (B*Tv, U) @ (U, 1)
    matmul instead of a multiply and a reduction (on one CPU core, 128 rows, 6 keys, 64 units,
    with the rank-2 softmax of ``BaseAttention.call``: the attention step 89 -> 70 us)."""
    hidden = tf.tanh(tf.expand_dims(processed_query, 1) + keys)
    units = hidden.shape[-1] if hidden.shape[-1] is not None else tf.shape(hidden)[-1]
    scores = tf.matmul(tf.reshape(hidden, [-1, units]), tf.reshape(v, [-1, 1]))
    return tf.reshape(scores, tf.shape(keys)[:2])


@keras.saving.register_keras_serializable(package="kzoo")
class BahdanauAttention(BaseAttention):
    """Additive attention (Bahdanau et al. 2015): score_j = vᵀ tanh(W₁ s + W₂ h_j).

    With ``normalize=True`` it is the weight-normalized form of TensorFlow Addons:
    score_j = (g v / ||v||)ᵀ tanh(W₁ s + W₂ h_j + b), with a scalar ``g`` (initialized to
    sqrt(1/units)) and a bias ``b`` (zeros).

    Weights: ``query_kernel`` W₁ (d_q, units), ``key_kernel`` W₂ (d_v, units), ``v`` (units,),
    and with ``normalize`` ``g`` () and ``bias`` b (units,). ``project_keys(values)`` = W₂ h.

    Args:
      units: positive int, the size of tanh(W₁ s + W₂ h_j).
      normalize: use the weight-normalized score (``g`` and ``b``); default False.
      probability_fn: how scores become weights: ``"softmax"`` (default), ``"hardmax"``
        (:func:`hardmax`: all weight on the best key) or a callable of ``(scores)`` or
        ``(scores, previous_alignment)`` (scores (B, Tv), masked keys already at a large
        negative value; the previous step's alignment, zeros at the first step). A callable is
        saved in the config only when registered with
        ``keras.saving.register_keras_serializable`` (``get_config`` raises otherwise).
      **kwargs: ``kernel_initializer`` (default ``"glorot_uniform"``), ``kernel_regularizer``,
        ``kernel_constraint`` (of W₁, W₂ and v), and ``keras.layers.Layer`` arguments.

    Call arguments:
      query: ``(batch, d_q)`` for one decoder step, or ``(batch, Tq, d_q)`` for all steps.
      values: ``(batch, Tv, d_v)``, the encoder states h_j.
      mask: ``(batch, Tv)`` bool, False at padded keys (combined with ``values``' Keras mask).
      keys: ``project_keys(values)`` computed once per source sequence; computed when None.
      previous_alignment: ``(batch, Tv)``, the previous step's weights, passed to a
        ``probability_fn`` of ``(scores, previous_alignment)`` (one query step only).
      training: unused; Keras' usual argument.
      values_mask: the Keras mask of ``values``, passed by Keras itself.

    Returns:
      ``(context, weights)``: ``(batch, d_v)`` and ``(batch, Tv)`` for a rank-2 query,
      ``(batch, Tq, d_v)`` and ``(batch, Tq, Tv)`` for a rank-3 one.

    Raises:
      ValueError: a ``units`` that is not a positive int, an unknown ``probability_fn``, or
        inputs of the wrong rank.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    attention = kzoo.layers.BahdanauAttention(4)
    values = tf.random.normal((2, 5, 3))
    context, weights = attention(tf.zeros((2, 6)), values,
                                 mask=tf.sequence_mask([5, 2], 5))   # (2, 3), (2, 5)
    ```
    """

    def __init__(self, units, normalize=False, probability_fn="softmax", **kwargs):
        super().__init__(probability_fn=probability_fn, **kwargs)
        self.units = check_positive_int(type(self).__name__, "units", units)
        self.normalize = bool(normalize)

    def _build_weights(self, query_dim, values_dim):
        self.query_kernel = self._add_kernel("query_kernel", (query_dim, self.units))
        self.key_kernel = self._add_kernel("key_kernel", (values_dim, self.units))
        self.v = self._add_kernel("v", (self.units,))
        if self.normalize:
            self.g = self.add_weight(
                name="g", shape=(),
                initializer=keras.initializers.Constant(math.sqrt(1.0 / self.units)))
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    @in_compute_dtype
    def project_keys(self, values):
        self._require_built("project_keys")
        return dense(tf.cast(values, self.compute_dtype), self.key_kernel)

    def _processed_query(self, query):
        """``(W₁ s [+ b], v or its normalized form)`` for a query of any rank."""
        processed_query = dense(query, self.query_kernel)
        v = self.v
        if self.normalize:
            processed_query = processed_query + self.bias
            v = self.g * v * tf.math.rsqrt(tf.reduce_sum(tf.square(v)))
        return processed_query, v

    def _score(self, query, keys):
        processed_query, v = self._processed_query(query)
        return additive_score(processed_query, keys, v)

    def _step_score(self, query, keys):
        processed_query, v = self._processed_query(query)
        return additive_step_score(processed_query, keys, v)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "normalize": self.normalize}


@keras.saving.register_keras_serializable(package="kzoo")
class LuongAttention(BaseAttention):
    """Multiplicative attention (Luong et al. 2015), ``score``:

    * ``"dot"``:     score_j = sᵀ h_j                  (needs d_q == d_v; no weights)
    * ``"general"``: score_j = sᵀ W h_j                (``kernel`` (d_v, d_q) holds Wᵀ)
    * ``"concat"``:  score_j = vᵀ tanh(W [s; h_j])     (W split into ``query_kernel`` (d_q, units)
      and ``key_kernel`` (d_v, units); ``v`` (units,); needs ``units``)

    ``scale=True`` multiplies the score by a learned scalar ``g`` (initialized to 1), as the
    ``scale`` option of TensorFlow Addons. ``project_keys(values)`` is h, W h or W_h h.

    Args:
      score: ``"dot"`` (default), ``"general"`` or ``"concat"``.
      units: positive int, the size of tanh(W [s; h_j]); only (and required) with ``"concat"``.
      scale: multiply the score by a learned scalar ``g``; default False.
      probability_fn: how scores become weights: ``"softmax"`` (default), ``"hardmax"``
        (:func:`hardmax`: all weight on the best key) or a callable of ``(scores)`` or
        ``(scores, previous_alignment)`` (scores (B, Tv), masked keys already at a large
        negative value; the previous step's alignment, zeros at the first step). A callable is
        saved in the config only when registered with
        ``keras.saving.register_keras_serializable`` (``get_config`` raises otherwise).
      **kwargs: ``kernel_initializer`` (default ``"glorot_uniform"``), ``kernel_regularizer``,
        ``kernel_constraint`` (of W and v), and ``keras.layers.Layer`` arguments.

    Call arguments:
      query: ``(batch, d_q)`` for one decoder step, or ``(batch, Tq, d_q)`` for all steps.
      values: ``(batch, Tv, d_v)``, the encoder states h_j.
      mask: ``(batch, Tv)`` bool, False at padded keys (combined with ``values``' Keras mask).
      keys: ``project_keys(values)`` computed once per source sequence; computed when None.
      previous_alignment: ``(batch, Tv)``, the previous step's weights, passed to a
        ``probability_fn`` of ``(scores, previous_alignment)`` (one query step only).
      training: unused; Keras' usual argument.
      values_mask: the Keras mask of ``values``, passed by Keras itself.

    Returns:
      ``(context, weights)``: ``(batch, d_v)`` and ``(batch, Tv)`` for a rank-2 query,
      ``(batch, Tq, d_v)`` and ``(batch, Tq, Tv)`` for a rank-3 one.

    Raises:
      ValueError: an unknown ``score``; ``units`` missing with ``"concat"`` or given with
        another score; ``"dot"`` with d_q != d_v.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    attention = kzoo.layers.LuongAttention("general")
    queries, values = tf.zeros((2, 3, 4)), tf.random.normal((2, 5, 6))
    context, weights = attention(queries, values)     # (2, 3, 6), (2, 3, 5)
    ```
    """

    def __init__(self, score="dot", units=None, scale=False, probability_fn="softmax", **kwargs):
        super().__init__(probability_fn=probability_fn, **kwargs)
        name = type(self).__name__
        self.score = check_choice(name, "score", score, LUONG_SCORES)
        if score == "concat":
            if units is None:
                raise ValueError(f"{name}: score='concat' needs `units`, the size of "
                                 f"tanh(W [s; h_j])")
            units = check_positive_int(name, "units", units)
        elif units is not None:
            raise ValueError(f"{name}: `units` is used only by score='concat', got units={units!r} "
                             f"with score={score!r} (the size of the {score} score is fixed by "
                             f"the query)")
        self.units = units
        self.scale = bool(scale)

    def _build_weights(self, query_dim, values_dim):
        if self.score == "dot" and query_dim != values_dim:
            raise ValueError(f"{self._describe()}: score='dot' needs `query` and `values` with "
                             f"the same last dimension, got {query_dim} and {values_dim} (use "
                             f"score='general' or 'concat' for different sizes)")
        if self.score == "general":
            self.kernel = self._add_kernel("kernel", (values_dim, query_dim))
        elif self.score == "concat":
            self.query_kernel = self._add_kernel("query_kernel", (query_dim, self.units))
            self.key_kernel = self._add_kernel("key_kernel", (values_dim, self.units))
            self.v = self._add_kernel("v", (self.units,))
        if self.scale:
            self.g = self.add_weight(name="g", shape=(), initializer="ones")

    @in_compute_dtype
    def project_keys(self, values):
        self._require_built("project_keys")
        values = tf.cast(values, self.compute_dtype)
        if self.score == "dot":
            return values
        if self.score == "general":
            return dense(values, self.kernel)
        return dense(values, self.key_kernel)

    def _score(self, query, keys):
        if self.score == "concat":
            scores = additive_score(dense(query, self.query_kernel), keys, self.v)
        else:
            scores = tf.matmul(query, keys, transpose_b=True)
        if self.scale:
            scores = self.g * scores
        return scores

    def _step_score(self, query, keys):
        if self.score != "concat":
            return super()._step_score(query, keys)
        scores = additive_step_score(dense(query, self.query_kernel), keys, self.v)
        return self.g * scores if self.scale else scores

    def get_config(self):
        config = {"score": self.score, "units": self.units, "scale": self.scale}
        return {**super().get_config(), **config}


# -- monotonic attention ------------------------------------------------------------------------
def exclusive_cumprod(x):
    """Π_{k<j} x_k along the last axis, for x in [0, 1], with exact zeros after the first 0.

    TFLite has no cumprod op, so it is exp(cumsum(log x)); the log-space form alone would leave
    ~1e-38 instead of 0 after a zero factor.
    """
    tiny = float(np.finfo(x.dtype.as_numpy_dtype).tiny)
    product = tf.exp(tf.cumsum(tf.math.log(tf.maximum(x, tiny)), axis=-1, exclusive=True))
    zeros_before = tf.cumsum(tf.cast(tf.equal(x, 0), x.dtype), axis=-1, exclusive=True)
    return tf.where(zeros_before > 0, tf.zeros_like(product), product)


def log_sigmoid(x):
    """log σ(x) = -(max(-x, 0) + log(1 + e^{-|x|})), exact for large |x| and builtin in TFLite
    (unlike tf.math.log_sigmoid, which lowers to softplus)."""
    return -(tf.nn.relu(-x) + tf.math.log(1 + tf.exp(-tf.abs(x))))


def monotonic_alignment(p_choose, log_not_chosen, previous_alignment, mode):
    """The expected monotonic alignment α_i (B, Tv) from p_choose p (B, Tv), log(1 - p) (B, Tv)
    and the previous alignment α_{i-1} (B, Tv).

    ``"parallel"`` (tfa's ``monotonic_attention(mode="parallel")``) is the closed form of the
    recurrence q_j = (1 - p_{j-1}) q_{j-1} + α_{i-1,j}, α_{i,j} = p_j q_j:
        c = cumprod_excl(1 - p),   α_i = p ⊙ c ⊙ cumsum(α_{i-1} / clip(c, 1e-10, 1))
    with c computed as exp(cumsum_excl(log(1 - p))) from the exact log(1 - p) = log σ(-e). As in
    tfa, the clip makes it approximate once c falls below 1e-10 where α_{i-1} still has mass.
    ``"hard"`` (p in {0, 1}): from the previously attended key on, attend to the first key with
    p = 1:  p' = p ⊙ cumsum(α_{i-1}),  α_i = p' ⊙ cumprod_excl(1 - p').
    ``"recursive"`` runs the recurrence itself over the keys (``log_not_chosen`` is unused):
    exact where the parallel form's clip is not, one step per key.
    """
    if mode == "recursive":
        return recursive_alignment(p_choose, previous_alignment)
    if mode == "hard":
        p_choose = p_choose * tf.cumsum(previous_alignment, axis=-1)
        return p_choose * exclusive_cumprod(1 - p_choose)
    cumprod_not_chosen = tf.exp(tf.cumsum(log_not_chosen, axis=-1, exclusive=True))
    # 1e-10 underflows to 0 in float16, so the floor is at least the dtype's smallest normal.
    floor = max(1e-10, float(np.finfo(p_choose.dtype.as_numpy_dtype).tiny))
    return p_choose * cumprod_not_chosen * tf.cumsum(
        previous_alignment / tf.clip_by_value(cumprod_not_chosen, floor, 1.0), axis=-1)


def recursive_alignment(p_choose, previous_alignment):
    """α_i = p ⊙ q with q_j = (1 - p_{j-1}) q_{j-1} + α_{i-1,j}, q_1 = α_{i-1,1}, run key by key
    through the scan engine (TensorFlow Addons' ``mode="recursive"``)."""
    not_chosen_before = tf.concat([tf.ones_like(p_choose[:, :1]), 1 - p_choose[:, :-1]], 1)

    def step(pair, states):
        decay, previous = tf.unstack(pair, 2, axis=-1)
        q = tf.expand_dims(decay, -1) * states[0] + tf.expand_dims(previous, -1)
        return q, [q]

    _, q, _ = scan(step, tf.stack([not_chosen_before, previous_alignment], -1),
                   [tf.zeros_like(p_choose[:, :1])])
    return p_choose * tf.squeeze(q, -1)


def safe_cumprod(x, axis=0, exclusive=False, reverse=False, name=None):
    """The cumulative product of ``x`` in [0, 1] as exp(cumsum(log(clip(x, tiny, 1)))), which
    never underflows to NaN gradients (TensorFlow Addons' ``tfa.seq2seq.safe_cumprod``; the
    arguments are ``tf.math.cumprod``'s). Factors below the dtype's smallest normal number count
    as that number, so a product after a 0 is tiny rather than 0 (:func:`exclusive_cumprod` keeps
    exact zeros).

    Args:
      x: a float tensor, values in [0, 1].
      axis: the axis of the product; default 0, as ``tf.math.cumprod``.
      exclusive: Π_{k<j} instead of Π_{k<=j}.
      reverse: accumulate from the end.
      name: an optional name scope.

    Returns:
      A tensor of the shape and dtype of ``x``.

    Example:

    ```python
    from kzoo.layers.attention import safe_cumprod

    print(safe_cumprod([0.1, 0.2, 0.3]).numpy())     # [0.1   0.02  0.006]
    ```
    """
    with tf.name_scope(name or "safe_cumprod"):
        x = tf.convert_to_tensor(x)
        tiny = float(np.finfo(x.dtype.as_numpy_dtype).tiny)
        return tf.exp(tf.cumsum(tf.math.log(tf.clip_by_value(x, tiny, 1.0)), axis=axis,
                                exclusive=exclusive, reverse=reverse))


def monotonic_attention(p_choose_i, previous_attention, mode):
    """The expected monotonic alignment of one output step (Raffel et al. 2017), with TensorFlow
    Addons' signature and numbers (``tfa.seq2seq.monotonic_attention``).

        α_ij = p_ij Σ_{k<=j} α_{i-1,k} Π_{k<=l<j} (1 - p_il)

    Args:
      p_choose_i: (batch, memory_time), the probability of stopping at each memory key.
      previous_attention: (batch, memory_time), α_{i-1} (one-hot at key 0 for the first step).
      mode: ``"recursive"`` (the recurrence, key by key), ``"parallel"`` (the closed form with
        cumulative products, fast but inexact when a product of (1 - p) falls below 1e-10) or
        ``"hard"`` (``p_choose_i`` in {0, 1} and a one-hot ``previous_attention``).

    Returns:
      α_i, (batch, memory_time), in the dtype of ``p_choose_i``.

    Raises:
      ValueError: an unknown ``mode``, or inputs that are not two tensors of one
        (batch, memory_time) shape.

    Example:

    ```python
    from kzoo.layers.attention import monotonic_attention

    alignment = monotonic_attention([[0.5, 0.5, 0.5]], [[1.0, 0.0, 0.0]], "recursive")
    print(alignment.numpy())                       # [[0.5   0.25  0.125]]
    ```
    """
    check_choice("monotonic_attention", "mode", mode, MONOTONIC_MODES)
    p_choose_i = tf.convert_to_tensor(p_choose_i)
    if not p_choose_i.dtype.is_floating:
        p_choose_i = tf.cast(p_choose_i, tf.float32)
    previous_attention = tf.cast(tf.convert_to_tensor(previous_attention), p_choose_i.dtype)
    if p_choose_i.shape.rank != 2 or not p_choose_i.shape.is_compatible_with(
            previous_attention.shape):
        raise ValueError(f"monotonic_attention: `p_choose_i` and `previous_attention` must both "
                         f"be (batch, memory_time), got shapes {tuple(p_choose_i.shape)} and "
                         f"{tuple(previous_attention.shape)}")
    tiny = float(np.finfo(p_choose_i.dtype.as_numpy_dtype).tiny)
    log_not_chosen = tf.math.log(tf.clip_by_value(1 - p_choose_i, tiny, 1.0))
    return monotonic_alignment(p_choose_i, log_not_chosen, previous_attention, mode)


class MonotonicAttention(BaseAttention):
    """Monotonic attention (Raffel et al. 2017, TensorFlow Addons' ``*MonotonicAttention``).

    The score e_ij of the base mechanism plus a learned scalar ``score_bias`` (initialized to
    ``score_bias_init``) gives the probability of stopping at key j,
        p_ij = σ(e_ij + score_bias + sigmoid_noise · N(0, 1))     ("parallel")
        p_ij = 1[e_ij + score_bias > 0]                              ("hard", for inference)
    and the weights are the expected alignment α_i = monotonic_alignment(p_i, α_{i-1}) (see
    :func:`monotonic_alignment`). They need not sum to 1: the mass left after the last key is the
    probability of never stopping. Masked keys have p = 0, so they get exactly zero weight.

    ``call(query, values, mask=None, keys=None, previous_alignment=None)``: ``previous_alignment``
    (B, Tv) is α_{i-1} (default: all mass on the first key; "hard" mode expects it one-hot).
    With a (B, Tq, d_q) query the Tq alignments are chained, each from the one before, and
    ``weights[:, -1]`` is the alignment to pass on. Unlike tfa, the noise is added only in
    training (``training=True``).
    """

    def __init__(self, *args, sigmoid_noise=0.0, score_bias_init=0.0, mode="parallel", seed=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        name = type(self).__name__
        if isinstance(sigmoid_noise, bool) or not isinstance(sigmoid_noise, (int, float)) \
                or sigmoid_noise < 0:
            raise ValueError(f"{name}: `sigmoid_noise` must be a float >= 0, "
                             f"got {sigmoid_noise!r}")
        if isinstance(score_bias_init, bool) or not isinstance(score_bias_init, (int, float)):
            raise ValueError(f"{name}: `score_bias_init` must be a float, got {score_bias_init!r}")
        self.sigmoid_noise = float(sigmoid_noise)
        self.score_bias_init = float(score_bias_init)
        self.mode = check_choice(name, "mode", mode, MONOTONIC_MODES)
        if self.probability_fn != "softmax":
            raise ValueError(f"{name}: monotonic attention computes its weights from σ(score) "
                             f"(see `mode`), so it takes no `probability_fn`, got "
                             f"{self.probability_fn!r}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)

    def _build_weights(self, query_dim, values_dim):
        super()._build_weights(query_dim, values_dim)
        self.score_bias = self.add_weight(
            name="score_bias", shape=(),
            initializer=keras.initializers.Constant(self.score_bias_init))

    @property
    def uses_previous_alignment(self):
        return True

    def _choose_probabilities(self, scores, mask, training):
        """p and log(1 - p), both (B, Tq, Tv); masked keys have p = 0."""
        scores = scores + self.score_bias
        if training and self.sigmoid_noise > 0:
            noise = keras.random.normal(tf.shape(scores), dtype=scores.dtype,
                                        seed=self.seed_generator)
            scores = scores + self.sigmoid_noise * noise
        if self.mode == "hard":
            p_choose = tf.cast(scores > 0, scores.dtype)
            log_not_chosen = tf.zeros_like(scores)  # unused by "hard"
        else:
            p_choose = tf.sigmoid(scores)
            log_not_chosen = log_sigmoid(-scores)
        if mask is not None:
            mask = tf.expand_dims(mask, 1)
            p_choose = tf.where(mask, p_choose, tf.zeros_like(p_choose))
            log_not_chosen = tf.where(mask, log_not_chosen, tf.zeros_like(log_not_chosen))
        return p_choose, log_not_chosen

    def _previous_alignment(self, previous_alignment, values):
        if previous_alignment is None:
            first_key = tf.cast(tf.equal(tf.range(tf.shape(values)[1]), 0), values.dtype)
            return tf.zeros_like(values[:, :, 0]) + first_key
        previous_alignment = tf.cast(tf.convert_to_tensor(previous_alignment), values.dtype)
        shape = tuple(previous_alignment.shape)
        if len(shape) != 2 or None not in (shape[1], values.shape[1]) \
                and shape[1] != values.shape[1]:
            raise ValueError(f"{self._describe()} expects `previous_alignment` of shape "
                             f"(batch, value_time) for `values` of shape {tuple(values.shape)}, "
                             f"got shape {shape}")
        return previous_alignment

    def call(self, query, values, mask=None, keys=None, previous_alignment=None, training=None,
             values_mask=None):
        query, values, keys, mask, single_step = self._prepare(query, values, mask, keys,
                                                               values_mask)
        if single_step:
            query = tf.expand_dims(query, 1)
        p_choose, log_not_chosen = self._choose_probabilities(self._score(query, keys), mask,
                                                              training)
        previous_alignment = self._previous_alignment(previous_alignment, values)
        # The alignments are chained in float32 whatever the compute dtype: in float16 the
        # gradient of monotonic_alignment's α_{i-1} / c, -α_{i-1} / c², overflows where c nears
        # its floor, and the gradients turn into NaN.
        p_choose, log_not_chosen, previous_alignment = (
            tf.cast(x, tf.float32) for x in (p_choose, log_not_chosen, previous_alignment))
        if single_step:
            weights = tf.expand_dims(monotonic_alignment(
                tf.squeeze(p_choose, 1), tf.squeeze(log_not_chosen, 1), previous_alignment,
                self.mode), 1)
        else:
            # The probabilities of all query steps are computed at once above; only the chaining
            # of the alignments is sequential. The scan feeds p and log(1 - p) stacked.
            def step(choice_t, states):
                p_choose_t, log_not_chosen_t = tf.unstack(choice_t, 2, axis=-1)
                alignment = monotonic_alignment(p_choose_t, log_not_chosen_t, states[0],
                                                self.mode)
                return alignment, [alignment]

            _, weights, _ = scan(step, tf.stack([p_choose, log_not_chosen], -1),
                                 [previous_alignment])
        weights = tf.cast(weights, values.dtype)
        if mask is not None:
            weights = tf.where(tf.expand_dims(mask, 1), weights, tf.zeros_like(weights))
        return self._finish(weights, values, single_step)

    def get_config(self):
        config = {
            "sigmoid_noise": self.sigmoid_noise,
            "score_bias_init": self.score_bias_init,
            "mode": self.mode,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="kzoo")
class BahdanauMonotonicAttention(MonotonicAttention, BahdanauAttention):
    """Monotonic attention on the Bahdanau score: e_ij = vᵀ tanh(W₁ s_i + W₂ h_j) (or its
    ``normalize`` form), p_ij = σ(e_ij + score_bias), α_i = monotonic_alignment(p_i, α_{i-1}).

    The stopping probabilities and the alignment (Raffel et al. 2017)::

        p_ij = σ(e_ij + score_bias + sigmoid_noise · N(0, 1))     ("parallel")
        p_ij = 1[e_ij + score_bias > 0]                              ("hard", for inference)
        α_ij = p_ij Σ_{k<=j} α_{i-1,k} Π_{k<=l<j} (1 - p_il)

    The weights need not sum to 1: the rest is the probability of never stopping.

    Args:
      *args: ``units`` and ``normalize``, as :class:`BahdanauAttention`.
      sigmoid_noise: float >= 0, the standard deviation of the noise added to the score
        before the sigmoid in training ("parallel" mode); default 0.
      score_bias_init: the initial value of the learned ``score_bias``; default 0.
      mode: ``"parallel"`` (default, the expected alignment in closed form), ``"recursive"``
        (the same expectation by its recurrence over the keys: exact, one step per key) or
        ``"hard"`` (p is 0 or 1, for inference); see :func:`monotonic_attention`.
      seed: int or None, the seed of the noise.
      **kwargs: the ``kernel_*`` arguments and ``keras.layers.Layer`` arguments.

    Call arguments:
      query: ``(batch, d_q)`` for one decoder step, or ``(batch, Tq, d_q)`` for all steps.
      values: ``(batch, Tv, d_v)``, the encoder states h_j.
      mask: ``(batch, Tv)`` bool, False at padded keys.
      keys: ``project_keys(values)`` computed once per source sequence; computed when None.
      previous_alignment: ``(batch, Tv)``, α_{i-1}; all mass on the first key when None.
      training: add the sigmoid noise.
      values_mask: the Keras mask of ``values``, passed by Keras itself.

    Returns:
      ``(context, weights)`` as :class:`BahdanauAttention`; ``weights[:, -1]`` (or ``weights``
      for one step) is the alignment to pass on as ``previous_alignment``.

    Raises:
      ValueError: a negative or non-numeric ``sigmoid_noise``, a non-numeric
        ``score_bias_init``, an unknown ``mode``, or the base score's errors.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    attention = kzoo.layers.BahdanauMonotonicAttention(4)
    values = tf.random.normal((2, 5, 3))
    context, alignment = attention(tf.zeros((2, 6)), values)      # (2, 3), (2, 5)
    context, alignment = attention(tf.zeros((2, 6)), values, previous_alignment=alignment)
    ```
    """


@keras.saving.register_keras_serializable(package="kzoo")
class LuongMonotonicAttention(MonotonicAttention, LuongAttention):
    """Monotonic attention on a Luong score (dot, general or concat; tfa used general):
    p_ij = σ(e_ij + score_bias), α_i = monotonic_alignment(p_i, α_{i-1}).

    p_ij and α_i as :class:`BahdanauMonotonicAttention`.

    Args:
      score: ``"general"`` (default), ``"dot"`` or ``"concat"``, as :class:`LuongAttention`.
      units: the size of tanh(W [s; h_j]); only (and required) with ``"concat"``.
      scale: multiply the score by a learned scalar; default False.
      **kwargs: ``sigmoid_noise``, ``score_bias_init``, ``mode`` and ``seed`` as
        :class:`BahdanauMonotonicAttention`, the ``kernel_*`` arguments and
        ``keras.layers.Layer`` arguments.

    Call arguments:
      query: ``(batch, d_q)`` or ``(batch, Tq, d_q)``.
      values: ``(batch, Tv, d_v)``.
      mask: ``(batch, Tv)`` bool, False at padded keys.
      keys: ``project_keys(values)``; computed when None.
      previous_alignment: ``(batch, Tv)``, α_{i-1}; all mass on the first key when None.
      training: add the sigmoid noise.
      values_mask: the Keras mask of ``values``, passed by Keras itself.

    Returns:
      ``(context, weights)`` as :class:`LuongAttention`.

    Raises:
      ValueError: as :class:`LuongAttention` and :class:`BahdanauMonotonicAttention`.

    Example:

    ```python
    import tensorflow as tf
    import kzoo

    attention = kzoo.layers.LuongMonotonicAttention(mode="hard")
    context, alignment = attention(tf.zeros((2, 3)), tf.random.normal((2, 5, 3)))
    ```
    """

    def __init__(self, score="general", units=None, scale=False, **kwargs):
        super().__init__(score=score, units=units, scale=scale, **kwargs)

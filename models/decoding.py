"""Greedy and beam-search decoding as single ``tf.while_loop`` graphs (tfa.seq2seq's
``BasicDecoder`` + ``GreedyEmbeddingSampler``, ``BeamSearchDecoder``, ``tile_batch``,
``gather_tree`` and ``dynamic_decode``, in one place).

Both searches drive a decoder through one function,

    logits, new_states, alignments = step_fn(token_ids, states)

(token_ids (N,) int32, states a list of (N, ...) tensors, logits (N, V), alignments (N, Ts) or
None). Batch size, source length and ``max_length`` stay dynamic. A row stops at ``end_id``
(which is written) and holds 0, kzoo's pad id, after it.

TensorFlow's executor runs a loop step node by node, and at a decoder step's sizes much of a
node's cost is the same whatever its tensors, so the loop bodies are kept short: whatever does
not change from one step to the next (row offsets, buffer positions, the frozen row of a
finished hypothesis) is made once before the loop, penalties that are a Python 0 are left out
of the graph, and greedy search settles lengths, scores and padding once after the loop instead
of at every step. Greedy search collects its per-step outputs in TensorArrays; under
``trace_target("tflite")``, where the converter cannot lower a TensorList, it writes them into
preallocated buffers with one-hot adds instead (builtin ops only). Beam search keeps every
hypothesis' tokens in a (B*K, max_length) buffer that follows its parents.

Beam search ranks hypotheses, at every step and at the end, by the GNMT score (Wu et al. 2016)

    score(Y) = log P(Y) / lp(Y) + cp(Y),     lp(Y) = ((5 + |Y|) / 6) ** length_penalty,
    cp(Y) = coverage_penalty * Σ_i log(min(Σ_t α_{t,i}, 1))

with |Y| the number of tokens including the end token and α the attention weights (source
positions that never received any weight, i.e. padding, count as covered).
Finished hypotheses stay in the beam with their score frozen.
"""

import tensorflow as tf

from kzoo.layers.target import tracing_for_tflite
from kzoo.layers.text import PAD_ID

# Finite stand-in for log(0): -inf would turn into NaN in -inf - -inf or 0 * -inf.
NEG_INF = -1e9

# Buffers of max_length steps are allocated up front (beam search's tokens, greedy search's
# outputs in TFLite): a request for 10**9 steps (a typo, or a hostile serving request) would
# take the whole machine's memory.
MAX_DECODE_LENGTH = 10_000


def limited_length(max_length):
    """``max_length`` as an int32 tensor, refused (InvalidArgumentError) above
    MAX_DECODE_LENGTH; in a TFLite graph, which has no assert op, capped at it instead."""
    max_length = tf.convert_to_tensor(max_length, tf.int32)
    if tracing_for_tflite():
        return tf.minimum(max_length, MAX_DECODE_LENGTH)
    check = tf.debugging.assert_less_equal(
        max_length, MAX_DECODE_LENGTH,
        message=f"decoding: `max_length` must be at most {MAX_DECODE_LENGTH}")
    with tf.control_dependencies([check]):
        return tf.identity(max_length)


def tile_batch(x, multiplier):
    """Repeats every batch row ``multiplier`` times, each row's copies next to each other.

    (B, ...) -> (B * multiplier, ...), rows b*k .. b*k + k-1 being copies of row b (tfa's
    ``tile_batch``): what :func:`beam_search` needs of the initial states and of whatever its
    ``step_fn`` closes over (the encoder memory, its keys and mask), one row per hypothesis.
    A nested structure (a list, tuple or dict of tensors, e.g. an LSTM's ``[h, c]``) has each
    of its tensors tiled, the structure kept; None stays None.

    Args:
        x: a tensor or array of rank >= 1, the batch first, or a nested structure of them.
        multiplier: int, the copies of each row (the beam width).

    Returns:
        A tensor (B * multiplier, ...) of ``x``'s dtype, or the structure of ``x`` with each
        tensor tiled.

    Raises:
        ValueError: if a tensor of ``x`` is a scalar (it has no batch dimension).

    Example:

    ```python
    import numpy as np
    from kzoo.models import tile_batch

    print(tile_batch(np.array([[1, 2], [3, 4]]), 2).numpy().tolist())
    # [[1, 2], [1, 2], [3, 4], [3, 4]]
    h, c = tile_batch([np.zeros((2, 3)), np.ones((2, 3))], 2)   # each tensor tiled
    print(h.shape, c.shape)                                     # (4, 3) (4, 3)
    ```
    """
    return tf.nest.map_structure(lambda t: None if t is None else _tile_rows(t, multiplier), x)


def _tile_rows(x, multiplier):
    x = tf.convert_to_tensor(x)
    if x.shape.rank == 0:
        raise ValueError("tile_batch: every tensor must have a batch dimension (rank >= 1), "
                         "got a scalar")
    # expand_dims + tile, not tf.repeat: the same copy in far fewer graph nodes, which every
    # beam search call pays for each tensor it tiles (docs/engine-notes.md,
    # benchmarks/decode_speed.py); and the target shape a constant where x's dimensions are known.
    tiled = tf.tile(tf.expand_dims(x, 1), [1, multiplier] + [1] * (x.shape.rank - 1))
    if x.shape[1:].is_fully_defined():
        return tf.reshape(tiled, [-1] + x.shape[1:].as_list())
    return tf.reshape(tiled, tf.concat([[-1], tf.shape(x)[1:]], 0))


def length_penalty(lengths, alpha):
    """The GNMT length normalizer (Wu et al. 2016): lp(Y) = ((5 + |Y|) / 6)^α.

    :func:`beam_search` divides a hypothesis' log-probability by it: with α > 0 longer
    hypotheses lose less for their length; α = 0 gives 1 (no normalization).

    Args:
        lengths: integer tensor or array, the lengths |Y| (tokens, the end token included).
        alpha: float (or a float scalar tensor), the length penalty weight α.

    Returns:
        A float32 tensor of ``lengths``' shape.

    Example:

    ```python
    from kzoo.models import length_penalty

    print(length_penalty([1, 7], 0.6).numpy())    # [1.  1.5157166]: ((5 + 7) / 6) ** 0.6
    ```
    """
    lengths = tf.cast(lengths, tf.float32)
    return tf.pow((5.0 + lengths) / 6.0, tf.cast(alpha, tf.float32))


def coverage_penalty(accumulated_attention, beta):
    """The GNMT coverage penalty (Wu et al. 2016): cp = β Σ_i log(min(Σ_t α_ti, 1)).

    Over the last axis, the source positions i, of the attention weights accumulated over the
    decoder steps t: a source position that received less than weight 1 in all lowers the score
    (β > 0). A position whose accumulated weight is exactly 0 (padding, which never receives
    any) counts as covered: it contributes 0, not log(0).

    Args:
        accumulated_attention: float tensor or array (..., Ts), Σ_t α_ti per source position.
        beta: float (or a float scalar tensor), the coverage penalty weight β.

    Returns:
        A float32 tensor of the leading shape (...).

    Example:

    ```python
    from kzoo.models import coverage_penalty

    print(coverage_penalty([[0.5, 1.5, 0.0]], 0.2).numpy())   # [-0.13862944]: 0.2 * log(0.5)
    ```
    """
    covered = tf.where(tf.equal(accumulated_attention, 0.0),
                       tf.ones_like(accumulated_attention), accumulated_attention)
    return tf.cast(beta, tf.float32) * tf.reduce_sum(tf.math.log(tf.minimum(covered, 1.0)), -1)


def _keeping_shapes(body):
    # Reshapes by dynamic sizes lose static dimensions the loop entered with; restore them, and
    # only where they were lost (every EnsureShape is one more node run at every step).
    def wrapped(*loop_vars):
        new_vars = tf.nest.flatten(body(*loop_vars), expand_composites=False)
        old_vars = tf.nest.flatten(loop_vars, expand_composites=False)
        kept = [tf.ensure_shape(new, old.shape)
                if tf.is_tensor(new) and new.shape != old.shape else new
                for new, old in zip(new_vars, old_vars)]
        return tf.nest.pack_sequence_as(loop_vars, kept)
    return wrapped


def _is_zero(weight):
    """True when ``weight`` is known at trace time to be 0 (a Python number or a constant)."""
    value = tf.get_static_value(weight) if tf.is_tensor(weight) else weight
    return value is not None and float(value) == 0.0


class _History:
    """One (B, ...) value per step, collected as (B, max_length, ...) after the loop, zeros past
    the last step. In TensorFlow a TensorArray (constant cost per step); under
    ``trace_target("tflite")``, which cannot hold a TensorList, a zero buffer of the full size
    written by one-hot adds. A ``row_shape`` with a None (a size only the loop learns, e.g. the
    vocabulary) needs the TensorArray."""

    def __init__(self, batch_size, max_length, dtype, row_shape=()):
        self.buffered = tracing_for_tflite()
        self.batch_size, self.max_length, self.dtype = batch_size, max_length, dtype
        self.row_shape = list(row_shape)
        self.sized = all(d is not None for d in self.row_shape)

    def initial(self):
        if self.buffered:
            return tf.zeros([self.batch_size, self.max_length, *self.row_shape], self.dtype)
        array = tf.TensorArray(self.dtype, size=0, dynamic_size=True,
                               element_shape=tf.TensorShape([None] + [
                                   d if isinstance(d, int) else None for d in self.row_shape]))
        if not self.sized:
            return array
        # Element 0 is a row of zeros, step t goes to t + 1: the stack is never of an empty
        # list (which a TensorList with a dynamic batch cannot do), even when no step ran.
        return array.write(0, tf.zeros([self.batch_size, *self.row_shape], self.dtype))

    def write(self, history, t, next_t, value):
        if not self.buffered:
            return history.write(next_t if self.sized else t, value)
        column = tf.one_hot(t, self.max_length, dtype=self.dtype)
        # expand_dims/reshape, not [:, None]: TFLite's builtin StridedSlice rejects that.
        column = tf.reshape(column, [1, -1] + [1] * len(self.row_shape))
        return history + tf.expand_dims(value, 1) * column

    def read(self, history, steps):
        if self.buffered:
            return history
        rank = 2 + len(self.row_shape)
        padding = [[0, 0], [0, self.max_length - steps]] + [[0, 0]] * len(self.row_shape)

        def stacked():
            values = history.stack()
            values = values[1:] if self.sized else values                   # (steps, B, ...)
            return tf.pad(tf.transpose(values, [1, 0] + list(range(2, rank))), padding)

        if self.sized:
            return stacked()
        # No step ran: nothing tells the unknown sizes; they are 0.
        return tf.cond(steps > 0, stacked, lambda: tf.zeros(
            [self.batch_size, self.max_length] + [0] * len(self.row_shape), self.dtype))


def start_tokens(start_id, batch_size):
    """The first step's tokens, int32 (batch_size,): ``start_id`` (an int, or a vector of one
    token per row) broadcast to the batch.

    Raises:
        ValueError: if ``start_id`` is not a scalar or a vector.
    """
    if isinstance(start_id, int):
        return tf.fill([batch_size], tf.constant(start_id, tf.int32))
    start_id = tf.cast(start_id, tf.int32)
    if start_id.shape.rank not in (0, 1):
        raise ValueError(f"decoding: `start_id` must be an int or a (batch,) vector of ints, "
                         f"got shape {tuple(start_id.shape)}")
    return tf.broadcast_to(start_id, [batch_size])


def _emitted(ids, steps, end_id):
    """(B, max_length) bool: the tokens a row emitted, i.e. the steps that ran, up to and
    including its first ``end_id``."""
    ran = tf.expand_dims(tf.range(tf.shape(ids)[1]), 0) < steps
    ends = tf.cast(tf.logical_and(tf.equal(ids, end_id), ran), tf.int32)
    return tf.logical_and(ran, tf.equal(tf.cumsum(ends, axis=1, exclusive=True), 0))


def greedy_search(step_fn, initial_states, *, batch_size, start_id, end_id, max_length,
                  alignment_size=None, choose=None):
    """Greedy decoding in one ``tf.while_loop``: the argmax token is fed back at every step.

    From ``start_id``, each step runs ``step_fn`` and takes the most likely token, until every
    row has emitted ``end_id`` or ``max_length`` steps ran (tfa's ``BasicDecoder`` with
    ``GreedyEmbeddingSampler`` and ``dynamic_decode``). The loop records every row's argmax,
    its log-probability and its alignments at every step, also after the row finished (a
    finished row keeps decoding until all are; what it computes then is never used); the
    emitted part is cut out once, after the loop. Batch size, source length and
    ``max_length`` may be tensors.

    Args:
        step_fn: ``step_fn(token_ids, states) -> (logits, new_states, alignments)``:
            ``token_ids`` int32 (B,), ``states`` a list of (B, ...) tensors, ``logits``
            (B, V), ``alignments`` (B, Ts) or None.
        initial_states: the list of the states' initial values (B, ...); may be empty.
        batch_size: int or int32 scalar tensor, B.
        start_id: int, the token fed at the first step, or an int (B,) vector of one per row
            (tfa's ``start_tokens``).
        end_id: int, the token that ends a row (it is emitted).
        max_length: int or int32 scalar tensor, the most steps, at most
            :data:`MAX_DECODE_LENGTH`.
        alignment_size: None, or the source length Ts (int or scalar tensor) to also return
            the alignments ``step_fn`` gives.
        choose: None (the argmax), or the rule that picks each step's token,
            ``choose(log_probs, step) -> token_ids``: ``log_probs`` (B, V) float32 the
            log-softmax of the step's logits, ``step`` the int32 step (0 first), ``token_ids``
            (B,) int32 (tfa's ``CustomSampler``): a :class:`kzoo.models.TokenSampler` draws
            (sampling decode), and any function of TensorFlow ops will do.

    Returns:
        A dict: ``tokens`` (B, max_length) int32, the end token included and 0 after it;
        ``scores`` (B,) the summed log-probabilities of the emitted tokens (under the model,
        whatever ``choose`` picked); ``lengths`` (B,)
        the tokens emitted (the end included); and with ``alignment_size``, ``attention``
        (B, max_length, Ts), the alignment of every emitted token (zero after the end).

    Raises:
        tf.errors.InvalidArgumentError: if ``max_length`` is over :data:`MAX_DECODE_LENGTH`
            (in a trace for TFLite, ``trace_target("tflite")``, which has no assert op, it is
            capped instead).

    Example:

    ```python
    import tensorflow as tf
    from kzoo.models import greedy_search

    # A toy decoder over 8 ids (0 padding, 1 start, 2 end): after token i it predicts
    # successor[i] (logit 5, every other token 0), so 1 -> 3 -> 4 -> 5 -> 2. Its one state
    # counts the steps.
    successor = tf.constant([0, 3, 2, 4, 5, 2, 0, 0])


    def step_fn(token_ids, states):
        logits = 5.0 * tf.one_hot(tf.gather(successor, token_ids), 8)
        return logits, [states[0] + 1], None


    result = greedy_search(step_fn, [tf.zeros([1], tf.int32)], batch_size=1, start_id=1,
                           end_id=2, max_length=6)
    print(result["tokens"].numpy())    # [[3 4 5 2 0 0]]
    print(result["lengths"].numpy())   # [4]: the end token included
    print(result["scores"].numpy())    # [-0.18434846]: 4 * log(e^5 / (e^5 + 7))
    ```
    """
    max_length = limited_length(max_length)
    batch_size = tf.convert_to_tensor(batch_size, tf.int32)
    with_attention = alignment_size is not None
    initial_states = [tf.convert_to_tensor(s) for s in initial_states]
    histories = [_History(batch_size, max_length, tf.int32),
                 _History(batch_size, max_length, tf.float32)]
    if with_attention:
        histories.append(_History(batch_size, max_length, tf.float32, [alignment_size]))

    def cond(t, ids, finished, written, states):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(t, ids, finished, written, states):
        logits, new_states, alignments = step_fn(ids, list(states))
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        if choose is None:
            next_ids = tf.argmax(log_probs, -1, output_type=tf.int32)
            # The chosen token's log-probability is the row's maximum: no one-hot pick needed.
            values = [next_ids, tf.reduce_max(log_probs, -1)]
        else:
            next_ids = tf.reshape(tf.cast(choose(log_probs, t), tf.int32), [-1])
            picked = tf.one_hot(next_ids, tf.shape(log_probs)[-1], dtype=tf.float32)
            values = [next_ids, tf.reduce_sum(log_probs * picked, -1)]
        if with_attention:
            values.append(tf.cast(alignments, tf.float32))
        next_t = t + 1
        written = [h.write(w, t, next_t, v) for h, w, v in zip(histories, written, values)]
        finished = tf.logical_or(finished, tf.equal(next_ids, end_id))
        return next_t, next_ids, finished, written, list(new_states)

    loop_vars = (tf.constant(0), start_tokens(start_id, batch_size),
                 tf.zeros([batch_size], tf.bool), [h.initial() for h in histories],
                 initial_states)
    steps, _, _, written, _ = tf.while_loop(cond, _keeping_shapes(body), loop_vars)
    ids, step_scores, *attention = [h.read(w, steps) for h, w in zip(histories, written)]
    emitted = _emitted(ids, steps, end_id)
    output = {"tokens": tf.where(emitted, ids, PAD_ID),
              "scores": tf.reduce_sum(tf.where(emitted, step_scores, 0.0), 1),
              "lengths": tf.reduce_sum(tf.cast(emitted, tf.int32), 1)}
    if with_attention:
        output["attention"] = tf.where(tf.expand_dims(emitted, -1), attention[0], 0.0)
    return output


PENALTY_RULES = ("gnmt", "stepwise")


def beam_search(step_fn, initial_states, *, batch_size, beam_width, start_id, end_id,
                max_length, length_penalty_weight=0.0, coverage_penalty_weight=0.0,
                alignment_size=None, alignment_history=False, output_all_scores=False,
                penalty_rule="gnmt"):
    """Beam search in one ``tf.while_loop``, hypotheses ranked by the GNMT score.

    Every step extends each of the ``beam_width`` hypotheses of a batch row by every token and
    keeps the ``beam_width`` best of the extensions by (Wu et al. 2016)

        score(Y) = log P(Y) / lp(Y) + cp(Y),   lp(Y) = ((5 + |Y|) / 6)^α,
        cp(Y) = β Σ_i log(min(Σ_t α_ti, 1))

    (:func:`length_penalty`, :func:`coverage_penalty`), α_ti the attention weights of Y's
    steps; with α = β = 0 the score is log P(Y). ``penalty_rule`` says when the penalties
    count:

    - ``"gnmt"`` (the default, TF Addons' ``BeamSearchDecoder`` and GNMT): cp counts only for
      hypotheses that have ended, and an extension by ``end_id`` is ranked with the length
      before it, |Y| growing by the end token from the next step on. A migrated model ranks its
      beams as it did under TF Addons.
    - ``"stepwise"``: cp counts for every hypothesis at every step, and |Y| includes the end
      token at once, so a finished hypothesis' score never changes (kzoo's rule before).

    A hypothesis that emitted ``end_id`` stays in the beam until every hypothesis has ended or
    ``max_length`` steps ran (tfa's ``BeamSearchDecoder`` with ``dynamic_decode``; the results
    come sorted, tokens in order, no :func:`gather_tree` needed). The returned scores are
    those of the last step's ranking. When a batch row has fewer candidates than
    ``beam_width`` (a vocabulary smaller than the beam at the first step), the beams left over
    are empty: log-probability and score -inf, length 0, tokens 0 (TF Addons gives -inf
    and 0 too; a TFLite file may show -inf as -3.4e38, the lowest float32).

    ``initial_states`` and whatever ``step_fn`` closes over (the encoder memory) must already be
    tiled to ``batch_size * beam_width`` rows with :func:`tile_batch` (row b*K + j is hypothesis
    j of batch row b). A penalty weight that is a Python 0 (the default) is left out of the
    graph. With ``alignment_history`` or ``output_all_scores``, every step records each new
    hypothesis' parent and what is asked, and the lines of the final hypotheses are traced back
    once after the loop, so the loop carries no (B*K, max_length, ...) buffer that follows the
    parents.

    Args:
        step_fn: ``step_fn(token_ids, states) -> (logits, new_states, alignments)`` over
            B*K rows: ``token_ids`` int32 (B*K,), ``states`` a list of (B*K, ...) tensors,
            ``logits`` (B*K, V), ``alignments`` (B*K, Ts) or None.
        initial_states: the list of the states' initial values, tiled to (B*K, ...).
        batch_size: int or int32 scalar tensor, B (batch rows, not hypotheses).
        beam_width: int K > 0 (a Python int).
        start_id: int, the token fed at the first step, or an int (B,) vector of one per
            batch row (tfa's ``start_tokens``).
        end_id: int, the token that ends a hypothesis (it is emitted).
        max_length: int or int32 scalar tensor, the most steps, at most
            :data:`MAX_DECODE_LENGTH`.
        length_penalty_weight: α (float or scalar tensor; default 0).
        coverage_penalty_weight: β (float or scalar tensor; default 0); used only with
            ``alignment_size`` and a ``step_fn`` that returns alignments.
        alignment_size: None, or the source length Ts (int or scalar tensor).
        alignment_history: bool, also return the hypotheses' attention (needs
            ``alignment_size``).
        output_all_scores: bool, also return every step's scores of the hypotheses
            (``step_scores``) and of every token they could have taken (``all_scores``,
            TF Addons' ``output_all_scores``; not in a trace for TFLite).
        penalty_rule: "gnmt" (default) or "stepwise", see above.

    Returns:
        A dict: ``tokens`` (B, max_length) int32 and ``scores`` (B,) of the best hypothesis;
        ``beam_tokens`` (B, K, max_length) and ``beam_scores`` (B, K), best first;
        ``log_probs`` (B, K), each hypothesis' log P(Y); ``lengths`` (B, K), the end token
        included. With ``alignment_history``, ``attention`` (B, max_length, Ts), the
        alignment of every token the best hypothesis emitted (zero after its end), as
        :func:`greedy_search` returns it, and ``beam_attention`` (B, K, max_length, Ts), the
        same for every hypothesis (TF Addons' alignment history of the final beams). With
        ``output_all_scores``, ``step_scores`` (B, K, max_length), the score each hypothesis'
        prefix had after every step, and ``all_scores`` (B, K, max_length, V), the scores of
        every extension of its prefix at every step (0 after the steps that ran). Tokens after a
        hypothesis' end are 0.

    Raises:
        ValueError: if ``beam_width`` is not a positive int, ``penalty_rule`` is not one of
            "gnmt", "stepwise", ``alignment_history`` is asked without ``alignment_size``, or
            ``output_all_scores`` in a trace for TFLite.
        tf.errors.InvalidArgumentError: if ``max_length`` is over :data:`MAX_DECODE_LENGTH`
            (in a trace for TFLite, ``trace_target("tflite")``, it is capped instead).

    Example:

    With 2 hypotheses, beam search finds the likelier sentence greedy search misses:

    ```python
    import numpy as np
    import tensorflow as tf
    from kzoo.models import beam_search, greedy_search

    # A bigram model over 5 ids (0 padding, 1 start, 2 end): row i holds the probabilities of
    # the token after token i. It has no state of its own, so the states are [].
    table = np.log(np.array([[.2, .2, .2, .2, .2],
                             [.01, .01, .08, .4, .5],
                             [.2, .2, .2, .2, .2],
                             [.01, .01, .9, .04, .04],
                             [.01, .01, .29, .4, .29]], "float32"))


    def step_fn(token_ids, states):
        return tf.gather(table, token_ids), states, None


    result = beam_search(step_fn, [], batch_size=1, beam_width=2, start_id=1, end_id=2,
                         max_length=5)
    print(result["beam_tokens"].numpy())   # [[[3 2 0 0 0] [4 3 2 0 0]]]: 0.36 and 0.18
    print(result["beam_scores"].numpy())   # [[-1.0216513 -1.7147985]]
    # greedy search takes 4 (0.5) first, and ends with [4 3 2] (0.18)
    normalized = beam_search(step_fn, [], batch_size=1, beam_width=2, start_id=1, end_id=2,
                             max_length=5, length_penalty_weight=1.0)
    print(normalized["scores"].numpy())    # [-0.8757011]: log(0.36) / ((5 + 2) / 6)
    ```
    """
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width <= 0:
        raise ValueError(f"beam_search: `beam_width` must be a positive integer, got "
                         f"{beam_width!r}")
    if penalty_rule not in PENALTY_RULES:
        raise ValueError(f"beam_search: `penalty_rule` must be one of {PENALTY_RULES}, got "
                         f"{penalty_rule!r}")
    if output_all_scores and tracing_for_tflite():
        raise ValueError("beam_search: `output_all_scores` is not available in a trace for "
                         "TFLite (its (V,) rows need a TensorList)")
    k = beam_width
    max_length = limited_length(max_length)
    batch_size = tf.convert_to_tensor(batch_size, tf.int32)
    use_length = not _is_zero(length_penalty_weight)
    use_coverage = alignment_size is not None and not _is_zero(coverage_penalty_weight)
    if alignment_history and alignment_size is None:
        raise ValueError("beam_search: `alignment_history` needs `alignment_size` (the source "
                         "length) and a step_fn that returns alignments")
    penalized = use_length or use_coverage
    gnmt = penalty_rule == "gnmt"
    alpha = tf.cast(length_penalty_weight, tf.float32)
    beta = tf.cast(coverage_penalty_weight, tf.float32)
    initial_states = [tf.convert_to_tensor(s) for s in initial_states]
    # Every per-hypothesis tensor is flat, row b*K + j for hypothesis j of batch row b, with
    # (N, 1) columns where it meets (N, V) scores. Loop invariants are made here, once:
    first_rows = tf.expand_dims(tf.range(batch_size) * k, 1)      # (B, 1) row of hypothesis 0
    positions = tf.range(max_length)                                # token buffer columns
    rows = batch_size * k
    # What the loop records per step, each traced back along the final hypotheses' lines.
    recorded = (["alignments"] if alignment_history else []) + \
        (["step_scores", "all_scores"] if output_all_scores else [])
    histories = {"parents": _History(rows, max_length, tf.int32)} if recorded else {}
    if alignment_history:
        histories["alignments"] = _History(rows, max_length, tf.float32, [alignment_size])
    if output_all_scores:
        histories["step_scores"] = _History(rows, max_length, tf.float32)
        histories["all_scores"] = _History(rows, max_length, tf.float32, [None])

    def cond(t, ids, hypotheses, states, written):
        return tf.logical_and(t < max_length,
                              tf.logical_not(tf.reduce_all(hypotheses["finished"])))

    def body(t, ids, hypotheses, states, written):
        logits, new_states, alignments = step_fn(ids, list(states))
        step_log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))          # (N, V)
        vocab = step_log_probs.shape[-1]
        if vocab is None:
            vocab = tf.shape(step_log_probs)[-1]
            frozen = tf.expand_dims(tf.where(tf.equal(tf.range(vocab), PAD_ID), 0.0, NEG_INF),
                                    0)
            is_end = tf.expand_dims(tf.equal(tf.range(vocab), end_id), 0)
        else:  # constants in the graph, not three ops at every step
            frozen = tf.constant([[0.0 if i == PAD_ID else NEG_INF for i in range(vocab)]],
                                 tf.float32)
            is_end = tf.constant([[i == end_id for i in range(vocab)]])
        finished = hypotheses["finished"]                                          # (N, 1)
        # A finished hypothesis has one continuation (PAD_ID) at no cost: it stays as it is.
        step_log_probs = tf.where(finished, frozen, step_log_probs)
        total = hypotheses["log_probs"] + step_log_probs                            # (N, V)
        scores = total
        if penalized:
            running = tf.logical_not(finished)
            new_lengths = hypotheses["lengths"] + tf.cast(running, tf.int32)       # per parent
            if gnmt and use_length:  # the end token counts from the next step on
                scores = total / tf.where(is_end, length_penalty(hypotheses["lengths"], alpha),
                                          length_penalty(new_lengths, alpha))
            elif use_length:
                scores = total / length_penalty(new_lengths, alpha)
            if use_coverage:
                coverage = hypotheses["coverage"] + tf.where(
                    running, tf.cast(alignments, tf.float32), 0.0)
                penalty = tf.expand_dims(coverage_penalty(coverage, beta), 1)
                if gnmt:  # only the hypotheses that have ended
                    penalty = tf.where(finished, penalty, 0.0)
                scores = scores + penalty
        width = [-1, k * vocab] if isinstance(vocab, int) else [batch_size, -1]
        top_scores, top_index = tf.math.top_k(tf.reshape(scores, width), k)       # (B, K)
        # Flat row of each new hypothesis' parent; every reordering is one gather by it.
        parents = tf.reshape(top_index // vocab + first_rows, [-1])
        next_ids = tf.reshape(top_index % vocab, [-1, 1])
        parent_finished = tf.gather(finished, parents)
        next_ids = tf.where(parent_finished, PAD_ID, next_ids)                      # (N, 1)
        tokens = tf.where(tf.equal(positions, t), next_ids,
                          tf.gather(hypotheses["tokens"], parents))
        updated = {"tokens": tokens, "finished": tf.logical_or(parent_finished,
                                                               tf.equal(next_ids, end_id))}
        if penalized:
            updated["log_probs"] = tf.reshape(tf.gather(
                tf.reshape(total, width), top_index, batch_dims=1), [-1, 1])
            updated["scores"] = tf.reshape(top_scores, [-1, 1])
            updated["lengths"] = tf.gather(new_lengths, parents)
            if use_coverage:
                updated["coverage"] = tf.gather(coverage, parents)
        else:  # the score is the log-probability
            updated["log_probs"] = tf.reshape(top_scores, [-1, 1])
        new_states = [tf.gather(s, parents) for s in new_states]
        if recorded:  # token t of hypothesis j was chosen from its parent's step
            values = {"parents": parents}
            if alignment_history:
                values["alignments"] = tf.gather(tf.cast(alignments, tf.float32), parents)
            if output_all_scores:
                values["step_scores"] = tf.reshape(top_scores, [-1])
                values["all_scores"] = tf.gather(scores, parents)
            written = {key: histories[key].write(w, t, t + 1, values[key])
                       for key, w in written.items()}
        return t + 1, tf.reshape(next_ids, [-1]), updated, new_states, written

    # Only hypothesis 0 of a row is alive at first; the others are empty beams (finished, -inf),
    # which stay below every real candidate and fill the beam only where those run out.
    first_beam_only = tf.tile(tf.equal(tf.range(k), 0), [batch_size])
    hypotheses = {"tokens": tf.zeros([rows, max_length], tf.int32),
                  "finished": tf.reshape(tf.logical_not(first_beam_only), [-1, 1]),
                  "log_probs": tf.reshape(tf.where(first_beam_only, 0.0, -float("inf")),
                                          [-1, 1])}
    if penalized:
        hypotheses["scores"] = tf.zeros([rows, 1])
        hypotheses["lengths"] = tf.zeros([rows, 1], tf.int32)
        if use_coverage:
            hypotheses["coverage"] = tf.zeros([rows, alignment_size])
    start = _tile_rows(start_tokens(start_id, batch_size), k) \
        if not isinstance(start_id, int) else start_tokens(start_id, rows)
    loop_vars = (tf.constant(0), start, hypotheses, initial_states,
                 {key: h.initial() for key, h in histories.items()})
    steps, _, hypotheses, _, written = tf.while_loop(cond, _keeping_shapes(body), loop_vars)

    def per_row(x):
        return tf.reshape(x, tf.concat([[batch_size, k], tf.shape(x)[1:]], 0))

    flat_tokens = hypotheses["tokens"]
    beam_tokens = per_row(flat_tokens)
    log_probs = per_row(hypotheses["log_probs"][:, 0])
    scores = per_row(hypotheses["scores"][:, 0]) if penalized else log_probs
    if penalized:
        lengths = per_row(hypotheses["lengths"][:, 0])
    else:  # tokens up to the first end token, or every step that ran; 0 for an empty beam
        emitted = _emitted(flat_tokens, steps, end_id)
        empty = tf.logical_and(hypotheses["finished"][:, 0], tf.logical_not(
            tf.reduce_any(tf.equal(flat_tokens, end_id), 1)))
        lengths = per_row(tf.where(empty, 0, tf.reduce_sum(tf.cast(emitted, tf.int32), 1)))
    output = {"tokens": beam_tokens[:, 0], "scores": scores[:, 0], "beam_tokens": beam_tokens,
              "beam_scores": scores, "log_probs": log_probs, "lengths": lengths}
    if recorded:
        read = {key: histories[key].read(w, steps) for key, w in written.items()}
        lineage = _lineage(read["parents"], tf.range(rows), steps)          # (N, max_length)
        emitted = tf.expand_dims(_emitted(flat_tokens, steps, end_id), -1)
        if alignment_history:
            attention = tf.where(emitted, _along(read["alignments"], lineage), 0.0)
            output["beam_attention"] = per_row(attention)
            output["attention"] = output["beam_attention"][:, 0]
        if output_all_scores:
            output["step_scores"] = per_row(_along(read["step_scores"], lineage))
            output["all_scores"] = per_row(_along(read["all_scores"], lineage))
    return output


def _lineage(parents, final_rows, steps, last_steps=None):
    """(M, max_length) int32: the row of each of ``final_rows`` (M,)'s ancestors at every step.

    ``parents`` (N, max_length): row r at step t descends from row ``parents[r, t]`` at step
    t - 1. Each line is walked back from its last step (``last_steps`` (M,), default
    ``steps - 1``); at the steps after it the line holds its final row. One ``tf.while_loop``
    over tensors of a fixed shape (no TensorList), so a TFLite file can hold it."""
    max_length = tf.shape(parents)[1]
    if last_steps is None:
        last_steps = tf.fill(tf.shape(final_rows), steps - 1)
    positions = tf.expand_dims(tf.range(max_length), 0)

    def body(t, later_rows, lineage):
        # later_rows: the rows at step t + 1 (the final rows while t + 1 > the last step).
        column = tf.gather(parents, tf.minimum(t + 1, max_length - 1), axis=1)
        rows_t = tf.where(t >= last_steps, final_rows, tf.gather(column, later_rows))
        lineage = tf.where(tf.equal(positions, t), tf.expand_dims(rows_t, 1), lineage)
        return t - 1, rows_t, lineage

    lineage = tf.broadcast_to(tf.expand_dims(final_rows, 1),
                              tf.stack([tf.shape(final_rows)[0], max_length]))
    _, _, lineage = tf.while_loop(lambda t, *_: t >= 0, body,
                                  (steps - 1, final_rows, lineage))
    return lineage


def _along(values, lineage):
    """(M, max_length, ...): ``values`` (N, max_length, ...) at ``lineage`` (M, max_length)'s
    rows, step by step."""
    columns = tf.broadcast_to(tf.range(tf.shape(lineage)[1]), tf.shape(lineage))
    return tf.gather_nd(values, tf.stack([lineage, columns], -1))


def gather_tree(step_ids, parent_ids, max_sequence_lengths, end_token):
    """The token sequences of the final beams, from the tokens and parents of every step.

    A beam search that records, at every step t, each beam's new token ``step_ids[t, b, j]``
    and the beam it extends ``parent_ids[t, b, j]`` (a beam of step t - 1) holds its
    hypotheses as a tree; this follows each final beam j of batch row b back from step
    ``max_sequence_lengths[b] - 1`` to step 0 (tfa's ``gather_tree``, time-major like it).
    Steps at or after ``max_sequence_lengths[b]`` and every step after a beam's first
    ``end_token`` hold ``end_token``. :func:`beam_search` returns its hypotheses already in
    order; this is for searches of one's own. One ``tf.while_loop`` of builtin ops (no
    TensorList): a TFLite file can hold it.

    Args:
        step_ids: int (max_time, batch, beam), the token each beam took at each step.
        parent_ids: int (max_time, batch, beam), the beam of the step before each beam
            extends, in [0, beam).
        max_sequence_lengths: int (batch,), the steps of each batch row (clipped to
            [0, max_time]).
        end_token: int, the end token.

    Returns:
        An int32 tensor (max_time, batch, beam): the beams' tokens in order.

    Raises:
        tf.errors.InvalidArgumentError: if a parent id on a traced line is outside
            [0, beam) (in a trace for TFLite, which has no assert op, it is clipped).

    Example:

    ```python
    import numpy as np
    from kzoo.models import gather_tree

    # 1 batch row, 3 beams, 3 steps (time-major: step_ids[t, 0, j])
    step_ids = np.array([[[1, 2, 3]], [[4, 5, 6]], [[7, 8, 9]]])
    parent_ids = np.array([[[0, 0, 0]], [[0, 1, 1]], [[2, 1, 2]]])
    beams = gather_tree(step_ids, parent_ids, max_sequence_lengths=[3], end_token=10)
    print(beams.numpy()[:, 0].T.tolist())    # [[2, 6, 7], [2, 5, 8], [2, 6, 9]]
    ```
    """
    step_ids = tf.cast(step_ids, tf.int32)
    parent_ids = tf.cast(parent_ids, tf.int32)
    end_token = tf.cast(end_token, tf.int32)
    shape = tf.shape(step_ids)
    max_time, batch, beams = shape[0], shape[1], shape[2]
    lengths = tf.clip_by_value(tf.cast(max_sequence_lengths, tf.int32), 0, max_time)
    last_steps = tf.reshape(tf.tile(tf.expand_dims(lengths - 1, 1), [1, beams]), [-1])  # (N,)
    in_time = tf.expand_dims(tf.range(max_time), 0) <= tf.expand_dims(last_steps, 1)
    # Flat rows b*beams + j, steps along axis 1, as beam_search's histories are.
    flat_parents = tf.reshape(tf.transpose(parent_ids, [1, 2, 0]), [-1, max_time])
    if tracing_for_tflite():
        flat_parents = tf.clip_by_value(flat_parents, 0, beams - 1)
    else:
        # The parent of step t counts for t in 1 .. last step: step 0 has none.
        used = tf.logical_and(in_time, tf.expand_dims(tf.range(max_time), 0) > 0)
        valid = tf.logical_or(tf.logical_not(used), tf.logical_and(flat_parents >= 0,
                                                                   flat_parents < beams))
        check = tf.debugging.assert_equal(
            tf.reduce_all(valid), True,
            message="gather_tree: a parent id is outside [0, beam_width)")
        with tf.control_dependencies([check]):
            flat_parents = tf.clip_by_value(flat_parents, 0, beams - 1)
    rows = tf.range(batch * beams)
    flat_parents = flat_parents + tf.expand_dims(rows // beams * beams, 1)
    lineage = _lineage(flat_parents, rows, max_time, last_steps)
    flat_ids = tf.reshape(tf.transpose(step_ids, [1, 2, 0]), [-1, max_time])
    tokens = tf.where(in_time, _along(flat_ids, lineage), end_token)
    ended = tf.cumsum(tf.cast(tf.equal(tokens, end_token), tf.int32), axis=1, exclusive=True)
    tokens = tf.where(ended > 0, end_token, tokens)
    return tf.transpose(tf.reshape(tokens, [batch, beams, max_time]), [2, 0, 1])


def gather_tree_from_array(t, parent_ids, sequence_length):
    """Any per-step beam values reordered along the final beams' lines (tfa's
    ``gather_tree_from_array``): e.g. the attention a beam search recorded at every step.

    Value ``t[s, b, j]`` belongs to beam j of step s; the result holds, at step s of final
    beam j, the value of its ancestor at step s, for s < ``sequence_length[b, j]``, and beam
    j's own value ``t[s, b, j]`` at the steps after (:func:`gather_tree` of the beam ids).

    Args:
        t: a tensor (max_time, batch * beam, ...) or (max_time, batch, beam, ...).
        parent_ids: int (max_time, batch, beam), as for :func:`gather_tree`.
        sequence_length: int (batch, beam), each final beam's length.

    Returns:
        A tensor of ``t``'s shape and dtype.

    Raises:
        tf.errors.InvalidArgumentError: as :func:`gather_tree`.

    Example:

    ```python
    import numpy as np
    from kzoo.models import gather_tree_from_array

    values = np.array([[[1., 2., 3.]], [[4., 5., 6.]], [[7., 8., 9.]]])   # (3, 1, 3)
    parent_ids = np.array([[[0, 0, 0]], [[0, 1, 1]], [[2, 1, 2]]])
    ordered = gather_tree_from_array(values, parent_ids, [[3, 3, 3]])
    print(ordered.numpy()[:, 0].T.tolist())   # [[2., 6., 7.], [2., 5., 8.], [2., 6., 9.]]
    ```
    """
    t = tf.convert_to_tensor(t)
    parent_ids = tf.cast(parent_ids, tf.int32)
    sequence_length = tf.cast(sequence_length, tf.int32)
    shape = tf.shape(parent_ids)
    max_time, batch, beams = shape[0], shape[1], shape[2]
    beam_ids = tf.broadcast_to(tf.range(beams), shape)
    # An end token that is no beam id: the lines are never cut short.
    traced = gather_tree(beam_ids, parent_ids, tf.reduce_max(sequence_length, 1), beams + 1)
    in_time = tf.transpose(tf.sequence_mask(sequence_length, max_time), [2, 0, 1])
    traced = tf.where(in_time, traced, beam_ids)                      # (max_time, batch, beam)
    grouped = tf.reshape(t, tf.stack([max_time, batch, beams, -1]))
    ordered = tf.gather(grouped, traced, axis=2, batch_dims=2)
    return tf.reshape(ordered, tf.shape(t))

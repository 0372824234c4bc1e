"""Greedy and beam-search decoding as single ``tf.while_loop`` graphs (tfa.seq2seq's
``BasicDecoder`` + ``GreedyEmbeddingSampler``, ``BeamSearchDecoder``, ``tile_batch``,
``gather_tree`` and ``dynamic_decode``, in one place).

Both searches drive a decoder through one function,

    logits, new_states, alignments = step_fn(token_ids, states)

(token_ids (N,) int32, states a list of (N, ...) tensors, logits (N, V), alignments (N, Ts) or
None). Every hypothesis writes its tokens into a preallocated (.., max_length) buffer with a
one-hot add, so the loop carries no TensorArray/TensorList (it converts to TFLite builtins) and
batch size, source length and ``max_length`` stay dynamic. A row stops at ``end_id`` (which is
written) and holds 0, kzoo's pad id, after it.

Beam search ranks hypotheses, at every step and at the end, by the GNMT score (Wu et al. 2016)

    score(Y) = log P(Y) / lp(Y) + cp(Y),     lp(Y) = ((5 + |Y|) / 6) ** length_penalty,
    cp(Y) = coverage_penalty * Σ_i log(min(Σ_t α_{t,i}, 1))

with |Y| the number of tokens including the end token and α the attention weights (source
positions that never received any weight, i.e. padding, count as covered).
Finished hypotheses stay in the beam with their score frozen.
"""

import tensorflow as tf

# Finite stand-in for log(0): -inf would turn into NaN in -inf - -inf or 0 * -inf.
NEG_INF = -1e9

# The buffers above are allocated for max_length steps up front: a request for 10**9 steps
# (a typo, or a hostile serving request) would take the whole machine's memory.
MAX_DECODE_LENGTH = 10_000


def limited_length(max_length):
    """``max_length`` as an int32 tensor, refused (InvalidArgumentError) above
    MAX_DECODE_LENGTH; in a TFLite graph, which has no assert op, capped at it instead."""
    from kzoo.layers.scan import get_scan_mode

    max_length = tf.convert_to_tensor(max_length, tf.int32)
    if get_scan_mode() == "tflite":
        return tf.minimum(max_length, MAX_DECODE_LENGTH)
    check = tf.debugging.assert_less_equal(
        max_length, MAX_DECODE_LENGTH,
        message=f"decoding: `max_length` must be at most {MAX_DECODE_LENGTH}")
    with tf.control_dependencies([check]):
        return tf.identity(max_length)


def tile_batch(x, multiplier):
    """Repeat every batch row ``multiplier`` times: (B, ...) -> (B * multiplier, ...), rows
    b*k .. b*k + k-1 being copies of row b (tfa's ``tile_batch``)."""
    x = tf.convert_to_tensor(x)
    repeated = tf.repeat(x[:, None], multiplier, axis=1)
    return tf.reshape(repeated, tf.concat([[-1], tf.shape(x)[1:]], 0))


def length_penalty(lengths, alpha):
    """GNMT length normalizer lp = ((5 + len) / 6) ** alpha (1 for alpha = 0)."""
    lengths = tf.cast(lengths, tf.float32)
    return tf.pow((5.0 + lengths) / 6.0, tf.cast(alpha, tf.float32))


def coverage_penalty(accumulated_attention, beta):
    """GNMT coverage penalty beta * Σ_i log(min(Σ_t α_{t,i}, 1)) over the last axis; positions
    with zero accumulated attention (padding) contribute 0."""
    covered = tf.where(tf.equal(accumulated_attention, 0.0),
                       tf.ones_like(accumulated_attention), accumulated_attention)
    return tf.cast(beta, tf.float32) * tf.reduce_sum(tf.math.log(tf.minimum(covered, 1.0)), -1)


def _keeping_shapes(body):
    # Reshapes by dynamic sizes lose static dimensions the loop entered with; restore them.
    def wrapped(*loop_vars):
        return tuple(tf.ensure_shape(new, old.shape)
                     for new, old in zip(body(*loop_vars), loop_vars))
    return wrapped


def _write(buffer, t, max_length, values):
    """buffer[..., t] = values, as a one-hot add (buffer is zero at column t)."""
    column = tf.one_hot(t, max_length, dtype=buffer.dtype)
    return buffer + tf.expand_dims(values, -1) * column


def greedy_search(step_fn, initial_states, *, batch_size, start_id, end_id, max_length,
                  alignment_size=None):
    """Feed the argmax token back at every step. Returns a dict:

    ``tokens`` (B, max_length) int32 (end token included, then 0), ``scores`` (B,) the
    summed log-probabilities of the emitted tokens, ``lengths`` (B,) tokens emitted (end
    included), and with ``alignment_size`` (the source length) ``attention`` (B, max_length, Ts),
    the attention weights of every emitted token (zero after the end).
    """
    max_length = limited_length(max_length)
    batch_size = tf.convert_to_tensor(batch_size, tf.int32)
    with_attention = alignment_size is not None
    tokens = tf.zeros([batch_size, max_length], tf.int32)
    attention = tf.zeros([batch_size, max_length, alignment_size if with_attention else 1])
    initial_states = [tf.convert_to_tensor(s) for s in initial_states]

    def cond(t, ids, tokens, scores, lengths, finished, attention, *states):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(t, ids, tokens, scores, lengths, finished, attention, *states):
        logits, new_states, alignments = step_fn(ids, list(states))
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        next_ids = tf.argmax(log_probs, -1, output_type=tf.int32)
        step_scores = tf.reduce_sum(
            log_probs * tf.one_hot(next_ids, tf.shape(log_probs)[-1]), -1)
        running = tf.logical_not(finished)
        next_ids = tf.where(running, next_ids, 0)
        scores = scores + tf.where(running, step_scores, 0.0)
        lengths = lengths + tf.cast(running, tf.int32)
        tokens = _write(tokens, t, max_length, next_ids)
        if with_attention:
            # expand_dims/reshape, not [:, None, :]: TFLite's builtin StridedSlice rejects that.
            weights = tf.where(tf.expand_dims(running, 1), tf.cast(alignments, tf.float32), 0.0)
            row = tf.reshape(tf.one_hot(t, max_length), [1, -1, 1])
            attention = attention + tf.expand_dims(weights, 1) * row
        finished = tf.logical_or(finished, tf.equal(next_ids, end_id))
        return (t + 1, next_ids, tokens, scores, lengths, finished, attention, *new_states)

    loop_vars = (tf.constant(0), tf.fill([batch_size], tf.constant(start_id, tf.int32)), tokens,
                 tf.zeros([batch_size]), tf.zeros([batch_size], tf.int32),
                 tf.zeros([batch_size], tf.bool), attention, *initial_states)
    result = tf.while_loop(cond, _keeping_shapes(body), loop_vars)
    output = {"tokens": result[2], "scores": result[3], "lengths": result[4]}
    if with_attention:
        output["attention"] = result[6]
    return output


def beam_search(step_fn, initial_states, *, batch_size, beam_width, start_id, end_id,
                max_length, length_penalty_weight=0.0, coverage_penalty_weight=0.0,
                alignment_size=None):
    """Beam search with GNMT length and coverage penalties (see the module docstring).

    ``initial_states`` and whatever ``step_fn`` closes over (the encoder memory) must already be
    tiled to ``batch_size * beam_width`` rows with :func:`tile_batch`. Coverage needs
    ``alignment_size`` (the source length) and a ``step_fn`` that returns alignments.

    Returns a dict: ``tokens`` (B, max_length) and ``scores`` (B,) of the best hypothesis,
    ``beam_tokens`` (B, K, max_length), ``beam_scores`` (B, K) (best first), ``log_probs``
    (B, K) and ``lengths`` (B, K).
    """
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width <= 0:
        raise ValueError(f"beam_search: `beam_width` must be a positive integer, got "
                         f"{beam_width!r}")
    k = beam_width
    max_length = limited_length(max_length)
    batch_size = tf.convert_to_tensor(batch_size, tf.int32)
    use_coverage = alignment_size is not None
    alpha = tf.cast(length_penalty_weight, tf.float32)
    beta = tf.cast(coverage_penalty_weight, tf.float32)
    initial_states = [tf.convert_to_tensor(s) for s in initial_states]

    def reorder_flat(x, parents):
        # (B*K, ...) rows follow their parent hypothesis: row b*K + j <- row b*K + parents[b, j].
        shape = tf.shape(x)
        grouped = tf.reshape(x, tf.concat([[batch_size, k], shape[1:]], 0))
        grouped = tf.gather(grouped, parents, axis=1, batch_dims=1)
        return tf.reshape(grouped, shape)

    def cond(t, ids, tokens, log_probs, scores, lengths, finished, coverage, *states):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(t, ids, tokens, log_probs, scores, lengths, finished, coverage, *states):
        logits, new_states, alignments = step_fn(ids, list(states))
        step_log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        vocab = tf.shape(step_log_probs)[-1]
        step_log_probs = tf.reshape(step_log_probs, [batch_size, k, vocab])
        # A finished hypothesis has one continuation (token 0, pad) at no cost: it stays as it is.
        frozen = tf.where(tf.equal(tf.range(vocab), 0), 0.0, NEG_INF)
        step_log_probs = tf.where(finished[:, :, None], frozen[None, None, :], step_log_probs)
        total = log_probs[:, :, None] + step_log_probs                      # (B, K, V)
        running = tf.logical_not(finished)
        new_lengths = lengths + tf.cast(running, tf.int32)                 # per parent
        candidate_scores = total / length_penalty(new_lengths, alpha)[:, :, None]
        if use_coverage:
            step_attention = tf.where(tf.reshape(running, [-1, 1]),
                                      tf.cast(alignments, tf.float32), 0.0)
            coverage = coverage + step_attention
            penalty = tf.reshape(coverage_penalty(coverage, beta), [batch_size, k])
            candidate_scores = candidate_scores + penalty[:, :, None]
        top_scores, top_index = tf.math.top_k(tf.reshape(candidate_scores, [batch_size, -1]), k)
        parents = top_index // vocab
        next_ids = top_index % vocab
        log_probs = tf.gather(tf.reshape(total, [batch_size, -1]), top_index, batch_dims=1)
        lengths = tf.gather(new_lengths, parents, batch_dims=1)
        parent_finished = tf.gather(finished, parents, batch_dims=1)
        tokens = tf.gather(tokens, parents, batch_dims=1)
        tokens = _write(tokens, t, max_length, tf.where(parent_finished, 0, next_ids))
        finished = tf.logical_or(parent_finished, tf.equal(next_ids, end_id))
        if use_coverage:
            coverage = reorder_flat(coverage, parents)
        new_states = [reorder_flat(s, parents) for s in new_states]
        return (t + 1, tf.reshape(next_ids, [-1]), tokens, log_probs, top_scores, lengths,
                finished, coverage, *new_states)

    first_beam_only = tf.where(tf.equal(tf.range(k), 0), 0.0, NEG_INF)
    loop_vars = (
        tf.constant(0),
        tf.fill([batch_size * k], tf.constant(start_id, tf.int32)),
        tf.zeros([batch_size, k, max_length], tf.int32),
        tf.tile(first_beam_only[None], [batch_size, 1]),
        tf.zeros([batch_size, k]),
        tf.zeros([batch_size, k], tf.int32),
        tf.zeros([batch_size, k], tf.bool),
        tf.zeros([batch_size * k, alignment_size if use_coverage else 1]),
        *initial_states,
    )
    result = tf.while_loop(cond, _keeping_shapes(body), loop_vars)
    beam_tokens, log_probs, scores, lengths = result[2], result[3], result[4], result[5]
    return {"tokens": beam_tokens[:, 0], "scores": scores[:, 0], "beam_tokens": beam_tokens,
            "beam_scores": scores, "log_probs": log_probs, "lengths": lengths}

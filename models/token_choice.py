"""How a decode loop picks the next token: the most likely one, or a draw (tfa.seq2seq's
``GreedyEmbeddingSampler``, ``SampleEmbeddingSampler`` and ``CustomSampler``).

A choice rule is any function

    token_ids = choose(log_probs, step)

``log_probs`` (B, V) float32 the log-softmax of a decoder step's logits, ``step`` the int32
scalar step (0 for the first token), ``token_ids`` (B,) int32. :func:`greedy_choice` takes the
argmax; :class:`TokenSampler` draws from the tempered, top-k and top-p (nucleus) restricted
distribution. :func:`kzoo.models.greedy_search` takes either, or a rule of one's own, as its
``choose`` (the one decode loop serves all three).

The draws of :class:`TokenSampler` come from :func:`uniform_draws`, a counter-based generator
written with int64 multiplications, additions and modulos only: one uniform number per (seed,
step, row), the same in TensorFlow and in a builtins-only LiteRT file (TensorFlow's random ops
are not TFLite builtins, and a stateful generator would give a served model different draws
than the Keras model it came from).
"""

import numbers

import tensorflow as tf

from kzoo.checks import fail
from kzoo.models.decoding import NEG_INF as _NEG_INF   # -inf would give NaN in softmax

# The Mersenne prime 2^31 - 1 and the MINSTD multiplier (Park and Miller): products of two
# residues stay below 2^62, so int64 arithmetic is exact in every runtime.
_PRIME = 2**31 - 1
_MULTIPLIER = 48271
_INCREMENT = 1013904223 % _PRIME
_MANTISSA_BITS = 24


def _scramble(x):
    """(A x + c)^2 mod p, twice: a non-linear bijection-ish round (squaring breaks the
    linearity of an LCG, so consecutive counters give unrelated numbers)."""
    for _ in range(2):
        x = tf.math.floormod(x * _MULTIPLIER + _INCREMENT, _PRIME)
        x = tf.math.floormod(x * x, _PRIME)
    return x


def uniform_draws(seed, step, batch_size):
    """One uniform number in [0, 1) per row, a pure function of (seed, step, row).

    A counter-based generator of int64 multiplications, additions and modulos (exact in
    TensorFlow and in LiteRT alike, where ``tf.random`` ops are not builtins): the seed, the
    step and the row index are mixed in turn by rounds of x -> (A x + c)^2 mod (2^31 - 1),
    and the low 24 bits of the result, over 2^24, are the draw (exact in float32).

    Args:
        seed: int or integer scalar tensor (any value; reduced modulo 2^31 - 1).
        step: int or integer scalar tensor, the decode step.
        batch_size: int or int32 scalar tensor, the rows B.

    Returns:
        A float32 tensor (B,) of values k / 2^24, 0 <= k < 2^24.

    Example:

    ```python
    from kzoo.models.token_choice import uniform_draws

    print(uniform_draws(seed=7, step=0, batch_size=3).numpy())   # three numbers in [0, 1)
    print(bool((uniform_draws(7, 0, 3) == uniform_draws(7, 0, 3)).numpy().all()))   # True
    ```
    """
    x = _scramble(tf.math.floormod(tf.cast(seed, tf.int64), _PRIME))
    x = _scramble(tf.math.floormod(x + tf.cast(step, tf.int64), _PRIME))
    rows = tf.range(tf.cast(batch_size, tf.int64))
    x = _scramble(tf.math.floormod(x + rows, _PRIME))
    x = tf.math.floormod(x * _MULTIPLIER + _INCREMENT, _PRIME)
    low_bits = tf.math.floormod(x, 2**_MANTISSA_BITS)
    return tf.cast(low_bits, tf.float32) * (2.0 ** -_MANTISSA_BITS)


def greedy_choice(log_probs, step):
    """The most likely token of every row: greedy decoding's choice rule.

    Args:
        log_probs: float (B, V), a decoder step's log-probabilities.
        step: the step (unused).

    Returns:
        An int32 tensor (B,), argmax over V.

    Example:

    ```python
    from kzoo.models import greedy_choice

    print(greedy_choice([[-2.0, -0.2, -3.0]], step=0).numpy())   # [1]
    ```
    """
    return tf.argmax(log_probs, -1, output_type=tf.int32)


def _is_python_number(value):
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def check_sampling(where, temperature, top_k, top_p, seed):
    """Checks sampling arguments given as Python values (tensors pass unchecked).

    Args:
        where: the owner of the arguments, which starts the message.
        temperature: must be a number > 0.
        top_k: must be an int >= 0.
        top_p: must be a number in (0, 1].
        seed: must be an int.

    Raises:
        ValueError: naming the first argument that is not valid.
    """
    if not tf.is_tensor(temperature) and not (_is_python_number(temperature) and
                                              temperature > 0):
        fail(where, f"`temperature` must be a number > 0 (towards 0 sampling becomes greedy "
                    f"decoding), got {temperature!r}")
    if not tf.is_tensor(top_k) and (isinstance(top_k, bool) or
                                    not isinstance(top_k, numbers.Integral) or top_k < 0):
        fail(where, f"`top_k` must be an integer >= 0 (0: no top-k cut), got {top_k!r}")
    if not tf.is_tensor(top_p) and not (_is_python_number(top_p) and 0 < top_p <= 1):
        fail(where, f"`top_p` must be a number in (0, 1] (1: no nucleus cut), got {top_p!r}")
    if not tf.is_tensor(seed) and (isinstance(seed, bool) or
                                   not isinstance(seed, numbers.Integral)):
        fail(where, f"`seed` must be an integer, got {seed!r}")


class TokenSampler:
    """Draws the next token from the tempered, top-k and top-p restricted distribution.

    A choice rule for :func:`kzoo.models.greedy_search` (``choose=``) and what
    ``Seq2Seq.generate(method="sample")`` runs (tfa's ``SampleEmbeddingSampler``, with
    ``softmax_temperature``, plus top-k and nucleus sampling). For each row, with logits
    ``l`` (the log-probabilities the loop passes):

        p_i ∝ exp(l_i / temperature)  over the kept tokens K, 0 elsewhere,
        K = the ``top_k`` most likely tokens (all if ``top_k`` is 0), then of those the
        fewest most likely whose probability sums to at least ``top_p`` (Holtzman et al.
        2020; the most likely token is always kept)

    and the token is the inverse CDF of p at ``u = uniform_draws(seed, step)[row]``
    (:func:`uniform_draws`): a fixed ``seed`` gives the same tokens in TensorFlow, a SavedModel
    and a LiteRT file. Tokens tied with the last kept one are kept too. A top-k or top-p that
    is a Python value meaning "off" (0, 1.0) leaves the sort out of the graph.

    The arguments may also be scalar tensors (a serving signature's inputs); they are then not
    checked, and a ``temperature`` <= 0 picks the most likely token (greedy), ``top_k`` <= 0
    keeps every token, a ``top_p`` >= 1 keeps every token and one <= 0 only the most likely.

    Args:
        temperature: float > 0 (default 1.0): below 1 sharpens the distribution, above 1
            flattens it; towards 0 the draw becomes the argmax.
        top_k: int >= 0 (default 0: no top-k cut).
        top_p: float in (0, 1] (default 1.0: no nucleus cut).
        seed: int (default 0), the seed of the draws.

    Call arguments:
        log_probs: float (B, V), a decoder step's log-probabilities (or logits).
        step: int32 scalar, the decode step (a draw depends on seed, step and row).

    Returns:
        (from a call) int32 (B,), the drawn tokens.

    Raises:
        ValueError: a Python ``temperature`` <= 0, ``top_k`` < 0 or not an int, ``top_p``
            outside (0, 1], or a ``seed`` that is not an int.

    Example:

    ```python
    import numpy as np
    from kzoo.models import TokenSampler

    log_probs = np.log(np.tile([[0.5, 0.3, 0.15, 0.05]], [8, 1])).astype("float32")
    sampler = TokenSampler(temperature=0.8, top_k=2, seed=3)
    print(sampler(log_probs, step=0).numpy())         # 8 draws of tokens 0 and 1 only
    print(TokenSampler(top_p=0.5, seed=3)(log_probs, step=0).numpy())   # only token 0
    ```
    """

    def __init__(self, temperature=1.0, top_k=0, top_p=1.0, seed=0):
        check_sampling("TokenSampler", temperature, top_k, top_p, seed)
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed

    def __repr__(self):
        return (f"TokenSampler(temperature={self.temperature!r}, top_k={self.top_k!r}, "
                f"top_p={self.top_p!r}, seed={self.seed!r})")

    def kept(self, log_probs):
        """The tokens a draw may pick: bool (B, V), the top-k and top-p cut of each row.

        Args:
            log_probs: float (B, V).

        Returns:
            A bool tensor (B, V); None when nothing is cut (top-k and top-p off).
        """
        return self._kept(self._scaled(log_probs))

    def _kept(self, scaled):
        cut_k = tf.is_tensor(self.top_k) or self.top_k > 0
        cut_p = tf.is_tensor(self.top_p) or self.top_p < 1
        if not (cut_k or cut_p):
            return None
        vocab = tf.shape(scaled)[-1]
        # top_k over the whole row is a descending sort (TFLite's TOPK_V2 builtin).
        ordered = tf.math.top_k(scaled, vocab).values
        positions = tf.expand_dims(tf.range(vocab), 0)
        keep = tf.ones_like(ordered, tf.bool)
        if cut_k:
            top_k = tf.cast(self.top_k, tf.int32)
            count = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
            keep = positions < count
        if cut_p:
            top_p = tf.cast(self.top_p, tf.float32)
            probs = tf.nn.softmax(tf.where(keep, ordered, _NEG_INF))
            before = tf.cumsum(probs, axis=-1, exclusive=True)
            keep = tf.logical_and(keep, tf.logical_or(before < top_p, positions == 0))
        threshold = tf.reduce_min(tf.where(keep, ordered, -_NEG_INF), -1, keepdims=True)
        return scaled >= threshold

    def _scaled(self, log_probs):
        log_probs = tf.cast(log_probs, tf.float32)
        if _is_python_number(self.temperature):
            return log_probs if self.temperature == 1 else log_probs / self.temperature
        temperature = tf.cast(self.temperature, tf.float32)
        return log_probs / tf.where(temperature > 0, temperature, 1.0)

    def __call__(self, log_probs, step):
        scaled = self._scaled(log_probs)
        keep = self._kept(scaled)
        weights = tf.exp(scaled - tf.reduce_max(scaled, -1, keepdims=True))
        if keep is not None:
            weights = tf.where(keep, weights, 0.0)
        cdf = tf.cumsum(weights, axis=-1)
        batch_size = tf.shape(weights)[0]
        point = uniform_draws(self.seed, step, batch_size) * cdf[:, -1]
        # The first token whose CDF passes the point: the number of tokens at or below it,
        # kept below the last token of positive weight (against rounding at the top).
        below = tf.reduce_sum(tf.cast(cdf <= tf.expand_dims(point, -1), tf.int32), -1)
        vocab = tf.shape(weights)[-1]
        last = tf.reduce_max(tf.where(weights > 0, tf.expand_dims(tf.range(vocab), 0), 0), -1)
        drawn = tf.minimum(below, last)
        if _is_python_number(self.temperature):
            return drawn
        greedy = tf.argmax(log_probs, -1, output_type=tf.int32)
        return tf.where(tf.cast(self.temperature, tf.float32) > 0, drawn, greedy)

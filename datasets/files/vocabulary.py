"""Token counts in bounded memory, for vocabularies of files larger than memory.

:class:`BoundedCounter` keeps at most ``capacity`` distinct tokens. While a file has fewer
distinct tokens than that, its counts are exact and the vocabulary is the one
``kzoo.datasets.build_vocabulary`` makes. Past it, the table is pruned to its most frequent half
each time it fills: a token first seen late in a file with many rare tokens may be missed or
under-counted (by at most the largest count pruned so far, ``max_pruned_count``), which can only
touch the least frequent tokens of the vocabulary.
"""

import heapq

import tensorflow as tf

from kzoo.datasets.text import vocabulary_of_counts
from kzoo.layers.text import tokenize

DEFAULT_CAPACITY = 200_000


class BoundedCounter:
    """Counts tokens with at most ``capacity`` distinct ones held (see the module)."""

    def __init__(self, capacity=DEFAULT_CAPACITY):
        self.capacity = int(capacity)
        self.counts = {}
        self.max_pruned_count = 0
        self.prunes = 0

    def update_tokens(self, texts, level, standardize):
        """Counts the tokens of a batch of texts (a list of str), cut as ``tokenize`` cuts."""
        if not texts:
            return
        unique, counts = token_counts(tf.constant(texts, tf.string), level, standardize)
        self.add(unique.numpy(), counts.numpy())

    def add(self, tokens, counts):
        """Adds ``counts[i]`` to token ``tokens[i]`` (bytes), pruning when the table is full."""
        table = self.counts
        for token, count in zip(tokens.tolist(), counts.tolist()):
            table[token] = table.get(token, 0) + count
        if len(table) > self.capacity:
            self._prune()

    def _prune(self):
        keep = max(self.capacity // 2, 1)
        kept = heapq.nlargest(keep, self.counts.items(), key=lambda item: item[1])
        kept_tokens = {token for token, _ in kept}
        dropped = max((c for t, c in self.counts.items() if t not in kept_tokens), default=0)
        self.max_pruned_count = max(self.max_pruned_count, dropped)
        self.counts = dict(kept)
        self.prunes += 1

    def vocabulary(self, max_size=None, min_count=1):
        """The tokens, most frequent first, ties alphabetical, as ``build_vocabulary`` orders
        them (reserved tokens left out; ``max_size`` counts the 4 reserved ids)."""
        return vocabulary_of_counts({t.decode("utf-8"): c for t, c in self.counts.items()},
                                    max_size=max_size, min_count=min_count,
                                    where="vocabulary")


def token_counts(texts, level, standardize, keep=None):
    """The distinct tokens of a batch of texts and how often each occurs (of the texts where
    ``keep`` is True, when given), as two tensors; one graph call per batch."""
    if keep is None:
        keep = tf.ones(tf.shape(texts), tf.bool)
    return _token_counts(texts, keep, level, standardize)


@tf.function(autograph=False, reduce_retracing=True)
def _token_counts(texts, keep, level, standardize):
    tokens = tokenize(tf.boolean_mask(texts, keep), level, standardize).flat_values
    unique, _, counts = tf.unique_with_counts(tokens)
    return unique, counts

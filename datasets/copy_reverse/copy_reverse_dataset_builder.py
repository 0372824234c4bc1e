"""TFDS builder: random symbol sequences for the copy and reverse memory tasks."""

import numpy as np
import tensorflow_datasets as tfds

from kzoo.datasets.builder_base import KzooBuilder

SPLITS = ("train", "validation", "test")
SEED = 7


class CopyConfig(tfds.core.BuilderConfig):
    """Sequences of ``length`` symbols drawn uniformly from ``num_symbols``."""

    def __init__(self, *, length=20, num_symbols=8, sizes=(10000, 1000, 1000), **kwargs):
        train, validation, test = sizes
        super().__init__(name=f"T{length}_k{num_symbols}_{train}_{validation}_{test}",
                         description=f"{length} symbols of {num_symbols}", **kwargs)
        self.length = length
        self.num_symbols = num_symbols
        self.sizes = dict(zip(SPLITS, sizes))


def disjoint_sequences(length, num_symbols, sizes, seed=SEED):
    """``{split: int32 array (count, length)}`` of symbols in [0, num_symbols), no sequence in
    two splits (nor twice in one): test is drawn first, then validation, then train."""
    rng = np.random.default_rng(seed)
    seen = set()
    result = {}
    for split in ("test", "validation", "train"):
        count = sizes[split]
        rows = []
        attempts = 0
        while len(rows) < count:
            attempts += 1
            if attempts > 100 * count + 1000:
                raise ValueError(f"copy: cannot draw {sum(sizes.values())} distinct sequences "
                                 f"of {length} symbols out of {num_symbols}")
            row = rng.integers(0, num_symbols, size=length, dtype=np.int32)
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                rows.append(row)
        result[split] = np.stack(rows)
    return result


class Builder(KzooBuilder):
    """Copy/reverse task data: {symbols (T,) int32}."""

    name = "kzoo_copy"
    BUILDER_CONFIGS = [CopyConfig()]

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="Random symbol sequences to copy or reverse after a delimiter.",
            features=tfds.features.FeaturesDict({
                "symbols": tfds.features.Tensor(shape=(self.builder_config.length,),
                                                dtype=np.int32),
            }),
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        sequences = disjoint_sequences(config.length, config.num_symbols, config.sizes)
        return {split: self._generate_examples(sequences[split]) for split in SPLITS}

    def _generate_examples(self, sequences):
        for i, row in enumerate(sequences):
            yield i, {"symbols": row}

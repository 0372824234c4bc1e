"""TFDS builder: the adding problem (Hochreiter & Schmidhuber 1997), generated from code."""

import numpy as np
import tensorflow_datasets as tfds

from kzoo.datasets.builder_base import KzooBuilder

# A different seed per split: the splits are independent draws (and, over real values, disjoint).
SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3}


class AddingConfig(tfds.core.BuilderConfig):
    """Sequences of ``length`` steps; ``sizes`` examples per split (train, validation, test)."""

    def __init__(self, *, length=100, sizes=(20000, 1000, 1000), **kwargs):
        train, validation, test = sizes
        super().__init__(name=f"T{length}_{train}_{validation}_{test}",
                         description=f"adding problem, T={length}", **kwargs)
        self.length = length
        self.sizes = dict(zip(("train", "validation", "test"), sizes))


def adding_examples(length, count, seed):
    """``(inputs (count, length, 2), targets (count,))``: column 0 uniform values in [0, 1),
    column 1 marks one step in the first half and one in the second (the form of Le et al. 2015
    and Arjovsky et al. 2016); the target is the sum of the two marked values. Predicting the
    mean (1.0) scores MSE 1/6 ≈ 0.167; remembering only the later marked value, 1/12 ≈ 0.083."""
    rng = np.random.default_rng(seed)
    values = rng.random((count, length), dtype=np.float32)
    half = length // 2
    first = rng.integers(0, half, size=count)
    second = rng.integers(half, length, size=count)
    markers = np.zeros((count, length), np.float32)
    rows = np.arange(count)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), targets.astype(np.float32)


class Builder(KzooBuilder):
    """Adding problem: {inputs (T, 2) float32, target float32}."""

    name = "kzoo_adding"
    BUILDER_CONFIGS = [AddingConfig()]

    def _info(self):
        length = self.builder_config.length
        return tfds.core.DatasetInfo(
            builder=self,
            description="The adding problem: sum the two marked values of a long sequence.",
            features=tfds.features.FeaturesDict({
                "inputs": tfds.features.Tensor(shape=(length, 2), dtype=np.float32),
                "target": tfds.features.Scalar(np.float32),
            }),
            supervised_keys=("inputs", "target"),
            citation="Hochreiter & Schmidhuber, Long Short-Term Memory, 1997.",
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        if config.length < 2:
            raise ValueError(f"adding: `length` must be at least 2, got {config.length}")
        return {split: self._generate_examples(config.sizes[split], SPLIT_SEEDS[split])
                for split in SPLIT_SEEDS}

    def _generate_examples(self, count, seed):
        inputs, targets = adding_examples(self.builder_config.length, count, seed)
        for i in range(count):
            yield i, {"inputs": inputs[i], "target": targets[i]}

"""TFDS builder: the adding problem (Hochreiter & Schmidhuber 1997), generated from code."""

import numpy as np
import tensorflow_datasets as tfds

from kzoo.datasets.builder_base import KzooBuilder

# A different seed per split: the splits are independent draws (and, over real values, disjoint).
SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3}
# Where the two marked steps go (see ``marker_positions``); "early" is the default.
PLACEMENTS = ("early", "halves")
# "early": the first marker is one of the first EARLY_FIRST steps (Hochreiter & Schmidhuber).
EARLY_FIRST = 10
# The shortest T with room for two distinct marked steps ("early": T/2 - 1 >= 2).
MINIMUM_LENGTH = {"early": 6, "halves": 2}


def check_placement(length, placement):
    """A ValueError naming the problem unless ``placement`` is known and fits ``length``."""
    if placement not in PLACEMENTS:
        raise ValueError(f"adding: `placement` must be one of {PLACEMENTS}, got {placement!r}")
    if length < MINIMUM_LENGTH[placement]:
        raise ValueError(f"adding: `length` must be at least {MINIMUM_LENGTH[placement]} for "
                         f"placement {placement!r}, got {length}")


class AddingConfig(tfds.core.BuilderConfig):
    """Sequences of ``length`` steps, markers placed by ``placement`` (one of ``PLACEMENTS``);
    ``sizes`` examples per split (train, validation, test)."""

    def __init__(self, *, length=100, sizes=(20000, 1000, 1000), placement="early", **kwargs):
        train, validation, test = sizes
        super().__init__(name=f"T{length}_{placement}_{train}_{validation}_{test}",
                         description=f"adding problem, T={length}, {placement} markers",
                         **kwargs)
        self.length = length
        self.placement = placement
        self.sizes = dict(zip(("train", "validation", "test"), sizes))


def marker_positions(length, count, rng, placement="early"):
    """``(first, second)``: two int arrays (count,) of distinct marked steps in [0, length).

    ``"early"`` (Hochreiter & Schmidhuber 1997, experiment 4): the first is one of the first 10
    steps (of the first T/2 - 1 when T < 22), the second one of the other steps among the first
    T/2 - 1; so both lie at least T/2 + 1 steps before the last one (no recency helps).
    ``"halves"`` (Le et al. 2015, Arjovsky et al. 2016): one anywhere in the first half, one
    anywhere in the second; the second can be the last step.
    """
    check_placement(length, placement)
    half = length // 2
    if placement == "halves":
        return rng.integers(0, half, size=count), rng.integers(half, length, size=count)
    window = half - 1  # the first T/2 - 1 steps
    first = rng.integers(0, min(EARLY_FIRST, window), size=count)
    # Uniform over the window without `first`: draw from one step fewer, skip over `first`.
    second = rng.integers(0, window - 1, size=count)
    second = second + (second >= first)
    return first, second


def adding_examples(length, count, seed, placement="early"):
    """``(inputs (count, length, 2), targets (count,))``: column 0 uniform values in [0, 1),
    column 1 marks two steps placed by ``placement`` (``marker_positions``); the target is the
    sum of the two marked values. Predicting the mean (1.0) scores MSE 1/6 ≈ 0.167; remembering
    only the later marked value, 1/12 ≈ 0.083 (with ``"early"`` that value is still more than
    T/2 steps back)."""
    rng = np.random.default_rng(seed)
    values = rng.random((count, length), dtype=np.float32)
    first, second = marker_positions(length, count, rng, placement)
    markers = np.zeros((count, length), np.float32)
    rows = np.arange(count)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), targets.astype(np.float32)


class Builder(KzooBuilder):
    """Adding problem: {inputs (T, 2) float32, target float32}; the config's ``placement``
    decides where the two marked steps go (``marker_positions``)."""

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
        check_placement(config.length, config.placement)
        return {split: self._generate_examples(config.sizes[split], SPLIT_SEEDS[split])
                for split in SPLIT_SEEDS}

    def _generate_examples(self, count, seed):
        config = self.builder_config
        inputs, targets = adding_examples(config.length, count, seed, config.placement)
        for i in range(count):
            yield i, {"inputs": inputs[i], "target": targets[i]}

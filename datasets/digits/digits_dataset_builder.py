"""TFDS builder: scikit-learn's 8x8 handwritten digits (the UCI optical digits test set)."""

import gzip
import os

import numpy as np
import tensorflow_datasets as tfds

from kzoo.datasets.builder_base import KzooBuilder

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SOURCE_FILE = "digits.csv.gz"
HELD_OUT_FRACTION = 0.15
SPLIT_SEED = 8


def packaged_source():
    """The ``digits.csv.gz`` scikit-learn ships (``load_digits`` reads it; no download)."""
    import sklearn.datasets

    return os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", SOURCE_FILE)


def read_digits(path):
    """``(images (N, 8, 8) uint8 in 0..16, labels (N,) int64)`` from a digits CSV (64 pixels
    then the label per row, gzip-compressed)."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    return table[:, :64].reshape(-1, 8, 8).astype(np.uint8), table[:, 64]


def split_indices(count, seed=SPLIT_SEED):
    """Disjoint sorted row indices: a seeded permutation, 15% validation, 15% test."""
    order = np.random.default_rng(seed).permutation(count)
    held_out = max(1, int(round(count * HELD_OUT_FRACTION)))
    return {"validation": np.sort(order[:held_out]), "test": np.sort(order[held_out:2 * held_out]),
            "train": np.sort(order[2 * held_out:])}


class Builder(KzooBuilder):
    """Digits: {image (8, 8) uint8 0..16, label 0..9, index in the source file}."""

    name = "kzoo_digits"

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="8x8 images of handwritten digits, 1797 of them, grey levels 0..16 "
                        "(scikit-learn's copy of the UCI ML optical recognition test set).",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(8, 8), dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=DIGIT_NAMES),
                "index": tfds.features.Scalar(np.int64),
            }),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            license="CC BY 4.0",
        )

    def _split_generators(self, dl_manager):
        path = self.source_file(SOURCE_FILE, packaged_source())
        images, labels = read_digits(path)
        return {split: self._generate_examples(images, labels, rows)
                for split, rows in split_indices(len(labels)).items()}

    def _generate_examples(self, images, labels, rows):
        for i in rows:
            yield int(i), {"image": images[i], "label": int(labels[i]), "index": int(i)}

"""TFDS builder: hourly temperatures in Seattle, 2010 (vega_datasets), in week-long blocks."""

import csv
import os

import numpy as np
import tensorflow_datasets as tfds

from kzoo.datasets.builder_base import KzooBuilder

SOURCE_FILE = "seattle-temps.csv"
BLOCK_HOURS = 7 * 24


def packaged_source():
    """The ``seattle-temps.csv`` vega_datasets ships (read locally, never downloaded)."""
    import importlib.util

    package = os.path.dirname(importlib.util.find_spec("vega_datasets").origin)
    return os.path.join(package, "_data", SOURCE_FILE)


def split_of_block(block):
    """Weeks interleaved: week w is validation if w % 5 == 2, test if w % 5 == 4, else train."""
    return {2: "validation", 4: "test"}.get(block % 5, "train")


def read_temperatures(path):
    """``(times [str], temperatures float32 (N,) in °F)`` from the CSV."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["date"] for r in rows], np.array([float(r["temp"]) for r in rows], np.float32)


class Builder(KzooBuilder):
    """Seattle hourly temperatures: {start, temperature (hours,)} per week-long block."""

    name = "kzoo_temperature"

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="Hourly temperatures (°F) in Seattle during 2010 (NOAA, public domain, "
                        "via vega_datasets), cut into consecutive weeks.",
            features=tfds.features.FeaturesDict({
                "start": tfds.features.Text(),
                "temperature": tfds.features.Sequence(np.float32),
            }),
            homepage="https://github.com/vega/vega-datasets",
        )

    def _split_generators(self, dl_manager):
        times, temperatures = read_temperatures(
            self.source_file(SOURCE_FILE, packaged_source()))
        return {split: self._generate_examples(times, temperatures, split)
                for split in ("train", "validation", "test")}

    def _generate_examples(self, times, temperatures, split):
        for block, start in enumerate(range(0, len(temperatures), BLOCK_HOURS)):
            if split_of_block(block) == split:
                yield block, {"start": times[start],
                              "temperature": temperatures[start:start + BLOCK_HOURS]}

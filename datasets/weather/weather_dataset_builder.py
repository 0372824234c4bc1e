"""TFDS builder: Seattle daily weather 2012-2015 (vega_datasets), and the course's toy S,C,R,T
weather sequences."""

import csv
import datetime
import os

import numpy as np
import tensorflow_datasets as tfds

from kzoo.datasets.builder_base import KzooBuilder

SEATTLE_CLASSES = ("drizzle", "fog", "rain", "snow", "sun")
MEASUREMENTS = ("precipitation", "temp_max", "temp_min", "wind")
SOURCE_FILE = "seattle-weather.csv"
# Every day is stored with the days before it (at most this many): the longest input window.
MAX_HISTORY = 28

TOY_CLASSES = ("sunny", "cloudy", "rainy", "thundery")
# Tomorrow's weather given today's (rows: today S, C, R, T): a fixed Markov chain.
TOY_TRANSITIONS = np.array([[0.70, 0.20, 0.10, 0.00],
                            [0.25, 0.45, 0.25, 0.05],
                            [0.15, 0.30, 0.45, 0.10],
                            [0.05, 0.25, 0.50, 0.20]])
TOY_LENGTH = 21
TOY_SIZES = {"train": 1000, "validation": 200, "test": 200}
TOY_SEEDS = {"train": 11, "validation": 12, "test": 13}


def packaged_source():
    """The ``seattle-weather.csv`` vega_datasets ships (read locally, never downloaded)."""
    import importlib.util

    package = os.path.dirname(importlib.util.find_spec("vega_datasets").origin)
    return os.path.join(package, "_data", SOURCE_FILE)


def month_block(date):
    """Months counted from January 2012: the unit the splits are made of."""
    return (date.year - 2012) * 12 + date.month - 1


def split_of_block(block):
    """Contiguous months, interleaved so every split spans all seasons and years: month m is
    validation if m % 5 == 2, test if m % 5 == 4, else train."""
    return {2: "validation", 4: "test"}.get(block % 5, "train")


def read_seattle(path):
    """Rows of the CSV as dicts: date (datetime.date), the measurements (float), weather."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            day = {"date": datetime.datetime.strptime(row["date"], "%Y/%m/%d").date(),
                   "weather": row["weather"]}
            day.update({m: float(row[m]) for m in MEASUREMENTS})
            rows.append(day)
    return rows


def toy_sequences(count, seed, length=TOY_LENGTH):
    """``count`` sequences of ``length`` class ids from the S,C,R,T chain (seeded)."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(TOY_TRANSITIONS, axis=1)
    sequences = np.zeros((count, length), np.int64)
    sequences[:, 0] = rng.integers(0, len(TOY_CLASSES), size=count)
    for t in range(1, length):
        draws = rng.random(count)[:, None]
        sequences[:, t] = (draws > cumulative[sequences[:, t - 1]]).sum(axis=1)
    return sequences


def toy_bayes_accuracy():
    """The best next-day accuracy any predictor reaches on the chain (stationary)."""
    values, vectors = np.linalg.eig(TOY_TRANSITIONS.T)
    stationary = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    stationary = stationary / stationary.sum()
    return float(stationary @ TOY_TRANSITIONS.max(axis=1))


class WeatherConfig(tfds.core.BuilderConfig):
    pass


class Builder(KzooBuilder):
    """Weather: ``seattle`` (each day with up to 28 days before it) and ``toy`` sequences."""

    name = "kzoo_weather"
    BUILDER_CONFIGS = [
        WeatherConfig(name="seattle", description="Seattle daily weather 2012-2015"),
        WeatherConfig(name="toy", description="sequences of a S,C,R,T Markov chain"),
    ]

    def _info(self):
        if self.builder_config.name == "toy":
            features = {"weather": tfds.features.Sequence(
                tfds.features.ClassLabel(names=TOY_CLASSES))}
            description = ("Toy weather: sequences of sunny/cloudy/rainy/thundery days from a "
                           "fixed Markov chain (the course's next-day example).")
        else:
            day = {m: np.float32 for m in MEASUREMENTS}
            day.update(weather=tfds.features.ClassLabel(names=SEATTLE_CLASSES),
                       block=np.int32)
            features = {"date": tfds.features.Text(),
                        "days": tfds.features.Sequence(tfds.features.FeaturesDict(day))}
            description = ("Seattle daily weather 2012-2015 (NOAA, public domain, via "
                           "vega_datasets): one example per day with the days before it; the "
                           "last entry of `days` is the day itself.")
        return tfds.core.DatasetInfo(builder=self, description=description,
                                     features=tfds.features.FeaturesDict(features),
                                     homepage="https://github.com/vega/vega-datasets")

    def _split_generators(self, dl_manager):
        if self.builder_config.name == "toy":
            return {split: self._generate_examples(split) for split in TOY_SIZES}
        rows = read_seattle(self.source_file(SOURCE_FILE, packaged_source()))
        return {split: self._generate_examples(split, rows)
                for split in ("train", "validation", "test")}

    def _generate_examples(self, split, rows=None):
        if rows is None:
            for i, sequence in enumerate(toy_sequences(TOY_SIZES[split], TOY_SEEDS[split])):
                yield i, {"weather": sequence}
            return
        for t in range(1, len(rows)):
            block = month_block(rows[t]["date"])
            if split_of_block(block) != split:
                continue
            days = []
            for row in rows[max(0, t - MAX_HISTORY):t + 1]:
                day = {m: row[m] for m in MEASUREMENTS}
                day.update(weather=row["weather"], block=month_block(row["date"]))
                days.append(day)
            date = rows[t]["date"].isoformat()
            yield date, {"date": date, "days": days}

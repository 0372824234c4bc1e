"""TFDS builder: numbers spelled in two languages (num2words), split over disjoint numbers."""

import numpy as np
import tensorflow_datasets as tfds

from kzoo.datasets.builder_base import KzooBuilder

LANGUAGES = ("en", "de", "fr")
# The fraction of the numbers held out for validation and for test.
HELD_OUT_FRACTION = 0.1
SPLIT_SEED = 20240605


class NumberWordsConfig(tfds.core.BuilderConfig):
    """Numbers 0 .. max_number - 1 spelled in ``source_language`` and ``target_language``."""

    def __init__(self, *, source_language="en", target_language="de", max_number=10000,
                 **kwargs):
        name = f"{source_language}_to_{target_language}_below_{max_number}"
        super().__init__(name=name, description=f"numbers below {max_number}, "
                         f"{source_language} -> {target_language}", **kwargs)
        self.source_language = source_language
        self.target_language = target_language
        self.max_number = max_number


def split_numbers(max_number, seed=SPLIT_SEED):
    """``{"train", "validation", "test"}`` -> sorted disjoint arrays of the numbers below
    ``max_number``: a seeded permutation, 10% validation, 10% test, the rest train."""
    order = np.random.default_rng(seed).permutation(max_number)
    held_out = max(1, int(round(max_number * HELD_OUT_FRACTION)))
    return {"validation": np.sort(order[:held_out]),
            "test": np.sort(order[held_out:2 * held_out]),
            "train": np.sort(order[2 * held_out:])}


class Builder(KzooBuilder):
    """Number words: {number, source text, target text}, e.g. 23, "twenty-three",
    "dreiundzwanzig"."""

    name = "kzoo_number_words"
    BUILDER_CONFIGS = [NumberWordsConfig(target_language="de"),
                       NumberWordsConfig(target_language="fr")]

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="Numbers spelled in two languages by num2words (LGPL-2.1).",
            features=tfds.features.FeaturesDict({
                "number": tfds.features.Scalar(np.int64),
                "source": tfds.features.Text(),
                "target": tfds.features.Text(),
            }),
            supervised_keys=("source", "target"),
            homepage="https://github.com/savoirfairelinux/num2words",
        )

    def _split_generators(self, dl_manager):
        # Generated from code (num2words); nothing is downloaded.
        config = self.builder_config
        for language in (config.source_language, config.target_language):
            if language not in LANGUAGES:
                raise ValueError(f"number_words: language {language!r} not supported; "
                                 f"languages: {LANGUAGES}")
        if config.max_number < 30:
            raise ValueError(f"number_words: `max_number` must be at least 30 (every split "
                             f"needs numbers), got {config.max_number}")
        return {split: self._generate_examples(numbers)
                for split, numbers in split_numbers(config.max_number).items()}

    def _generate_examples(self, numbers):
        from num2words import num2words

        config = self.builder_config
        for number in numbers:
            number = int(number)
            yield number, {"number": number,
                           "source": num2words(number, lang=config.source_language),
                           "target": num2words(number, lang=config.target_language)}

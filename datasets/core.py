"""The dataset registry behind ``kzoo.datasets.load``/``list_datasets``, and what loaders share.

A loader is registered with its options and their defaults; ``load`` checks the name, the split
and the option names, then calls it with every option filled in::

    @register_dataset("adding", pattern="many_to_one", options={"length": 100, ...},
                      description="...")
    def load_adding(*, split, batch_size, data_dir, shuffle, seed, length, ...):
        return dataset, DatasetInfo(...)

Each dataset is a TFDS builder in its own folder (``datasets/<name>/``); :func:`prepare` writes
it into ``data_dir`` once (TFDS' default location unless given), offline: the builders read files
that installed packages ship, or generate the data from code, and never download.
"""

import contextlib
import dataclasses

import tensorflow as tf

from kzoo import quiet
from kzoo.checks import close_matches

SPLITS = ("train", "validation", "test")

_DATASETS = {}
_MODULES = ("adding", "catalog", "copy_reverse", "digits", "number_words", "temperature",
            "weather")


@dataclasses.dataclass
class DatasetInfo:
    """What ``load`` returns next to the data.

    ``kzoo.build(info.suggested_models[0], **info.model_config)`` builds a model that fits the
    batches; ``kzoo.models.compile_args`` gives its loss. ``vocabularies`` maps a name
    ("source", "target", "inputs", ...) to its token list (index = id, ids 0-3 reserved: see
    ``kzoo.datasets.text``) and ``vectorizers`` to the ``TokenVectorizer`` layer that made the
    ids (to save with a model that takes raw text). ``baselines`` are reference scores on this
    split (e.g. ``persistence_accuracy``); ``statistics`` what the inputs were scaled with
    (train ``mean``/``std``); ``options`` every option the data was made with.
    """

    name: str
    split: str
    pattern: str
    suggested_models: tuple
    model_config: dict
    options: dict
    num_examples: int = None
    vocabularies: dict = dataclasses.field(default_factory=dict)
    vectorizers: dict = dataclasses.field(default_factory=dict, repr=False)
    class_names: tuple = None
    baselines: dict = dataclasses.field(default_factory=dict)
    statistics: dict = dataclasses.field(default_factory=dict)
    description: str = ""
    builder_info: object = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    loader: object
    pattern: str
    options: dict
    splits: tuple
    description: str


def register_dataset(name, *, pattern, options, description, splits=SPLITS):
    """Register ``loader(*, split, batch_size, data_dir, shuffle, seed, **options)``."""

    def decorator(loader):
        if name in _DATASETS:
            raise ValueError(f"register_dataset: a dataset named {name!r} is already registered")
        _DATASETS[name] = DatasetSpec(name, loader, pattern, dict(options), tuple(splits),
                                      description)
        return loader

    return decorator


def _load_all():
    # Loaders register on import; importing them lazily keeps `import kzoo.datasets` light.
    import importlib

    for module in _MODULES:
        importlib.import_module(f"kzoo.datasets.{module}")


def list_datasets():
    """Sorted names ``load`` accepts."""
    _load_all()
    return sorted(_DATASETS)


def dataset_spec(name):
    """The registered :class:`DatasetSpec` of ``name`` (its options and their defaults, splits,
    pattern, description); an unknown name raises ValueError listing the valid ones."""
    _load_all()
    if not isinstance(name, str) or name not in _DATASETS:
        close = close_matches(name, sorted(_DATASETS))
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dataset {name!r}{hint}; datasets: "
                         f"{', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]


def load(name, split="train", *, batch_size=32, data_dir=None, shuffle=None, seed=0,
         **options):
    """``(tf.data.Dataset of (inputs, targets) batches, DatasetInfo)`` for dataset ``name``.

    ``split`` is one of the dataset's splits (usually train, validation, test); ``data_dir``
    where the dataset is prepared (TFDS' default when None); ``shuffle`` (default: only the
    train split) shuffles the examples with ``seed``; ``options`` are the dataset's own
    (``dataset_spec(name).options`` lists them with their defaults). The batches are padded with
    0 where lengths vary (training batches bucketed by length) and prefetched.
    """
    spec = dataset_spec(name)
    if split not in spec.splits:
        raise ValueError(f"dataset {name!r}: unknown split {split!r}; splits: "
                         f"{', '.join(spec.splits)}")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in spec.options.items()) or "none"
        raise ValueError(f"dataset {name!r}: unknown option(s) {unknown}; options (with "
                         f"defaults): {valid}")
    check_positive_int(name, "batch_size", batch_size)
    if shuffle is None:
        shuffle = split == "train"
    return spec.loader(split=split, batch_size=batch_size, data_dir=data_dir,
                       shuffle=bool(shuffle), seed=int(seed), **{**spec.options, **options})


# -- option checks --------------------------------------------------------------------------------
def check_choice(dataset, option, value, choices):
    if value not in choices:
        raise ValueError(f"dataset {dataset!r}: option `{option}` must be one of "
                         f"{tuple(choices)}, got {value!r}")
    return value


def check_positive_int(dataset, option, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"dataset {dataset!r}: `{option}` must be an integer >= {minimum}, got "
                         f"{value!r}")
    return value


# -- preparing a TFDS builder offline -------------------------------------------------------------
def prepare(builder_class, config, data_dir=None, source_dir=None):
    """Build ``builder_class(config=config)`` into ``data_dir`` (once) and return the builder.

    ``config`` is a BuilderConfig, the name of a registered one, or None (a builder without
    configs). ``source_dir`` is a folder with the builder's source file(s) to read instead of
    the ones an installed package ships (the tests prepare from each builder's ``dummy_data``).
    """
    if getattr(config, "name", None) in builder_class.builder_configs:
        config = config.name  # TFDS refuses an equal custom config under a registered name
    # A config built from the loader's options is "custom" to TFDS, which warns of it each time.
    with quiet.dropped_log_messages("absl", "Using custom data configuration"), \
            _without_tfds_progress_bars():
        builder = builder_class(config=config, data_dir=data_dir, source_dir=source_dir)
        builder.download_and_prepare()
    return builder


@contextlib.contextmanager
def _without_tfds_progress_bars():
    """TFDS' progress bars off for the block (unless verbose), then as they were."""
    from tensorflow_datasets.core.utils import tqdm_utils

    if quiet.is_verbose():
        yield
        return
    previous = getattr(tqdm_utils, "_active", True)
    tqdm_utils.display_progress_bar(False)
    try:
        yield
    finally:
        tqdm_utils.display_progress_bar(previous)


def as_numpy(builder, split):
    """Every example of ``split`` as a list of dicts of NumPy values (small datasets only)."""
    import tensorflow_datasets as tfds

    return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


# -- batching -------------------------------------------------------------------------------------
BUCKET_BOUNDARIES = (8, 16, 32, 64, 128, 256, 512)


def finish(dataset, *, batch_size, shuffle, seed, num_examples=None, padded=False,
           bucket_length=None):
    """Shuffle (seeded), batch and prefetch ``dataset`` of ``(inputs, targets)``.

    ``padded`` pads variable lengths with 0; with ``bucket_length(inputs, targets) -> length``
    a shuffled split is batched by length buckets (less padding per batch), an unshuffled one
    keeps its order.
    """
    # No in-memory .cache(): two live iterators over a partly filled cache can see a truncated
    # split (seen in CI: 6 of 20 examples after a `next(iter(data))` followed by a full pass).
    if shuffle:
        buffer = num_examples if num_examples else 10_000
        dataset = dataset.shuffle(min(buffer, 50_000), seed=seed, reshuffle_each_iteration=True)
    if bucket_length is not None and shuffle:
        boundaries = list(BUCKET_BOUNDARIES)
        dataset = dataset.bucket_by_sequence_length(
            lambda x, y: bucket_length(x, y), boundaries,
            [batch_size] * (len(boundaries) + 1))
    elif padded or bucket_length is not None:
        dataset = dataset.padded_batch(batch_size)
    else:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)

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
from kzoo.checks import check_positive_int, close_matches

SPLITS = ("train", "validation", "test")

_DATASETS = {}
_MODULES = ("adding", "catalog", "copy_reverse", "digits", "number_words", "temperature",
            "weather")


@dataclasses.dataclass
class DatasetInfo:
    """What :func:`load` returns next to the data: how to build a model for it, and more.

    ``kzoo.build(info.suggested_models[0], **info.model_config)`` builds a model that fits the
    batches, and ``kzoo.models.compile_args(info.suggested_models[0], **info.model_config)``
    gives its loss and metrics. Every argument is kept as the attribute of the same name.

    Args:
        name: the dataset's name, as given to ``load``.
        split: the split the data is, e.g. ``"train"``.
        pattern: its I/O pattern: ``"one_to_one"``, ``"one_to_many"``, ``"many_to_one"``,
            ``"many_to_many"`` or ``"seq2seq"``.
        suggested_models: names of ``kzoo.list_models()`` that fit the data, best first.
        model_config: the keyword arguments of ``kzoo.build`` that fit the data (input and
            output sizes, vocabulary sizes, start and end ids).
        options: every option the data was made with, defaults included.
        num_examples: how many examples the split holds (None when unknown).
        vocabularies: ``{name: token list}`` (``"source"``, ``"target"``, ``"inputs"``...)
            whose index is the id; ids 0-3 are the reserved pad, start, end and unknown.
        vectorizers: ``{name: TokenVectorizer}``: the layers that made the ids, to save with
            a model that takes raw text.
        class_names: the name of each class id, for classification (None otherwise).
        baselines: reference scores on this split, e.g. ``persistence_accuracy`` (tomorrow's
            class is today's) or ``mean_predictor_mse``.
        statistics: what the inputs were scaled with, e.g. the train split's ``mean`` and
            ``std``.
        description: one line saying what the data is.
        builder_info: the TFDS ``DatasetInfo`` of the dataset's builder (features, splits,
            citation).

    Example:

    ```python
    import kzoo
    import kzoo.datasets

    data, info = kzoo.datasets.load("digits", split="validation", batch_size=16)
    print(info.pattern, info.num_examples, info.class_names[:3])
    # many_to_one 270 ('zero', 'one', 'two')
    model = kzoo.build(info.suggested_models[0], **info.model_config, units=8)
    images, labels = next(iter(data))
    print(model(images).shape)            # (16, 10)
    ```
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
    """Names every dataset :func:`load` accepts.

    Returns:
        The registered dataset names, a sorted list of str.

    Example:

    ```python
    import kzoo.datasets

    print(kzoo.datasets.list_datasets())     # ['adding', 'copy', 'digits', ...]
    ```
    """
    _load_all()
    return sorted(_DATASETS)


def dataset_spec(name):
    """Describes dataset ``name``: its options and their defaults, splits and pattern.

    Args:
        name: a name of :func:`list_datasets`.

    Returns:
        A frozen dataclass with ``name``, ``pattern`` (its I/O pattern), ``options`` (a dict of
        every option :func:`load` takes for it, with its default), ``splits`` (a tuple of
        split names), ``description`` (one line) and ``loader`` (the function ``load`` calls).

    Raises:
        ValueError: if ``name`` is not a registered dataset; the message lists the valid
            names (and the closest one).

    Example:

    ```python
    import kzoo.datasets

    spec = kzoo.datasets.dataset_spec("weather")
    print(spec.options)       # {'task': 'many_to_one', 'window': 4}
    print(spec.splits)        # ('train', 'validation', 'test')
    ```
    """
    _load_all()
    if not isinstance(name, str) or name not in _DATASETS:
        close = close_matches(name, sorted(_DATASETS))
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dataset {name!r}{hint}; datasets: "
                         f"{', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]


def load(name, split="train", *, batch_size=32, data_dir=None, shuffle=None, seed=0,
         **options):
    """Loads dataset ``name`` as batches of ``(inputs, targets)`` and a :class:`DatasetInfo`.

    The first load prepares the dataset into ``data_dir`` (a TFDS dataset, written once):
    nothing is downloaded, every built-in dataset is generated from code or read from files
    installed packages ship; ``imdb_reviews`` and ``ted_hrlr_translate`` load only where
    ``tfds.builder(name).download_and_prepare()`` already put them. The batches are padded with
    0 where lengths vary (a shuffled split is batched by length buckets, for less padding) and
    prefetched. Each dataset, its options and its splits: docs/datasets.md.

    Args:
        name: a name of :func:`list_datasets`, e.g. ``"number_words"``.
        split: one of the dataset's splits (``dataset_spec(name).splits``; usually
            ``"train"``, ``"validation"``, ``"test"``). Default ``"train"``.
        batch_size: examples per batch, a positive int (default 32).
        data_dir: where the dataset is prepared and read (str or path-like); None (default)
            is TFDS' default (``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``).
        shuffle: whether to shuffle the examples (with ``seed``, reshuffled every epoch);
            None (default) shuffles the train split only.
        seed: the shuffling seed, an int (default 0).
        **options: the dataset's own options, e.g. ``max_number=1000`` for
            ``"number_words"``; ``dataset_spec(name).options`` lists them with their defaults.

    Returns:
        A tuple ``(data, info)``: ``data`` a ``tf.data.Dataset`` of ``(inputs, targets)``
        batches (for seq2seq ``((source_ids, target_in_ids), target_out_ids)``), ``info`` its
        :class:`DatasetInfo`.

    Raises:
        ValueError: if ``name``, ``split`` or an option name is unknown (the message lists the
            valid ones), ``batch_size`` is not a positive int, an option's value is not valid
            for the dataset, or a catalog dataset is not prepared in ``data_dir``.

    Example:

    ```python
    import kzoo
    import kzoo.datasets

    data, info = kzoo.datasets.load("adding", split="train", batch_size=8, length=10,
                                    num_train=32, num_validation=8, num_test=8)
    inputs, targets = next(iter(data))
    print(inputs.shape, targets.shape)    # (8, 10, 2) (8, 1)
    model = kzoo.build("many_to_one_gru", **info.model_config, units=8)
    model.compile("adam", **kzoo.models.compile_args("many_to_one_gru", **info.model_config))
    model.fit(data, epochs=1, verbose=0)
    ```
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
    check_positive_int(f"dataset {name!r}", "batch_size", batch_size)
    if shuffle is None:
        shuffle = split == "train"
    return spec.loader(split=split, batch_size=batch_size, data_dir=data_dir,
                       shuffle=bool(shuffle), seed=int(seed), **{**spec.options, **options})


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

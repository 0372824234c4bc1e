"""The data ``train`` reads: datasets by name, epochs in a resumable order, whole batches.

``load_data`` gives the batches of a dataset name (``example``: random data of a model's own
example contract; the rest: ``kzoo.datasets``). ``epoch_stream`` orders them so that epoch e
depends on ``(seed, e)`` only (a resumed run sees what an uninterrupted one saw);
``even_batches`` cuts each batch to a multiple of a strategy's replica count, ``full_batches``
keeps the batches of one size (a stateful model's), and ``tbptt_chunks`` cuts each batch into
the consecutive windows of truncated backpropagation through time.
"""

import types

from kzoo.training.data_file import DataFile, load_file_split, run_data_file

EXAMPLE_DATASET = "example"


def list_datasets():
    """The dataset names :func:`load_data` (and so ``train``) accepts.

    Returns:
        ``"example"`` (random data of a model's own example shapes, for smoke tests), then
        ``kzoo.datasets.list_datasets()``.
    """
    import kzoo.datasets

    return [EXAMPLE_DATASET, *kzoo.datasets.list_datasets()]


def load_data(dataset, split, *, batch_size, model_name, model_config=None, seed=0,
              data_dir=None, options=None):
    """The batches of a dataset's split, and what a model needs to fit them.

    Args:
        dataset: a name of :func:`list_datasets`, or the user's own file (a
            :class:`~kzoo.training.data_file.DataFile`, read by ``kzoo.datasets.from_file``).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        batch_size: the rows per batch.
        model_name: the model the data is for (``"example"`` draws that model's example
            batches; ``kzoo.datasets`` ignores it).
        model_config: ``kzoo.build`` keyword arguments of that model (``"example"`` only).
        seed: the seed of the shuffle (and of ``"example"``'s random data).
        data_dir: where ``kzoo.datasets`` prepares datasets (None: TFDS' default).
        options: the dataset's options (a file's: its reader's); ``"example"`` takes ``size``
            (examples per split, default 64).

    Returns:
        ``(batches, info)``: a ``tf.data.Dataset`` of ``(inputs, targets)`` batches, and the
        dataset's info (``info.model_config``: the ``kzoo.build`` arguments the data needs;
        ``info.vocabularies``: ``{name: token list}``, possibly empty).

    Raises:
        ValueError: an unknown dataset, split or option.
    """
    options = dict(options or {})
    if isinstance(dataset, DataFile):
        return load_file_split(dataset, split, batch_size=batch_size, seed=seed,
                               options=options)
    if dataset == EXAMPLE_DATASET:
        return _example_data(split, batch_size=batch_size, model_name=model_name,
                             model_config=model_config or {}, seed=seed, **options)
    import kzoo.datasets as datasets

    return datasets.load(dataset, split=split, batch_size=batch_size, data_dir=data_dir,
                         seed=seed, **options)


def _example_data(split, *, batch_size, model_name, model_config, seed, size=64):
    """``size`` random examples of ``kzoo.models.example_batch``, another draw per split."""
    import tensorflow as tf

    import kzoo.models as km
    from kzoo.datasets.core import SPLITS

    if split not in SPLITS:
        raise ValueError(f"dataset {EXAMPLE_DATASET!r}: unknown split {split!r}; splits: "
                         f"{', '.join(SPLITS)}")
    inputs, targets = km.example_batch(model_name, model_config, batch_size=int(size),
                                       seed=1000 * seed + SPLITS.index(split))
    if isinstance(inputs, list):
        inputs = tuple(inputs)
    data = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch_size)
    info = types.SimpleNamespace(name=EXAMPLE_DATASET, model_config={}, vocabularies={},
                                 suggested_models=[model_name])
    return data, info


def load_run_split(config, split, batch_size, data_dir=None):
    """The batches of a split of a run's dataset, as the run was trained on it.

    A dataset without ``split`` falls back to its validation split, then its train split (and
    says so on stdout).

    Args:
        config: the run's config (``read_run``).
        split: the split wanted.
        batch_size: the rows per batch.
        data_dir: where datasets are prepared.

    Returns:
        ``(batches, the split used, the split's DatasetInfo)``.

    Raises:
        ValueError: the dataset cannot be loaded.
        FileNotFoundError: the data file of a run trained on one is gone.
    """
    dataset = run_data_file(config) or config["dataset"]
    for candidate in dict.fromkeys([split, "validation", "train"]):
        try:
            data, info = load_data(dataset, candidate, batch_size=batch_size,
                                model_name=config["model"],
                                model_config=config["model_config"], seed=config["seed"],
                                data_dir=data_dir, options=config.get("dataset_options"))
        except (ValueError, KeyError):
            if candidate == "train":
                raise
            continue
        if candidate != split:
            print(f"dataset {config['dataset']!r} has no {split!r} split; using {candidate!r}")
        return data, candidate, info


# -- epochs ----------------------------------------------------------------------------------------
def epoch_stream(batches, start_epoch, epochs, seed, steps_per_epoch=None):
    """The batches of epochs ``start_epoch`` to ``epochs - 1`` as one dataset.

    Epoch e is the batches in the order of a shuffle seeded by ``(seed, e)`` alone, so a
    resumed run sees what an uninterrupted one saw. The batches are cached (their first pass
    fixes their composition) and shuffled whole, which keeps the loader's padding and bucketing.

    Args:
        batches: a ``tf.data.Dataset`` of batches.
        start_epoch: the first epoch.
        epochs: the epoch to stop before.
        seed: the run's seed.
        steps_per_epoch: the most batches per epoch (None: all).

    Returns:
        ``(stream, steps)``: the dataset, and the batches of each epoch.

    Raises:
        ValueError: ``batches`` is empty.
    """
    batches = batches.cache()
    count = count_batches(batches)
    if count == 0:
        raise ValueError("the training split has no batch")
    steps = min(count, steps_per_epoch) if steps_per_epoch else count

    def one_epoch(epoch):
        return batches.shuffle(count, seed=seed * 100003 + epoch,
                               reshuffle_each_iteration=False).take(steps)

    stream = one_epoch(start_epoch)
    for epoch in range(start_epoch + 1, epochs):
        stream = stream.concatenate(one_epoch(epoch))
    return stream, steps


def count_batches(batches):
    """The number of elements of a ``tf.data.Dataset`` (counted by a pass when its
    cardinality is unknown).

    Args:
        batches: a finite ``tf.data.Dataset``.

    Returns:
        An int.
    """
    cardinality = int(batches.cardinality())
    if cardinality >= 0:
        return cardinality
    return int(batches.reduce(0, lambda count, _: count + 1))


# -- batches for strategies and truncated backpropagation through time -----------------------------
def even_batches(batches, replicas):
    """Cuts every batch to a multiple of ``replicas`` rows, so each replica gets an equal share.

    A batch loses its last ``rows % replicas`` rows; a batch of fewer rows than ``replicas`` is
    dropped whole. A strategy splits each batch over its replicas: a share of another size
    breaks Keras' first-batch build (it averages the replicas' shares), and a replica whose
    share is empty gets a (0, 0) batch, whose sequences have no step. A loader's last partial
    batch, or a bucket's (text batched by length), can be any size.

    Args:
        batches: a ``tf.data.Dataset`` of ``(inputs, targets)`` batches.
        replicas: the strategy's replica count.

    Returns:
        The dataset of cut batches.
    """
    import tensorflow as tf

    def rows(inputs, targets):
        return tf.shape(tf.nest.flatten(inputs)[0])[0] // replicas * replicas

    def cut(inputs, targets):
        kept = rows(inputs, targets)
        return tf.nest.map_structure(lambda x: x[:kept], (inputs, targets))

    return batches.filter(lambda *batch: rows(*batch) > 0).map(cut)


def tbptt_chunks(batches, window):
    """Cuts every batch into consecutive chunks of ``window`` steps, for truncated BPTT.

    A batch of ``(inputs (B, T, ...), targets)`` gives ``ceil(T / window)`` chunks; when
    ``window`` does not divide T the last chunk holds the remaining ``T % window`` steps.

    Trained on a stateful model (row i of a chunk continues row i of the previous chunk) whose
    state ``kzoo.training.ResetStatesEvery`` zeroes at the first chunk of each batch, this is
    truncated BPTT: the forward pass carries the state over the whole sequence, gradients flow
    back at most ``window`` steps. Sequences must have one static length T.

    Targets with the inputs' time axis (per-step targets ``(B, T, ...)``: a synced dataset) are
    cut like the inputs. A target without it (one per sequence, as a forecast of the hours after
    a window, ``(B, horizon)``) goes whole with every chunk: the loss broadcasts it over the
    chunk's steps as it broadcasts it over all T steps without truncation.

    Args:
        batches: a ``tf.data.Dataset`` of ``(inputs, targets)`` batches.
        window: the chunk length K, from 1 to T.

    Returns:
        ``(chunks, chunks_per_batch)``: the dataset of chunks, batch after batch, and how many
        chunks each batch gives.

    Raises:
        ValueError: sequences without one static length, or ``window`` not in 1..T.

    Example:

    ```python
    import numpy as np
    import tensorflow as tf
    import kzoo.training

    steps = np.arange(2 * 24, dtype="float32").reshape(2, 24, 1)   # 2 sequences of 24 steps
    batches = tf.data.Dataset.from_tensors((steps, steps[..., 0]))
    chunks, per_batch = kzoo.training.tbptt_chunks(batches, 10)
    print(per_batch, [tuple(x.shape) for x, _ in chunks])   # 3 [(2, 10, 1), (2, 10, 1), (2, 4, 1)]
    ```
    """
    import tensorflow as tf

    inputs_spec, targets_spec = batches.element_spec
    length = tf.nest.flatten(inputs_spec)[0].shape[1]
    if length is None:
        raise ValueError(f"truncated BPTT needs sequences of one static length; this dataset's "
                         f"inputs are {inputs_spec}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"--tbptt must be a positive number of steps, got {window!r}")
    if window > length:
        raise ValueError(f"--tbptt {window} is longer than the sequences ({length} steps)")
    full, rest = divmod(length, window)
    per_step = tf.nest.map_structure(
        lambda spec: spec.shape.rank >= 2 and spec.shape[1] in (None, length), targets_spec)

    def full_chunks(x, cut=True):
        """(full, B, window, ...): the full chunks of x, or x once per chunk."""
        if not cut:
            return tf.repeat(x[None], full, axis=0)
        shape = tf.shape(x)
        chunks = tf.reshape(x[:, :full * window],
                            tf.concat([shape[:1], [full, window], shape[2:]], 0))
        return tf.transpose(chunks, [1, 0, *range(2, x.shape.rank + 1)])

    def last_chunk(x, cut=True):
        return x[:, full * window:] if cut else x

    def split(inputs, targets):
        def chunks(take):
            return (tf.nest.map_structure(take, inputs),
                    tf.nest.map_structure(take, targets, per_step))

        result = tf.data.Dataset.from_tensor_slices(chunks(full_chunks))
        if rest:
            result = result.concatenate(tf.data.Dataset.from_tensors(chunks(last_chunk)))
        return result

    return batches.flat_map(split), full + (rest > 0)


def full_batches(batches, batch_size):
    """Keeps the batches of exactly ``batch_size`` rows, their batch axis static.

    A stateful model is built for one batch size, since row i of every batch continues row i
    of the batch before: a last partial batch is dropped.

    Args:
        batches: a ``tf.data.Dataset`` of ``(inputs, targets)`` batches.
        batch_size: the rows a batch must have.

    Returns:
        The dataset of full batches.
    """
    import tensorflow as tf

    def is_full(inputs, targets):
        return tf.equal(tf.shape(tf.nest.flatten(inputs)[0])[0], batch_size)

    def static_batch(inputs, targets):
        return tf.nest.map_structure(
            lambda x: tf.ensure_shape(x, [batch_size] + [None] * (x.shape.rank - 1)),
            (inputs, targets))

    return batches.filter(is_full).map(static_batch)

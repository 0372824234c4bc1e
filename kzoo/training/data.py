"""The data ``train`` reads: datasets by name, epochs in a resumable order, whole batches.

``load_data`` gives the batches of a dataset name (``example``: random data of a model's own
example contract; the rest: ``kzoo.datasets``). ``epoch_stream`` orders them so that epoch e
depends on ``(seed, e)`` only (a resumed run sees what an uninterrupted one saw);
``even_batches`` cuts each batch to a multiple of a strategy's replica count, ``full_batches``
keeps the batches of one size (a stateful model's), and ``tbptt_chunks`` cuts each batch into
the consecutive windows of truncated backpropagation through time.
"""

import types

EXAMPLE_DATASET = "example"


def list_datasets():
    """Dataset names ``train`` accepts: ``example`` (random data from the model's own example
    contract, for smoke tests) and whatever ``kzoo.datasets`` provides."""
    names = [EXAMPLE_DATASET]
    try:
        import kzoo.datasets as datasets
        names += list(datasets.list_datasets())
    except (ImportError, AttributeError):
        pass
    return names


def load_data(dataset, split, *, batch_size, model_name, model_config=None, seed=0,
              data_dir=None, options=None):
    """``(tf.data.Dataset of (inputs, targets) batches, info)`` for a dataset name.

    ``info.model_config`` is what the model needs to fit the data, ``info.vocabularies`` a dict
    of token lists (possibly empty). ``example`` draws ``options["size"]`` (default 64) random
    examples from ``kzoo.models.example_batch(model_name, model_config)``.
    """
    options = dict(options or {})
    if dataset == EXAMPLE_DATASET:
        return _example_data(split, batch_size=batch_size, model_name=model_name,
                             model_config=model_config or {}, seed=seed, **options)
    import kzoo.datasets as datasets

    return datasets.load(dataset, split=split, batch_size=batch_size, data_dir=data_dir,
                         seed=seed, **options)


_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}


def _example_data(split, *, batch_size, model_name, model_config, seed, size=64):
    import tensorflow as tf

    import kzoo.models as km

    if split not in _SPLIT_SEEDS:
        raise ValueError(f"dataset 'example': unknown split {split!r}; splits: "
                         f"{sorted(_SPLIT_SEEDS)}")
    inputs, targets = km.example_batch(model_name, model_config, batch_size=int(size),
                                       seed=1000 * seed + _SPLIT_SEEDS[split])
    if isinstance(inputs, list):
        inputs = tuple(inputs)
    data = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch_size)
    info = types.SimpleNamespace(name=EXAMPLE_DATASET, model_config={}, vocabularies={},
                                 suggested_models=[model_name])
    return data, info


def epoch_stream(batches, start_epoch, epochs, seed, steps_per_epoch=None):
    """Batches of epochs ``start_epoch..epochs-1`` in one dataset, epoch e in the order of a
    shuffle seeded by ``(seed, e)`` alone, so a resumed run sees what an uninterrupted one saw.

    The batches are cached (their first pass fixes their composition) and shuffled as whole
    batches, which keeps the loader's padding and bucketing.
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
    cardinality = int(batches.cardinality())
    if cardinality >= 0:
        return cardinality
    return int(batches.reduce(0, lambda count, _: count + 1))



def load_run_split(config, split, batch_size, data_dir=None):
    """The batches of ``split`` for a run; a dataset without that split falls back to
    validation, then train (said on stdout)."""
    for candidate in dict.fromkeys([split, "validation", "train"]):
        try:
            data, _ = load_data(config["dataset"], candidate, batch_size=batch_size,
                                model_name=config["model"],
                                model_config=config["model_config"], seed=config["seed"],
                                data_dir=data_dir, options=config.get("dataset_options"))
        except (ValueError, KeyError):
            if candidate == "train":
                raise
            continue
        if candidate != split:
            print(f"dataset {config['dataset']!r} has no {split!r} split; using {candidate!r}")
        return data, candidate


# -- batches for strategies and truncated backpropagation through time -------------------------
def even_batches(batches, replicas):
    """Every batch cut to a multiple of ``replicas`` rows (its last ``rows % replicas`` rows
    dropped; a batch of fewer rows is dropped whole), so that each replica gets an equal share
    of it.

    A strategy splits each batch over its replicas: a share of another size breaks Keras'
    first-batch build (it averages the replicas' shares), and a replica whose share is empty
    gets a (0, 0) batch, whose sequences have no step. A loader's last partial batch, or a
    bucket's (text batched by length), can be any size.
    """
    import tensorflow as tf

    def rows(inputs, targets):
        return tf.shape(tf.nest.flatten(inputs)[0])[0] // replicas * replicas

    def cut(inputs, targets):
        kept = rows(inputs, targets)
        return tf.nest.map_structure(lambda x: x[:kept], (inputs, targets))

    return batches.filter(lambda *batch: rows(*batch) > 0).map(cut)



def tbptt_chunks(batches, window):
    """Cut every batch of ``(inputs (B, T, ...), targets)`` into ``ceil(T / window)``
    consecutive chunks of ``window`` steps; when ``window`` does not divide T the last chunk
    holds the remaining ``T % window`` steps.

    Trained on a stateful model (row i of a chunk continues row i of the previous chunk) whose
    state :class:`ResetStatesEvery` zeroes at the first chunk of each batch, this is truncated
    BPTT: the forward pass carries the state over the whole sequence, gradients flow back at
    most ``window`` steps. Sequences must have one static length T.

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
      >>> chunks, n = tbptt_chunks(batches_of_24_steps, 10)   # chunks of 10, 10 and 4 steps
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
    """Only the batches of exactly ``batch_size`` rows (a last partial batch is dropped), their
    batch axis static: a stateful model is built for one batch size, since row i of every batch
    continues row i of the batch before."""
    import tensorflow as tf

    def is_full(inputs, targets):
        return tf.equal(tf.shape(tf.nest.flatten(inputs)[0])[0], batch_size)

    def static_batch(inputs, targets):
        return tf.nest.map_structure(
            lambda x: tf.ensure_shape(x, [batch_size] + [None] * (x.shape.rank - 1)),
            (inputs, targets))

    return batches.filter(is_full).map(static_batch)

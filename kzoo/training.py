"""The trainer behind ``kzoo train``: a run directory, resume, clipping, truncated BPTT, strategies.

    run = kzoo.training.train("seq2seq_attention", "number_words", out="runs/translator")
    run.history["loss"], run.model, run.directory

A run directory holds::

    config.json        the command's settings (model, model_config, dataset, epochs, seed...)
    model.keras        the trained model (written when training ends); a seq2seq model trained
                       on text carries the dataset's vocabularies (``model.translate``)
    vocab/*.json       the dataset's vocabularies (token lists, index = id), if it has any
    history.json       one entry per completed epoch (written at each epoch's end)
    backup/            keras.callbacks.BackupAndRestore: weights, optimizer state, epoch
    logs/              TensorBoard event files
    plots/*.png        training curves (and an attention heatmap for seq2seq with attention)
    export/            ``kzoo export``'s artifacts, and report.json: the verification and the
                       SHA-256 of the model.keras each artifact was exported from

Resume: rerunning the same command continues after the last completed epoch; rerunning a
finished one (its model.keras saved after its last epoch) says so and changes no file. The run is
deterministic (``keras.utils.set_random_seed(seed)`` and
``tf.config.experimental.enable_op_determinism()``; the data order of epoch e is a function of
``seed`` and ``e`` only), so a killed and resumed run ends with the weights of an uninterrupted one.
Not restored on resume: the state of dropout's random generator (a model trained with dropout
resumes with a different dropout noise sequence) and an epoch interrupted half-way (redone).

Strategies: ``default`` (one device), ``mirrored`` (``tf.distribute.MirroredStrategy`` over the
GPUs, or 2 logical CPU devices on a CPU-only machine, through ``fit``), ``multiworker``
(``MultiWorkerMirroredStrategy`` over ``TF_CONFIG``; Keras 3's ``fit`` fails under it, so the
step runs through ``strategy.run`` and the gradients are summed across replicas with
``strategy.reduce`` before one clipped optimizer update; ``--batch-size`` is the global batch).
With several replicas each batch is cut to a multiple of the replica count (:func:`even_batches`:
a loader's last batch and a length bucket's can have any size), so every replica gets an equal
share.
"""

import dataclasses
import json
import os
import pathlib
import sys
import types
import warnings
import zipfile

STRATEGIES = ("default", "mirrored", "multiworker")
EXAMPLE_DATASET = "example"
DEFAULT_CLIPNORM = 1.0
RUN_FILES = ("config.json", "model.keras", "history.json")

# The settings that define a run: a rerun into the same directory with other values is refused,
# since resuming would mix two runs (``epochs`` may grow: training continues).
_IDENTITY_KEYS = ("model", "model_config", "dataset", "dataset_options", "batch_size",
                  "learning_rate", "clipnorm", "seed", "strategy", "tbptt", "steps_per_epoch")


# -- data -----------------------------------------------------------------------------------------
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
    import tensorflow as tf

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


# -- truncated backpropagation through time -------------------------------------------------------
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


def _reset_model_states(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_state"):
            layer.reset_state()


def _callback_base():
    import keras

    return keras.callbacks.Callback


class ResetStatesEvery:
    """A Keras callback factory: zero the model's recurrent states every ``n`` batches (at the
    start of each full sequence of truncated BPTT) and at every epoch's start."""

    def __new__(cls, n):
        base = _callback_base()

        class _ResetStatesEvery(base):
            def on_epoch_begin(self, epoch, logs=None):
                _reset_model_states(self.model)

            def on_train_batch_begin(self, batch, logs=None):
                if batch % n == 0:
                    _reset_model_states(self.model)

            def on_test_begin(self, logs=None):
                _reset_model_states(self.model)

            def on_test_batch_begin(self, batch, logs=None):
                if batch % n == 0:
                    _reset_model_states(self.model)

        return _ResetStatesEvery()


# -- run directory --------------------------------------------------------------------------------
def write_json(path, value):
    """Write ``value`` as JSON atomically (a kill never leaves half a file)."""
    path = pathlib.Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2, default=_json_default) + "\n")
    os.replace(temporary, path)


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_json(path, default=None):
    path = pathlib.Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}); was it truncated?") \
            from error


def read_run(run_dir):
    """The config of a finished run directory; FileNotFoundError names what is missing."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory {str(run_dir)!r}")
    for name in ("config.json", "model.keras"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{str(run_dir)!r} is not a finished run: no {name} "
                                    f"(train into it with `kzoo train ... --out {run_dir}`)")
    return read_json(run_dir / "config.json")


def load_run_model(run_dir):
    import keras

    import kzoo.layers  # noqa: F401  (registers the layers for deserialization)
    import kzoo.models.zoo  # noqa: F401

    path = pathlib.Path(run_dir) / "model.keras"
    try:
        return keras.saving.load_model(path)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
        if not path.is_file():
            raise
        # (Keras says "File not found" of a file that is not a whole zip archive.)
        raise ValueError(f"{str(path)!r} is not a readable .keras model (a truncated or "
                         f"corrupted file?)") from error


def read_vocabularies(run_dir):
    directory = pathlib.Path(run_dir) / "vocab"
    if not directory.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def _write_vocabularies(run_dir, vocabularies):
    if not vocabularies:
        return
    directory = pathlib.Path(run_dir) / "vocab"
    directory.mkdir(exist_ok=True)
    for name, tokens in dict(vocabularies).items():
        if hasattr(tokens, "get_vocabulary"):
            tokens = tokens.get_vocabulary()
        write_json(directory / f"{name}.json", [str(t) for t in list(tokens)])


def backup_epoch(run_dir):
    """The number of epochs BackupAndRestore has saved in ``run_dir/backup`` (0 if none)."""
    metadata = read_json(pathlib.Path(run_dir) / "backup" / "training_metadata.json", {})
    return int(metadata.get("epoch", 0))


def trained_epochs(run_dir):
    """The epochs ``run_dir/model.keras`` holds: those of the backup when model.keras was
    saved after it (as training does once its last epoch is backed up), else 0."""
    run_dir = pathlib.Path(run_dir)
    model, weights = run_dir / "model.keras", run_dir / "backup" / "latest.weights.h5"
    if not model.is_file() or not weights.is_file() or \
            model.stat().st_mtime_ns < weights.stat().st_mtime_ns:
        return 0
    return backup_epoch(run_dir)


# Metrics renamed since a run was trained: history.json of an older run reads with the new names.
RENAMED_METRICS = {"sequence_accuracy": "token_accuracy"}


def read_history(path):
    """A run's history.json (``{"epochs": [...], "metrics": {name: [...]}}``, empty if there is
    none yet), metric names as they are now (:data:`RENAMED_METRICS`)."""
    history = read_json(path, {"epochs": [], "metrics": {}})
    metrics = {}
    for key, values in history.get("metrics", {}).items():
        prefix = "val_" if key.startswith("val_") else ""
        name = key[len(prefix):]
        metrics[prefix + RENAMED_METRICS.get(name, name)] = values
    history["metrics"] = metrics
    return history


def _history_callback(path, start_epoch):
    """Write history.json at each epoch's end; entries from ``start_epoch`` on are (re)written."""
    base = _callback_base()
    history = read_history(path)
    keep = [i for i, e in enumerate(history["epochs"]) if e < start_epoch]
    history = {"epochs": [history["epochs"][i] for i in keep],
               "metrics": {k: [v[i] for i in keep] for k, v in history["metrics"].items()}}

    class _HistoryFile(base):
        def on_epoch_end(self, epoch, logs=None):
            history["epochs"].append(int(epoch))
            for key, value in (logs or {}).items():
                history["metrics"].setdefault(key, []).append(float(value))
            write_json(path, history)

    callback = _HistoryFile()
    callback.history = history
    return callback


# -- strategies -----------------------------------------------------------------------------------
_STRATEGIES_MADE = {}


def make_strategy(name):
    """The ``tf.distribute`` strategy ``name`` (one of :data:`STRATEGIES`) names.

    ``mirrored`` and ``multiworker`` are made once per process (and ``TF_CONFIG``) and reused:
    a second ``MirroredStrategy`` numbers its all-reduces from the start again, and collides with
    those of the first in the runtime (a second mirrored run in one process failed with "Shape
    mismatch in the collective instance").

    Raises:
      ValueError: an unknown name, or ``multiworker`` without ``TF_CONFIG``.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    key = (name, os.environ.get("TF_CONFIG"))
    if key not in _STRATEGIES_MADE:
        _STRATEGIES_MADE[key] = _new_strategy(name)
    return _STRATEGIES_MADE[key]


def _new_strategy(name):
    import tensorflow as tf

    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        # A CPU-only machine: two logical CPUs, so the replicas and the all-reduce are real.
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        except RuntimeError:
            pass  # already initialized: use the devices there are
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        if len(devices) < 2:
            warnings.warn("--strategy mirrored: TensorFlow had started with one CPU device "
                          "before the strategy was made, so it trains on one replica")
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG (the cluster and this "
                             "worker's task) in the environment")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; expected one of {STRATEGIES}")


def _worker_task():
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    return task.get("type", "worker"), int(task.get("index", 0))


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


# -- training -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Run:
    """What :func:`train` returns."""

    directory: pathlib.Path
    model: object
    history: dict
    config: dict
    start_epoch: int


def default_clipnorm(model_name):
    """Gradient clipping is on for recurrent models (exploding gradients), off for the MLP."""
    import kzoo

    return None if kzoo.model_info(model_name).cell == "mlp" else DEFAULT_CLIPNORM


def train(model_name, dataset=EXAMPLE_DATASET, *, out, epochs=5, batch_size=32,
          learning_rate=1e-3, clipnorm="default", seed=0, strategy="default", model_config=None,
          dataset_options=None, data_dir=None, steps_per_epoch=None, tbptt=None, verbose=None,
          plots=True, deterministic=True):
    """Train ``model_name`` on ``dataset`` into the run directory ``out``; see the module doc.

    ``clipnorm="default"`` clips gradients to norm 1.0 for recurrent models (None disables);
    ``tbptt=k`` trains a stateful many-to-many model on k-step chunks (truncated BPTT);
    ``steps_per_epoch`` caps the batches per epoch; ``deterministic=False`` skips
    ``enable_op_determinism`` (a process-wide switch). Returns a :class:`Run`.
    """
    import keras
    import tensorflow as tf

    import kzoo
    import kzoo.models as km

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    info = kzoo.model_info(model_name)
    out = pathlib.Path(out)
    if clipnorm == "default":
        clipnorm = default_clipnorm(model_name)
    overrides = dict(model_config or {})
    task_type, task_index = _worker_task() if strategy == "multiworker" else ("worker", 0)
    is_chief = task_index == 0

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    dist = make_strategy(strategy)
    replicas = dist.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"--batch-size {batch_size} must be a multiple of the {replicas} "
                         f"replicas of the {strategy!r} strategy")

    train_data, data_info = load_data(dataset, "train", batch_size=batch_size,
                                      model_name=model_name, model_config=overrides, seed=seed,
                                      data_dir=data_dir, options=dataset_options)
    config = {**dict(getattr(data_info, "model_config", {}) or {}), **overrides}
    if tbptt is not None:
        if "stateful" not in info.default_config:
            raise ValueError(f"--tbptt needs a model with a carried state (a many_to_many model); "
                             f"{model_name} has none")
        if replicas > 1:
            raise ValueError(f"--tbptt trains a stateful model, whose carried state has one "
                             f"batch on one device; use --strategy default, not {strategy!r}")
        config.update(stateful=True, batch_size=batch_size)
        train_data, chunks_per_batch = tbptt_chunks(full_batches(train_data, batch_size),
                                                    tbptt)
        tbptt_steps = count_batches(train_data)
        if tbptt_steps == 0:
            raise ValueError(f"--tbptt: the training split has no full batch of --batch-size "
                             f"{batch_size} (a stateful model trains on batches of one size); "
                             f"lower --batch-size")
    try:
        validation_data, _ = load_data(dataset, "validation", batch_size=batch_size,
                                       model_name=model_name, model_config=overrides,
                                       seed=seed, data_dir=data_dir, options=dataset_options)
    except (ValueError, KeyError):
        validation_data = None
    if tbptt is not None:
        validation_data = None  # a stateful model's validation would need the same chunking
    if replicas > 1:
        train_data = even_batches(train_data, replicas)
        if validation_data is not None:
            validation_data = even_batches(validation_data, replicas)

    run_config = {"model": model_name, "model_config": config, "dataset": dataset,
                  "dataset_options": dict(dataset_options or {}), "epochs": epochs,
                  "batch_size": batch_size, "learning_rate": learning_rate,
                  "clipnorm": clipnorm, "seed": seed, "strategy": strategy, "tbptt": tbptt,
                  "steps_per_epoch": steps_per_epoch, "kzoo_version": kzoo.__version__,
                  # every option the data was made with (text level...), for predict
                  "data_options": dict(getattr(data_info, "options", None) or {})}
    with dist.scope():
        model = kzoo.build(model_name, **config, **_carried_vocabularies(info, data_info,
                                                                         overrides))
        optimizer = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
    loss_and_metrics = km.compile_args(model_name, **config)
    run_dir = out if is_chief else out / "workers" / str(task_index)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = read_json(run_dir / "config.json")
    if previous is not None:
        comparable = json.loads(json.dumps(run_config, default=_json_default))
        changed = [k for k in _IDENTITY_KEYS if previous.get(k) != comparable.get(k)]
        if changed:
            raise ValueError(f"{str(run_dir)!r} holds a different run ({', '.join(changed)} "
                             f"differ); pick a new --out or delete it")
        trained = trained_epochs(run_dir)
        if trained >= epochs:
            # Rerunning a finished command: nothing on disk changes (model.keras is not saved
            # again, config.json keeps its epochs).
            print(f"{run_dir} has trained {trained} epoch(s) already (--epochs {epochs}); "
                  f"nothing to do", flush=True)
            return Run(directory=run_dir, model=load_run_model(run_dir),
                       history=read_history(run_dir / "history.json"), config=previous,
                       start_epoch=trained)
    write_json(run_dir / "config.json", run_config)
    _write_vocabularies(run_dir, getattr(data_info, "vocabularies", None))

    with dist.scope():
        model.compile(optimizer=optimizer, **loss_and_metrics)
    if strategy == "multiworker":
        history = _train_multiworker(dist, model, optimizer, train_data, epochs=epochs,
                                     seed=seed, steps_per_epoch=steps_per_epoch,
                                     run_dir=run_dir, verbose=verbose)
        start_epoch = 0
    else:
        start_epoch = min(backup_epoch(run_dir), epochs)
        if tbptt is not None:
            steps = tbptt_steps
            if steps_per_epoch:
                steps = min(steps, steps_per_epoch)
            train_stream = train_data.take(steps).cache().repeat(max(epochs - start_epoch, 0))
        else:
            train_stream, steps = epoch_stream(train_data, start_epoch, epochs, seed,
                                               steps_per_epoch)
        history_callback = _history_callback(run_dir / "history.json", start_epoch)
        callbacks = [history_callback,
                     keras.callbacks.BackupAndRestore(str(run_dir / "backup"),
                                                      delete_checkpoint=False),
                     keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False,
                                                 profile_batch=0)]
        if tbptt is not None:
            callbacks.append(ResetStatesEvery(chunks_per_batch))
        if verbose is None:
            verbose = 1 if sys.stdout.isatty() else 2
        if start_epoch:
            print(f"resuming {run_dir} after epoch {start_epoch} of {epochs}", flush=True)
        if start_epoch < epochs:
            model.fit(train_stream, epochs=epochs, steps_per_epoch=steps,
                      validation_data=validation_data, callbacks=callbacks, verbose=verbose,
                      shuffle=False)
        else:
            # The last epoch was backed up but model.keras not saved after it. The optimizer
            # must be built to take its saved variables: an unbuilt one skips them (Keras warns)
            # and model.keras would hold an optimizer that every later load warns about.
            with dist.scope():
                model.optimizer.build(model.trainable_variables)
            model.load_weights(str(run_dir / "backup" / "latest.weights.h5"))
        history = history_callback.history

    _save_model(model, run_dir / "model.keras")
    if plots and is_chief:
        _write_plots(run_dir, model, history, validation_data if validation_data is not None
                     else train_data)
    return Run(directory=run_dir, model=model, history=history, config=run_config,
               start_epoch=start_epoch)


def _carried_vocabularies(info, data_info, overrides):
    """``{"vocabularies": ...}`` for a model that can carry them (seq2seq) when the dataset
    tokenized text (source and target ``TokenVectorizer`` s), else ``{}``. Kept out of
    config.json (``vocab/`` holds the token lists); the model's own config saves them in
    model.keras, so an export of the run takes strings (the ``translate`` signature)."""
    vectorizers = getattr(data_info, "vectorizers", None) or {}
    if "vocabularies" not in info.default_config or "vocabularies" in overrides or \
            not {"source", "target"} <= set(vectorizers):
        return {}
    return {"vocabularies": {side: vectorizers[side] for side in ("source", "target")}}


def _save_model(model, path):
    temporary = path.with_name("model.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)


def _write_plots(run_dir, model, history, data):
    from kzoo import diagnostics

    plots = pathlib.Path(run_dir) / "plots"
    plots.mkdir(exist_ok=True)
    if history.get("epochs"):
        diagnostics.plot_history(history, plots / "training_curves.png")
    if getattr(model, "attention", None) is not None and hasattr(model, "generate"):
        (source, _), _ = next(iter(data.take(1)))
        source = source[:1]
        result = model.generate(source)
        source_tokens, target_tokens = seq2seq_tokens(model, source[0].numpy(),
                                                      result["tokens"][0].numpy(),
                                                      read_vocabularies(run_dir))
        diagnostics.plot_attention(result["attention"][0].numpy(), source_tokens,
                                   target_tokens, plots / "attention.png")


def seq2seq_tokens(model, source_ids, output_ids, vocabularies):
    """Source tokens without padding and output tokens up to the end token, as strings when the
    run has vocabularies (``source``/``target`` token lists), else as ids."""
    source_vocab, target_vocab = _source_target_vocabularies(vocabularies)
    source = [int(i) for i in source_ids if int(i) != 0]
    output = []
    for i in output_ids:
        output.append(int(i))
        if int(i) in (model.end_id, 0):
            break

    def name(vocab, i):
        return vocab[i] if vocab and 0 <= i < len(vocab) else str(i)

    return [name(source_vocab, i) for i in source], [name(target_vocab, i) for i in output]


def _source_target_vocabularies(vocabularies):
    source = next((v for k, v in vocabularies.items() if k.startswith("source")), None)
    target = next((v for k, v in vocabularies.items() if k.startswith("target")), None)
    return source, target


def final_metrics_line(history):
    """``"epoch 3/3: loss 0.41 · accuracy 0.87 · val_loss 0.45"`` for the last epoch."""
    metrics = history.get("metrics", {})
    if not history.get("epochs"):
        return "no epoch trained"
    parts = [f"{key} {values[-1]:.4g}" for key, values in metrics.items() if values]
    return f"epoch {history['epochs'][-1] + 1}: " + " · ".join(parts)


# -- multi-worker: a step through strategy.run ----------------------------------------------------
def _train_multiworker(strategy, model, optimizer, train_data, *, epochs, seed,
                       steps_per_epoch, run_dir, verbose):
    """A custom loop: each replica computes the gradient of its share of the global batch (the
    compiled loss as ``fit`` computes it: padding masked, its mean divided by the replica
    count), ``strategy.reduce`` sums them, and one optimizer update (clipped on the summed
    gradient) runs in cross-replica context, so N workers equal one worker on the same global
    batch (exactly when the replicas' shares have equal weight)."""
    import tensorflow as tf

    stream, steps = epoch_stream(train_data, 0, epochs, seed, steps_per_epoch)

    def dataset_fn(context):
        # Every pipeline reads the same global batches and keeps its own rows: worker w of N
        # trains on rows [w*b, (w+1)*b) of each global batch of N*b.
        pipelines, index = context.num_input_pipelines, context.input_pipeline_id

        def share(inputs, targets):
            def rows(x):
                per = tf.shape(x)[0] // pipelines
                return x[index * per:(index + 1) * per]

            return tf.nest.map_structure(rows, (inputs, targets))

        return stream.map(share)

    dist_data = strategy.distribute_datasets_from_function(dataset_fn)
    variables = model.trainable_variables
    with strategy.scope():
        optimizer.build(variables)

    def replica_step(inputs, targets):
        with tf.GradientTape() as tape:
            predictions = model(inputs, training=True)
            value = model.compute_loss(x=inputs, y=targets, y_pred=predictions, training=True)
        return value, tape.gradient(value, variables)

    @tf.function
    def train_step(iterator):
        inputs, targets = next(iterator)
        value, gradients = strategy.run(replica_step, args=(inputs, targets))
        value = strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
        gradients = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None)
                     for g in gradients]
        optimizer.apply(gradients, variables)
        return value

    history = {"epochs": [], "metrics": {"loss": []}}
    iterator = iter(dist_data)
    for epoch in range(epochs):
        total = 0.0
        for _ in range(steps):
            total += float(train_step(iterator))
        history["epochs"].append(epoch)
        history["metrics"]["loss"].append(total / steps)
        if verbose != 0:
            print(f"Epoch {epoch + 1}/{epochs} - loss: {total / steps:.4f}", flush=True)
        write_json(pathlib.Path(run_dir) / "history.json", history)
    return history


# -- evaluate, export, predict, bench (what the other commands run) -------------------------------
def _load_split(run_dir, config, split, batch_size, data_dir=None):
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


def evaluate(run_dir, split="test", batch_size=64, data_dir=None, max_examples=500):
    """The compiled loss and metrics of a run's model on ``split``, and for seq2seq the exact
    match of greedy decoding on up to ``max_examples`` examples. Writes ``eval.json``."""
    import kzoo.models as km

    config = read_run(run_dir)
    model = load_run_model(run_dir)
    model.compile(**km.compile_args(config["model"], **config["model_config"]))
    data, used = _load_split(run_dir, config, split, batch_size, data_dir)
    if config.get("tbptt"):
        raise ValueError("evaluate: a run trained with --tbptt has a stateful model; evaluate it "
                         "on chunks in Python (kzoo.training.tbptt_chunks)")
    results = model.evaluate(data, verbose=0, return_dict=True)
    metrics = {key: float(value) for key, value in results.items()}
    if hasattr(model, "generate"):
        metrics["exact_match"] = seq2seq_exact_match(model, data, max_examples)
    write_json(pathlib.Path(run_dir) / "eval.json", {"split": used, "metrics": metrics})
    return metrics


def seq2seq_exact_match(model, data, max_examples=500):
    """Fraction of examples whose greedy decode equals the target up to and including the end
    token."""
    import numpy as np

    correct = total = 0
    for (source, _), target_out in data:
        # Room for the whole target (characters may outnumber the source's words) and more.
        result = model.generate(source, max_length=int(target_out.shape[1]) + 8)
        tokens, target_out = result["tokens"].numpy(), target_out.numpy()
        for row, target in zip(tokens, target_out):
            want = [int(t) for t in target if t != 0]
            got = [int(t) for t in row[:len(want)]]
            correct += int(got == want)  # ``want`` ends with the end token
            total += 1
            if total >= max_examples:
                return correct / total
    return correct / max(total, 1) if total else float(np.nan)


def _sample_batch(run_dir, config, count, data_dir=None):
    data, _ = _load_split(run_dir, config, "test", count, data_dir)
    inputs, targets = next(iter(data.take(1)))
    to_numpy = (lambda x: x.numpy())
    import tensorflow as tf

    return tf.nest.map_structure(to_numpy, (inputs, targets))


EXPORT_RECORD = "report.json"


@dataclasses.dataclass
class ExportRun:
    """What :func:`export_run` returns."""

    directory: pathlib.Path
    paths: list      # every artifact asked for (a SavedModel version directory, TFLite files)
    written: list    # those this call exported: [] when all were up to date with the model
    report: object   # this call's kzoo.export.ExportReport, or the last one's text if no write


def export_run(run_dir, formats=("saved_model", "tflite"), quantize=None, out=None,
               samples=32, data_dir=None, overwrite=False):
    """Export a run's model with ``kzoo.export`` into ``out`` (default ``RUN_DIR/export``):
    ``saved_model/<version>/`` and ``model.tflite`` (+ ``model.<quantize>.tflite``), then verify
    every artifact on ``samples`` held-out examples. Returns an :class:`ExportRun`.

    Safe to rerun: ``out/report.json`` records the SHA-256 of the model.keras each artifact was
    exported from. An artifact exported from the current model.keras is kept as it is (when all
    are, nothing is exported: ``written`` is empty); the others are exported again, each
    atomically: a SavedModel as the next version (TF Serving moves to it), a TFLite file in
    place of the earlier one. ``overwrite=True`` exports everything again (SavedModel version 1,
    TFLite files replaced). A TFLite file at ``out`` that no export of this run wrote is an
    error unless ``overwrite``.
    """
    import kzoo.export

    config = read_run(run_dir)
    out = pathlib.Path(out) if out else pathlib.Path(run_dir) / "export"
    digest = _file_sha256(pathlib.Path(run_dir) / "model.keras")
    record = read_json(out / EXPORT_RECORD, {})
    exported = dict(record.get("artifacts", {}))   # {name: {"path": ..., "model_sha256": ...}}
    tflite_paths = {mode: out / ("model.tflite" if mode is None else f"model.{mode}.tflite")
                    for mode in [None] + ([quantize] if quantize else [])}
    wanted = (["saved_model"] if "saved_model" in formats else []) + \
        ([path.name for path in tflite_paths.values()] if "tflite" in formats else [])

    def up_to_date(name):
        entry = exported.get(name)
        return bool(entry) and entry.get("model_sha256") == digest and \
            os.path.exists(entry["path"])

    stale = [name for name in wanted if overwrite or not up_to_date(name)]
    if not stale:
        return ExportRun(directory=out, paths=[exported[name]["path"] for name in wanted],
                         written=[], report=record.get("report"))
    if not overwrite:
        ours = set(exported) | {os.path.basename(p) for p in record.get("paths", [])}
        for path in tflite_paths.values():
            if path.name in stale and path.exists() and path.name not in ours:
                raise ValueError(f"{str(path)!r} exists; pass --overwrite to replace it")
    model = load_run_model(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    batch = _sample_batch(run_dir, config, samples, data_dir)

    def recorded(name, path):
        exported[name] = {"path": str(path), "model_sha256": digest}
        # Recorded at once: if a later artifact fails, a rerun keeps this one.
        write_json(out / EXPORT_RECORD, {**record, "artifacts": exported})
        return path

    new_paths = []
    if "saved_model" in stale:
        version = 1 if overwrite else None
        new_paths.append(recorded("saved_model", kzoo.export.saved_model(
            model, out / "saved_model", version=version, overwrite=overwrite)))
    files = {mode: path for mode, path in tflite_paths.items() if path.name in stale}
    if files:
        # Existing files are replaced by the atomic writer only once every new file is
        # written: a failed export leaves the previous ones.
        representative = None
        if "int8" in files:
            inputs = batch[0]
            representative = [inputs[0] if isinstance(inputs, tuple) and
                              hasattr(model, "generate") else inputs]
        # One trace for every non-int8 file (tracing is about half of a conversion).
        paths = kzoo.export.tflite_files(model, dict(files), representative_data=representative)
        new_paths += [recorded(files[mode].name, paths[mode]) for mode in files]
    all_paths = [exported[name]["path"] for name in wanted]
    report = kzoo.export.verify(model, all_paths, batch)
    write_json(out / EXPORT_RECORD, {"report": str(report), "paths": all_paths,
                                     "artifacts": exported})
    return ExportRun(directory=out, paths=all_paths, written=[str(p) for p in new_paths],
                     report=report)


def _file_sha256(path):
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_word_level(vocab):
    return any(len(token) > 1 and not (token.startswith("[") or token.startswith("<"))
               for token in vocab[4:50])


def encode_text(text, vocab, level=None):
    """Token ids of ``text`` for a vocabulary (a token list, index = id), ``level`` "word" or
    "char" (None: word level when the vocabulary holds words). Without a vocabulary ``text`` is
    token ids ("5 9 12"). Tokens outside the vocabulary become its unknown token, with an
    ``UnknownTokensWarning`` naming them (a ValueError if it has none)."""
    from kzoo.models.seq2seq import warn_unknown_tokens

    if not vocab:
        try:
            return [int(t) for t in text.split()]
        except ValueError:
            raise ValueError(f"this run has no vocabulary; give token ids ('5 9 12'), got "
                             f"{text!r}")
    index = {token: i for i, token in enumerate(vocab)}
    if level is None:
        level = "word" if _is_word_level(vocab) else "char"
    pieces = text.split() if level == "word" else list(text)
    unknown = next((i for t, i in index.items() if t.lower() in ("[unk]", "<unk>")), None)
    ids, unknown_pieces = [], []
    for piece in pieces:
        if piece in index:
            ids.append(index[piece])
        elif piece.lower() in index:
            ids.append(index[piece.lower()])
        elif unknown is not None:
            ids.append(unknown)
            unknown_pieces.append(piece)
        else:
            raise ValueError(f"{piece!r} is not in the run's source vocabulary")
    warn_unknown_tokens("encode_text", [(text, unknown_pieces)])
    return ids


def decode_ids(ids, vocab, end_id, level=None):
    """The text of token ids up to ``end_id``: words joined by spaces, characters by nothing."""
    tokens = []
    for i in ids:
        i = int(i)
        if i in (end_id, 0):
            break
        tokens.append(vocab[i] if vocab and i < len(vocab) else str(i))
    if level is None:
        level = "word" if not vocab or _is_word_level(vocab) else "char"
    joiner = " " if level == "word" else ""
    return joiner.join(tokens)


def predict(run_dir, texts, method="greedy", beam_width=4, max_length=None, attention_plot=None):
    """Decode each of ``texts`` with a run's seq2seq model (what ``kzoo predict`` runs).

    A model that carries its vocabularies (a run trained on text) reads and writes text as
    ``model.translate`` does (``text_to_ids``, ``generate``, ``ids_to_text``); otherwise the
    run's ``vocab/`` token lists are used (:func:`encode_text`), or, without any, the texts are
    token ids ("5 9 12"). ``max_length`` None is the model's default decode length
    (``kzoo.models.seq2seq.default_decode_length``). ``attention_plot``: a PNG of the first
    text's attention, the best hypothesis' under beam search.

    Returns:
        The output strings, one per text.

    Raises:
        ValueError: not a seq2seq run, an empty text, a text longer than the model takes
            (``kzoo.models.seq2seq.MAX_SOURCE_UNITS``), or ``attention_plot`` for a model
            without attention.

    Warns:
        UnknownTokensWarning: naming the tokens outside the source vocabulary.
    """
    import numpy as np

    config = read_run(run_dir)
    model = load_run_model(run_dir)
    if not hasattr(model, "generate"):
        raise ValueError(f"predict decodes seq2seq models; {config['model']} is not one "
                         f"(use model.predict in Python)")
    if attention_plot and model.attention is None:
        raise ValueError(f"predict: --plot draws the attention, and {config['model']} has none")
    if getattr(model, "vocabularies", None):
        vocabularies = {side: list(spec["tokens"]) for side, spec in model.vocabularies.items()}
        source = model.text_to_ids(list(texts)).numpy()
    else:
        vocabularies = read_vocabularies(run_dir)
        options = config.get("data_options") or {}
        rows = [encode_text(text, _source_target_vocabularies(vocabularies)[0],
                            options.get("source_level")) for text in texts]
        source = np.zeros((len(rows), max(1, *map(len, rows))), "int32")
        for i, row in enumerate(rows):
            source[i, :len(row)] = row
    empty = [text for text, row in zip(texts, source) if not row.any()]
    if empty:
        raise ValueError(f"predict: an input has no token: {empty[0]!r}")
    result = model.generate(source, max_length=max_length, method=method,
                            beam_width=beam_width)
    tokens = result["tokens"].numpy()
    if attention_plot:
        from kzoo import diagnostics

        source_tokens, target_tokens = seq2seq_tokens(model, source[0], tokens[0], vocabularies)
        diagnostics.plot_attention(result["attention"][0].numpy(), source_tokens,
                                   target_tokens, attention_plot, title=texts[0])
    if getattr(model, "vocabularies", None):
        return model.ids_to_text(tokens)
    target_vocab = _source_target_vocabularies(vocabularies)[1]
    level = (config.get("data_options") or {}).get("target_level")
    return [decode_ids(row, target_vocab, model.end_id, level) for row in tokens]


def bench(names, batch_size=32, steps=10, model_config=None):
    """Median milliseconds of one ``predict_on_batch`` and one ``train_on_batch`` on an example
    batch, per model (after one warm-up call of each)."""
    import time

    import keras
    import numpy as np

    import kzoo
    import kzoo.models as km

    rows = []
    for name in names:
        info = kzoo.model_info(name)
        config = {k: v for k, v in dict(model_config or {}).items() if k in info.default_config}
        model = kzoo.build(name, **config)
        model.compile(optimizer=keras.optimizers.Adam(clipnorm=default_clipnorm(name)),
                      **km.compile_args(name, **config))
        inputs, targets = km.example_batch(name, config, batch_size=batch_size)
        inputs = tuple(inputs) if isinstance(inputs, list) else inputs
        timings = {}
        for key, call in (("predict_ms", lambda: model.predict_on_batch(inputs)),
                          ("train_ms", lambda: model.train_on_batch(inputs, targets))):
            call()
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                call()
                times.append(1000 * (time.perf_counter() - start))
            timings[key] = float(np.median(times))
        rows.append({"model": name, "parameters": model.count_params(), **timings})
    return rows

"""``train``: a model on a dataset into a run directory, resumable and deterministic.

Resume: rerunning the same command continues after the last completed epoch; rerunning a
finished one (its model.keras saved after its last epoch) says so and changes no file. The run is
deterministic (``keras.utils.set_random_seed(seed)`` and
``tf.config.experimental.enable_op_determinism()``; the data order of epoch e is a function of
``seed`` and ``e`` only), so a killed and resumed run ends with the weights of an uninterrupted one.
Not restored on resume: the state of dropout's random generator (a model trained with dropout
resumes with a different dropout noise sequence) and an epoch interrupted half-way (redone).
"""

import dataclasses
import pathlib
import shutil
import sys
import types

from kzoo.checks import check_choice
from kzoo.training.callbacks import ResetStatesEvery, history_callback
from kzoo.training.data_file import DataFile, check_unchanged, file_model_defaults
from kzoo.training.data import EXAMPLE_DATASET, count_batches, epoch_stream, even_batches, \
    full_batches, load_data, tbptt_chunks
from kzoo.training.plots import write_plots
from kzoo.training.run_dir import backup_epoch, load_run_model, previous_config, read_history, \
    read_json, save_run_model, trained_epochs, write_json, write_vocabularies
from kzoo.training.strategies import STRATEGIES, make_strategy, train_multiworker, worker_task

DEFAULT_CLIPNORM = 1.0


@dataclasses.dataclass
class Run:
    """A run directory's training, as :func:`train` returns it.

    Attributes:
        directory: the run directory (a worker other than the chief of a multi-worker run:
            its own ``workers/<index>`` below ``out``).
        model: the trained ``keras.Model``.
        history: ``{"epochs": [...], "metrics": {name: [one value per epoch]}}``, as
            history.json holds it.
        config: the run's settings, as config.json holds them.
        start_epoch: the epoch this call started from (0, or the epochs an earlier call had
            completed when it resumed).
    """

    directory: pathlib.Path
    model: object
    history: dict
    config: dict
    start_epoch: int


def default_clipnorm(model_name):
    """The gradient clipping ``train`` uses unless told otherwise.

    Recurrent models clip each gradient to norm :data:`DEFAULT_CLIPNORM` (exploding gradients);
    the feed-forward MLP does not clip.

    Args:
        model_name: a registered model name.

    Returns:
        :data:`DEFAULT_CLIPNORM` (1.0), or None for the MLP.

    Raises:
        ValueError: an unknown model name.
    """
    import kzoo

    return None if kzoo.model_info(model_name).cell == "mlp" else DEFAULT_CLIPNORM


def train(model_name, dataset=EXAMPLE_DATASET, *, out, epochs=5, batch_size=32,
          learning_rate=1e-3, clipnorm="default", seed=0, strategy="default", model_config=None,
          dataset_options=None, data_dir=None, steps_per_epoch=None, tbptt=None, verbose=None,
          plots=True, deterministic=True, data=None, data_format=None, data_changed_ok=False):
    """Trains a registered model on a dataset into a run directory (what ``kzoo train`` runs).

    Adam with gradient clipping, on the batches of ``dataset``'s train split in an order that
    depends on ``seed`` and the epoch only, validated on its validation split when it has one.
    The run directory (see :mod:`kzoo.training.run_dir`) gets config.json, vocab/, history.json
    at each epoch's end, a backup of weights and optimizer after each epoch, TensorBoard logs,
    model.keras when training ends, and plots. Rerunning the same call resumes after the last
    backed-up epoch; rerunning a finished one prints that it has nothing to do and changes no
    file; ``epochs`` may grow between calls, the other settings may not.

    Trained on the user's own file (``data``), the run records the file's path and content
    hash (:mod:`kzoo.training.data_file`); later commands read its held-out rows from it. A
    bad file fails before the run directory is made, and a run directory this call made is
    removed again when training fails before its first epoch is saved: no half-written run
    is left behind.

    Args:
        model_name: a registered model (``kzoo.list_models()``).
        dataset: a name of :func:`~kzoo.training.data.list_datasets`: ``"example"`` (random
            data of the model's own example shapes) or a ``kzoo.datasets`` name.
        out: the run directory (made if missing).
        epochs: the epochs the run has when this call ends.
        batch_size: the global batch (split over a strategy's replicas; a multiple of their
            count).
        learning_rate: Adam's learning rate.
        clipnorm: ``"default"`` (:func:`default_clipnorm`), a norm to clip each gradient to,
            or None (no clipping).
        seed: the seed of the weights, the data order and dropout.
        strategy: one of ``kzoo.choices.STRATEGIES``: ``"default"`` (one
            device), ``"mirrored"`` or ``"multiworker"`` (the workers ``TF_CONFIG`` names).
        model_config: ``kzoo.build`` keyword arguments, over those the dataset gives (its
            vocabulary and output sizes).
        dataset_options: options of the dataset (``kzoo.datasets.load``'s keyword arguments;
            ``{"size": n}`` for ``"example"``; for ``data``, ``kzoo.datasets.from_file``'s).
        data_dir: where datasets are prepared (None: TFDS' default).
        steps_per_epoch: the most batches per epoch (None: the whole split).
        tbptt: None, or K: truncated backpropagation through time, a stateful many-to-many
            model trained on K-step chunks of each batch (its last partial batch dropped).
        verbose: Keras' progress output: 0, 1 (a bar), 2 (a line per epoch); None: 1 on a
            terminal, else 2.
        plots: whether to write plots/ (training curves, a seq2seq model's attention).
        deterministic: whether to switch on ``tf.config.experimental.enable_op_determinism``
            (a switch of the whole process).
        data: None, or the user's own data file (a path; a folder for a folder per class)
            to train on instead of ``dataset``, read by ``kzoo.datasets.from_file``.
        data_format: the data format of ``data`` (``kzoo.datasets.from_file``'s; None: from
            its extension and options).
        data_changed_ok: resume a run on ``data`` although the file's content changed since
            the run was trained on it.

    Returns:
        A :class:`Run`.

    Raises:
        ValueError: an unknown model, dataset or strategy, a bad setting, a bad data file
            (the reader's error names the file, line and column), ``out`` holding a
            run with other settings, ``tbptt`` for a model without a carried state or with
            several replicas, or a ``batch_size`` that the replicas do not divide.
        DataChangedError: ``data`` changed since the run in ``out`` was trained on it (a
            ``ValueError``).
        FileNotFoundError: ``data`` does not exist.

    Example:

    ```python
    import kzoo.training

    run = kzoo.training.train("many_to_one_gru", "example", out="runs/gru", epochs=2,
                              batch_size=8, dataset_options={"size": 32},
                              model_config={"units": 8, "vocab_size": 20}, verbose=0)
    print(run.directory, run.history["metrics"]["loss"])
    print(kzoo.training.final_metrics_line(run.history))
    ```
    """
    import keras
    import tensorflow as tf

    import kzoo

    check_choice("train", "strategy", strategy, STRATEGIES)
    info = kzoo.model_info(model_name)
    out = pathlib.Path(out)
    if clipnorm == "default":
        clipnorm = default_clipnorm(model_name)
    overrides = dict(model_config or {})
    data_file = None
    if data is not None:
        if not isinstance(data, DataFile):
            import kzoo.datasets

            data_format = data_format or kzoo.datasets.data_format_of(data, dataset_options)
            data = DataFile.of(data, data_format)
        data_file = data
        # Before any data is read: a changed file is refused at once.
        check_unchanged(read_json(out / "config.json"), data_file, data_changed_ok)
        dataset = data_file
    task_index = worker_task()[1] if strategy == "multiworker" else 0
    is_chief = task_index == 0

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    dist = make_strategy(strategy)
    replicas = dist.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"--batch-size {batch_size} must be a multiple of the {replicas} "
                         f"replicas of the {strategy!r} strategy")
    data = _training_data(model_name, info, dataset, dataset_options, overrides, batch_size,
                          seed, data_dir, tbptt, replicas, strategy)
    run_config = {"model": model_name, "model_config": data.model_config,
                  "dataset": data_file.path if data_file else dataset,
                  "dataset_options": dict(dataset_options or {}), "epochs": epochs,
                  "batch_size": batch_size, "learning_rate": learning_rate,
                  "clipnorm": clipnorm, "seed": seed, "strategy": strategy, "tbptt": tbptt,
                  "steps_per_epoch": steps_per_epoch, "kzoo_version": kzoo.__version__,
                  # every option the data was made with (text level...), for predict
                  "data_options": dict(getattr(data.info, "options", None) or {})}
    if data_file is not None:
        run_config["data_file"] = data_file.record()
        skipped = (getattr(data.info, "statistics", None) or {}).get("skipped_lines")
        if skipped:
            run_config["data_file"]["skipped_lines"] = int(skipped)
            print(f"{data_file.name}: skipped {skipped} bad line(s) (--skip-bad-lines)",
                  flush=True)
    if getattr(data.info, "class_names", None):
        run_config["class_names"] = list(data.info.class_names)   # for predict --input
    with dist.scope():
        model = kzoo.build(model_name, **data.model_config,
                           **_carried_vocabularies(info, data.info, overrides))
        if data_file is not None:
            import kzoo.datasets

            # A series' scaling (its train split's statistics) inside the model: the run's
            # model and its exports take raw values and answer in the target's units.
            model = kzoo.datasets.with_scaling(model, data.info)
        optimizer = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
    run_dir = out if is_chief else out / "workers" / str(task_index)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _train_in(run_dir, run_config, model, optimizer, dist, data, strategy=strategy,
                         epochs=epochs, seed=seed, steps_per_epoch=steps_per_epoch,
                         verbose=verbose, plots=plots and is_chief, model_name=model_name)
    except BaseException:
        if created and backup_epoch(run_dir) == 0:
            # Nothing to resume from: leave no half-written run directory behind.
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _train_in(run_dir, run_config, model, optimizer, dist, data, *, strategy, epochs, seed,
              steps_per_epoch, verbose, plots, model_name):
    """The part of :func:`train` that writes into ``run_dir``: resume or start, fit, save."""
    import kzoo.models as km

    previous = previous_config(run_dir, run_config)
    if previous is not None:
        trained = trained_epochs(run_dir)
        if trained >= epochs:
            # Rerunning a finished command: nothing on disk changes (model.keras is not saved
            # again, config.json keeps its epochs).
            print(f"{run_dir} has trained {trained} epoch(s) already (--epochs {epochs}); "
                  f"nothing to do", flush=True)
            return Run(directory=run_dir, model=load_run_model(run_dir),
                       history=read_history(run_dir), config=previous, start_epoch=trained)
    write_json(run_dir / "config.json", run_config)
    write_vocabularies(run_dir, getattr(data.info, "vocabularies", None))

    with dist.scope():
        model.compile(optimizer=optimizer, **km.compile_args(model_name, **data.model_config))
    if strategy == "multiworker":
        history = train_multiworker(dist, model, optimizer, data.train, epochs=epochs,
                                    seed=seed, steps_per_epoch=steps_per_epoch,
                                    run_dir=run_dir, verbose=verbose)
        start_epoch = 0
    else:
        start_epoch = min(backup_epoch(run_dir), epochs)
        history = _fit_resumably(model, dist, run_dir, data, start_epoch=start_epoch,
                                 epochs=epochs, seed=seed, steps_per_epoch=steps_per_epoch,
                                 verbose=verbose)

    save_run_model(model, run_dir)
    if plots:
        write_plots(run_dir, model, history,
                    data.validation if data.validation is not None else data.train)
    return Run(directory=run_dir, model=model, history=history, config=run_config,
               start_epoch=start_epoch)


def _training_data(model_name, info, dataset, dataset_options, overrides, batch_size, seed,
                   data_dir, tbptt, replicas, strategy):
    """The train and validation batches of a run, its model config (for a data file
    :func:`~kzoo.training.data_file.file_model_defaults`, then the dataset's, then
    ``overrides``) and the dataset's info; with ``tbptt``, the chunks of its full batches and
    how many chunks a batch gives; with several replicas, batches cut to a multiple of their
    count."""
    train_data, data_info = load_data(dataset, "train", batch_size=batch_size,
                                      model_name=model_name, model_config=overrides, seed=seed,
                                      data_dir=data_dir, options=dataset_options)
    config = {**(file_model_defaults(info) if isinstance(dataset, DataFile) else {}),
              **dict(getattr(data_info, "model_config", {}) or {}), **overrides}
    chunks_per_batch = tbptt_steps = None
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
    validation_data = None
    if tbptt is None:  # a stateful model's validation would need the same chunking
        try:
            validation_data, _ = load_data(dataset, "validation", batch_size=batch_size,
                                           model_name=model_name, model_config=overrides,
                                           seed=seed, data_dir=data_dir, options=dataset_options)
        except (ValueError, KeyError):
            pass
    if replicas > 1:
        train_data = even_batches(train_data, replicas)
        if validation_data is not None:
            validation_data = even_batches(validation_data, replicas)
    return types.SimpleNamespace(train=train_data, validation=validation_data, info=data_info,
                                 model_config=config, chunks_per_batch=chunks_per_batch,
                                 tbptt_steps=tbptt_steps)


def _fit_resumably(model, dist, run_dir, data, *, start_epoch, epochs, seed, steps_per_epoch,
                   verbose):
    """``model.fit`` from ``start_epoch`` to ``epochs`` with the run directory's callbacks
    (history.json, the backup, TensorBoard; the state resets of truncated BPTT); the history
    of every epoch."""
    import keras

    if data.tbptt_steps is not None:
        steps = data.tbptt_steps
        if steps_per_epoch:
            steps = min(steps, steps_per_epoch)
        stream = data.train.take(steps).cache().repeat(max(epochs - start_epoch, 0))
    else:
        stream, steps = epoch_stream(data.train, start_epoch, epochs, seed, steps_per_epoch)
    history_file = history_callback(run_dir, start_epoch)
    callbacks = [history_file,
                 keras.callbacks.BackupAndRestore(str(run_dir / "backup"),
                                                  delete_checkpoint=False),
                 keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False,
                                             profile_batch=0)]
    if data.chunks_per_batch is not None:
        callbacks.append(ResetStatesEvery(data.chunks_per_batch))
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    if start_epoch:
        print(f"resuming {run_dir} after epoch {start_epoch} of {epochs}", flush=True)
    if start_epoch < epochs:
        model.fit(stream, epochs=epochs, steps_per_epoch=steps, validation_data=data.validation,
                  callbacks=callbacks, verbose=verbose, shuffle=False)
    else:
        # The last epoch was backed up but model.keras not saved after it. The optimizer must
        # be built to take its saved variables: an unbuilt one skips them (Keras warns) and
        # model.keras would hold an optimizer that every later load warns about.
        with dist.scope():
            model.optimizer.build(model.trainable_variables)
        model.load_weights(str(run_dir / "backup" / "latest.weights.h5"))
    return history_file.history


def _carried_vocabularies(info, data_info, overrides):
    """``{"vocabularies": ...}`` for a model that can carry them (seq2seq) when the dataset
    tokenized text (source and target ``TokenVectorizer`` s), else ``{}``. Kept out of
    config.json (``vocab/`` holds the token lists); the model's own config saves them in
    model.keras, so an export of the run takes strings (the ``translate`` signature)."""
    from kzoo.models.seq2seq import VOCABULARY_SIDES

    vectorizers = getattr(data_info, "vectorizers", None) or {}
    if "vocabularies" not in info.default_config or "vocabularies" in overrides or \
            not set(VOCABULARY_SIDES) <= set(vectorizers):
        return {}
    return {"vocabularies": {side: vectorizers[side] for side in VOCABULARY_SIDES}}


def final_metrics_line(history):
    """One line of a run's last epoch: its number and every metric's last value.

    Args:
        history: a run's history (``Run.history``, ``read_history``).

    Returns:
        ``"epoch 3: loss 0.41 · accuracy 0.87 · val_loss 0.45"``, or ``"no epoch trained"``.
    """
    metrics = history.get("metrics", {})
    if not history.get("epochs"):
        return "no epoch trained"
    parts = [f"{key} {values[-1]:.4g}" for key, values in metrics.items() if values]
    return f"epoch {history['epochs'][-1] + 1}: " + " · ".join(parts)

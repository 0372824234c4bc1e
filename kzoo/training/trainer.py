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
import json
import pathlib
import sys

from kzoo.training.callbacks import ResetStatesEvery, history_callback
from kzoo.training.data import EXAMPLE_DATASET, count_batches, epoch_stream, even_batches, \
    full_batches, load_data, tbptt_chunks
from kzoo.training.plots import write_plots
from kzoo.training.run_dir import IDENTITY_KEYS, backup_epoch, json_default, load_run_model, \
    read_history, read_json, save_model, trained_epochs, write_json, write_vocabularies
from kzoo.training.strategies import STRATEGIES, make_strategy, train_multiworker, worker_task

DEFAULT_CLIPNORM = 1.0


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
    task_type, task_index = worker_task() if strategy == "multiworker" else ("worker", 0)
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
        comparable = json.loads(json.dumps(run_config, default=json_default))
        changed = [k for k in IDENTITY_KEYS if previous.get(k) != comparable.get(k)]
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
    write_vocabularies(run_dir, getattr(data_info, "vocabularies", None))

    with dist.scope():
        model.compile(optimizer=optimizer, **loss_and_metrics)
    if strategy == "multiworker":
        history = train_multiworker(dist, model, optimizer, train_data, epochs=epochs,
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
        history_file = history_callback(run_dir / "history.json", start_epoch)
        callbacks = [history_file,
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
        history = history_file.history

    save_model(model, run_dir / "model.keras")
    if plots and is_chief:
        write_plots(run_dir, model, history, validation_data if validation_data is not None
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


def final_metrics_line(history):
    """``"epoch 3/3: loss 0.41 · accuracy 0.87 · val_loss 0.45"`` for the last epoch."""
    metrics = history.get("metrics", {})
    if not history.get("epochs"):
        return "no epoch trained"
    parts = [f"{key} {values[-1]:.4g}" for key, values in metrics.items() if values]
    return f"epoch {history['epochs'][-1] + 1}: " + " · ".join(parts)

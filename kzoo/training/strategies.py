"""Strategies: ``default`` (one device), ``mirrored`` and ``multiworker``, and the multi-worker
training loop.

``mirrored`` is ``tf.distribute.MirroredStrategy`` over the GPUs, or 2 logical CPU devices on a
CPU-only machine, through ``fit``; ``multiworker`` is ``MultiWorkerMirroredStrategy`` over
``TF_CONFIG``. Keras 3's ``fit`` fails under it, so :func:`train_multiworker` runs the step
through ``strategy.run`` and sums the gradients across replicas with ``strategy.reduce`` before
one clipped optimizer update; ``--batch-size`` is the global batch. With several replicas each
batch is cut to a multiple of the replica count (``kzoo.training.data.even_batches``: a loader's
last batch and a length bucket's can have any size), so every replica gets an equal share.
"""

import json
import os
import warnings

from kzoo.checks import check_choice
from kzoo.choices import STRATEGIES
from kzoo.training.data import epoch_stream
from kzoo.training.run_dir import write_history

_STRATEGIES_MADE = {}


def make_strategy(name):
    """The ``tf.distribute`` strategy a name of ``kzoo.choices.STRATEGIES`` stands for.

    ``mirrored`` and ``multiworker`` are made once per process (and ``TF_CONFIG``) and reused:
    a second ``MirroredStrategy`` numbers its all-reduces from the start again, and collides with
    those of the first in the runtime (a second mirrored run in one process failed with "Shape
    mismatch in the collective instance").

    Args:
        name: ``"default"``, ``"mirrored"`` or ``"multiworker"``.

    Returns:
        A ``tf.distribute.Strategy``: the default one (one device), a ``MirroredStrategy``
        (the GPUs, or two logical CPU devices without a GPU), or a
        ``MultiWorkerMirroredStrategy`` over the workers ``TF_CONFIG`` names.

    Raises:
        ValueError: an unknown name, or ``multiworker`` without ``TF_CONFIG``.
    """
    import tensorflow as tf

    check_choice("make_strategy", "name", name, STRATEGIES)
    if name == "default":
        return tf.distribute.get_strategy()
    key = (name, os.environ.get("TF_CONFIG"))
    if key not in _STRATEGIES_MADE:
        _STRATEGIES_MADE[key] = _new_strategy(name)
    return _STRATEGIES_MADE[key]


def _new_strategy(name):
    """A new ``mirrored`` or ``multiworker`` strategy."""
    import tensorflow as tf

    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG (the cluster and this "
                             "worker's task) in the environment")
        return tf.distribute.MultiWorkerMirroredStrategy()
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
        warnings.warn("--strategy mirrored: TensorFlow had started with one CPU device before "
                      "the strategy was made, so it trains on one replica", stacklevel=2)
    return tf.distribute.MirroredStrategy(devices=devices)


def worker_task():
    """This process' task in ``TF_CONFIG``.

    Returns:
        ``(task type, task index)``; ``("worker", 0)`` without ``TF_CONFIG``.
    """
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    return task.get("type", "worker"), int(task.get("index", 0))


# -- multi-worker: a step through strategy.run ----------------------------------------------------
def train_multiworker(strategy, model, optimizer, train_data, *, epochs, seed,
                      steps_per_epoch, run_dir, verbose):
    """Trains ``model`` under a ``MultiWorkerMirroredStrategy`` with a loop of its own.

    Keras 3's ``fit`` fails under this strategy. Each replica computes the gradient of its
    share of the global batch (the compiled loss as ``fit`` computes it: padding masked, its
    mean divided by the replica count), ``strategy.reduce`` sums them, and one optimizer update
    (clipped on the summed gradient) runs in cross-replica context, so N workers equal one
    worker on the same global batch (exactly when the replicas' shares have equal weight).
    history.json is written at each epoch's end.

    Args:
        strategy: the ``MultiWorkerMirroredStrategy``.
        model: a model compiled under ``strategy.scope()``.
        optimizer: its optimizer.
        train_data: a ``tf.data.Dataset`` of global ``(inputs, targets)`` batches.
        epochs: the epochs to train (from the first: this loop does not resume).
        seed: the run's seed (the data order).
        steps_per_epoch: the most batches per epoch (None: all).
        run_dir: the run directory.
        verbose: 0: silent; else a line per epoch.

    Returns:
        The history: ``{"epochs": [...], "metrics": {"loss": [...]}}``.
    """
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
        write_history(run_dir, history)
    return history

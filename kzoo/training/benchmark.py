"""``bench``: the time of a predict and a train step of models on example batches (what
``kzoo bench`` runs)."""

import functools

from kzoo.training.trainer import default_clipnorm


def bench(names, batch_size=32, steps=10, model_config=None):
    """Times a predict step and a train step of models (what ``kzoo bench`` runs).

    Each model is built, compiled as ``train`` compiles it, and timed on its own example batch
    (``kzoo.models.example_batch``): the median of ``steps`` calls of ``predict_on_batch`` and
    of ``train_on_batch``, each after one warm-up call.

    Args:
        names: registered model names.
        batch_size: the rows of the example batch.
        steps: the timed calls of each.
        model_config: ``kzoo.build`` keyword arguments for every model; a key a model does not
            take is left out for it.

    Returns:
        One dict per model: ``{"model", "parameters", "predict_ms", "train_ms"}``.

    Raises:
        ValueError: an unknown model name or a bad config value.
    """
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
        for key, call in (("predict_ms", functools.partial(model.predict_on_batch, inputs)),
                          ("train_ms", functools.partial(model.train_on_batch, inputs, targets))):
            call()
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                call()
                times.append(1000 * (time.perf_counter() - start))
            timings[key] = float(np.median(times))
        rows.append({"model": name, "parameters": model.count_params(), **timings})
    return rows

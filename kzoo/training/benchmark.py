"""``bench``: the time of a predict and a train step of models on example batches (what
``kzoo bench`` runs)."""

from kzoo.training.trainer import default_clipnorm


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

"""What the benchmark scripts share: the header line, medians of repeated calls, markdown tables.

The scripts run as ``python benchmarks/NAME.py``, so this module is imported from the scripts'
own directory (``import common``), not from the kzoo package.
"""

import os
import platform
import statistics
import time


def header(title):
    """``# title: kzoo X, TensorFlow Y, Keras Z, machine, cores, date``: the first line of every
    benchmark's output (imports TensorFlow and Keras, which every benchmark has loaded)."""
    import keras
    import tensorflow as tf

    import kzoo

    return (f"# {title}: kzoo {kzoo.__version__}, TensorFlow {tf.__version__}, Keras "
            f"{keras.__version__}, {platform.machine()}, {os.cpu_count()} cores, "
            f"{time.strftime('%Y-%m-%d')}")


def status_kib(field):
    """A field of /proc/self/status in KiB ("VmRSS" resident now, "VmHWM" its peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def median_seconds(fn, repeats, warmup=2):
    """Median wall time of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls
    (tracing, allocation and caches happen in those)."""
    return paired_median_seconds([fn], repeats, warmup)[0]


def paired_median_seconds(fns, repeats, warmup=2):
    """Median wall time of each of ``fns`` over ``repeats`` rounds, each round calling every
    function once in turn (after ``warmup`` untimed rounds). Interleaving makes a load that
    comes and goes on a shared machine hit every function alike, so their ratio holds."""
    if repeats <= 0:
        raise ValueError(f"paired_median_seconds: `repeats` must be positive, got {repeats}")
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for fn, times in zip(fns, samples):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


def step_functions(model, x):
    """``(train_step, infer)`` of a Keras model on ``x`` as compiled tf.functions: a training
    step is the forward pass, gradients of an MSE against zeros and an SGD(0) update."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(0.0)
    y = tf.zeros((x.shape[0], 1))

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function
    def infer():
        return model(x, training=False)

    return train_step, infer


def table_head(columns):
    """The two header lines of a markdown table."""
    return "| " + " | ".join(columns) + " |\n" + "|" + "---|" * len(columns)


def table_row(columns, row):
    """One markdown table line: ``row`` is a dict by column."""
    return "| " + " | ".join(str(row[c]) for c in columns) + " |"


def markdown(columns, rows):
    """A whole markdown table of ``rows`` (dicts by column)."""
    return "\n".join([table_head(columns)] + [table_row(columns, row) for row in rows])

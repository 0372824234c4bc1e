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


def table_head(columns):
    """The two header lines of a markdown table."""
    return "| " + " | ".join(columns) + " |\n" + "|" + "---|" * len(columns)


def table_row(columns, row):
    """One markdown table line: ``row`` is a dict by column."""
    return "| " + " | ".join(str(row[c]) for c in columns) + " |"


def markdown(columns, rows):
    """A whole markdown table of ``rows`` (dicts by column)."""
    return "\n".join([table_head(columns)] + [table_row(columns, row) for row in rows])

"""Load: one loaded SavedModel called from 8 threads at once, and one LiteRT interpreter per
thread, each thread sending requests of mixed batch sizes and lengths; every answer must equal,
bit for bit, what a serial call with the same request returns, and no call may fail.

The model is small (units 8), so the full 8 x 500 requests take seconds and run by default.
"""

import threading

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import kzoo.export

from .conftest import build_small

THREADS = 8
MODEL = "many_to_one_bi_lstm"   # embedding + padding mask + both directions
REQUESTS_PER_THREAD = 500


def distinct_requests(count=24, vocab=50, seed=3):
    """Token-id batches of mixed batch size (1-8) and length (1-24), right-padded with 0."""
    rng = np.random.default_rng(seed)
    requests = []
    for _ in range(count):
        batch, time = int(rng.choice([1, 2, 3, 5, 8])), int(rng.integers(1, 25))
        ids = rng.integers(1, vocab, size=(batch, time)).astype(np.int32)
        lengths = rng.integers(1, time + 1, size=batch)
        ids[np.arange(time)[None, :] >= lengths[:, None]] = 0
        requests.append(ids)
    return requests


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The model, its loaded SavedModel version and its TFLite file content."""
    directory = tmp_path_factory.mktemp("load")
    model = build_small(MODEL)
    version_dir = kzoo.export.saved_model(model, str(directory / MODEL))
    lite_path = kzoo.export.tflite(model, str(directory / f"{MODEL}.tflite"))
    with open(lite_path, "rb") as handle:
        content = handle.read()
    return model, tf.saved_model.load(version_dir), content


def hammer(call_factory, requests, expected, per_thread):
    """Run ``per_thread`` random requests in each of THREADS threads started together; each
    thread gets its own callable from ``call_factory()``. Returns (errors, mismatches, done)."""
    errors, mismatches, done = [], [], [0] * THREADS
    start = threading.Barrier(THREADS)

    def worker(index):
        try:
            call = call_factory()
            rng = np.random.default_rng(100 + index)
            start.wait()
            for _ in range(per_thread):
                k = int(rng.integers(len(requests)))
                got = call(requests[k])
                if not np.array_equal(got, expected[k]):
                    mismatches.append((index, k, float(np.max(np.abs(got - expected[k])))))
                done[index] += 1
        except BaseException as error:  # noqa: BLE001 - a thread must report, not die silently
            errors.append((index, repr(error)))
            start.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads), "a request thread hung"
    return errors, mismatches, done


def test_saved_model_from_eight_threads_equals_serial_calls(served):
    model, loaded, _ = served
    signature = loaded.signatures["serving_default"]

    def call(ids):
        return signature(inputs=tf.constant(ids))["outputs"].numpy()

    requests = distinct_requests()
    expected = [call(ids) for ids in requests]
    # The serial answers are the model's (so agreeing with them means something).
    for ids, answer in zip(requests[:4], expected):
        np.testing.assert_allclose(answer, np.asarray(model(ids, training=False)), atol=1e-5)

    errors, mismatches, done = hammer(lambda: call, requests, expected, REQUESTS_PER_THREAD)
    assert not errors, errors[:3]
    assert not mismatches, mismatches[:5]
    assert done == [REQUESTS_PER_THREAD] * THREADS


def test_litert_interpreter_per_thread_equals_serial_calls(served):
    _, loaded, content = served

    def runner():
        run = Interpreter(model_content=content).get_signature_runner("serving_default")
        return lambda ids: run(inputs=ids)["outputs"].copy()

    requests = distinct_requests()
    serial = runner()
    expected = [serial(ids) for ids in requests]
    reference = loaded.signatures["serving_default"]
    for ids, answer in zip(requests, expected):
        np.testing.assert_allclose(answer, reference(inputs=tf.constant(ids))["outputs"].numpy(),
                                   atol=1e-5)

    errors, mismatches, done = hammer(runner, requests, expected, REQUESTS_PER_THREAD)
    assert not errors, errors[:3]
    assert not mismatches, mismatches[:5]
    assert done == [REQUESTS_PER_THREAD] * THREADS

"""The Keras callbacks ``train`` adds: history.json written at each epoch's end, and the state
resets of truncated backpropagation through time.

Keras is imported when a callback is made, not with this module (``kzoo.training`` is imported
by the ``kzoo`` command before it decides whether TensorFlow is needed).
"""

from kzoo.training.run_dir import read_history, write_history


def _callback_base():
    import keras

    return keras.callbacks.Callback


class ResetStatesEvery:
    """A Keras callback that zeroes a stateful model's carried states every ``n`` batches.

    With truncated BPTT each sequence comes as ``n`` consecutive chunks; the states are zeroed
    at the first chunk of each sequence (batches 0, n, 2n... of an epoch, in training and in
    evaluation), and at the start of every epoch and every evaluation, with
    ``kzoo.models.many_to_many.reset_states``.

    Args:
        n: the chunks per sequence (``tbptt_chunks``' second result).

    Returns:
        A ``keras.callbacks.Callback`` (made when called, so that importing this module imports
        no Keras).

    Example:

    ```python
    import kzoo
    import kzoo.training

    model = kzoo.build("many_to_many_gru", units=4, vocab_size=10, embedding_dim=3,
                       stateful=True, batch_size=2)
    callback = kzoo.training.ResetStatesEvery(3)
    callback.set_model(model)
    callback.on_train_batch_begin(3)       # the first chunk of the second sequence: zeroed
    ```
    """

    def __new__(cls, n):
        from kzoo.models.many_to_many import reset_states

        base = _callback_base()

        class _ResetStatesEvery(base):
            def on_epoch_begin(self, epoch, logs=None):
                reset_states(self.model)

            def on_train_batch_begin(self, batch, logs=None):
                if batch % n == 0:
                    reset_states(self.model)

            def on_test_begin(self, logs=None):
                reset_states(self.model)

            def on_test_batch_begin(self, batch, logs=None):
                if batch % n == 0:
                    reset_states(self.model)

        return _ResetStatesEvery()


def history_callback(run_dir, start_epoch):
    """A Keras callback that writes a run's history.json at each epoch's end.

    The entries of epochs before ``start_epoch`` are kept from the file; those from
    ``start_epoch`` on are (re)written.

    Args:
        run_dir: the run directory.
        start_epoch: the epoch training starts from.

    Returns:
        A ``keras.callbacks.Callback`` whose ``history`` attribute is the history it writes
        (``{"epochs": [...], "metrics": {name: [...]}}``).
    """
    base = _callback_base()
    history = read_history(run_dir)
    keep = [i for i, e in enumerate(history["epochs"]) if e < start_epoch]
    history = {"epochs": [history["epochs"][i] for i in keep],
               "metrics": {k: [v[i] for i in keep] for k, v in history["metrics"].items()}}

    class _HistoryFile(base):
        def on_epoch_end(self, epoch, logs=None):
            history["epochs"].append(int(epoch))
            for key, value in (logs or {}).items():
                history["metrics"].setdefault(key, []).append(float(value))
            write_history(run_dir, history)

    callback = _HistoryFile()
    callback.history = history
    return callback

"""The Keras callbacks ``train`` adds: history.json written at each epoch's end, and the state
resets of truncated backpropagation through time.

Keras is imported when a callback is made, not with this module (``kzoo.training`` is imported
by the ``kzoo`` command before it decides whether TensorFlow is needed).
"""

from kzoo.training.run_dir import read_history, write_json


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


def history_callback(path, start_epoch):
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

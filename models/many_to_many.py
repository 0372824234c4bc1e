"""Many-to-many, synced: one output per input step (tagging, frame labelling, next-step prediction).

    model = kzoo.build("many_to_many_bi_lstm", vocab_size=20000, num_classes=17)   # a tagger
    model = kzoo.build("many_to_many_gru", input_dim=3, num_classes=None, output_dim=3,
                       stateful=True, batch_size=32)     # truncated BPTT over a long series
    kzoo.models.many_to_many.reset_states(model)          # between independent series

Registered: ``many_to_many_{rnn,lstm,gru}`` and their ``bi`` and ``deep`` variants,
``many_to_many_jordan`` (output recurrence, trained with teacher forcing) and
``many_to_many_convlstm`` (labels each frame of a video).
"""

import keras

from kzoo.models import variants
from kzoo.models.registry import register_model
from kzoo.models.stack import check_positive_int, recurrent_stack, sequence_inputs, \
    validate_common


def _build(*, cell, name, vocab_size=10000, embedding_dim=64, input_dim=None, units=64,
           num_layers=1, bidirectional=False, merge_mode="concat", dropout=0.0, residual=False,
           num_classes=17, output_dim=None, stateful=False, batch_size=None):
    """Token ids ``(batch, time)`` (``vocab_size``; 0 is padding and is masked) or, when
    ``input_dim`` is set, real features ``(batch, time, input_dim)`` -> a recurrent stack ->
    per step softmax over ``num_classes`` ``(batch, time, num_classes)`` (default 17: the
    Universal POS tags), or with ``num_classes=None`` and ``output_dim`` linear outputs
    ``(batch, time, output_dim)`` (next-step prediction).

    ``stateful=True`` (needs ``batch_size``, not bidirectional) carries every layer's final state
    into the next batch, for truncated backpropagation through time over chunks of a long series:
    feed the chunks in order and call ``reset_states(model)`` (also ``model.reset_states()`` on a
    freshly built model) between series.

    It trains with sparse categorical cross-entropy and accuracy for classes, mean squared error
    and MAE for real outputs; padded steps are masked out.
    """
    validate_common(name, cell=cell, units=units, num_layers=num_layers, merge_mode=merge_mode,
                    dropout=dropout, vocab_size=vocab_size, embedding_dim=embedding_dim,
                    input_dim=input_dim)
    variants.check_inputs(name, vocab_size, input_dim)
    variants.check_head(name, num_classes, output_dim)
    _check_stateful(name, stateful, batch_size, bidirectional)
    inputs, features = sequence_inputs(vocab_size=vocab_size, embedding_dim=embedding_dim,
                                       input_dim=input_dim,
                                       batch_size=batch_size if stateful else None)
    sequences = recurrent_stack(features, cell=cell, units=units, num_layers=num_layers,
                                bidirectional=bidirectional, merge_mode=merge_mode,
                                dropout=dropout, residual=residual, return_sequences=True,
                                stateful=bool(stateful))
    outputs = variants.output_head(sequences, num_classes, output_dim)
    model = keras.Model(inputs, outputs, name=name)
    if stateful:
        model.reset_states = lambda: reset_states(model)
    return model


def _check_stateful(name, stateful, batch_size, bidirectional):
    if not isinstance(stateful, bool):
        raise ValueError(f"{name}: `stateful` must be True or False, got {stateful!r}")
    check_positive_int(name, "batch_size", batch_size, allow_none=True)
    if stateful and batch_size is None:
        raise ValueError(f"{name}: `stateful=True` needs a fixed `batch_size` (row i of each "
                         f"batch continues row i of the previous one)")
    if stateful and bidirectional:
        raise ValueError(f"{name}: `stateful=True` cannot be bidirectional: the backward pass of "
                         f"a chunk would need the chunks that come after it")


def reset_states(model):
    """Zeroes the carried state of every stateful recurrent layer of ``model``.

    A stateful model (``stateful=True``) carries each layer's final state into the next batch,
    for truncated backpropagation through time over consecutive chunks of a long series: reset
    it between independent series. A freshly built model has it as ``model.reset_states()``;
    a model from ``keras.saving.load_model`` does not keep that method, and needs this.

    Args:
        model: a ``keras.Model``; its layers that are not stateful are left alone.

    Example:

    ```python
    import numpy as np
    import kzoo
    from kzoo.models.many_to_many import reset_states

    model = kzoo.build("many_to_many_gru", input_dim=3, num_classes=None, output_dim=3,
                       units=8, stateful=True, batch_size=2)
    chunk = np.ones((2, 5, 3), "float32")
    first = model.predict(chunk, verbose=0)
    print(np.allclose(model.predict(chunk, verbose=0), first))   # False: the state went on
    reset_states(model)                                          # a new series
    print(np.allclose(model.predict(chunk, verbose=0), first))   # True
    ```
    """
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_state"):
            layer.reset_state()


def _example(config, batch_size, rng):
    batch_size = variants.example_batch_size(config, batch_size)
    inputs = variants.example_sequence_inputs(config, batch_size, rng)
    return inputs, variants.example_targets(config, rng, (batch_size, variants.EXAMPLE_LENGTH))


variants.register_variants(
    globals(), "many_to_many", _build,
    "one output per input step (taggers, next-step predictors).",
    example=_example, loss=variants.head_loss, metrics=variants.head_metrics)


# -- Jordan: output recurrence, teacher forcing --------------------------------------------------
def _jordan_example(config, batch_size, rng):
    inputs = variants.example_sequence_inputs(config, batch_size, rng)
    targets = variants.example_targets(config, rng, (batch_size, variants.EXAMPLE_LENGTH))
    return (inputs, targets), targets


@register_model("many_to_many", "jordan", example=_jordan_example,
                loss=variants.head_loss, metrics=variants.head_metrics)
def many_to_many_jordan(*, vocab_size=10000, embedding_dim=64, input_dim=None, units=64,
                        num_classes=17, output_dim=None):
    """Many-to-many, Jordan RNN (its previous output is fed back), trained with teacher forcing.

    h_t = tanh(x_t W + ŷ_{t-1} U + b), ŷ_t = softmax(h_t V + c)  (linear ŷ for ``output_dim``).

    Inputs ``(sequences, targets)``: token ids ``(batch, time)`` (or real features
    ``(batch, time, input_dim)`` when ``input_dim`` is set) and the ground-truth outputs
    y_1..y_T: class ids ``(batch, time)`` (one-hot encoded inside), or ``(batch, time,
    output_dim)`` reals. The layer shifts them itself, so step t sees y_{t-1} and the steps run in
    parallel: train with ``model.fit((x, y), y)``. At inference no ground truth exists:
    ``free_running_model(model)`` shares the weights and feeds each prediction ŷ_{t-1} back.
    The Jordan layer is the output layer, so there is no ``num_layers``/``bidirectional`` (a
    backward pass cannot feed back predictions it has not made yet).
    """
    name = "many_to_many_jordan"
    validate_common(name, units=units, vocab_size=vocab_size, embedding_dim=embedding_dim,
                    input_dim=input_dim)
    variants.check_inputs(name, vocab_size, input_dim)
    variants.check_head(name, num_classes, output_dim)
    inputs, features = sequence_inputs(vocab_size=vocab_size, embedding_dim=embedding_dim,
                                       input_dim=input_dim)
    if num_classes is not None:
        targets = keras.Input((None,), dtype="int32", name="teacher_outputs")
        teacher = keras.ops.one_hot(targets, num_classes)
    else:
        targets = keras.Input((None, output_dim), name="teacher_outputs")
        teacher = targets
    jordan = _jordan_layer(units, num_classes, output_dim)
    outputs = jordan(features, teacher_outputs=teacher)
    return keras.Model((inputs, targets), outputs, name=name)


def _jordan_layer(units, num_classes, output_dim):
    import kzoo.layers

    return kzoo.layers.Jordan(units, num_classes or output_dim,
                              output_activation="softmax" if num_classes else "linear",
                              return_sequences=True, name="jordan")


def free_running_model(model):
    """The inference model of a ``many_to_many_jordan``: each step fed its own prediction.

    A Jordan model trains with teacher forcing (step t reads the ground truth y_{t-1}); at
    inference there is none, so this model takes the inputs only and feeds each step the
    layer's own previous prediction ŷ_{t-1}. It shares ``model``'s layers, so its weights.

    Args:
        model: a ``many_to_many_jordan`` model, built or loaded.

    Returns:
        A ``keras.Model`` from the inputs (token ids or features) to the outputs
        (batch, time, num_classes or output_dim), named ``{model.name}_free_running``.

    Example:

    ```python
    import kzoo
    from kzoo.models.many_to_many import free_running_model

    config = {"vocab_size": 30, "num_classes": 5, "units": 8}
    model = kzoo.build("many_to_many_jordan", **config)
    (inputs, teacher), targets = kzoo.models.example_batch("many_to_many_jordan", config)
    model.compile("adam", **kzoo.models.compile_args("many_to_many_jordan", **config))
    model.fit((inputs, teacher), targets, epochs=1, verbose=0)
    print(free_running_model(model).predict(inputs, verbose=0).shape)   # (2, 5, 5)
    ```
    """
    inputs = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype,
                         name="inputs")
    features = inputs
    if "inputs_embedding" in [layer.name for layer in model.layers]:
        features = model.get_layer("inputs_embedding")(inputs)
    outputs = model.get_layer("jordan")(features)
    return keras.Model(inputs, outputs, name=f"{model.name}_free_running")


# -- ConvLSTM: one label per video frame ---------------------------------------------------------
def _video_example(config, batch_size, rng):
    shape = (batch_size, variants.EXAMPLE_LENGTH, config["rows"], config["cols"],
             config["channels"])
    frames = rng.normal(size=shape).astype("float32")
    return frames, variants.example_targets(config, rng, (batch_size, variants.EXAMPLE_LENGTH))


@register_model("many_to_many", "convlstm", example=_video_example,
                loss=variants.head_loss, metrics=variants.head_metrics)
def many_to_many_convlstm(*, rows=64, cols=64, channels=3, filters=32, kernel_size=3,
                          num_layers=1, bidirectional=False, merge_mode="concat", dropout=0.0,
                          residual=False, num_classes=10):
    """Many-to-many, ConvLSTM: labels each frame of a video (batch, time, rows, cols, channels).

    A stack of ``kzoo.layers.ConvLSTM2D(filters, kernel_size, padding="same")`` over the frames
    (optionally bidirectional and deep, dropout between layers, residual), each frame's feature
    map averaged over rows and columns, then softmax over ``num_classes`` per frame
    ``(batch, time, num_classes)``. The time length is free.
    """
    name = "many_to_many_convlstm"
    validate_common(name, units=filters, num_layers=num_layers, merge_mode=merge_mode,
                    dropout=dropout, rows=rows, cols=cols, channels=channels,
                    kernel_size=kernel_size, num_classes=num_classes)
    frames = keras.Input((None, rows, cols, channels), name="frames")
    sequences = recurrent_stack(frames, cell="convlstm", units=filters, num_layers=num_layers,
                                bidirectional=bidirectional, merge_mode=merge_mode,
                                dropout=dropout, residual=residual, return_sequences=True,
                                kernel_size=kernel_size, padding="same", name="convlstm")
    # Mean over rows and columns of each frame. (keras.layers.TimeDistributed over the free time
    # axis returned a wrong time length in graph mode (Keras 3.15), so a plain op instead.)
    pooled = keras.ops.mean(sequences, axis=(2, 3))
    outputs = variants.output_head(pooled, num_classes, None)
    return keras.Model(frames, outputs, name=name)

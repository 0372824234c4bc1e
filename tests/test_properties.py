"""Properties every kzoo recurrent layer must have, for random shapes, cells and weights
(hypothesis): padding + mask changes nothing at valid steps, the batch axis is independent, going
backwards is reversing the input, a stateful layer can take a sequence in pieces, and a summed
Bidirectional is the sum of its two directions.

Weights are drawn from the example's seed (not the initializers), so a failing example shrinks
and replays exactly.
"""

import keras
import numpy as np
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kzoo
from kzoo.layers.scan import SCAN_MODES
from kzoo.layers.target import TRACE_TARGETS

L = kzoo.layers
CELLS = ("rnn", "lstm", "gru", "jordan")
ATOL = 2e-5

# Each example builds fresh layers and runs them eagerly (~0.1 s): these sizes keep the file well
# under a minute on a loaded 2-core machine while every cell gets several examples per property.
PROPERTY_SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow])


@st.composite
def setups(draw, min_time=1):
    """A cell with its options, the sizes, and a seed for weights and inputs."""
    cell = draw(st.sampled_from(CELLS))
    options = {}
    if cell == "gru":
        options["reset_after"] = draw(st.booleans())
    if cell == "lstm":
        options["peephole"] = draw(st.booleans())
    if cell == "jordan":
        options["output_units"] = draw(st.integers(2, 3))
    return dict(cell=cell, options=options,
                batch=draw(st.integers(1, 4)), time=draw(st.integers(min_time, 7)),
                features=draw(st.integers(1, 4)), units=draw(st.integers(1, 5)),
                seed=draw(st.integers(0, 2**31 - 1)))


def make_layer(setup, **kwargs):
    kind = {"rnn": L.SimpleRNN, "lstm": L.LSTM, "gru": L.GRU, "jordan": L.Jordan}[setup["cell"]]
    return kind(setup["units"], **setup["options"], **kwargs)


def random_weights(layer, seed):
    """Set every trainable weight of a built layer to N(0, 0.6²) from ``seed`` (large enough
    that the nonlinearities are not all in their linear range); a stateful layer's states stay
    zero."""
    rng = np.random.default_rng(seed)
    for variable in layer.trainable_weights:
        variable.assign(rng.normal(0, 0.6, variable.shape).astype("float32"))


def twin_layers(setup, first_kwargs, second_kwargs, batch_size=None):
    """Two layers of the same cell and the same weights, differing only in layer arguments."""
    layers = []
    for kwargs in (first_kwargs, second_kwargs):
        layer = make_layer(setup, **kwargs)
        layer.build((batch_size if kwargs.get("stateful") else None, None, setup["features"]))
        random_weights(layer, setup["seed"])
        layers.append(layer)
    return layers


def inputs(setup, time=None):
    rng = np.random.default_rng(setup["seed"] + 1)
    shape = (setup["batch"], time or setup["time"], setup["features"])
    return rng.normal(size=shape).astype("float32")


def as_numpy(result):
    return [np.asarray(r) for r in result]


@PROPERTY_SETTINGS
@given(setup=setups(), go_backwards=st.booleans(), extra=st.integers(1, 4),
       data=st.data())
def test_right_padding_with_mask_equals_the_unpadded_sequence(setup, go_backwards, extra, data):
    layer = make_layer(setup, return_sequences=True, return_state=True,
                       go_backwards=go_backwards)
    layer.build((None, None, setup["features"]))
    random_weights(layer, setup["seed"])
    batch, time = setup["batch"], setup["time"]
    lengths = data.draw(st.lists(st.integers(1, time), min_size=batch, max_size=batch))
    # Padding holds garbage, not zeros: only the mask may keep it out.
    padded = inputs(setup, time + extra) * 3.0
    mask = np.arange(time + extra)[None, :] < np.array(lengths)[:, None]

    outputs, *states = as_numpy(layer(padded, mask=mask))
    for row, length in enumerate(lengths):
        alone, *alone_states = as_numpy(layer(padded[row:row + 1, :length]))
        # go_backwards emits in processing order: the valid steps come last after the padding.
        valid = outputs[row, -length:] if go_backwards else outputs[row, :length]
        np.testing.assert_allclose(valid, alone[0], atol=ATOL)
        for state, alone_state in zip(states, alone_states):
            np.testing.assert_allclose(state[row], alone_state[0], atol=ATOL)


@PROPERTY_SETTINGS
@given(setup=setups(), masked=st.booleans(), data=st.data())
def test_permuting_the_batch_permutes_the_outputs(setup, masked, data):
    layer = make_layer(setup, return_sequences=True, return_state=True)
    layer.build((None, None, setup["features"]))
    random_weights(layer, setup["seed"])
    x = inputs(setup)
    batch, time = setup["batch"], setup["time"]
    permutation = np.array(data.draw(st.permutations(range(batch))))
    mask = None
    if masked:
        lengths = np.array(data.draw(st.lists(st.integers(0, time), min_size=batch,
                                              max_size=batch)))
        mask = np.arange(time)[None, :] < lengths[:, None]

    reference = as_numpy(layer(x, mask=mask))
    permuted = as_numpy(layer(x[permutation],
                              mask=None if mask is None else mask[permutation]))
    for expected, got in zip(reference, permuted):
        np.testing.assert_allclose(got, expected[permutation], atol=ATOL)


@PROPERTY_SETTINGS
@given(setup=setups())
def test_go_backwards_equals_reversing_the_input(setup):
    backwards, forwards = twin_layers(
        setup, dict(return_sequences=True, return_state=True, go_backwards=True),
        dict(return_sequences=True, return_state=True))
    x = inputs(setup)
    for got, expected in zip(as_numpy(backwards(x)), as_numpy(forwards(x[:, ::-1]))):
        np.testing.assert_allclose(got, expected, atol=ATOL)


@PROPERTY_SETTINGS
@given(setup=setups(min_time=2), data=st.data())
def test_stateful_layer_fed_two_halves_equals_one_call(setup, data):
    batch, time = setup["batch"], setup["time"]
    split = data.draw(st.integers(1, time - 1))
    stateful, whole = twin_layers(setup, dict(return_sequences=True, stateful=True),
                                  dict(return_sequences=True, return_state=True),
                                  batch_size=batch)
    x = inputs(setup)
    first = np.asarray(stateful(x[:, :split]))
    second = np.asarray(stateful(x[:, split:]))
    expected, *expected_states = as_numpy(whole(x))
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), expected, atol=ATOL)
    for variable, state in zip(stateful.states, expected_states):
        np.testing.assert_allclose(np.asarray(variable), state, atol=ATOL)

    # reset_state starts over: the second half alone is then the same as a fresh call on it.
    stateful.reset_state()
    np.testing.assert_allclose(np.asarray(stateful(x[:, split:])),
                               np.asarray(whole(x[:, split:])[0]), atol=ATOL)


@PROPERTY_SETTINGS
@given(setup=setups(), return_sequences=st.booleans(), masked=st.booleans(),
       wrapper=st.sampled_from(["kzoo", "keras"]), data=st.data())
def test_bidirectional_sum_is_the_sum_of_its_directions(setup, return_sequences, masked,
                                                        wrapper, data):
    wrap = L.Bidirectional if wrapper == "kzoo" else keras.layers.Bidirectional
    bidirectional = wrap(make_layer(setup, return_sequences=return_sequences),
                         merge_mode="sum")
    bidirectional.build((None, None, setup["features"]))
    random_weights(bidirectional, setup["seed"])
    x = inputs(setup)
    batch, time = setup["batch"], setup["time"]
    mask = None
    if masked:
        lengths = np.array(data.draw(st.lists(st.integers(1, time), min_size=batch,
                                              max_size=batch)))
        mask = np.arange(time)[None, :] < lengths[:, None]

    merged = np.asarray(bidirectional(x, mask=mask))
    forward = np.asarray(bidirectional.forward_layer(x, mask=mask))
    backward = np.asarray(bidirectional.backward_layer(x, mask=mask))
    assert bidirectional.backward_layer.go_backwards
    if return_sequences:
        # The backward layer emits in its own (reversed) order; the wrapper flips it back.
        backward = backward[:, ::-1]
    expected = forward + backward
    if return_sequences and mask is not None:
        merged, expected = merged[mask], expected[mask]
    np.testing.assert_allclose(merged, expected, atol=ATOL)

    # And each direction is itself the plain layer: forward on x, backward on each reversed row.
    if not return_sequences:
        plain = make_layer(setup)
        plain.build((None, None, setup["features"]))
        plain.set_weights(bidirectional.backward_layer.get_weights())
        lengths = mask.sum(1) if mask is not None else np.full(batch, time)
        for row, length in enumerate(lengths):
            reversed_row = x[row:row + 1, :length][:, ::-1]
            np.testing.assert_allclose(backward[row], np.asarray(plain(reversed_row))[0],
                                       atol=ATOL)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(setup=setups(), time=st.integers(1, 40), go_backwards=st.booleans(), data=st.data())
def test_graph_forms_equal_eager(setup, time, go_backwards, data):
    """The traced loop in every loop form (scan modes) and for every trace target (the TFLite
    forms' registers of 16 steps, and the int8 form's blocks of 8 steps, which a random length
    crosses) gives what eager execution gives."""
    layer = make_layer(setup, return_sequences=True, return_state=True,
                       go_backwards=go_backwards)
    layer.build((None, None, setup["features"]))
    random_weights(layer, setup["seed"])
    x = inputs(setup, time)
    lengths = np.array(data.draw(st.lists(st.integers(0, time), min_size=setup["batch"],
                                          max_size=setup["batch"])))
    mask = np.arange(time)[None, :] < lengths[:, None]
    expected = as_numpy(layer(x, mask=mask))
    contexts = [(f"scan mode {mode}", L.scan_mode, mode) for mode in SCAN_MODES]
    contexts += [(f"trace target {target}", L.trace_target, target) for target in TRACE_TARGETS]
    for name, context, value in contexts:
        with context(value):
            traced = tf.function(lambda x, mask: layer(x, mask=mask))
            got = as_numpy(traced(tf.constant(x), tf.constant(mask)))
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, atol=ATOL, err_msg=name)

"""The worked example of DESIGN.md, reproduced by kzoo.layers.SimpleRNN to 4 decimals."""

import keras
import numpy as np

import kzoo

W_HX = np.array([[.28, .84, .57, .48], [.90, .87, .69, .18], [.53, .09, .55, .49]])
W_HH = np.array([[.41, .12, .13], [.51, .24, .26], [.61, .34, .36]])
W_YH = np.array([[.37, .97, .83], [.39, .28, .65], [.64, .19, .33], [.91, .32, .14]])
B = np.array([.51, .62, .73])
H1 = np.array([[.11, .21, .31]])
S, C, R, T = np.eye(4)


def test_worked_example_hidden_states_and_softmax_outputs():
    rnn = kzoo.layers.SimpleRNN(3, return_sequences=True, return_state=True)
    rnn.build((1, 3, 4))
    rnn.set_weights([W_HX.T, W_HH.T, B])
    readout = keras.layers.Dense(4, use_bias=False, activation="softmax")
    readout.build((None, 3))
    readout.set_weights([W_YH.T])

    inputs = np.stack([S, C, R])[None].astype("float32")
    states, last = rnn(inputs, initial_state=[H1.astype("float32")])
    states = np.asarray(states)[0]
    np.testing.assert_allclose(states[0], [0.7166, 0.9363, 0.9070], atol=5e-5)
    np.testing.assert_allclose(states[1], [0.9540, 0.9807, 0.9564], atol=5e-5)
    np.testing.assert_allclose(states[2], [0.9370, 0.9793, 0.9876], atol=5e-5)
    np.testing.assert_allclose(np.asarray(last)[0], states[2], atol=1e-7)
    probabilities = np.asarray(readout(states))
    np.testing.assert_allclose(probabilities[0], [0.4441, 0.2006, 0.1650, 0.1903], atol=5e-5)
    np.testing.assert_allclose(probabilities[2], [0.4456, 0.1934, 0.1632, 0.1978], atol=5e-5)

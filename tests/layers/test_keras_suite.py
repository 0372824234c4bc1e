"""Keras 3.15's own RNN tests, pointed at kzoo's classes."""


import importlib

import pytest
from keras.src import layers as keras_layers

import kzoo

pytestmark = pytest.mark.slow

KZOO_NAMES = ("SimpleRNN", "LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
              "Bidirectional", "RNN", "SimpleRNNCell", "LSTMCell", "GRUCell")


class KzooLayers:
    """``keras.src.layers`` with kzoo's recurrent classes in place of Keras' own."""

    def __getattr__(self, name):
        if name in KZOO_NAMES and hasattr(kzoo.layers, name):
            return getattr(kzoo.layers, name)
        return getattr(keras_layers, name)


MODULES = {name: importlib.import_module(f"keras.src.layers.rnn.{name}") for name in (
    "simple_rnn_test", "lstm_test", "gru_test", "conv_lstm1d_test", "conv_lstm2d_test",
    "conv_lstm3d_test", "bidirectional_test", "rnn_test", "stacked_rnn_cells_test")}


@pytest.fixture(autouse=True)
def kzoo_classes(monkeypatch):
    for module in MODULES.values():
        monkeypatch.setattr(module, "layers", KzooLayers())


class TestSimpleRNN(MODULES["simple_rnn_test"].SimpleRNNTest):
    pass


class TestLSTM(MODULES["lstm_test"].LSTMTest):
    pass


class TestGRU(MODULES["gru_test"].GRUTest):
    pass


class TestConvLSTM1D(MODULES["conv_lstm1d_test"].ConvLSTM1DTest):
    pass


class TestConvLSTM2D(MODULES["conv_lstm2d_test"].ConvLSTM2DTest):
    pass


class TestConvLSTM3D(MODULES["conv_lstm3d_test"].ConvLSTM3DTest):
    pass


class TestBidirectional(MODULES["bidirectional_test"].SimpleRNNTest):
    pass


class TestRNN(MODULES["rnn_test"].RNNTest):
    pass


class TestStackedRNNCells(MODULES["stacked_rnn_cells_test"].StackedRNNTest):
    pass

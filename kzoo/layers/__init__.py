"""kzoo's recurrent cells, sequence layers and attention, all on one scan engine."""

from kzoo.layers.scan import scan, scan_mode
from kzoo.layers.cell import RecurrentCell
from kzoo.layers.recurrent import Recurrent
from kzoo.layers.simple_rnn import SimpleRNN, SimpleRNNCell
from kzoo.layers.lstm import LSTM, LSTMCell
from kzoo.layers.gru import GRU, GRUCell

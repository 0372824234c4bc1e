"""kzoo's recurrent cells, sequence layers and attention, all on one scan engine."""

from kzoo.layers.target import get_trace_target, trace_target
from kzoo.layers.scan import get_scan_mode, record_plans, scan, scan_mode
from kzoo.layers.cell import RecurrentCell
from kzoo.layers.recurrent import Recurrent
from kzoo.layers.simple_rnn import SimpleRNN, SimpleRNNCell
from kzoo.layers.lstm import LSTM, LSTMCell
from kzoo.layers.gru import GRU, GRUCell
from kzoo.layers.jordan import Jordan, JordanCell
from kzoo.layers.rnn import RNN
from kzoo.layers.bidirectional import Bidirectional
from kzoo.layers.conv_rnn import (ConvGRU2D, ConvGRU2DCell, ConvLSTM1D, ConvLSTM1DCell,
                                  ConvLSTM2D, ConvLSTM2DCell, ConvLSTM3D, ConvLSTM3DCell)
from kzoo.layers.attention import (BahdanauAttention, BahdanauMonotonicAttention,
                                   LuongAttention, LuongMonotonicAttention)
from kzoo.layers.torch_weights import from_torch, to_torch, to_torch_state_dict
from kzoo.layers.attention_wrapper import AttentionWrapper
from kzoo.layers.embedding import TokenEmbedding
from kzoo.layers.dense import Dense
from kzoo.layers.text import TokenVectorizer
from kzoo.layers.time_distributed import TimeDistributed

__all__ = [
    "AttentionWrapper", "BahdanauAttention", "BahdanauMonotonicAttention", "Bidirectional",
    "ConvGRU2D", "ConvGRU2DCell", "ConvLSTM1D", "ConvLSTM1DCell",
    "ConvLSTM2D", "ConvLSTM2DCell", "ConvLSTM3D", "ConvLSTM3DCell", "Dense", "GRU", "GRUCell",
    "Jordan", "JordanCell", "LSTM", "LSTMCell", "LuongAttention", "LuongMonotonicAttention",
    "RNN", "Recurrent", "RecurrentCell", "SimpleRNN", "SimpleRNNCell", "TimeDistributed",
    "TokenEmbedding", "TokenVectorizer", "from_torch", "get_scan_mode", "get_trace_target",
    "record_plans", "scan", "scan_mode", "to_torch", "to_torch_state_dict", "trace_target",
]

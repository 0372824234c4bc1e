"""What each builder argument means: the one line ``kzoo info`` prints beside an argument's default
and the ``Args:`` section ``register_model`` adds to every builder's docstring.

An argument is explained once, under its name. Where it means something else in one pattern or in
one model, a key ``"pattern.argument"`` or ``"model_name.argument"`` explains it there (the most
specific key wins). Registering a builder whose argument has no explanation here fails, so every
config key ``kzoo train --config`` accepts is explained. No TensorFlow is imported here.
"""

ARGUMENTS = {
    # -- inputs ------------------------------------------------------------------------------
    "vocab_size": "Number of input token ids (0 is padding and is masked); unused when "
                  "input_dim is set.",
    "one_to_many.vocab_size": "Number of caption token ids the decoder reads and predicts "
                              "(0 padding, 1 start, 2 end, words from 3).",
    "embedding_dim": "Size of the vector each token id is embedded into.",
    "input_dim": "Features per time step of real-valued input sequences; None reads token ids "
                 "(vocab_size) instead.",
    "one_to_one.input_dim": "Size of the input feature vector.",
    "feature_dim": "Size of the input feature vector (e.g. an image's pooled CNN features); it "
                   "sets every decoder layer's initial state.",
    "rows": "Height of each video frame, in pixels.",
    "cols": "Width of each video frame, in pixels.",
    "channels": "Channels of each video frame (3 for RGB).",
    "source_vocab_size": "Number of source token ids (0 is padding and is masked).",
    "target_vocab_size": "Number of target token ids the decoder reads and predicts (0 is "
                         "padding; start_id and end_id among them).",
    "source_embedding_dim": "Size of the vector each source token id is embedded into.",
    "target_embedding_dim": "Size of the vector each target token id is embedded into.",
    "vocabularies": "None, or {\"source\": ..., \"target\": ...} token lists (index = id) that "
                    "let the model translate strings (kzoo train sets them from the dataset).",
    # -- the recurrent stack ----------------------------------------------------------------
    "units": "Hidden units of each recurrent layer (per direction when bidirectional).",
    "one_to_one.units": "Units of each hidden Dense layer.",
    "seq2seq.units": "Hidden units of each encoder layer (per direction); the decoder cell is as "
                     "wide as the encoder's output.",
    "filters": "Convolution filters (output channels) of each ConvLSTM layer.",
    "kernel_size": "Side of the square convolution kernel of each ConvLSTM layer.",
    "activation": "Activation of the hidden layers (a Keras activation name: relu, tanh, "
                  "gelu...).",
    "num_layers": "Number of stacked recurrent layers, each reading the output sequence of the "
                  "one before.",
    "one_to_one.num_layers": "Number of hidden Dense layers.",
    "seq2seq.num_layers": "Number of stacked encoder layers (the decoder is one cell).",
    "bidirectional": "Run each recurrent layer forward and backward over the sequence and merge "
                     "the two (merge_mode).",
    "merge_mode": "How a bidirectional layer merges its two directions: concat (twice the "
                  "width), sum, mul or ave.",
    "dropout": "Dropout rate between stacked layers while training, in [0, 1).",
    "one_to_one.dropout": "Dropout rate after each hidden layer while training, in [0, 1).",
    "seq2seq.dropout": "Dropout rate between encoder layers and before the output layer while "
                       "training, in [0, 1).",
    "residual": "Add each layer's input to its output (projected where the widths differ).",
    "stateful": "Carry each layer's final state into the next batch, to train on consecutive "
                "chunks of long series (truncated BPTT; needs batch_size).",
    "batch_size": "The fixed batch size of a stateful model (row i of a batch continues row i "
                  "of the one before); None otherwise.",
    # -- outputs ------------------------------------------------------------------------------
    "num_classes": "Classes of the softmax output; None for a real-valued output of output_dim "
                   "values (regression).",
    "many_to_many.num_classes": "Classes of the softmax output at each step; None for "
                                "real-valued outputs of output_dim values per step.",
    "many_to_many_convlstm.num_classes": "Classes of the softmax output at each frame.",
    "output_dim": "Size of the real-valued (linear) output when num_classes is None.",
    # -- seq2seq decoding and attention -------------------------------------------------------
    "start_id": "Token id that begins every decoder input.",
    "end_id": "Token id that ends every target; decoding stops at it.",
    "attention_units": "Width of the additive score's hidden layer (Bahdanau, Luong concat); "
                       "None: the decoder's width.",
    "attention_normalize": "Weight-normalized Bahdanau score (a learned scale of v / ||v|| and "
                           "a bias), as in TensorFlow Addons.",
    "attention_layer_size": "Size of the attention vector tanh(W_a [output; context]); None: "
                            "the decoder's width.",
    "attention_scale": "Multiply the Luong score by a learned scalar (initialized to 1).",
    "luong_score": "Luong score of decoder state s against encoder output h: dot (s·h), "
                   "general (s·Wh) or concat.",
    "input_feeding": "Feed each step's attention vector into the next step's decoder input "
                     "(Luong et al. 2015).",
    "monotonic": "Monotonic attention (Raffel et al. 2017): the alignment only moves forward "
                 "through the source.",
    "scheduled_sampling": "Probability that a training step reads the model's own previous "
                          "prediction instead of the true token (0: pure teacher forcing).",
    "scheduled_sampling_mode": "What scheduled sampling feeds: argmax (the most likely token), "
                               "sample (a token drawn from the softmax) or output (the "
                               "expected embedding of the output, softmax(logits) E).",
}


def explain(model, pattern, argument):
    """The one-line explanation of ``argument`` of the model ``model`` of ``pattern``, or None."""
    for key in (f"{model}.{argument}", f"{pattern}.{argument}", argument):
        if key in ARGUMENTS:
            return ARGUMENTS[key]
    return None

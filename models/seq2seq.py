"""Sequence to sequence (encoder-decoder), with or without attention: translation-shaped tasks.

    model = kzoo.build("seq2seq_attention", source_vocab_size=8000, target_vocab_size=8000)
    model.compile(optimizer="adam", **kzoo.models.compile_args("seq2seq_attention"))
    model.fit((source_ids, target_in_ids), target_out_ids)           # teacher forcing
    out = model.generate(source_ids, max_length=50)                   # greedy, one graph
    out["tokens"], out["scores"], out["attention"]                    # a dict of tensors
    out = model.generate(source_ids, method="beam", beam_width=5, length_penalty=0.6)

Token ids: 0 is padding (masked in the encoder, the attention, the loss and the metrics),
``start_id`` (default 1) begins every decoder input, ``end_id`` (default 2) ends every target.
A target ``y_1..y_n`` is fed as ``target_in = [start, y_1..y_n]`` and predicted as
``target_out = [y_1..y_n, end]`` (both padded with 0 to the batch length).

A model may carry its vocabularies (``vocabularies={"source": ..., "target": ...}``, e.g. a
dataset's ``info.vectorizers``; saved in the model's config, so in ``.keras`` files): then
``model.translate(["twenty-three"])`` takes and returns strings, tokenized in the graph as the
dataset tokenized them, and ``kzoo.export.saved_model`` adds a string-to-string ``translate``
signature.

Decode length: without ``max_length``, every decode (``generate``, ``translate``, ``kzoo
predict``, the exported signatures given ``max_length <= 0``) runs at most
:func:`default_decode_length` ``= 2 * L + 2`` steps, ``L`` the source length in the target's
units (:meth:`Seq2Seq.source_units`): source tokens, except for a model whose vocabularies say it
turns words into characters, where ``L`` is the length in characters of the source text. A source
whose default decode length would pass ``decoding.MAX_DECODE_LENGTH`` (``L`` over
:data:`MAX_SOURCE_UNITS` = 4999) is refused: longer than any decode this model can run.

The model: ``Embedding(mask_zero) -> recurrent stack`` (``cell``, ``num_layers``,
``bidirectional`` + ``merge_mode``, ``dropout``, ``residual``: see ``kzoo.models.stack``) gives the
memory h_1..h_Ts and the final state, which (forward and backward states merged like the outputs)
initializes the decoder. The decoder cell has the memory's width; with attention it is an
:class:`kzoo.layers.AttentionWrapper` (attention on the cell output, attention vector
a_t = tanh(W_a [o_t; c_t]) fed back into the next input when ``input_feeding``), and
logits_t = W_o a_t + b (without attention: W_o o_t + b). Training runs the decoder step through the
scan engine.

Serving functions: :meth:`Seq2Seq.encode`, :meth:`Seq2Seq.decode_step` (the same step, one token
at a time), :meth:`Seq2Seq.search` (greedy or beam search, ``kzoo.models.decoding``, in one
``tf.while_loop``) and :meth:`Seq2Seq.translate_graph` (strings in, strings out). Called eagerly
each runs as one graph; called inside a ``tf.function`` each traces into it, which is how
``kzoo.export`` builds its signatures from them. ``generate`` and ``translate`` are ``search``
and ``translate_graph`` with their arguments checked in Python.

Mixed precision: a model built under ``keras.mixed_precision.set_global_policy("mixed_float16")``
(or ``"mixed_bfloat16"``) trains and decodes in that precision; its variables, and so its
exports, stay float32.
"""

import functools
import inspect
import warnings

import keras
import numpy as np
import tensorflow as tf

import kzoo.layers
from kzoo.layers.attention import LUONG_SCORES
from kzoo.layers.attention_wrapper import AttentionWrapper
from kzoo.layers.cell import in_compute_dtype
from kzoo.layers.scan import scan
from kzoo.layers.target import tracing_for_tflite
from kzoo.layers.text import END_ID, PAD_ID, RESERVED_TOKENS, START_ID, UNKNOWN_ID, \
    TokenVectorizer, tokenize
from kzoo.models import arguments, decoding
from kzoo.models.registry import args_section, register_model
from kzoo.models.sampling import ScheduledOutputSampler, ScheduledSampler, SequenceAccuracy, \
    SequenceLoss, TeacherForcingSampler, SCHEDULED_SAMPLING_MODES
from kzoo.models.token_choice import TokenSampler, check_sampling
from kzoo.models.stack import check_choice, check_positive_int, check_rate, \
    recurrent_stack, validate_common
from kzoo.models.variants import make_builder

ATTENTIONS = ("bahdanau", "luong", "bahdanau_monotonic", "luong_monotonic")
GENERATE_METHODS = ("greedy", "beam", "sample")
# The beam search of generate and translate, and the exported ``beam_search`` signature.
DEFAULT_BEAM_WIDTH = 4
VOCABULARY_SIDES = ("source", "target")
VOCABULARY_KEYS = ("tokens", "level", "standardize")

_CELL_CLASSES = {"rnn": "SimpleRNNCell", "lstm": "LSTMCell", "gru": "GRUCell"}


def _merge_states(states, bidirectional, merge_mode):
    """One decoder state list from the encoder's final states: forward and backward states
    (``[*fw, *bw]``) are merged like the outputs (concat, sum, mul or ave)."""
    if not bidirectional:
        return list(states)
    half = len(states) // 2
    merged = []
    for forward, backward in zip(states[:half], states[half:]):
        if merge_mode == "concat":
            merged.append(tf.concat([forward, backward], -1))
        elif merge_mode == "sum":
            merged.append(forward + backward)
        elif merge_mode == "mul":
            merged.append(forward * backward)
        else:
            merged.append((forward + backward) / 2)
    return merged


def default_decode_length(source_units):
    """The decode length when none is given: ``2 * L + 2`` for a source of ``L`` units.

    ``L`` is the source length in the target's units, what :meth:`Seq2Seq.source_units`
    measures: source tokens, or the characters of the source text when words are decoded into
    characters (since "twenty-three" becomes "dreiundzwanzig"). :meth:`Seq2Seq.generate`,
    :meth:`Seq2Seq.translate`, ``kzoo predict`` and the exported signatures (given
    ``max_length <= 0``) decode at most this many steps.

    Args:
        source_units: the source length ``L``, an int or an integer tensor.

    Returns:
        ``2 * source_units + 2``, of the type of ``source_units``.

    Example:

    ```python
    from kzoo.models import default_decode_length, MAX_SOURCE_UNITS

    print(default_decode_length(7))                  # 16
    print(default_decode_length(MAX_SOURCE_UNITS))   # 10000: the longest decode there is
    ```
    """
    return 2 * source_units + 2


# The longest source (in its units) whose default decode length fits the decode buffers.
MAX_SOURCE_UNITS = (decoding.MAX_DECODE_LENGTH - 2) // 2


class UnknownTokensWarning(UserWarning):
    """Text held tokens outside the model's source vocabulary, read as ``[UNK]`` (id 3).

    :meth:`Seq2Seq.translate` and :meth:`Seq2Seq.text_to_ids` warn with it, naming the tokens
    and the texts they are in: the translation of such a text is a guess. Filter or catch it
    like any warning.

    Example:

    ```python
    import warnings
    import kzoo
    import kzoo.datasets as kd

    source = kd.TokenVectorizer(["one", "two"], level="word")
    target = kd.TokenVectorizer(list("einszw"), level="char")
    model = kzoo.build("seq2seq_lstm", units=4, source_vocab_size=source.vocabulary_size,
                       target_vocab_size=target.vocabulary_size,
                       vocabularies={"source": source, "target": target})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", kzoo.models.UnknownTokensWarning)
        model.translate("two three", max_length=4)
    print(caught[0].message)   # ...: not in the source vocabulary, read as [UNK] ...: 'three' ...
    ```
    """


def warn_unknown_tokens(where, unknown, stacklevel=3):
    """``warnings.warn`` an :class:`UnknownTokensWarning` naming the unknown tokens; ``unknown``
    is a list of ``(text, [tokens of text outside the vocabulary])``, empty lists left out.
    ``stacklevel`` as ``warnings.warn``'s, counted from this function's caller's caller (3:
    whoever called the function that calls this)."""
    unknown = [(text, tokens) for text, tokens in unknown if tokens]
    if not unknown:
        return
    listing = "; ".join(f"{', '.join(map(repr, tokens))} in {_shorten(text)!r}"
                        for text, tokens in unknown[:10])
    more = f"; and {len(unknown) - 10} more texts" if len(unknown) > 10 else ""
    warnings.warn(f"{where}: not in the source vocabulary, read as [UNK] (the output for these "
                  f"texts is a guess): {listing}{more}", UnknownTokensWarning,
                  stacklevel=stacklevel)


def _shorten(text, width=40):
    return text if len(text) <= width else text[:width - 3] + "..."


def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _is_pair(value):
    return isinstance(value, (tuple, list)) and len(value) == 2


def _describe(value):
    """The structure of fit's data as shapes: ``((64, 6), (64, 7))``."""
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    if _is_array(value):
        return f"{tf.as_dtype(value.dtype).name} {tuple(value.shape)}"
    return type(value).__name__


def _vocabulary_spec(where, side, value, size):
    """``{"tokens", "level", "standardize"}`` of one side of ``vocabularies``: from a
    ``TokenVectorizer`` (a dataset's ``info.vectorizers[side]``) or such a dict; ``tokens`` is
    the whole list, index = id (the 4 reserved tokens first), of exactly ``size`` tokens."""
    if isinstance(value, TokenVectorizer):
        value = {"tokens": value.get_vocabulary(), "level": value.level,
                 "standardize": value.standardize}
    if not isinstance(value, dict) or "tokens" not in value:
        raise ValueError(f"{where}: `vocabularies[{side!r}]` must be a TokenVectorizer or a dict "
                         f"with 'tokens' (and optional 'level', 'standardize'), got "
                         f"{type(value).__name__}")
    unknown = sorted(set(value) - set(VOCABULARY_KEYS))
    if unknown:
        raise ValueError(f"{where}: `vocabularies[{side!r}]` has unknown key(s) {unknown}; keys: "
                         f"{VOCABULARY_KEYS}")
    tokens = value["tokens"]
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"{where}: `vocabularies[{side!r}]['tokens']` must be a list of strings")
    level, standardize = value.get("level", "word"), value.get("standardize")
    try:
        vectorizer = TokenVectorizer(tokens, level=level, standardize=standardize,
                                     name=f"{side}_vectorizer")
    except ValueError as error:
        raise ValueError(f"{where}: `vocabularies[{side!r}]`: {error}") from None
    if vectorizer.vocabulary_size != size:
        raise ValueError(f"{where}: `vocabularies[{side!r}]` has {vectorizer.vocabulary_size} "
                         f"tokens (the 4 reserved ones included) but {side}_vocab_size={size}")
    return {"tokens": vectorizer.get_vocabulary(), "level": level,
            "standardize": standardize}, vectorizer


class _graph_method:
    """A method that, called eagerly, runs as one ``tf.function`` (one graph per input
    signature, ``reduce_retracing``) and, called while a graph is traced, traces its code
    into that graph. So an export, an XLA compilation or a ``trace_target("tflite")`` trace
    traces the method afresh with its own settings, never a graph traced earlier under other
    ones (``tf.function`` would reuse that)."""

    def __init__(self, method):
        functools.update_wrapper(self, method)
        self._method = method
        self._function = tf.function(method, reduce_retracing=True, autograph=False)

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        method = self._method.__get__(instance, owner)
        function = self._function.__get__(instance, owner)

        @functools.wraps(method)
        def run(*args, **kwargs):
            return method(*args, **kwargs) if tf.inside_function() else function(*args, **kwargs)

        return run


@keras.saving.register_keras_serializable(package="kzoo")
class Seq2Seq(keras.Model):
    """Encoder-decoder over token ids, with or without attention: translation-shaped tasks.

    The model of the ``seq2seq_*`` builders (``kzoo.build("seq2seq_attention")`` is one, its
    name the model's). Token ids: 0 is padding (masked in the encoder, the attention, the loss
    and the metrics), ``start_id`` begins every decoder input, ``end_id`` ends every target; a
    target y_1..y_n is read as ``target_in = [start, y_1..y_n]`` and predicted as
    ``target_out = [y_1..y_n, end]``.

    The encoder embeds the source ids and runs a recurrent stack over them (``cell``,
    ``num_layers``, ``bidirectional`` and ``merge_mode``, ``dropout`` between layers,
    ``residual``; see ``kzoo.models.stack``): the memory h_1..h_Ts and the final states, which
    (forward and backward states merged like the outputs) are the decoder's initial states. The
    decoder is one ``cell`` as wide as the memory; at step t it reads the embedding e_t of
    token t of ``target_in`` (teacher forcing) and, with attention (a
    :class:`kzoo.layers.AttentionWrapper`, its query the cell output o_t):

        o_t, s_t = cell([e_t; a_{t-1}], s_{t-1})        (a_{t-1} only with input_feeding)
        α_t = softmax_j(score(o_t, h_j)),   c_t = Σ_j α_tj h_j
        a_t = tanh(W_a [o_t; c_t]),         logits_t = W_o dropout(a_t) + b_o

    with score(o, h) = vᵀ tanh(W_1 o + W_2 h) (Bahdanau) or oᵀh, oᵀ W h, vᵀ tanh(W [o; h])
    (Luong ``dot``, ``general``, ``concat``); the ``*_monotonic`` forms replace the softmax by
    the expected monotonic alignment (Raffel et al. 2017). Without attention,
    logits_t = W_o dropout(o_t) + b_o. ``scheduled_sampling`` p > 0 replaces e_t, for t > 0
    and with probability p while training, by the embedding of the model's own prediction at
    step t-1 (:class:`ScheduledSampler`), or with ``scheduled_sampling_mode="output"`` by the
    expected embedding softmax(logits_{t-1}) E of its output (:class:`ScheduledOutputSampler`).

    ``vocabularies`` ``{"source": v, "target": v}`` takes each ``v`` as a
    ``kzoo.layers.TokenVectorizer`` (a dataset's ``info.vectorizers[side]``) or as
    ``{"tokens": [...], "level": "word"|"char", "standardize": None|...}``, ``tokens`` the
    whole list (index = id, the 4 reserved tokens first, as many as the vocabulary size); the
    model then has ``source_vectorizer`` and ``target_vectorizer``, and saves the vocabularies
    in its config.

    Decoding: :meth:`generate` (greedy or beam search, token ids in and out) and, with
    ``vocabularies``, :meth:`translate` (strings in and out); :meth:`encode`,
    :meth:`decode_step`, :meth:`search` and :meth:`translate_graph` are the functions the
    exports serve. ``fit`` and ``evaluate`` take ``((source_ids, target_in_ids),
    target_out_ids)`` and check it before anything is traced. Compile with
    :class:`SequenceLoss` and :class:`SequenceAccuracy`
    (``kzoo.models.compile_args("seq2seq_attention")``).

    Call arguments:
        inputs: a pair ``(source_ids, target_in_ids)`` of integer token ids, (batch, Ts) and
            (batch, T), 0-padded.
        training: bool; dropout and scheduled sampling act only in training.

    Returns:
        (from a call) the logits (batch, T, target_vocab_size), carrying the Keras mask
        ``target_in_ids != 0``.

    Raises:
        ValueError: (constructing) an argument that is not valid, naming it; (calling)
            ``inputs`` that is not a pair.

    Example:

    ```python
    import numpy as np
    import kzoo

    model = kzoo.models.Seq2Seq(source_vocab_size=20, target_vocab_size=20, units=8)
    source_ids = np.array([[5, 6, 7, 8], [9, 10, 0, 0]])     # 0 is padding
    target_in_ids = np.array([[1, 11, 12], [1, 13, 0]])       # start id 1, then the target
    print(model((source_ids, target_in_ids)).shape)           # (2, 3, 20): logits
    out = model.generate(source_ids, max_length=6)
    print(out["tokens"].shape, out["attention"].shape)        # (2, 6) (2, 6, 4)
    ```
    """

    def __init__(self, source_vocab_size=8000, target_vocab_size=8000, source_embedding_dim=64,
                 target_embedding_dim=64, units=64, num_layers=1, cell="lstm",
                 bidirectional=False, merge_mode="concat", dropout=0.0, residual=False,
                 attention="bahdanau", attention_units=None, luong_score="general",
                 attention_normalize=False, attention_scale=False, attention_layer_size=None,
                 input_feeding=True, scheduled_sampling=0.0, scheduled_sampling_mode="argmax",
                 start_id=START_ID, end_id=END_ID, seed=None, vocabularies=None, **kwargs):
        where = kwargs.get("name") or "Seq2Seq"
        validate_common(where, cell=cell, units=units, num_layers=num_layers,
                        merge_mode=merge_mode, dropout=dropout,
                        source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size,
                        source_embedding_dim=source_embedding_dim,
                        target_embedding_dim=target_embedding_dim)
        if attention is not None:
            check_choice(where, "attention", attention, ATTENTIONS)
        check_choice(where, "luong_score", luong_score, LUONG_SCORES)
        check_positive_int(where, "attention_units", attention_units, allow_none=True)
        check_positive_int(where, "attention_layer_size", attention_layer_size, allow_none=True)
        check_choice(where, "scheduled_sampling_mode", scheduled_sampling_mode,
                     SCHEDULED_SAMPLING_MODES)
        if isinstance(scheduled_sampling, bool) or not isinstance(scheduled_sampling,
                                                                  (int, float)) \
                or not 0.0 <= scheduled_sampling <= 1.0:
            raise ValueError(f"{where}: `scheduled_sampling` must be a probability in [0, 1], "
                             f"got {scheduled_sampling!r}")
        for key, value in (("start_id", start_id), ("end_id", end_id)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    not 0 < value < target_vocab_size:
                raise ValueError(f"{where}: `{key}` must be a token id in [1, target_vocab_size="
                                 f"{target_vocab_size}) (0 is padding), got {value!r}")
        if start_id == end_id:
            raise ValueError(f"{where}: `start_id` and `end_id` must differ, both are {start_id}")
        vectorizers = {}
        if vocabularies is not None:
            if not isinstance(vocabularies, dict) or set(vocabularies) != set(VOCABULARY_SIDES):
                raise ValueError(f"{where}: `vocabularies` must be None or a dict with keys "
                                 f"'source' and 'target', got {vocabularies!r:.80}")
            sizes = {"source": source_vocab_size, "target": target_vocab_size}
            specs = {}
            for side in VOCABULARY_SIDES:
                specs[side], vectorizers[side] = _vocabulary_spec(where, side,
                                                                  vocabularies[side], sizes[side])
            vocabularies = specs
        for key, value in (("bidirectional", bidirectional), ("residual", residual),
                           ("input_feeding", input_feeding),
                           ("attention_normalize", attention_normalize),
                           ("attention_scale", attention_scale)):
            if not isinstance(value, bool):
                raise ValueError(f"{where}: `{key}` must be True or False, got {value!r}")
        super().__init__(**kwargs)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.source_embedding_dim = source_embedding_dim
        self.target_embedding_dim = target_embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.cell = cell
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.dropout = check_rate(where, "dropout", dropout)
        self.residual = residual
        self.attention = attention
        self.attention_units = attention_units
        self.luong_score = luong_score
        self.attention_normalize = attention_normalize
        self.attention_scale = attention_scale
        self.attention_layer_size = attention_layer_size
        self.input_feeding = input_feeding
        self.scheduled_sampling = float(scheduled_sampling)
        self.scheduled_sampling_mode = scheduled_sampling_mode
        self.start_id = start_id
        self.end_id = end_id
        self.pad_id = PAD_ID
        self.seed = seed
        # Plain data for get_config (the layers below are rebuilt from it on load).
        self.vocabularies = vocabularies
        self.source_vectorizer = vectorizers.get("source")
        self.target_vectorizer = vectorizers.get("target")

        # -- encoder: a functional model (the shared recurrent stack) -------------------------
        source = keras.Input((None,), dtype="int32", name="source_ids")
        embedded = kzoo.layers.TokenEmbedding(source_vocab_size, source_embedding_dim,
                                              mask_zero=True, name="source_embedding")(source)
        memory, states = recurrent_stack(
            embedded, cell=cell, units=units, num_layers=num_layers,
            bidirectional=bidirectional, merge_mode=merge_mode, dropout=dropout,
            residual=residual, return_sequences=True, return_state=True, name="encoder")
        self.encoder = keras.Model(source, [memory, *states], name="encoder")
        self.memory_dim = int(memory.shape[-1])
        self.decoder_units = 2 * units if bidirectional and merge_mode == "concat" else units

        # -- decoder ------------------------------------------------------------------------------
        self.target_embedding = kzoo.layers.TokenEmbedding(
            target_vocab_size, target_embedding_dim, name="target_embedding")
        self.target_embedding.build((None, None))
        decoder_cell = getattr(kzoo.layers, _CELL_CLASSES[cell])(self.decoder_units,
                                                                   name="decoder_cell")
        if attention is None:
            self.decoder = decoder_cell
            decoder_cell.build((None, target_embedding_dim))
            self.output_width = self.decoder_units
        else:
            self.decoder = AttentionWrapper(
                decoder_cell, self._make_attention(),
                attention_layer_size=attention_layer_size or self.decoder_units,
                input_feeding=input_feeding, memory_dim=self.memory_dim, name="decoder")
            self.decoder.build((None, target_embedding_dim))
            self.output_width = self.decoder.output_size
        self.output_dropout = keras.layers.Dropout(dropout, seed=seed, name="output_dropout")
        self.output_layer = kzoo.layers.Dense(target_vocab_size, name="logits")
        self.output_layer.build((None, self.output_width))
        if self.scheduled_sampling > 0 and scheduled_sampling_mode == "output":
            self.sampler = ScheduledOutputSampler(self.scheduled_sampling, seed=seed,
                                                  name="sampler")
        elif self.scheduled_sampling > 0:
            self.sampler = ScheduledSampler(self.scheduled_sampling, mode=scheduled_sampling_mode,
                                            seed=seed, name="sampler")
        else:
            self.sampler = TeacherForcingSampler(name="sampler")
        self.built = True

    def _make_attention(self):
        kind = self.attention
        units = self.attention_units or self.decoder_units
        if kind.startswith("bahdanau"):
            layer_class = kzoo.layers.BahdanauMonotonicAttention \
                if kind.endswith("monotonic") else kzoo.layers.BahdanauAttention
            return layer_class(units, normalize=self.attention_normalize, name="attention")
        layer_class = kzoo.layers.LuongMonotonicAttention \
            if kind.endswith("monotonic") else kzoo.layers.LuongAttention
        return layer_class(score=self.luong_score,
                           units=units if self.luong_score == "concat" else None,
                           scale=self.attention_scale, name="attention")

    # -- the pieces generate and the exporters use ------------------------------------------------
    def _encode(self, source_ids, training=None):
        source_ids = tf.cast(source_ids, tf.int32)
        memory, *states = self.encoder(source_ids, training=training)
        memory_mask = tf.not_equal(source_ids, self.pad_id)
        states = _merge_states(states, self.bidirectional, self.merge_mode)
        if self.attention is None:
            return memory, memory, memory_mask, states
        keys = self.decoder.project_memory(memory)
        states = self.decoder.get_initial_state(cell_state=states, memory=memory)
        return memory, keys, memory_mask, states

    def _step(self, embedded, states, memory, keys, memory_mask, training=None):
        """One decoder step on an embedded input: ``(output, new_states, alignments or None)``."""
        if self.attention is None:
            cell = self.decoder
            output, new_states = cell.step(cell.project_inputs(embedded), list(states))
            return output, list(new_states), None
        return self.decoder.step(embedded, list(states), memory, keys, memory_mask,
                                 training=training)

    def _decode_step(self, token_ids, states, memory, keys, memory_mask):
        embedded = self.target_embedding(tf.cast(token_ids, tf.int32))
        output, new_states, alignments = self._step(embedded, states, memory, keys, memory_mask)
        return self.output_layer(output), new_states, alignments

    @in_compute_dtype
    def search_step(self, memory, keys, memory_mask):
        """The decoder step the search loops of :meth:`search` run, built for one search.

        Equal to :meth:`decode_step` up to float rounding. It is built once per search, before
        the loop, and takes out of the loop what does not change from step to step
        (TensorFlow's executor pays a fixed cost per node and step): the input projection of
        every target token, ``project_inputs`` of its embedding (and of a zero attention vector
        with input feeding), is one (V, gates) table, so a step gathers a row instead of
        embedding the ids, checking them (they come from argmax or top-k, always in the
        vocabulary) and multiplying by the embedding half of the kernel; and the memory loses
        the Keras mask the encoder attached to it, which the attention layer would otherwise
        combine with ``memory_mask`` at every step (both are ``source_ids != 0``). The weights
        are still read inside the loop: read once outside, each becomes one more tensor carried
        through the loop, which costs the executor as much per step as the read, or more
        (``benchmarks/decode_speed.py``; docs/engine-notes.md). Under ``trace_target("tflite")``
        it is :meth:`decode_step`'s own step: the TFLite export folds the weights into
        constants inside the loop, where post-training quantization reaches them.

        Args:
            memory: the encoder outputs (batch, time, d) from :meth:`encode` (tiled for beam
                search).
            keys: their projection for the attention, from :meth:`encode`.
            memory_mask: bool (batch, time), ``source_ids != 0``.

        Returns:
            ``step_fn(token_ids, states) -> (logits, new_states, alignments)``, what
            :func:`kzoo.models.greedy_search` and :func:`kzoo.models.beam_search` take
            (alignments None without attention).
        """
        cell = self.decoder if self.attention is None else self.decoder.cell
        if tracing_for_tflite() or getattr(cell, "layer_norm", False):
            # (A layer-normalized projection is not affine, so it has no table.)
            return lambda ids, states: self._decode_step(ids, states, memory, keys,
                                                         memory_mask)
        memory = tf.identity(memory)
        embeddings = tf.convert_to_tensor(self.target_embedding.embeddings)
        feeding = self.attention is not None and self.decoder.input_feeding
        if feeding:
            # project_inputs([e; a]) = e K_e + a K_a + b: the table holds e K_e + b, the
            # step adds a K_a (K_a: the kernel rows of the attention input, after e's).
            fed = tf.zeros([self.target_vocab_size, self.decoder.attention_size],
                           embeddings.dtype)
            table = cell.project_inputs(tf.concat([embeddings, fed], -1))
            feed_kernel = tf.convert_to_tensor(cell.kernel)[self.target_embedding_dim:]
        else:
            table = cell.project_inputs(embeddings)

        def step_fn(token_ids, states):
            projected = tf.gather(table, token_ids)
            if self.attention is None:
                output, new_states = cell.step(projected, list(states))
                return self.output_layer(output), list(new_states), None
            if feeding:
                previous_attention = states[len(cell.state_size)]
                projected = projected + tf.matmul(previous_attention, feed_kernel)
            output, new_states, alignments = self.decoder.step_projected(
                projected, states, memory, keys, memory_mask)
            return self.output_layer(output), new_states, alignments

        return step_fn

    # -- the serving functions: what generate, translate and kzoo.export run -------------------
    @_graph_method
    def encode(self, source_ids):
        """Encodes a source for a decoding loop of one's own (the exported ``encode`` signature).

        Args:
            source_ids: integer token ids (batch, time), 0-padded.

        Returns:
            A tuple ``(memory, keys, memory_mask, states)``: the encoder outputs (batch, time,
            d); their projection for the attention (the memory itself without attention);
            ``source_ids != 0``; and the decoder's initial states, the list
            :meth:`decode_step` takes.

        Example:

        With ``model`` and ``source_ids`` of the class example, greedy search's first step:

        ```python
        import tensorflow as tf

        memory, keys, memory_mask, states = model.encode(source_ids)
        token_ids = tf.fill([2], model.start_id)
        logits, states, alignments = model.decode_step(token_ids, states, memory, keys,
                                                       memory_mask)
        print(logits.shape, alignments.shape)     # (2, 20) (2, 4)
        ```
        """
        return self._encode(source_ids, training=False)

    @_graph_method
    def decode_step(self, token_ids, states, memory, keys, memory_mask):
        """One decoder step (the exported ``decode_step`` signature): :meth:`encode`'s example.

        Args:
            token_ids: integer (batch,), the previous tokens (``start_id`` at the first step).
            states: the decoder states, from :meth:`encode` or the previous step.
            memory: the encoder outputs, from :meth:`encode`.
            keys: their projection for the attention, from :meth:`encode`.
            memory_mask: bool (batch, time), from :meth:`encode`.

        Returns:
            A tuple ``(logits (batch, target_vocab_size), new_states, alignments (batch,
            time))``; the alignments are zeros for a model without attention.
        """
        logits, new_states, alignments = self._decode_step(token_ids, states, memory, keys,
                                                            memory_mask)
        if alignments is None:
            alignments = tf.zeros_like(memory[:, :, 0])
        return logits, new_states, alignments

    @_graph_method
    def search(self, source_ids, max_length, beam_width=None, length_penalty=0.0,
               coverage_penalty=0.0, alignment_history=False, compiled=None, sampling=None,
               choose=None):
        """Greedy, sampling or beam search of ``source_ids`` in one graph, arguments unchecked.

        The one search behind :meth:`generate`, :meth:`translate_graph` and the exported
        ``serving_default``, ``sample`` and ``beam_search`` signatures
        (``kzoo.models.greedy_search``, with a choice rule for sampling, or ``beam_search``,
        over :meth:`search_step`). :meth:`generate` checks its arguments and
        calls this; call it directly inside a ``tf.function`` of your own (a serving
        signature).

        Args:
            source_ids: int32 token ids (batch, time), 0-padded.
            max_length: int32 scalar, the most tokens to decode; <= 0 is
                :func:`default_decode_length` of the source. A source over
                :data:`MAX_SOURCE_UNITS` fails (InvalidArgumentError).
            beam_width: None for greedy search, else the beam width (a Python int).
            length_penalty: beam search's GNMT α (:func:`kzoo.models.length_penalty`); a
                Python 0 leaves it out of the graph.
            coverage_penalty: beam search's GNMT β (:func:`kzoo.models.coverage_penalty`);
                a Python 0 leaves it out of the graph.
            alignment_history: beam search only: also return the best hypothesis' ``attention``.
            compiled: None, or :meth:`xla_functions`, to run the encoder and the decoder step
                XLA-compiled (the search loops are not: their buffers have a data-dependent
                size).
            sampling: None, or ``(temperature, top_k, top_p, seed)`` (scalars or scalar
                tensors): draw every token with ``kzoo.models.TokenSampler`` of these
                instead of taking the argmax (``beam_width`` must be None).
            choose: None, or a choice rule ``choose(log_probs, step) -> token_ids`` for the
                greedy loop (``kzoo.models.greedy_search``'s ``choose``).

        Returns:
            The dict :meth:`generate` describes.

        Raises:
            tf.errors.InvalidArgumentError: a source longer than :data:`MAX_SOURCE_UNITS`, or
                ``max_length`` over ``kzoo.models.MAX_DECODE_LENGTH`` (in a TFLite graph, which
                has no assert op, the decode length is capped there instead).
        """
        if compiled is None:
            memory, keys, memory_mask, states = self._encode(source_ids, training=False)
        else:
            memory, keys, memory_mask, states = compiled[0](source_ids)
        max_length = self._decode_length(source_ids, max_length)
        alignment_size = None if self.attention is None else tf.shape(memory)[1]
        batch_size = tf.shape(source_ids)[0]
        if beam_width is not None:
            memory, keys, memory_mask = (decoding.tile_batch(x, beam_width)
                                         for x in (memory, keys, memory_mask))
            states = [decoding.tile_batch(s, beam_width) for s in states]
        if compiled is None:
            step = self.search_step(memory, keys, memory_mask)
        else:
            def step(ids, step_states):
                return compiled[1](ids, step_states, memory, keys, memory_mask)
        if sampling is not None:
            choose = TokenSampler(*sampling)
        if beam_width is None:
            return decoding.greedy_search(step, states, batch_size=batch_size,
                                          start_id=self.start_id, end_id=self.end_id,
                                          max_length=max_length, alignment_size=alignment_size,
                                          choose=choose)
        return decoding.beam_search(
            step, states, batch_size=batch_size, beam_width=beam_width, start_id=self.start_id,
            end_id=self.end_id, max_length=max_length, length_penalty_weight=length_penalty,
            coverage_penalty_weight=coverage_penalty, alignment_size=alignment_size,
            alignment_history=alignment_history)

    def xla_functions(self):
        """:meth:`encode` and :meth:`decode_step` as XLA-compiled ``tf.function`` s.

        For :meth:`search`'s ``compiled`` (what the exports' ``target="gpu"`` use).

        Returns:
            A tuple ``(encode, decode_step)`` of ``tf.function`` s with ``jit_compile=True``.
        """
        return (tf.function(self.encode, autograph=False, jit_compile=True),
                tf.function(self.decode_step, autograph=False, jit_compile=True))

    # -- training ---------------------------------------------------------------------------------
    def call(self, inputs, training=None):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"{self.name}: expects inputs (source_ids, target_in_ids), got "
                             f"{type(inputs).__name__}")
        source_ids, target_in = inputs
        target_in = tf.cast(target_in, tf.int32)
        memory, keys, memory_mask, states = self._encode(source_ids, training)
        embedded = self.target_embedding(target_in)
        plan = self.sampler.plan(target_in, self.target_vocab_size, training=training)
        previous_output = tf.zeros([tf.shape(target_in)[0], self.output_width],
                                   dtype=embedded.dtype)
        width = self.target_embedding_dim

        if plan is None:
            sequence = embedded

            def step(x_t, carry):
                output, new_states, _ = self._step(x_t, carry[1:], memory, keys, memory_mask,
                                                   training=training)
                return output, [output, *new_states]
        else:
            use_prediction, noise = plan
            parts = [embedded, tf.cast(use_prediction, embedded.dtype)[..., None]]
            sequence = tf.concat(parts + ([noise] if noise is not None else []), -1)

            def step(x_t, carry):
                logits = self.output_layer(carry[0])
                if noise is not None:
                    logits = logits + x_t[:, width + 1:]
                if self.sampler.mode == "output":
                    predicted = self.sampler.next_inputs(logits, self.target_embedding.embeddings)
                else:
                    predicted = self.target_embedding(tf.argmax(logits, -1,
                                                                output_type=tf.int32))
                x = tf.where(x_t[:, width:width + 1] > 0.5, predicted, x_t[:, :width])
                output, new_states, _ = self._step(x, carry[1:], memory, keys, memory_mask,
                                                   training=training)
                return output, [output, *new_states]

        _, outputs, _ = scan(step, sequence, [previous_output, *states])
        outputs = self.output_dropout(outputs, training=training)
        logits = self.output_layer(outputs)
        # Losses and metrics compiled with Keras read this mask: padding does not count.
        logits._keras_mask = tf.not_equal(target_in, self.pad_id)
        return logits

    def fit(self, x=None, y=None, *args, **kwargs):
        """Keras' ``fit``, with the seq2seq data checked before anything is traced.

        Takes ``fit((source_ids, target_in_ids), target_out_ids)`` (Keras' x and y) and the
        nested form ``fit(((source_ids, target_in_ids), target_out_ids))`` (what a
        ``tf.data.Dataset`` yields, here as arrays too), each (batch, time) integer ids with
        ``target_in_ids`` and ``target_out_ids`` of one shape; or a dataset yielding
        ``((source_ids, target_in_ids), target_out_ids)``. ``validation_data`` likewise.

        Args:
            x: ``(source_ids, target_in_ids)``, ``((source_ids, target_in_ids),
                target_out_ids)`` with ``y=None``, or a ``tf.data.Dataset`` (or any other
                input Keras' ``fit`` takes, checked by Keras).
            y: ``target_out_ids``, or None.
            *args: Keras' ``fit`` arguments after ``x`` and ``y``.
            **kwargs: Keras' ``fit`` arguments (``epochs``, ``batch_size``,
                ``validation_data``...).

        Returns:
            Keras' ``History``.

        Raises:
            ValueError: any other structure, shapes or dtypes, naming the forms it takes; then
                nothing was traced, and a failed fit leaves the model ready for the next.
        """
        x, y = self._training_data("fit", x, y)
        if kwargs.get("validation_data") is not None:
            kwargs["validation_data"] = self._validation_data(kwargs["validation_data"])
        try:
            return super().fit(x, y, *args, **kwargs)
        except BaseException:
            self._drop_traced_functions()
            raise

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Keras' ``evaluate``, taking the data forms of :meth:`fit` (checked the same way).

        Args:
            x: as :meth:`fit`'s.
            y: as :meth:`fit`'s.
            *args: Keras' ``evaluate`` arguments after ``x`` and ``y``.
            **kwargs: Keras' ``evaluate`` arguments (``batch_size``, ``return_dict``...).

        Returns:
            What Keras' ``evaluate`` returns: the loss and metrics.

        Raises:
            ValueError: as :meth:`fit`.
        """
        x, y = self._training_data("evaluate", x, y)
        try:
            return super().evaluate(x, y, *args, **kwargs)
        except BaseException:
            self._drop_traced_functions()
            raise

    def _drop_traced_functions(self):
        # A trace that failed half-way leaves Keras' cached function unusable: its next call
        # would create variables again ("Creating variables on a non-first call"). Retrace.
        self.train_function = self.test_function = None

    def _training_data(self, where, x, y):
        """``(x, y)`` for Keras from either form :meth:`fit` takes, checked."""
        if isinstance(x, tf.data.Dataset):
            if y is not None:
                raise ValueError(f"{self.name}.{where}: `y` must be None when `x` is a dataset "
                                 f"(it yields ((source_ids, target_in_ids), target_out_ids))")
            self._check_dataset(where, x)
            return x, y
        if not isinstance(x, (tuple, list)):  # a generator, a PyDataset: Keras' own checks
            return x, y
        if y is None and _is_pair(x) and _is_pair(x[0]):
            x, y = x
        self._check_arrays(where, x, y)
        return tuple(x), y

    def _validation_data(self, data):
        if isinstance(data, tf.data.Dataset):
            self._check_dataset("fit(validation_data=)", data)
            return data
        if isinstance(data, (tuple, list)) and len(data) in (2, 3) and _is_pair(data[0]):
            self._check_arrays("fit(validation_data=)", data[0], data[1])
            return (tuple(data[0]), *data[1:])
        raise ValueError(f"{self.name}.fit: `validation_data` must be ((source_ids, "
                         f"target_in_ids), target_out_ids) or a dataset yielding that, got "
                         f"{_describe(data)}")

    def _forms(self, where):
        return (f"{self.name}.{where} takes x=(source_ids, target_in_ids) and y=target_out_ids, "
                f"or x=((source_ids, target_in_ids), target_out_ids) with y=None, or a "
                f"tf.data.Dataset yielding ((source_ids, target_in_ids), target_out_ids)")

    def _check_arrays(self, where, x, y):
        if not _is_pair(x) or y is None or not all(_is_array(a) or isinstance(a, list)
                                                    for a in (*x, y)):
            raise ValueError(f"{self._forms(where)}; got x={_describe(x)}, y={_describe(y)}")
        arrays = [np.asarray(a) if isinstance(a, list) else a for a in (*x, y)]
        self._check_shapes(where, [tuple(a.shape) for a in arrays],
                           [tf.as_dtype(a.dtype) for a in arrays])

    def _check_dataset(self, where, dataset):
        spec = dataset.element_spec
        if not (isinstance(spec, tuple) and len(spec) in (2, 3) and _is_pair(spec[0]) and
                all(isinstance(s, tf.TensorSpec) for s in (*spec[0], spec[1]))):
            raise ValueError(f"{self._forms(where)}; this dataset yields {spec}")
        specs = (*spec[0], spec[1])
        self._check_shapes(where, [tuple(s.shape) for s in specs], [s.dtype for s in specs],
                           batched=True)

    def _check_shapes(self, where, shapes, dtypes, batched=False):
        names = ("source_ids", "target_in_ids", "target_out_ids")
        for name, shape, dtype in zip(names, shapes, dtypes):
            if len(shape) != 2 or not dtype.is_integer:
                raise ValueError(f"{self._forms(where)}; `{name}` must be integer token ids of "
                                 f"shape (batch, time), got {dtype.name} {shape}")
        rows = {shape[0] for shape in shapes if shape[0] is not None}
        if len(rows) > 1 and not batched:
            raise ValueError(f"{self.name}.{where}: source_ids, target_in_ids and "
                             f"target_out_ids must have one batch size, got {shapes}")
        if None not in (shapes[1][1], shapes[2][1]) and shapes[1][1] != shapes[2][1]:
            raise ValueError(f"{self.name}.{where}: target_in_ids {shapes[1]} and "
                             f"target_out_ids {shapes[2]} must have the same time length "
                             f"(target_in = [start, y...], target_out = [y..., end])")

    # -- inference --------------------------------------------------------------------------------
    @property
    def levels(self):
        """``(source level, target level)``, each "word" or "char", from the vocabularies the
        model carries; ``(None, None)`` without vocabularies."""
        if self.vocabularies is None:
            return None, None
        return self.vocabularies["source"]["level"], self.vocabularies["target"]["level"]

    def source_units(self, source_ids):
        """The length ``L`` of a source in the target's units: what the decode length is made of.

        :func:`default_decode_length` and the length limit (:data:`MAX_SOURCE_UNITS`) read it.
        It is the number of source tokens (``Ts``, padding included), except when the
        vocabularies say the model turns words into characters (a word-level source, a
        char-level target): then the characters of the longest source text, its words joined
        by single spaces (an unknown word counts as long as the longest word in the
        vocabulary).

        Args:
            source_ids: integer token ids (batch, Ts).

        Returns:
            An int32 scalar tensor.
        """
        source_ids = tf.convert_to_tensor(source_ids)
        if self.levels != ("word", "char"):
            return tf.shape(source_ids)[1]
        tokens = self.vocabularies["source"]["tokens"]
        widths = [len(token) for token in tokens]
        widths[UNKNOWN_ID] = max(widths[len(RESERVED_TOKENS):], default=1)
        ids = tf.cast(source_ids, tf.int32)
        # (Bad ids fail in the encoder; here they count as padding. Not clip_by_value: at a
        # vocabulary of 7 the TFLite converter fuses it into a Relu6, which has no int kernel.)
        ids = tf.where(tf.logical_and(ids >= 0, ids < len(tokens)), ids, self.pad_id)
        words = tf.gather(tf.constant(widths, tf.int32) + 1, ids)        # each word and a space
        characters = tf.reduce_sum(tf.where(ids != self.pad_id, words, 0), 1) - 1
        return tf.maximum(tf.reduce_max(characters), 0)

    def _length_limit_message(self, units=None):
        unit = "characters of source text" if self.levels == ("word", "char") else \
            "source tokens"
        given = "" if units is None else f" (this one has {units})"
        return (f"{self.name}: the source is too long: at most {MAX_SOURCE_UNITS} {unit}"
                f"{given}, whose default decode length 2 * {MAX_SOURCE_UNITS} + 2 is "
                f"decoding.MAX_DECODE_LENGTH = {decoding.MAX_DECODE_LENGTH}; split the text")

    def _check_source_length(self, source_ids):
        """ValueError for a source over :data:`MAX_SOURCE_UNITS` (eager calls; the graphs
        check the same in :meth:`_decode_length`)."""
        if not tf.executing_eagerly():
            return
        units = int(self.source_units(source_ids))
        if units > MAX_SOURCE_UNITS:
            raise ValueError(self._length_limit_message(units))

    def _decode_length(self, source_ids, max_length):
        """``max_length`` where > 0, else :func:`default_decode_length` of the source; a source
        over :data:`MAX_SOURCE_UNITS` fails (InvalidArgumentError) whatever ``max_length``,
        except in a TFLite graph, which has no assert op (the decode length is capped there)."""
        units = self.source_units(source_ids)
        if not tracing_for_tflite():
            check = tf.debugging.assert_less_equal(units, MAX_SOURCE_UNITS,
                                                   message=self._length_limit_message())
            with tf.control_dependencies([check]):
                units = tf.identity(units)
        return tf.where(max_length > 0, max_length, default_decode_length(units))

    def generate(self, source_ids, max_length=None, method="greedy", beam_width=DEFAULT_BEAM_WIDTH,
                 length_penalty=0.0, coverage_penalty=0.0, temperature=1.0, top_k=0, top_p=1.0,
                 seed=None):
        """Decodes ``source_ids`` in one graph, by greedy search, sampling or beam search.

        :meth:`search` with its arguments checked. Greedy search feeds back the most likely
        token; sampling a token drawn from softmax(logits / ``temperature``) restricted to the
        ``top_k`` most likely tokens and the ``top_p`` nucleus (:class:`kzoo.models.
        TokenSampler`; the same ``seed`` gives the same tokens here, in the SavedModel's and in
        the TFLite file's ``sample`` signature); a callable ``method`` is a choice rule of
        one's own, ``method(log_probs, step) -> token_ids``, run by the same loop
        (:func:`kzoo.models.greedy_search`'s ``choose``). Beam search keeps the
        ``beam_width`` best hypotheses by the GNMT score log P(Y) / lp(Y) + cp(Y),
        lp(Y) = ((5 + |Y|) / 6)^α, cp(Y) = β Σ_i log(min(Σ_t α_ti, 1))
        (:func:`kzoo.models.beam_search`).

        Args:
            source_ids: integer token ids (batch, time), 0-padded.
            max_length: the most tokens to decode per row, at most
                ``kzoo.models.MAX_DECODE_LENGTH``; None: :func:`default_decode_length` of
                :meth:`source_units` (``2 * L + 2``).
            method: "greedy", "beam", "sample", or a choice rule ``method(log_probs, step)
                -> token_ids`` (log_probs (batch, V) float32, step an int32 scalar, token_ids
                (batch,) int32).
            beam_width: hypotheses kept by beam search (default 4).
            length_penalty: beam search's length penalty weight α (0: none).
            coverage_penalty: beam search's coverage penalty weight β (0: none); needs
                attention.
            temperature: sampling's temperature, > 0 (default 1.0).
            top_k: sampling from the ``top_k`` most likely tokens only (default 0: all).
            top_p: sampling from the nucleus of probability ``top_p``, in (0, 1] (default
                1.0: all).
            seed: sampling's seed, an int; None: a random one.

        Returns:
            A dict of tensors. Greedy, sampling and a choice rule: ``tokens`` (batch,
            max_length) int32 (the end token included, 0 after it), ``scores`` (batch,) (the
            summed log-probabilities of the emitted tokens under the model),
            ``lengths`` (batch,) and, for a model with attention, ``attention``
            (batch, max_length, time) (each emitted token's alignment, zero after the end).
            Beam: ``tokens``, ``scores`` and (with attention) ``attention`` of the best
            hypothesis, plus ``beam_tokens`` (batch, beam_width, max_length), ``beam_scores``,
            ``log_probs`` and ``lengths`` (batch, beam_width), best first, and (with attention)
            ``beam_attention`` (batch, beam_width, max_length, time). Beams are ranked by
            :func:`kzoo.models.beam_search`'s default rule, TF Addons' (GNMT).

        Raises:
            ValueError: a bad argument, or a source longer than :data:`MAX_SOURCE_UNITS` (in
                :meth:`source_units`).

        Example:

        With ``model`` and ``source_ids`` of the class example:

        ```python
        greedy = model.generate(source_ids, max_length=6)
        beam = model.generate(source_ids, method="beam", beam_width=3, length_penalty=0.6,
                              coverage_penalty=0.2, max_length=6)
        print(greedy["scores"].shape, beam["beam_tokens"].shape)   # (2,) (2, 3, 6)
        sampled = model.generate(source_ids, method="sample", top_p=0.9, seed=1, max_length=6)
        print(sampled["tokens"].shape)                             # (2, 6)
        ```
        """
        name = self.name
        if not callable(method):
            check_choice(f"{name}.generate", "method", method, GENERATE_METHODS)
        if max_length is None:
            max_length = -1
        elif isinstance(max_length, bool) or not isinstance(max_length, int) or \
                not 0 < max_length <= decoding.MAX_DECODE_LENGTH:
            raise ValueError(f"{name}.generate: `max_length` must be an integer in [1, "
                             f"{decoding.MAX_DECODE_LENGTH}], got {max_length!r}")
        source_ids = tf.convert_to_tensor(source_ids)
        if source_ids.shape.rank != 2 or not source_ids.dtype.is_integer:
            raise ValueError(f"{name}.generate: `source_ids` must be integer token ids of shape "
                             f"(batch, time), got {source_ids.dtype.name} "
                             f"{tuple(source_ids.shape)}")
        source_ids = tf.cast(source_ids, tf.int32)
        self._check_source_length(source_ids)
        max_length = tf.constant(max_length, tf.int32)
        if callable(method):
            return self.search(source_ids, max_length, choose=method)
        if method == "greedy":
            return self.search(source_ids, max_length)
        if method == "sample":
            if seed is None:
                seed = int(np.random.default_rng().integers(2**31 - 1))
            check_sampling(f"{name}.generate", temperature, top_k, top_p, seed)
            # Tensors, as the ``sample`` signature takes them: one graph for every value.
            sampling = (tf.constant(temperature, tf.float32),
                        tf.constant(min(top_k, 2**31 - 1), tf.int32),
                        tf.constant(top_p, tf.float32), tf.constant(seed % 2**31, tf.int32))
            return self.search(source_ids, max_length, sampling=sampling)
        check_positive_int(f"{name}.generate", "beam_width", beam_width)
        if self.attention is None and coverage_penalty:
            raise ValueError(f"{name}.generate: `coverage_penalty` needs attention; this model "
                             f"has attention=None")
        penalties = []
        for key, value in (("length_penalty", length_penalty),
                           ("coverage_penalty", coverage_penalty)):
            try:
                penalties.append(float(value))
            except (TypeError, ValueError):
                raise ValueError(f"{name}.generate: `{key}` must be a number, got "
                                 f"{value!r}") from None
        # Python floats: a zero penalty is left out of the graph (one trace per value).
        return self.search(source_ids, max_length, beam_width, *penalties,
                           alignment_history=self.attention is not None)

    def _require_vocabularies(self, where):
        if self.vocabularies is None:
            raise ValueError(f"{self.name}.{where}: this model carries no vocabularies; build "
                             f"it with `vocabularies=` (e.g. a dataset's info.vectorizers) or "
                             f"decode token ids with generate()")

    def _text_ids(self, texts):
        """Graph: ``source_vectorizer`` ids (B, T) of strings (B,), T >= 1 (a batch of empty
        strings gets one padding step to encode)."""
        source_ids = self.source_vectorizer(texts)
        width = tf.shape(source_ids)[1]
        return tf.pad(source_ids, [[0, 0], [0, tf.maximum(1 - width, 0)]])

    def text_to_ids(self, texts):
        """Token ids of strings, tokenized as the dataset tokenized them (``source_vectorizer``).

        Args:
            texts: a string or a non-empty list of strings.

        Returns:
            An int32 tensor (batch, time), 0-padded (time >= 1).

        Raises:
            ValueError: if the model carries no vocabularies, ``texts`` is not a string or a
                non-empty list of strings, or a text is longer than :data:`MAX_SOURCE_UNITS`
                (see :meth:`source_units`).

        Warns:
            UnknownTokensWarning: naming the tokens outside the source vocabulary (read as
                ``[UNK]``, id 3).
        """
        return self._source_ids(texts)

    def _source_ids(self, texts):
        # Called by the public methods only: the warning points at their caller (stacklevel 4).
        self._require_vocabularies("text_to_ids")
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{self.name}: `texts` must be a string or a non-empty list of "
                             f"strings")
        source_ids = self._text_ids(tf.constant(texts))
        self._check_source_length(source_ids)
        vectorizer = self.source_vectorizer
        pieces = tokenize(tf.constant(texts), vectorizer.level, vectorizer.standardize).to_list()
        ids = source_ids.numpy()
        warn_unknown_tokens(self.name, [
            (text, [piece.decode("utf-8") for j, piece in enumerate(row)
                    if ids[i, j] == UNKNOWN_ID])
            for i, (text, row) in enumerate(zip(texts, pieces))], stacklevel=4)
        return source_ids

    def ids_to_text(self, token_ids):
        """Strings of decoded token ids, with the target vocabulary (``target_vectorizer``).

        Args:
            token_ids: integer token ids (batch, time), e.g. ``generate(...)["tokens"]``.

        Returns:
            A list of str, one per row: the row's tokens before its first end (or 0) token,
            joined by a space (word-level target) or by nothing (char level).

        Raises:
            ValueError: if the model carries no vocabularies.
        """
        self._require_vocabularies("ids_to_text")
        strings = self.target_vectorizer.detokenize(token_ids, end_id=self.end_id)
        return [s.decode("utf-8") for s in strings.numpy().tolist()]

    def translate(self, texts, max_length=None, method="greedy", beam_width=DEFAULT_BEAM_WIDTH,
                  length_penalty=0.0, coverage_penalty=0.0, temperature=1.0, top_k=0, top_p=1.0,
                  seed=None):
        """Translates strings: :meth:`text_to_ids`, :meth:`generate`, then :meth:`ids_to_text`.

        Needs the model's ``vocabularies``.

        Args:
            texts: a string or a non-empty list of strings.
            max_length: the most tokens to decode per text; None: :func:`default_decode_length`
                of :meth:`source_units`.
            method: "greedy", "beam", "sample" or a choice rule (see :meth:`generate`).
            beam_width: hypotheses kept by beam search.
            length_penalty: beam search's GNMT α (see :meth:`generate`).
            coverage_penalty: beam search's GNMT β; needs attention.
            temperature: sampling's temperature (see :meth:`generate`).
            top_k: sampling's top-k cut (0: none).
            top_p: sampling's nucleus (1.0: none).
            seed: sampling's seed; None: a random one.

        Returns:
            A string for a string, else a list of strings.

        Raises:
            ValueError: if the model carries no vocabularies, an argument is not valid, or a
                text is longer than :data:`MAX_SOURCE_UNITS` (characters when words are decoded
                into characters, else tokens).

        Warns:
            UnknownTokensWarning: naming the tokens outside the source vocabulary.

        Example:

        ```python
        import kzoo
        import kzoo.datasets as kd

        source = kd.TokenVectorizer(["one", "two", "three"], level="word")
        target = kd.TokenVectorizer(list("einszwdr"), level="char")
        translator = kzoo.build("seq2seq_attention", units=8,
                                source_vocab_size=source.vocabulary_size,
                                target_vocab_size=target.vocabulary_size,
                                vocabularies={"source": source, "target": target})
        print(translator.translate(["two three", "one"]))   # untrained: some characters
        ```
        """
        self._require_vocabularies("translate")
        single = isinstance(texts, str)
        source_ids = self._source_ids(texts)
        result = self.generate(source_ids, max_length=max_length, method=method,
                               beam_width=beam_width, length_penalty=length_penalty,
                               coverage_penalty=coverage_penalty, temperature=temperature,
                               top_k=top_k, top_p=top_p, seed=seed)
        outputs = self.ids_to_text(result["tokens"])
        return outputs[0] if single else outputs

    @_graph_method
    def translate_graph(self, texts, max_length, compiled=None):
        """Strings in, strings out, in one graph (the exported ``translate`` signature).

        :meth:`translate` without the checks and warnings that need Python: greedy search.

        Args:
            texts: tf.string (batch,), tokenized by ``source_vectorizer`` in the graph.
            max_length: int32 scalar; <= 0 is the default decode length.
            compiled: as :meth:`search`'s.

        Returns:
            A dict: ``translation`` (batch,) tf.string, ``unknown_tokens`` (batch,) int32 (the
            tokens of each text outside the source vocabulary) and the greedy :meth:`search`'s
            outputs.
        """
        source_ids = self._text_ids(texts)
        result = self.search(source_ids, max_length, compiled=compiled)
        unknown = tf.reduce_sum(tf.cast(tf.equal(source_ids, UNKNOWN_ID), tf.int32), 1)
        return {"translation": self.target_vectorizer.detokenize(result["tokens"],
                                                                 end_id=self.end_id),
                "unknown_tokens": unknown, **result}

    def serving_example(self, batch_size=2, time=5, seed=0):
        """Inputs a served model makes sense of, for sample requests.

        With vocabularies each row is a text of ``time`` vocabulary tokens (tokenized as
        :meth:`text_to_ids` does, so its width may differ), else random ids outside padding,
        start, end and unknown (3); the last row is half padding.

        Args:
            batch_size: rows (default 2).
            time: tokens per row (default 5).
            seed: the seed of the random ids (default 0).

        Returns:
            A dict ``{"source_ids": (batch, time) int32 array, "max_length": () int32 array}``,
            ``max_length`` the source's :func:`default_decode_length`.
        """
        if self.vocabularies is not None:
            tokens = self.vocabularies["source"]["tokens"][len(RESERVED_TOKENS):] or ["?"]
            joiner = " " if self.vocabularies["source"]["level"] == "word" else ""
            texts = [joiner.join(tokens[(b * time + j) % len(tokens)]
                                 for j in range(time if b < batch_size - 1 or b == 0
                                                else max(time // 2, 1)))
                     for b in range(batch_size)]
            source_ids = self._text_ids(tf.constant(texts)).numpy()
        else:
            reserved = {self.pad_id, self.start_id, self.end_id, UNKNOWN_ID}
            ids = [i for i in range(self.source_vocab_size) if i not in reserved] or \
                [i for i in range(1, self.source_vocab_size)]
            rng = np.random.default_rng(seed)
            source_ids = rng.choice(ids, size=(batch_size, time)).astype("int32")
            if batch_size > 1:
                source_ids[-1, max(time // 2, 1):] = self.pad_id
        length = default_decode_length(int(self.source_units(source_ids)))
        return {"source_ids": source_ids, "max_length": np.array(length, "int32")}

    def get_config(self):
        config = {key: getattr(self, key) for key in (
            "source_vocab_size", "target_vocab_size", "source_embedding_dim",
            "target_embedding_dim", "units", "num_layers", "cell", "bidirectional", "merge_mode",
            "dropout", "residual", "attention", "attention_units", "luong_score",
            "attention_normalize", "attention_scale", "attention_layer_size", "input_feeding",
            "scheduled_sampling", "scheduled_sampling_mode", "start_id", "end_id", "seed")}
        # Plain lists and dicts (the attribute is wrapped by Keras' attribute tracking).
        config["vocabularies"] = None if self.vocabularies is None else {
            side: {"tokens": list(spec["tokens"]), "level": spec["level"],
                   "standardize": spec["standardize"]}
            for side, spec in self.vocabularies.items()}
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# Seq2Seq's ``Args:``: the builders' explanations (``kzoo.models.arguments``, one place for
# both), and these for the constructor's own arguments, which the builders fix or leave out.
_CONSTRUCTOR_ARGUMENTS = {
    "cell": "The recurrent cell of the encoder layers and of the decoder: rnn, lstm or gru.",
    "attention": "None (the decoder reads the encoder only through its initial state), "
                 "bahdanau, luong, bahdanau_monotonic or luong_monotonic.",
    "seed": "Seed of the output dropout and of scheduled sampling's draws; None: unseeded.",
    "**kwargs": "keras.Model arguments (name, dtype...).",
}


def _with_constructor_args(doc):
    """``doc`` (Seq2Seq's docstring) with its ``Args:`` section before ``Call arguments:``."""
    explained = {}
    for name, parameter in inspect.signature(Seq2Seq).parameters.items():
        key = f"**{name}" if parameter.kind is parameter.VAR_KEYWORD else name
        explained[key] = _CONSTRUCTOR_ARGUMENTS.get(key) or \
            arguments.explain(None, "seq2seq", name)
    head, tail = inspect.cleandoc(doc).split("\nCall arguments:\n")
    return f"{head}\n{args_section(explained)}\n\nCall arguments:\n{tail}"


Seq2Seq.__doc__ = _with_constructor_args(Seq2Seq.__doc__)


# -- the registered models ----------------------------------------------------------------------
EXAMPLE_SOURCE_LENGTH = 6
EXAMPLE_TARGET_LENGTH = 5


def example_batch(config, batch_size, rng):
    """Random ``((source_ids, target_in_ids), target_out_ids)``; the last row is padded."""
    source = rng.integers(3, config["source_vocab_size"],
                          size=(batch_size, EXAMPLE_SOURCE_LENGTH)).astype("int32")
    body = rng.integers(3, config["target_vocab_size"],
                        size=(batch_size, EXAMPLE_TARGET_LENGTH - 1)).astype("int32")
    target_in = np.concatenate([np.full((batch_size, 1), config["start_id"], "int32"), body], 1)
    target_out = np.concatenate([body, np.full((batch_size, 1), config["end_id"], "int32")], 1)
    if batch_size > 1:
        source[-1, 3:] = PAD_ID
        target_in[-1, 3:] = PAD_ID
        target_out[-1, 2] = config["end_id"]
        target_out[-1, 3:] = PAD_ID
    return (source, target_in), target_out


def sequence_metrics(config):
    # Per-token accuracy under teacher forcing (each step reads the true previous token), not
    # exact match of whole decoded sequences: kzoo evaluate reports that as `exact_match`.
    return [SequenceAccuracy(name="token_accuracy")]


_CONTRACT = dict(example=example_batch, loss=SequenceLoss(), metrics=sequence_metrics)


# The builders' arguments, in the order ``model_info`` lists them; their defaults are
# Seq2Seq's, and ``monotonic`` (False) turns the attention into its monotonic form.
_BUILDER_ARGUMENTS = (
    "source_vocab_size", "target_vocab_size", "source_embedding_dim", "target_embedding_dim",
    "units", "num_layers", "bidirectional", "merge_mode", "dropout", "residual", "luong_score",
    "attention_scale", "attention_units", "attention_normalize", "attention_layer_size",
    "input_feeding", "monotonic", "scheduled_sampling", "scheduled_sampling_mode", "start_id",
    "end_id", "vocabularies")
_ATTENTION_ARGUMENTS = ("luong_score", "attention_scale", "attention_units",
                        "attention_normalize", "attention_layer_size", "input_feeding",
                        "monotonic")


def _build(*, name, cell, attention, **config):
    """A :class:`kzoo.models.Seq2Seq` named after the model (its docstring has the
    architecture): ``generate``, ``translate`` (with ``vocabularies``) and the serving
    functions decode with it."""
    monotonic = config.pop("monotonic")
    if not isinstance(monotonic, bool):
        raise ValueError(f"{name}: `monotonic` must be True or False, got {monotonic!r}")
    if monotonic:
        attention = f"{attention}_monotonic"
    return Seq2Seq(name=name, cell=cell, attention=attention, **config)


def _build_signature():
    keyword = inspect.Parameter.KEYWORD_ONLY
    defaults = {key: p.default for key, p in inspect.signature(Seq2Seq).parameters.items()}
    defaults["monotonic"] = False
    return inspect.Signature(
        [inspect.Parameter(key, keyword) for key in ("name", "cell", "attention")] +
        [inspect.Parameter(key, keyword, default=defaults[key]) for key in _BUILDER_ARGUMENTS])


_build.__signature__ = _build_signature()

_MONOTONIC = "``monotonic=True`` makes the attention monotonic."
# name: (cell, attention, arguments the model does not take, summary)
_MODELS = {
    "seq2seq_rnn": ("rnn", None, _ATTENTION_ARGUMENTS,
                    "Seq2seq, Elman RNN encoder-decoder without attention: the decoder starts "
                    "from the encoder's final state."),
    "seq2seq_lstm": ("lstm", None, _ATTENTION_ARGUMENTS,
                     "Seq2seq, LSTM encoder-decoder without attention (Sutskever et al. 2014): "
                     "the decoder starts from the encoder's final state."),
    "seq2seq_gru": ("gru", None, _ATTENTION_ARGUMENTS,
                    "Seq2seq, GRU encoder-decoder without attention (Cho et al. 2014): the "
                    "decoder starts from the encoder's final state."),
    "seq2seq_attention": ("lstm", "bahdanau", ("luong_score", "attention_scale"),
                          "Seq2seq, LSTM encoder-decoder with Bahdanau (additive) attention and "
                          "input feeding: the headline model, for translation-shaped tasks."
                          f"\n\n{_MONOTONIC}"),
    "seq2seq_luong": ("lstm", "luong", ("attention_normalize",),
                      "Seq2seq, LSTM encoder-decoder with Luong (multiplicative) attention, "
                      "scored by dot product, a bilinear form or concatenation, and input "
                      f"feeding.\n\n{_MONOTONIC}"),
}



def _register_models(namespace):
    """Register every model of ``_MODELS``; put them in ``namespace`` (the module's globals)."""
    for name, (cell, attention, omit, summary) in _MODELS.items():
        builder = make_builder(_build, name, {"name": name, "cell": cell, "attention": attention},
                               {}, summary, omit=omit)
        namespace[name] = register_model("seq2seq", cell, **_CONTRACT)(builder)


_register_models(globals())

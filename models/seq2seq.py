"""Sequence to sequence (encoder-decoder), with or without attention: translation-shaped tasks.

    model = kzoo.build("seq2seq_attention", source_vocab_size=8000, target_vocab_size=8000)
    model.compile(optimizer="adam", **kzoo.models.compile_args("seq2seq_attention"))
    model.fit((source_ids, target_in_ids), target_out_ids)           # teacher forcing
    out = model.generate(source_ids, max_length=50)                   # greedy, one graph
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

The model: ``Embedding(mask_zero) -> recurrent stack`` (``cell``, ``num_layers``,
``bidirectional`` + ``merge_mode``, ``dropout``, ``residual``: see ``kzoo.models.stack``) gives the
memory h_1..h_Ts and the final state, which (forward and backward states merged like the outputs)
initializes the decoder. The decoder cell has the memory's width; with attention it is an
:class:`kzoo.layers.AttentionWrapper` (attention on the cell output, attention vector
a_t = tanh(W_a [o_t; c_t]) fed back into the next input when ``input_feeding``), and
logits_t = W_o a_t + b (without attention: W_o o_t + b). Training runs the decoder step through the
scan engine; ``encode``/``decode_step`` are the same step as ``tf.function`` s, and ``generate``
runs greedy or beam search (``kzoo.models.decoding``) over them in one ``tf.while_loop``.
"""

import keras
import numpy as np
import tensorflow as tf

import kzoo.layers
from kzoo.layers.attention_wrapper import AttentionWrapper
from kzoo.layers.scan import scan
from kzoo.layers.text import TokenVectorizer
from kzoo.models import decoding
from kzoo.models.registry import register_model
from kzoo.models.sampling import ScheduledSampler, SequenceAccuracy, SequenceLoss, \
    TeacherForcingSampler, SAMPLING_MODES
from kzoo.models.stack import check_choice, check_positive_int, check_rate, \
    recurrent_stack, validate_common

ATTENTIONS = ("bahdanau", "luong", "bahdanau_monotonic", "luong_monotonic")
LUONG_SCORES = ("dot", "general", "concat")
GENERATE_METHODS = ("greedy", "beam")
PAD_ID = 0
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


def text_decode_length(source_length):
    """The decode length when translating text and none is given: ``8 * Ts + 8`` for ``Ts``
    source tokens (an int or a tensor). ``generate``'s ``2 * Ts + 2`` is too short when a source
    word becomes a dozen target characters ("twenty-three" -> "dreiundzwanzig")."""
    return 8 * source_length + 8


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


@keras.saving.register_keras_serializable(package="kzoo")
class Seq2Seq(keras.Model):
    """Encoder-decoder over token ids; see the module docstring.

    ``call((source_ids, target_in_ids))`` -> logits (B, T_out, target_vocab_size), carrying the
    Keras mask ``target_in_ids != 0``. ``attention`` is None, "bahdanau", "luong",
    "bahdanau_monotonic" or "luong_monotonic"; ``luong_score`` dot/general/concat;
    ``attention_units`` the size of the additive score (Bahdanau, Luong concat; default: the
    decoder width); ``attention_layer_size`` the attention vector's size (default: the decoder
    width). ``scheduled_sampling`` p > 0 feeds the model's own previous prediction (argmax, or a
    sample with ``scheduled_sampling_mode="sample"``) with probability p in training.
    ``vocabularies``: None, or ``{"source": v, "target": v}`` with each ``v`` a
    ``kzoo.layers.TokenVectorizer`` or ``{"tokens": [...], "level": "word"|"char",
    "standardize": None|...}`` (``tokens`` index = id, as many as the vocabulary size): the
    model then has ``source_vectorizer``/``target_vectorizer`` and :meth:`translate`.
    """

    def __init__(self, source_vocab_size=8000, target_vocab_size=8000, source_embedding_dim=64,
                 target_embedding_dim=64, units=64, num_layers=1, cell="lstm",
                 bidirectional=False, merge_mode="concat", dropout=0.0, residual=False,
                 attention="bahdanau", attention_units=None, luong_score="general",
                 attention_normalize=False, attention_scale=False, attention_layer_size=None,
                 input_feeding=True, scheduled_sampling=0.0, scheduled_sampling_mode="argmax",
                 start_id=1, end_id=2, seed=None, vocabularies=None, **kwargs):
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
        check_choice(where, "scheduled_sampling_mode", scheduled_sampling_mode, SAMPLING_MODES)
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
        if self.scheduled_sampling > 0:
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

    def search_step(self, memory, keys, memory_mask):
        """The decoder step the search loops of :meth:`generate` and the exported signatures run:
        ``step_fn(token_ids, states) -> (logits, new_states, alignments)``, equal to
        :meth:`decode_step` up to float rounding.

        It is built once per search, before the loop, and takes out of the loop what does not
        change from step to step (TensorFlow's executor pays a fixed cost per node and step): the
        input projection of every target token, ``project_inputs`` of its embedding (and of a zero
        attention vector with input feeding), is one (V, gates) table, so a step gathers a row
        instead of embedding the ids, checking them (they come from argmax or top-k, always in the
        vocabulary) and multiplying by the embedding half of the kernel; and the memory loses the
        Keras mask the encoder attached to it, which the attention layer would otherwise combine
        with ``memory_mask`` at every step (both are ``source_ids != 0``). The weights are still
        read inside the loop: read once outside, each becomes one more tensor carried through the
        loop, which costs the executor as much per step as the read, or more (measured). Under
        ``scan_mode("tflite")`` it is :meth:`decode_step`'s own step: the TFLite export folds the
        weights into constants inside the loop, where post-training quantization reaches them.
        """
        from kzoo.layers.scan import get_scan_mode

        cell = self.decoder if self.attention is None else self.decoder.cell
        if get_scan_mode() == "tflite" or getattr(cell, "layer_norm", False):
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

    @tf.function(reduce_retracing=True, autograph=False)
    def encode(self, source_ids):
        """``(memory (B, Ts, d), keys, memory_mask (B, Ts), decoder_states)`` for ``source_ids``
        (B, Ts); ``decoder_states`` is the list :meth:`decode_step` takes."""
        return self._encode(source_ids, training=False)

    @tf.function(reduce_retracing=True, autograph=False)
    def decode_step(self, token_ids, states, memory, keys, memory_mask):
        """One decoder step from token ids (B,): ``(logits (B, V), new_states, alignments)``;
        ``alignments`` is (B, Ts), zeros for a model without attention."""
        logits, new_states, alignments = self._decode_step(token_ids, states, memory, keys,
                                                            memory_mask)
        if alignments is None:
            alignments = tf.zeros_like(memory[:, :, 0])
        return logits, new_states, alignments

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
                predicted = self.target_embedding(tf.argmax(logits, -1, output_type=tf.int32))
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

    # -- inference --------------------------------------------------------------------------------
    def generate(self, source_ids, max_length=None, method="greedy", beam_width=4,
                 length_penalty=0.0, coverage_penalty=0.0):
        """Decode ``source_ids`` (B, Ts) (0-padded) in one graph; returns a dict of tensors.

        Greedy: ``tokens`` (B, max_length) (the end token included, 0 after it), ``scores`` (B,)
        (sum of log-probabilities), ``lengths`` (B,), and with attention ``attention``
        (B, max_length, Ts). Beam: ``tokens``/``scores`` of the best hypothesis by the GNMT score
        (``length_penalty`` alpha, ``coverage_penalty`` beta; see ``kzoo.models.decoding``) plus
        ``beam_tokens`` (B, K, max_length), ``beam_scores``, ``log_probs`` and ``lengths`` (B, K).
        ``max_length`` defaults to 2 * Ts + 2.
        """
        name = self.name
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
        max_length = tf.constant(max_length, tf.int32)
        if method == "greedy":
            return self.greedy_graph(source_ids, max_length)
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
        return self.beam_graph(source_ids, max_length, beam_width, *penalties)

    def translate(self, texts, max_length=None, method="greedy", beam_width=4,
                  length_penalty=0.0, coverage_penalty=0.0):
        """Translate strings with the model's vocabularies: a list of str (or one str) ->
        a list of str. Tokenized in the graph by ``source_vectorizer``, decoded by
        :meth:`generate` (``max_length`` default :func:`text_decode_length` of the longest
        input), detokenized by ``target_vectorizer.detokenize`` (tokens before the end token)."""
        if self.vocabularies is None:
            raise ValueError(f"{self.name}.translate: this model carries no vocabularies; build "
                             f"it with `vocabularies=` (e.g. a dataset's info.vectorizers) or "
                             f"decode token ids with generate()")
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{self.name}.translate: `texts` must be a string or a non-empty "
                             f"list of strings")
        source_ids = self.source_vectorizer(tf.constant(texts))
        if source_ids.shape[1] == 0:  # only empty strings: one padding step to encode
            source_ids = tf.zeros([len(texts), 1], tf.int32)
        if max_length is None:
            max_length = min(text_decode_length(int(source_ids.shape[1])),
                             decoding.MAX_DECODE_LENGTH)
        result = self.generate(source_ids, max_length=max_length, method=method,
                               beam_width=beam_width, length_penalty=length_penalty,
                               coverage_penalty=coverage_penalty)
        strings = self.target_vectorizer.detokenize(result["tokens"], end_id=self.end_id)
        outputs = [s.decode("utf-8") for s in strings.numpy().tolist()]
        return outputs[0] if single else outputs

    def _default_length(self, source_ids, max_length):
        return tf.where(max_length > 0, max_length, 2 * tf.shape(source_ids)[1] + 2)

    @tf.function(reduce_retracing=True, autograph=False)
    def greedy_graph(self, source_ids, max_length):
        """Greedy decoding as one graph (see :meth:`generate`); ``max_length`` <= 0 is the
        default length."""
        memory, keys, memory_mask, states = self._encode(source_ids, training=False)
        return decoding.greedy_search(
            self.search_step(memory, keys, memory_mask), states,
            batch_size=tf.shape(source_ids)[0], start_id=self.start_id, end_id=self.end_id,
            max_length=self._default_length(source_ids, max_length),
            alignment_size=None if self.attention is None else tf.shape(memory)[1])

    @tf.function(reduce_retracing=True, autograph=False)
    def beam_graph(self, source_ids, max_length, beam_width, length_penalty, coverage_penalty):
        """Beam search as one graph (see :meth:`generate`); ``beam_width`` is a Python int, the
        penalties Python floats or tensors (a Python 0 leaves its penalty out of the graph)."""
        memory, keys, memory_mask, states = self._encode(source_ids, training=False)
        memory, keys, memory_mask = (decoding.tile_batch(x, beam_width)
                                     for x in (memory, keys, memory_mask))
        states = [decoding.tile_batch(s, beam_width) for s in states]
        return decoding.beam_search(
            self.search_step(memory, keys, memory_mask), states,
            batch_size=tf.shape(source_ids)[0], beam_width=beam_width, start_id=self.start_id,
            end_id=self.end_id, max_length=self._default_length(source_ids, max_length),
            length_penalty_weight=length_penalty, coverage_penalty_weight=coverage_penalty,
            alignment_size=None if self.attention is None else tf.shape(memory)[1])

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
        source[-1, 3:] = 0
        target_in[-1, 3:] = 0
        target_out[-1, 2] = config["end_id"]
        target_out[-1, 3:] = 0
    return (source, target_in), target_out


def sequence_metrics(config):
    # Per-token accuracy under teacher forcing (each step reads the true previous token), not
    # exact match of whole decoded sequences: kzoo evaluate reports that as `exact_match`.
    return [SequenceAccuracy(name="token_accuracy")]


_CONTRACT = dict(example=example_batch, loss=SequenceLoss(), metrics=sequence_metrics)


def _monotonic(name, config):
    monotonic = config.pop("monotonic")
    if not isinstance(monotonic, bool):
        raise ValueError(f"{name}: `monotonic` must be True or False, got {monotonic!r}")
    return monotonic


def _seq2seq(name, **config):
    return Seq2Seq(name=name, **config)


@register_model("seq2seq", "rnn", **_CONTRACT)
def seq2seq_rnn(*, source_vocab_size=8000, target_vocab_size=8000, source_embedding_dim=64,
                target_embedding_dim=64, units=64, num_layers=1, bidirectional=False,
                merge_mode="concat", dropout=0.0, residual=False, scheduled_sampling=0.0,
                scheduled_sampling_mode="argmax", start_id=1, end_id=2,
                vocabularies=None):
    """Seq2seq, Elman RNN encoder-decoder without attention: the decoder starts from the encoder's
    final state.

    Builds a :class:`Seq2Seq` (the architecture is in its docstring)."""
    return _seq2seq("seq2seq_rnn", cell="rnn", attention=None, **dict(locals()))


@register_model("seq2seq", "lstm", **_CONTRACT)
def seq2seq_lstm(*, source_vocab_size=8000, target_vocab_size=8000, source_embedding_dim=64,
                 target_embedding_dim=64, units=64, num_layers=1, bidirectional=False,
                 merge_mode="concat", dropout=0.0, residual=False, scheduled_sampling=0.0,
                 scheduled_sampling_mode="argmax", start_id=1, end_id=2,
                 vocabularies=None):
    """Seq2seq, LSTM encoder-decoder without attention (Sutskever et al. 2014): the decoder
    starts from the encoder's final state.

    Builds a :class:`Seq2Seq` (the architecture is in its docstring)."""
    return _seq2seq("seq2seq_lstm", cell="lstm", attention=None, **dict(locals()))


@register_model("seq2seq", "gru", **_CONTRACT)
def seq2seq_gru(*, source_vocab_size=8000, target_vocab_size=8000, source_embedding_dim=64,
                target_embedding_dim=64, units=64, num_layers=1, bidirectional=False,
                merge_mode="concat", dropout=0.0, residual=False, scheduled_sampling=0.0,
                scheduled_sampling_mode="argmax", start_id=1, end_id=2,
                vocabularies=None):
    """Seq2seq, GRU encoder-decoder without attention (Cho et al. 2014): the decoder starts from
    the encoder's final state.

    Builds a :class:`Seq2Seq` (the architecture is in its docstring)."""
    return _seq2seq("seq2seq_gru", cell="gru", attention=None, **dict(locals()))


@register_model("seq2seq", "lstm", **_CONTRACT)
def seq2seq_attention(*, source_vocab_size=8000, target_vocab_size=8000,
                      source_embedding_dim=64, target_embedding_dim=64, units=64, num_layers=1,
                      bidirectional=False, merge_mode="concat", dropout=0.0, residual=False,
                      attention_units=None, attention_normalize=False, attention_layer_size=None,
                      input_feeding=True, monotonic=False, scheduled_sampling=0.0,
                      scheduled_sampling_mode="argmax", start_id=1, end_id=2,
                      vocabularies=None):
    """Seq2seq, LSTM encoder-decoder with Bahdanau (additive) attention and input feeding: the
    headline model, for translation-shaped tasks.

    ``monotonic=True`` makes the attention monotonic. Builds a :class:`Seq2Seq` (the
    architecture is in its docstring)."""
    config = dict(locals())
    attention = "bahdanau_monotonic" if _monotonic("seq2seq_attention", config) else "bahdanau"
    return _seq2seq("seq2seq_attention", cell="lstm", attention=attention, **config)


@register_model("seq2seq", "lstm", **_CONTRACT)
def seq2seq_luong(*, source_vocab_size=8000, target_vocab_size=8000, source_embedding_dim=64,
                  target_embedding_dim=64, units=64, num_layers=1, bidirectional=False,
                  merge_mode="concat", dropout=0.0, residual=False, luong_score="general",
                  attention_scale=False, attention_units=None, attention_layer_size=None,
                  input_feeding=True, monotonic=False, scheduled_sampling=0.0,
                  scheduled_sampling_mode="argmax", start_id=1, end_id=2,
                  vocabularies=None):
    """Seq2seq, LSTM encoder-decoder with Luong (multiplicative) attention, scored by dot
    product, a bilinear form or concatenation, and input feeding.

    ``monotonic=True`` makes the attention monotonic. Builds a :class:`Seq2Seq` (the
    architecture is in its docstring)."""
    config = dict(locals())
    attention = "luong_monotonic" if _monotonic("seq2seq_luong", config) else "luong"
    return _seq2seq("seq2seq_luong", cell="lstm", attention=attention, **config)


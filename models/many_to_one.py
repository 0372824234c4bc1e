"""Many-to-one: a sequence -> one output (sentiment, sequence classification, forecasting).

    model = kzoo.build("many_to_one_bi_lstm", vocab_size=20000, num_classes=2)
    model.compile(**kzoo.models.compile_args("many_to_one_bi_lstm"))

Registered: ``many_to_one_{rnn,lstm,gru}``, ``many_to_one_bi_{...}``, ``many_to_one_deep_{...}``.
"""

import keras

from kzoo.models import variants
from kzoo.models.stack import recurrent_stack, sequence_inputs, validate_common


def _build(*, cell, name, vocab_size=10000, embedding_dim=64, input_dim=None, units=64,
           num_layers=1, bidirectional=False, merge_mode="concat", dropout=0.0, residual=False,
           num_classes=2, output_dim=None):
    """Token ids ``(batch, time)`` (``vocab_size``; 0 is padding and is masked) or, when
    ``input_dim`` is set, real features ``(batch, time, input_dim)`` -> a recurrent stack whose
    last layer returns its final output -> softmax over ``num_classes``
    ``(batch, num_classes)``, or with ``num_classes=None`` and ``output_dim`` a linear
    ``(batch, output_dim)`` (forecasting). It trains with sparse categorical cross-entropy and
    accuracy for classes, mean squared error and MAE for real outputs.
    """
    validate_common(name, cell=cell, units=units, num_layers=num_layers, merge_mode=merge_mode,
                    dropout=dropout, vocab_size=vocab_size, embedding_dim=embedding_dim,
                    input_dim=input_dim)
    variants.check_inputs(name, vocab_size, input_dim)
    variants.check_head(name, num_classes, output_dim)
    inputs, features = sequence_inputs(vocab_size=vocab_size, embedding_dim=embedding_dim,
                                       input_dim=input_dim)
    encoded = recurrent_stack(features, cell=cell, units=units, num_layers=num_layers,
                              bidirectional=bidirectional, merge_mode=merge_mode, dropout=dropout,
                              residual=residual, return_sequences=False)
    outputs = variants.output_head(encoded, num_classes, output_dim)
    return keras.Model(inputs, outputs, name=name)


def _example(config, batch_size, rng):
    inputs = variants.example_sequence_inputs(config, batch_size, rng)
    return inputs, variants.example_targets(config, rng, (batch_size,))


variants.register_variants(
    globals(), "many_to_one", _build,
    "a sequence -> one label or vector (sentiment, sequence classification, forecasting).",
    example=_example, loss=variants.head_loss, metrics=variants.head_metrics)

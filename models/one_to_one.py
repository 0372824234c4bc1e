"""One-to-one: a fixed input -> a fixed output, no recurrence (the feed-forward baseline)."""

import keras

from kzoo.models import variants
from kzoo.models.registry import register_model
from kzoo.models.stack import validate_common


def _example(config, batch_size, rng):
    inputs = rng.normal(size=(batch_size, config["input_dim"])).astype("float32")
    return inputs, variants.example_targets(config, rng, (batch_size,))


@register_model("one_to_one", "mlp", example=_example, loss=variants.head_loss,
                metrics=variants.head_metrics)
def one_to_one_mlp(*, input_dim=784, units=128, num_layers=2, activation="relu", dropout=0.0,
                   num_classes=10, output_dim=None):
    """One-to-one, multilayer perceptron: a feature vector -> one label or vector (no recurrence).

    ``(batch, input_dim)`` -> ``num_layers`` hidden ``Dense(units, activation)`` layers (dropout
    after each) -> softmax over ``num_classes``, or with ``num_classes=None`` and ``output_dim``
    linear outputs. The default ``input_dim=784`` is a flattened 28x28 image.
    """
    name = "one_to_one_mlp"
    validate_common(name, units=units, num_layers=num_layers, dropout=dropout,
                    input_dim=input_dim)
    variants.check_head(name, num_classes, output_dim)
    try:
        keras.activations.get(activation)
    except ValueError:
        raise ValueError(f"{name}: unknown `activation` {activation!r}") from None
    inputs = keras.Input((input_dim,), name="inputs")
    x = inputs
    for k in range(num_layers):
        x = keras.layers.Dense(units, activation=activation, name=f"hidden_{k + 1}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"hidden_{k + 1}_dropout")(x)
    outputs = variants.output_head(x, num_classes, output_dim)
    return keras.Model(inputs, outputs, name=name)

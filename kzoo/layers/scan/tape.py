"""Whether a gradient tape records, from TensorFlow's private ``record`` module (stable since
TF 2.0); without it the engine plans as if no tape recorded and lets TensorFlow differentiate."""

try:
    from tensorflow.python.eager.record import could_possibly_record as tape_is_active
    from tensorflow.python.eager.record import should_record_backprop as is_watched
except ImportError:     # pragma: no cover
    def tape_is_active():
        """Whether a gradient tape may record the ops traced now."""
        return False

    def is_watched(tensors):
        """Whether a recording tape watches any of ``tensors``."""
        return True

"""Tracing a function for the TFLite converter: the scan engine's TensorList-free form, weights
folded into constants, builtin ops only (so the LiteRT interpreter runs it without Flex)."""

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from kzoo.layers.scan import scan_mode


def convert(fn, input_signature, allow_flex=False, optimizations=None):
    """TFLite flatbuffer bytes of ``fn`` traced with ``input_signature`` (dynamic dims as None).

    The function is traced under ``scan_mode("tflite")``; variables become constants because
    LiteRT cannot read resource variables inside a ``WHILE`` body.
    """
    with scan_mode("tflite"):
        concrete = tf.function(fn).get_concrete_function(*input_signature)
    frozen = convert_variables_to_constants_v2(concrete)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if allow_flex:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    if optimizations:
        converter.optimizations = list(optimizations)
    return converter.convert()


def run(model_content, *inputs):
    """Run a converted model once in the LiteRT interpreter (inputs resized to their shapes)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    details = interpreter.get_input_details()
    for detail, value in zip(details, inputs):
        interpreter.resize_tensor_input(detail["index"], value.shape)
    interpreter.allocate_tensors()
    for detail, value in zip(details, inputs):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def op_names(model_content):
    """The set of op names in every subgraph of a converted model."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    names = {d["op_name"] for d in interpreter._get_ops_details()}
    return names

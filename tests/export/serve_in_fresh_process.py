"""Serve exported SavedModels the way TensorFlow Serving would, in a fresh process without kzoo.

    python serve_in_fresh_process.py manifest.json

For every entry of the manifest (``{key: {"saved_model", "feed", "output"[, "signature"]}}``)
it loads the SavedModel with ``tf.saved_model.load``, calls the signature (``serving_default``
unless the entry names another) with the feed directly ("direct"), through a ``PredictRequest``
built with ``tensorflow_serving.apis.predict_pb2`` and ``tf.make_tensor_proto`` and decoded as
the server decodes it ("predict_request"), and for ``serving_default`` with the
``sample_request.json`` REST body beside the versions ("rest", and its inputs "rest_inputs").
Outputs go to ``output`` as ``group/tensor`` arrays of an npz file (strings as bytes arrays), plus
"spec/<input>" arrays holding each input's dtype name and shape, -1 for a free dimension.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2


def rest_inputs(body, signature):
    """The tensors TF Serving's REST API makes of ``body`` for ``signature``."""
    specs = signature.structured_input_signature[1]
    assert set(body) >= {"signature_name"}, body.keys()
    assert body["signature_name"] == "serving_default"
    if "instances" in body:
        rows = body["instances"]
        columns = {name: [row[name] for row in rows] for name in rows[0]}
    else:
        columns = body["inputs"]
    assert set(columns) == set(specs), (sorted(columns), sorted(specs))
    tensors = {}
    for name, spec in specs.items():
        value = tf.constant(np.asarray(columns[name]), dtype=spec.dtype)
        assert spec.shape.is_compatible_with(value.shape), (name, spec.shape, value.shape)
        tensors[name] = value
    return tensors


def main(manifest_path):
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    for key, entry in manifest.items():
        loaded = tf.saved_model.load(entry["saved_model"])
        signature_name = entry.get("signature", "serving_default")
        serve = loaded.signatures[signature_name]
        with np.load(entry["feed"]) as data:
            feed = {name: data[name] for name in data.files}
        results = {"direct": serve(**{k: tf.constant(v) for k, v in feed.items()})}

        request = predict_pb2.PredictRequest()
        request.model_spec.name = key
        request.model_spec.signature_name = signature_name
        for name, value in feed.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        wire = predict_pb2.PredictRequest.FromString(request.SerializeToString())
        decoded = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in
                   wire.inputs.items()}
        results["predict_request"] = serve(**decoded)

        if signature_name == "serving_default":
            base_dir = os.path.dirname(entry["saved_model"].rstrip(os.sep))
            with open(os.path.join(base_dir, "sample_request.json")) as handle:
                body = json.load(handle)
            tensors = rest_inputs(body, serve)
            results["rest"] = serve(**tensors)
            results["rest_inputs"] = tensors

        arrays = {f"{group}/{name}": _plain(value)
                  for group, outputs in results.items() for name, value in outputs.items()}
        for name, spec in serve.structured_input_signature[1].items():
            arrays[f"spec/{name}"] = np.array(
                [spec.dtype.name] + [str(-1 if d is None else d) for d in spec.shape.as_list()])
        np.savez(entry["output"], **arrays)


def _plain(value):
    """A NumPy array npz stores without pickling: tf.string tensors become bytes arrays."""
    array = np.asarray(value)
    return array.astype(bytes) if array.dtype == object else array


if __name__ == "__main__":
    main(sys.argv[1])

"""``kzoo.export.saved_model``: a SavedModel in the TensorFlow Serving layout.

    base_dir/
      1/saved_model.pb, 1/variables/...     one directory per version
      models.config                         a TF Serving model config pointing at base_dir
      sample_request.json                   a REST body for serving_default

The signatures and their tensor names are described in :mod:`kzoo.export.signatures`.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from kzoo import quiet
from kzoo.export import atomic
from kzoo.export.signatures import check_exportable, signatures, served_model
from kzoo.layers.target import trace_target

TARGETS = ("cpu", "gpu")
MODELS_CONFIG = "models.config"
SAMPLE_REQUEST = "sample_request.json"


def saved_model(model, base_dir, version=None, target="cpu", overwrite=False):
    """Writes ``model`` as a SavedModel in the TensorFlow Serving layout.

    The SavedModel goes to ``base_dir/<version>/`` (``saved_model.pb``, ``variables/``), next to
    ``models.config`` (a TF Serving ``--model_config_file`` serving the latest version under
    ``base_dir``, named after ``base_dir``) and ``sample_request.json`` (a REST body for
    ``serving_default``, to POST to ``/v1/models/<name>:predict``). The signatures and their
    tensor names are those of :mod:`kzoo.export.signatures`: ``serving_default`` takes exactly
    the Keras model's inputs (a seq2seq model's: ``source_ids`` and ``max_length``), with batch
    and time dynamic and token id 0 as padding. ``saved_model_cli show --dir <path> --all``
    lists them.

    Everything is written under temporary names in ``base_dir`` and renamed into place: on any
    failure nothing is left behind, a replaced version is restored, and a ``base_dir`` the call
    created is removed.

    Args:
        model: a built ``keras.Model``: a model of ``kzoo.build``, a functional model made of
            kzoo layers, or a ``kzoo.models.seq2seq.Seq2Seq``. A stateful model is exported as
            its stateless twin (same weights, any batch size; the ``stream`` signature carries
            the state between requests).
        base_dir: the model's directory (str or path-like), created if missing; its base name
            is the model's name in ``models.config``.
        version: the version directory's name, a positive int; None (default) takes the next
            one after the highest existing version (1 in a new directory).
        target: ``"cpu"`` (default) writes the portable graph: no cuDNN op, whatever device
            the export runs on, so a CPU-only server runs it. ``"gpu"`` XLA-compiles the
            serving functions (``jit_compile``; for seq2seq the encoder and the decoder step,
            as the search loops have data-dependent sizes).
        overwrite: whether an existing version directory may be replaced (default False).

    Returns:
        The absolute path (str) of the version directory written, ``base_dir/<version>``.

    Raises:
        TypeError: if ``model`` is not a ``keras.Model``.
        ValueError: if ``model`` is not built, ``version`` is not a positive int or None,
            ``target`` is not ``"cpu"`` or ``"gpu"``, or ``overwrite`` is not a bool.
        FileExistsError: if the version directory exists and ``overwrite`` is False.
        OSError: if ``base_dir`` cannot be created or written to (the message names it).

    Example:

    ```python
    import os
    import kzoo
    import kzoo.export

    model = kzoo.build("many_to_one_gru", input_dim=3, num_classes=2, units=4)
    path = kzoo.export.saved_model(model, "serving/classifier")
    print(os.path.relpath(path))                      # serving/classifier/1
    print(sorted(os.listdir("serving/classifier")))
    # ['1', 'models.config', 'sample_request.json']
    kzoo.export.saved_model(model, "serving/classifier")   # -> serving/classifier/2
    ```
    """
    where = "kzoo.export.saved_model"
    check_exportable(model, where)
    if target not in TARGETS:
        raise ValueError(f"{where}: `target` must be one of {TARGETS}, got {target!r}")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or version <= 0):
        raise ValueError(f"{where}: `version` must be a positive integer or None, got "
                         f"{version!r}")
    if not isinstance(overwrite, bool):
        raise ValueError(f"{where}: `overwrite` must be True or False, got {overwrite!r}")
    base_dir = os.path.abspath(os.fspath(base_dir))
    created = atomic.make_dirs(base_dir, where)
    commit = atomic.Commit()
    final = base_dir
    try:
        atomic.check_writable(base_dir, where)
        atomic.recover_leftovers(base_dir, lambda name: name.isdigit()
                                 or name in (MODELS_CONFIG, SAMPLE_REQUEST))
        if version is None:
            version = next_version(base_dir)
        final = os.path.join(base_dir, str(version))
        if os.path.exists(final) and not overwrite:
            raise FileExistsError(f"{where}: version directory {final!r} already exists; pass "
                                  f"overwrite=True to replace it, or another `version`")
        served = served_model(model)
        exported = signatures(served, jit_compile=target == "gpu")
        staging = atomic.staged_file(base_dir, str(version))
        os.remove(staging)
        commit.add(staging, final)
        # The portable loops, whatever device this process sees: no cuDNN kernel (and no
        # XLA loop) in a graph that a CPU-only TF Serving must run.
        with trace_target("portable"):
            _write_saved_model(served, exported, staging)
        for name, text in ((MODELS_CONFIG, models_config(base_dir)),
                           (SAMPLE_REQUEST, json.dumps(sample_request(exported[0]), indent=1))):
            staged = atomic.staged_file(base_dir, name)
            commit.add(staged, os.path.join(base_dir, name))
            with open(staged, "w") as handle:
                handle.write(text + "\n")
        commit.commit()
    except BaseException as error:
        commit.discard()
        atomic.remove(created)
        if isinstance(error, OSError):
            raise atomic.clear_os_error(error, where, final) from error
        raise
    return final


def next_version(base_dir):
    versions = [int(name) for name in os.listdir(base_dir)
                if name.isdigit() and os.path.isdir(os.path.join(base_dir, name))]
    return max(versions, default=0) + 1


def _write_saved_model(model, exported, directory):
    module = tf.Module()
    # The functions capture the model's variables; the SavedModel saves what the module tracks.
    module.model_variables = list(model.variables)
    # So are the lookup tables of StringLookup layers (the string ``translate`` signature's).
    module.lookup_tables = [layer.lookup_table for layer in
                            model._flatten_layers(include_self=False, recursive=True)
                            if isinstance(layer, keras.layers.StringLookup)]
    concrete = {}
    for signature in exported:
        function = signature.tf_function()
        setattr(module, signature.name, function)
        concrete[signature.name] = function.get_concrete_function()
    with quiet.exporting():
        tf.saved_model.save(module, directory, signatures=concrete)


def models_config(base_dir):
    """A TF Serving ``--model_config_file`` serving the latest version under ``base_dir``."""
    name = os.path.basename(base_dir.rstrip(os.sep)) or "model"
    return ("model_config_list {\n"
            "  config {\n"
            f"    name: {json.dumps(name)}\n"
            f"    base_path: {json.dumps(base_dir)}\n"
            "    model_platform: \"tensorflow\"\n"
            "  }\n"
            "}")


def sample_inputs(signature, batch_size=2, time=5, seed=0):
    """Valid example inputs ``{name: array}`` for ``signature``: its own ``example`` (a seq2seq
    model's real token ids and decode length) where it has one, else token ids 1, 2, zero states,
    the default decode length, normal floats."""
    rng = np.random.default_rng(seed)
    values = dict(signature.example(batch_size, time)) if signature.example else {}
    for spec in signature.specs:
        if spec.name in values:
            continue
        dtype = spec.dtype.as_numpy_dtype
        if spec.name == "lengths":
            values[spec.name] = np.full([batch_size], time, dtype)
            continue
        if spec.name == "max_length":  # <= 0: the model's default decode length
            values[spec.name] = np.array(0, dtype)
            continue
        shape = [batch_size if k == 0 else (time if d is None else d)
                 for k, d in enumerate(spec.shape)]
        if spec.name.startswith(("initial_state", "state_")):
            values[spec.name] = np.zeros(shape, dtype)
        elif spec.dtype.is_integer:
            values[spec.name] = rng.integers(1, 3, size=shape).astype(dtype)
        elif spec.dtype.is_bool:
            values[spec.name] = np.ones(shape, bool)
        else:
            values[spec.name] = rng.normal(size=shape).astype(dtype)
    return values


def sample_request(signature, batch_size=2, time=5):
    """The body of a POST to ``/v1/models/<name>:predict``: the row ("instances") format when
    every input has a batch dimension, else the columnar ("inputs") format."""
    values = sample_inputs(signature, batch_size, time)
    body = {"signature_name": signature.name}
    if all(spec.shape.rank for spec in signature.specs):
        body["instances"] = [{name: value[row].tolist() for name, value in values.items()}
                             for row in range(batch_size)]
    else:
        body["inputs"] = {name: value.tolist() for name, value in values.items()}
    return body

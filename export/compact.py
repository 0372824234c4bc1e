"""Shrinking a converted TFLite file without changing what it computes.

The converter writes each signature's loops as subgraphs of their own, so a model with
``serving_default`` and ``stream`` holds every loop (``WHILE`` cond and body) twice: the same ops
on the same weights, with tensors numbered in another order. It gives every tensor that holds no
data an empty buffer of its own, writes a table for every tensor (most of them alike: the same
shape and type, no data), and names each internal tensor after its TensorFlow op path.
:func:`compact` undoes the four: one copy of each identical loop subgraph (the ``WHILE`` ops of
both signatures point to it), tensors without data on the schema's empty buffer 0, one table
for all equal tensors (and op options), and no internal names. The signatures, their input and
output names and every op stay as they were; LiteRT runs the file with the same results.
"""

import flatbuffers
import numpy as np

_CUSTOM = 32   # BuiltinOperator.CUSTOM: its options are opaque bytes, which might name a subgraph


def compact(content):
    """``content`` (TFLite flatbuffer bytes) with identical subgraphs merged, unused buffers
    dropped and internal names stripped (see the module docstring).

    A file this cannot rewrite safely is returned as is: one over 2 GB (buffers after the
    flatbuffer) or with external buffers. Subgraphs are not merged in a file with custom ops
    (Flex ops), whose options could refer to a subgraph in a way this pass does not read.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    if any(buffer.offset for buffer in model.buffers or []) or model.externalBuffers:
        return content
    strip_internal_names(model)
    drop_empty_quantization(model)
    share_empty_buffer(model)
    if not any(_CUSTOM in (code.builtinCode, code.deprecatedBuiltinCode)
               for code in model.operatorCodes or []):
        merge_identical_subgraphs(model)
    drop_unused_buffers(model)
    return pack_shared(model)


def strip_internal_names(model):
    """Drop the names of internal tensors and loop subgraphs of ``model`` (a ``ModelT``).

    The converter names every tensor after its TensorFlow op path inside the loops
    (``encoder/while/body/_1/.../LoopCond/_746_body_arg3``), which nothing reads (their share
    of a file: docs/engine-notes.md, "TFLite file size"). What apps use stays: the signatures
    (their keys, input and output names), and the names of the tensors they map to and of
    their subgraphs.
    """
    kept = {}
    for signature in model.signatureDefs or []:
        graph = model.subgraphs[signature.subgraphIndex]
        ends = signature.inputs + signature.outputs
        kept[signature.subgraphIndex] = {t.tensorIndex for t in ends}
        kept[signature.subgraphIndex] |= set(graph.inputs) | set(graph.outputs)
    for index, graph in enumerate(model.subgraphs):
        if index not in kept:
            graph.name = None
        for number, tensor in enumerate(graph.tensors):
            if number not in kept.get(index, ()):
                tensor.name = None


def drop_empty_quantization(model):
    """Drop every empty quantization table: the converter writes one for each float tensor,
    and a tensor without the table is simply not quantized."""
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            q = tensor.quantization
            if q is not None and q.details is None and all(
                    value is None or len(value) == 0 for value in (q.min, q.max, q.scale,
                                                                   q.zeroPoint)):
                tensor.quantization = None


def share_empty_buffer(model):
    """Point every tensor without constant data at buffer 0, the schema's empty sentinel ("tensors
    without a buffer can provide 0"), and identical constants at one buffer. Variable tensors
    keep their own buffer."""
    first = {}
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            if tensor.isVariable:
                continue
            data = model.buffers[tensor.buffer].data
            if data is None or len(data) == 0:
                tensor.buffer = 0
            else:
                tensor.buffer = first.setdefault(bytes(data), tensor.buffer)


def _subgraph_references(model):
    """``(options, attribute)`` of every op option that holds subgraph indices (WHILE's cond
    and body, IF's branches, CALL_ONCE, the StableHLO ops'...): the schema names them all
    ``...SubgraphIndex`` (one) or ``...SubgraphIndices`` (a list)."""
    for graph in model.subgraphs:
        for op in graph.operators or []:
            for options in (op.builtinOptions, getattr(op, "builtinOptions2", None)):
                for attribute in vars(options) if options is not None else ():
                    if attribute.endswith(("SubgraphIndex", "SubgraphIndices")):
                        yield options, attribute


def _repoint(model, new_index):
    for options, attribute in _subgraph_references(model):
        value = getattr(options, attribute)
        if isinstance(value, int):
            setattr(options, attribute, new_index[value])
        elif value is not None:
            setattr(options, attribute, [new_index[v] for v in value])


def _packed(graph):
    builder = flatbuffers.Builder(1024)
    builder.Finish(graph.Pack(builder))
    return bytes(builder.Output())


def renumber_tensors(graph):
    """Number ``graph``'s tensors in the order its inputs, ops and outputs first use them and
    drop the ones nothing uses, so that two subgraphs the converter built alike but numbered
    otherwise (it numbers constants in no fixed order) serialize the same. Only for a subgraph
    no signature names tensors of."""
    order = {}
    for index in graph.inputs:
        order.setdefault(int(index), len(order))
    for op in graph.operators or []:
        for indices in (op.inputs, op.outputs, op.intermediates):
            for index in indices if indices is not None else ():
                if index >= 0:      # -1: an optional input left out
                    order.setdefault(int(index), len(order))
    for index in graph.outputs:
        order.setdefault(int(index), len(order))

    def renumbered(indices):
        return None if indices is None else [order[i] if i >= 0 else i for i in indices]

    graph.tensors = [graph.tensors[index] for index in sorted(order, key=order.get)]
    graph.inputs, graph.outputs = renumbered(graph.inputs), renumbered(graph.outputs)
    for op in graph.operators or []:
        op.inputs, op.outputs = renumbered(op.inputs), renumbered(op.outputs)
        op.intermediates = renumbered(op.intermediates)


def merge_identical_subgraphs(model):
    """Keep one of each set of identical subgraphs that no signature starts in, repointing the
    ops that call them; returns how many were removed.

    Two subgraphs are identical when they serialize to the same bytes once the subgraphs they
    call are themselves merged (so the loops nested in identical loops merge too). Subgraph 0
    and the signatures' subgraphs are never merged away; the others keep their order.
    """
    count = len(model.subgraphs)
    entries = {0} | {signature.subgraphIndex for signature in model.signatureDefs or []}
    for index, graph in enumerate(model.subgraphs):
        if index not in entries:
            renumber_tensors(graph)
    representative = list(range(count))
    merged = True
    while merged:
        merged = False
        _repoint(model, representative)
        seen = {}
        for index, graph in enumerate(model.subgraphs):
            if index in entries or representative[index] != index:
                continue
            key = _packed(graph)
            if key in seen:
                representative[index] = seen[key]
                merged = True
            else:
                seen[key] = index
    kept = [index for index in range(count) if representative[index] == index]
    if len(kept) == count:
        return 0
    position = {old: new for new, old in enumerate(kept)}
    _repoint(model, [position[representative[index]] for index in range(count)])
    for signature in model.signatureDefs or []:
        signature.subgraphIndex = position[signature.subgraphIndex]
    model.subgraphs = [model.subgraphs[index] for index in kept]
    return count - len(kept)


def _content(value):
    """A hashable form of an object-API value: every field, arrays by dtype and bytes."""
    if isinstance(value, np.ndarray):
        return value.dtype.str, value.shape, value.tobytes()
    if isinstance(value, (list, tuple)):
        return tuple(_content(item) for item in value)
    if hasattr(value, "__dict__"):
        return type(value).__name__, tuple((k, _content(v)) for k, v in sorted(vars(value).items()))
    return value


class _SharedTable:
    """Stands for a table in the object tree: packs it once per builder for all equal tables."""

    def __init__(self, table, packed):
        self.table, self.packed, self.key = table, packed, _content(table)

    def Pack(self, builder):  # noqa: N802 (the flatbuffers object API's name)
        if self.key not in self.packed:
            self.packed[self.key] = self.table.Pack(builder)
        return self.packed[self.key]


def pack_shared(model):
    """The file of ``model`` (a ``ModelT``) with each set of equal tensors, and of equal op
    options, written once and pointed to from every place that uses it.

    A flatbuffer may point to one table from many places; the object API writes a table for
    every tensor. Once names are stripped and data-less tensors share buffer 0, the tensors of
    the same shape and type that carry values between ops are equal, and so are the per-channel
    scales and zero points of a quantized weight used in several subgraphs.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    packed = {}
    originals = [(graph, graph.tensors, [op.builtinOptions for op in graph.operators or []])
                 for graph in model.subgraphs]
    try:
        for graph in model.subgraphs:
            graph.tensors = [_SharedTable(tensor, packed) for tensor in graph.tensors]
            for op in graph.operators or []:
                if op.builtinOptions is not None:
                    op.builtinOptions = _SharedTable(op.builtinOptions, packed)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder),
                       file_identifier=flatbuffer_utils._TFLITE_FILE_IDENTIFIER)
        return bytes(builder.Output())
    finally:   # the model object stays as it was
        for graph, tensors, options in originals:
            graph.tensors = tensors
            for op, option in zip(graph.operators or [], options):
                op.builtinOptions = option


def drop_unused_buffers(model):
    """Remove the buffers no tensor and no metadata entry refers to (buffer 0 stays first)."""
    used = {0} | {tensor.buffer for graph in model.subgraphs for tensor in graph.tensors}
    used |= {entry.buffer for entry in model.metadata or []}
    used |= set(model.metadataBuffer or [])
    kept = sorted(used)
    position = {old: new for new, old in enumerate(kept)}
    model.buffers = [model.buffers[index] for index in kept]
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = position[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = position[entry.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [position[index] for index in model.metadataBuffer]

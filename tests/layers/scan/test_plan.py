"""The loop plan as a table: facts -> plan, the contexts that set the facts, and the log."""

import dataclasses
import logging
import os
import re

import pytest
import tensorflow as tf

import kzoo
from kzoo.layers.scan import LoopFacts, LoopPlan, plan_loop

L = kzoo.layers

# A standard cell (an engine step with an affine projection) at batch 64 and 128 units, in a
# traced graph with fixed shapes, on 2 cores.
STANDARD = LoopFacts(engine_step=True, affine_projection=True, projects=True,
                     step_size=64 * 128, batch=64, cores=2, independent_rows=True)
# A cell without an engine step (a peephole LSTM, Jordan).
OTHER = dataclasses.replace(STANDARD, engine_step=False, affine_projection=False)
TAPED = dict(taped=True)

XLA = LoopPlan("xla", jit=True, step="engine", projection="each_step", row_groups=2)
# TensorFlow's loops run one loop over the batch (row groups only for XLA loops).
TENSORARRAY = LoopPlan("tensorarray", step="engine", projection="each_step")
BPTT_XLA = LoopPlan("bptt", jit=True, step="engine", projection="each_step", gradient="engine",
                    row_groups=2)
BPTT = dataclasses.replace(BPTT_XLA, jit=False, row_groups=1)
CELL_LOOP = LoopPlan("tensorarray", projection="each_step")
CELL_GRADIENT = LoopPlan("tensorarray", projection="all_steps", gradient="tensorflow")

TABLE = [
    # Inference in a graph with fixed shapes: XLA for a small step, TensorFlow's loop above.
    ("auto, fixed shapes, small step", STANDARD, {}, XLA),
    ("auto, large step", STANDARD, dict(step_size=32768), TENSORARRAY),
    ("auto, dynamic shapes", STANDARD, dict(static_shapes=False), TENSORARRAY),
    ("auto, eager", STANDARD, dict(eager=True), TENSORARRAY),
    ("form tensorarray", STANDARD, dict(form="tensorarray"), TENSORARRAY),
    ("form xla, dynamic shapes, large step", STANDARD,
     dict(form="xla", static_shapes=False, step_size=None), XLA),
    ("form xla, eager", STANDARD, dict(form="xla", eager=True), XLA),
    # Training: the engine's own backpropagation, compiled where XLA inference would be.
    ("auto, taped, fixed shapes", STANDARD, TAPED, BPTT_XLA),
    ("auto, taped, large step", STANDARD, dict(TAPED, step_size=32768), BPTT_XLA),
    ("auto, taped, dynamic shapes", STANDARD, dict(TAPED, static_shapes=False), BPTT),
    ("auto, taped, eager", STANDARD, dict(TAPED, eager=True), BPTT),
    ("form tensorarray, taped", STANDARD, dict(TAPED, form="tensorarray"), BPTT),
    ("form xla, taped, eager", STANDARD, dict(TAPED, form="xla", eager=True), BPTT_XLA),
    # A cell without an engine step: TensorFlow's loop, and TensorFlow's gradient of it.
    ("other cell", OTHER, {}, CELL_LOOP),
    ("other cell, form xla", OTHER, dict(form="xla"), CELL_LOOP),
    ("other cell, taped", OTHER, TAPED, CELL_GRADIENT),
    ("engine step, projection not affine, taped", STANDARD,
     dict(TAPED, affine_projection=False), dataclasses.replace(BPTT_XLA, projection="all_steps")),
    ("no projection given (attention, conv layers)", OTHER, dict(projects=False),
     LoopPlan("tensorarray")),
    # Trace targets: exports never hold XLA or cuDNN.
    ("portable", STANDARD, dict(target="portable"), TENSORARRAY),
    ("portable, form xla", STANDARD, dict(target="portable", form="xla"), TENSORARRAY),
    ("portable, taped", STANDARD, dict(TAPED, target="portable"), BPTT),
    ("tflite", STANDARD, dict(target="tflite"), LoopPlan("tflite", projection="all_steps")),
    ("tflite, taped", STANDARD, dict(TAPED, target="tflite"),
     LoopPlan("tflite", projection="all_steps", gradient="tensorflow")),
    ("tflite_int8", OTHER, dict(target="tflite_int8", form="xla"),
     LoopPlan("tflite_int8", projection="all_steps")),
    # cuDNN: a qualifying cell and call, a GPU, the default form, a Keras trace.
    ("cudnn", STANDARD, dict(cudnn=True, gpu=True), LoopPlan("cudnn")),
    ("cudnn, taped", STANDARD, dict(TAPED, cudnn=True, gpu=True),
     LoopPlan("cudnn", gradient="tensorflow")),
    ("cudnn, no GPU", STANDARD, dict(cudnn=True, gpu=False), XLA),
    ("cudnn, form tensorarray", STANDARD, dict(cudnn=True, gpu=True, form="tensorarray"),
     TENSORARRAY),
    ("cudnn, portable", STANDARD, dict(cudnn=True, gpu=True, target="portable"), TENSORARRAY),
    ("cudnn, tflite", STANDARD, dict(cudnn=True, gpu=True, target="tflite"),
     LoopPlan("tflite", projection="all_steps")),
    # Row groups: XLA loops, at least MIN_GROUP_ROWS rows a group, one group a core.
    ("31 rows", STANDARD, dict(batch=31, step_size=31 * 128),
     dataclasses.replace(XLA, row_groups=1)),
    ("48 rows, 4 cores", STANDARD, dict(TAPED, batch=48, cores=4),
     dataclasses.replace(BPTT_XLA, row_groups=3)),
    ("unknown batch, form xla", STANDARD,
     dict(TAPED, batch=None, static_shapes=False, form="xla"),
     dataclasses.replace(BPTT_XLA, row_groups=1)),
    ("rows not independent (recurrent dropout)", STANDARD,
     dict(TAPED, independent_rows=False, engine_step=False, affine_projection=False),
     CELL_GRADIENT),
    ("one core", STANDARD, dict(cores=1), dataclasses.replace(XLA, row_groups=1)),
]


@pytest.mark.parametrize("base,changes,expected", [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])
def test_plan_table(base, changes, expected):
    assert plan_loop(dataclasses.replace(base, **changes)) == expected


def test_plan_refuses_unknown_target_and_form():
    with pytest.raises(ValueError, match="trace target must be one of"):
        plan_loop(LoopFacts(target="tflite_fp16"))
    with pytest.raises(ValueError, match="scan mode must be one of"):
        plan_loop(LoopFacts(form="unrolled"))


def test_scan_mode_rejects_unknown_mode_and_restores():
    with pytest.raises(ValueError, match="scan_mode must be one of"):
        with L.scan_mode("unrolled"):
            pass
    with pytest.raises(ValueError, match=r"trace_target\('tflite'\)"):
        with L.scan_mode("tflite"):
            pass
    with L.scan_mode("xla"):
        assert L.get_scan_mode() == "xla"
    assert L.get_scan_mode() == "auto"


def test_trace_target_rejects_unknown_target_and_restores():
    with pytest.raises(ValueError, match="trace_target must be one of"):
        with L.trace_target("gpu"):
            pass
    with L.trace_target("tflite"):
        with L.trace_target("portable"):
            assert L.get_trace_target() == "portable"
        assert L.get_trace_target() == "tflite"
    assert L.get_trace_target() == "keras"


def test_the_facts_of_a_call_come_from_the_contexts():
    """What a layer call hands the plan: trace target, form, graph, shapes, tape, the cell."""
    layer = L.LSTM(4)
    x = tf.zeros((2, 5, 3))
    layer(x)
    with L.record_plans() as plans:
        layer(x)
        with L.trace_target("portable"), L.scan_mode("xla"):
            tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec((None, None, 3))])(x)
        with tf.GradientTape():
            L.LSTM(4, peephole=True)(x)
    eager, traced, taped = (facts for facts, _ in plans)
    assert (eager.target, eager.form, eager.eager, eager.static_shapes, eager.taped) == \
        ("keras", "auto", True, True, False)
    assert (eager.engine_step, eager.affine_projection, eager.projects, eager.step_size,
            eager.batch, eager.independent_rows, eager.cudnn) == \
        (True, True, True, 8, 2, True, True)
    assert (traced.target, traced.form, traced.eager, traced.static_shapes, traced.batch) == \
        ("portable", "xla", False, False, None)
    assert (taped.taped, taped.engine_step, taped.cudnn) == (True, False, False)


def test_kzoo_log_plan_logs_each_plan(monkeypatch, caplog):
    monkeypatch.setenv("KZOO_LOG_PLAN", "1")
    with caplog.at_level(logging.INFO, logger="kzoo.layers.scan"):
        L.GRU(3)(tf.zeros((2, 4, 3)))
    assert any(re.match(r"scan plan: loop=tensorarray, jit=False, step=engine, .* \(from "
                        r"target=keras, form=auto, eager=True", r.getMessage())
               for r in caplog.records)
    monkeypatch.setenv("KZOO_LOG_PLAN", "0")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kzoo.layers.scan"):
        L.GRU(3)(tf.zeros((2, 4, 3)))
    assert not caplog.records


# -- docs/scan_engine.md's table is this plan ------------------------------------------------------
DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "scan_engine.md")
FACT_FIELDS = {f.name: f.type for f in dataclasses.fields(LoopFacts)}
PLAN_FIELDS = {f.name for f in dataclasses.fields(LoopPlan)}


def docs_table():
    """The rows of the table between the page's ``<!-- plan table -->`` markers, as dicts."""
    text = open(DOCS, encoding="utf-8").read()
    table = text.split("<!-- plan table -->")[1]
    lines = [line.strip() for line in table.strip().splitlines() if line.strip().startswith("|")]
    header = [cell.strip(" `→") for cell in lines[0].strip("|").split("|")]
    return header, [dict(zip(header, (c.strip(" `") for c in line.strip("|").split("|"))))
                    for line in lines[2:]]


def value(text):
    return {"yes": True, "no": False, "-": None}.get(text, int(text) if text.isdigit() else text)


def test_docs_table_is_the_plan():
    header, rows = docs_table()
    assert set(header) <= set(FACT_FIELDS) | PLAN_FIELDS, header
    assert PLAN_FIELDS <= set(header)
    assert len(rows) >= 20
    for row in rows:
        facts = {k: value(v) for k, v in row.items() if k in FACT_FIELDS}
        # Facts the table leaves out are those of a standard cell (the page says so).
        facts.setdefault("affine_projection", facts.get("engine_step", True))
        expected = LoopPlan(**{k: value(v) for k, v in row.items() if k in PLAN_FIELDS})
        assert plan_loop(dataclasses.replace(STANDARD, **facts)) == expected, row

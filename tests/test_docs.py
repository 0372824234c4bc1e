"""The documentation runs: every ```bash and ```python block of README.md and docs/*.md, and every
relative link (file and #anchor) of the project's markdown files resolves.

How a page's blocks run:

- python: the blocks of one page run in order in one namespace (a block may use what an earlier
  block of the same page defined), in this process, in a fresh temporary directory.
- bash: the blocks of one page run in order, each as ``bash -e BLOCK``, in one fresh temporary
  directory (files an earlier block wrote, such as ``runs/translator``, are there for the next).
  Commands are written as run from the repository root, so the directory holds a link to the
  repository's ``benchmarks/``; ``kzoo`` is on PATH.
- Datasets are prepared once per test process into a temporary TFDS data dir (TFDS_DATA_DIR), not
  into the user's ``~/tensorflow_datasets``.

A block is marked by an HTML comment on the line right before its opening fence:

- ``<!-- docs-test: skip (reason) -->``: never runs; the reason is required.
- ``<!-- docs-test: slow -->``: runs only in the slow step (``-m slow``), which runs the page's
  other blocks too; the default step runs the page without it, so no block may need a slow one.

``text`` blocks show output or file layouts and never run. SUBSTITUTIONS shrink sizes for CI;
EXPECTED_FAILURES names the blocks a known defect breaks today (strict: a block that passes
fails the test until its entry is removed).
"""

import os
import pathlib
import re
import subprocess
import sys
import traceback

import pytest

from .conftest import free_port, kzoo_command

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK_PAGES = [*RUN_PAGES, ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"]
LANGUAGES = ("bash", "python", "text")


# (pattern, replacement, why): applied to every block before it runs. Each must match a block.
SUBSTITUTIONS = [
    (r"^pip install -e \. && ", "", "the test environment is installed already"),
    (r"--epochs \d+", "--epochs 1 --steps-per-epoch 2", "one short epoch shows a command works"),
    (r"epochs=\d+", "epochs=1", "one epoch shows the code works"),
    (r"max_number=1000\b", "max_number=100", "a dataset of 100 numbers prepares in seconds"),
    (r"localhost:12345", f"localhost:{free_port()}", "ports nothing else on the machine uses"),
    (r"localhost:12346", f"localhost:{free_port()}", "ports nothing else on the machine uses"),
    (r"python benchmarks/rnn_speed\.py",
     "python benchmarks/rnn_speed.py --shape 2,6,3,4 --cells gru --models single --repeats 1 "
     "--no-torch", "a tiny shape"),
    (r"python benchmarks/decode_speed\.py",
     "python benchmarks/decode_speed.py --models seq2seq_lstm --methods greedy --batch 1 "
     "--max-length 3 --repeats 1 --max-number 100", "one tiny decode"),
    (r"python benchmarks/tflite_speed\.py",
     "python benchmarks/tflite_speed.py --steps 10 --scaling 10 --features 3 --units 4 "
     "--repeats 2 --quantize float", "a tiny model, float only"),
    (r"python benchmarks/memory\.py",
     "python benchmarks/memory.py --shape 2,20,3,4 --cells gru --modes infer --runs 1",
     "a tiny shape"),
    (r"python benchmarks/learning\.py", "python benchmarks/learning.py --only weather_toy",
     "the cheapest task"),
]

# (page, a string only that block contains) -> the defect that makes it fail today.
EXPECTED_FAILURES = {}

MARKER = re.compile(r"<!--\s*docs-test:(.*?)-->", re.S)
FENCE = re.compile(r"^```(\S*)\s*$")


class Block:
    def __init__(self, page, line, language, text, marker):
        self.page, self.line, self.language, self.text, self.marker = \
            page, line, language, text, marker

    @property
    def where(self):
        return f"{self.page}:{self.line}"

    @property
    def skip_reason(self):
        match = re.fullmatch(r"\s*skip\s*\((.*)\)\s*", self.marker or "", re.S)
        return match.group(1).strip() if match else None

    @property
    def slow(self):
        return (self.marker or "").strip() == "slow"

    def runnable_text(self):
        text = self.text
        for pattern, replacement, _ in SUBSTITUTIONS:
            text = re.sub(pattern, replacement, text, flags=re.M)
        return text

    def expected_failure(self):
        return next((reason for (page, key), reason in EXPECTED_FAILURES.items()
                     if page == self.page and key in self.text), None)


def relative(path):
    return path.relative_to(ROOT).as_posix()


def blocks_of(path):
    """Every fenced block of ``path`` with its language and the marker right before it."""
    return blocks_in(path.read_text(), relative(path))


def blocks_in(text, page):
    """Every fenced block of ``text`` (markdown, or a docstring), its place named ``page``."""
    lines = text.splitlines()
    blocks, k = [], 0
    while k < len(lines):
        match = FENCE.match(lines[k].strip()) if lines[k].lstrip().startswith("```") else None
        if not match:
            k += 1
            continue
        indent = len(lines[k]) - len(lines[k].lstrip())
        start, body = k, []
        k += 1
        while k < len(lines) and lines[k].strip() != "```":
            body.append(lines[k][indent:] if lines[k][:indent].strip() == "" else lines[k])
            k += 1
        previous = lines[start - 1].strip() if start > 0 else ""
        marker = MARKER.fullmatch(previous)
        blocks.append(Block(page, start + 1, match.group(1), "\n".join(body) + "\n",
                            marker.group(1) if marker else None))
        k += 1
    return blocks


def page_blocks(language):
    return {relative(p): [b for b in blocks_of(p) if b.language == language] for p in RUN_PAGES}


def to_run(page, language, slow):
    return [b for b in page_blocks(language)[page] if not b.skip_reason and (slow or not b.slow)]


# -- the rules every page keeps -------------------------------------------------------------------
def test_every_block_has_a_language_and_every_marker_a_block_and_a_reason():
    problems = []
    for path in RUN_PAGES:
        blocks = blocks_of(path)
        for block in blocks:
            if block.language not in LANGUAGES:
                problems.append(f"{block.where}: fence language {block.language!r} is not one "
                                f"of {LANGUAGES} (output goes in ```text)")
            if block.marker is not None and not (block.slow or block.skip_reason):
                problems.append(f"{block.where}: marker {block.marker!r} is neither 'slow' nor "
                                f"'skip (reason)' with a reason")
            if block.language == "text" and block.marker is not None:
                problems.append(f"{block.where}: a text block never runs; drop its marker")
        attached = {b.line - 1 for b in blocks if b.marker is not None}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "docs-test:" in line and number not in attached:
                problems.append(f"{relative(path)}:{number}: a docs-test marker must be the line "
                                f"right before a block's opening fence")
    assert not problems, "\n".join(problems)


def test_substitutions_and_expected_failures_each_match_a_block():
    runnable = [b for p in RUN_PAGES for b in blocks_of(p)
                if b.language in ("bash", "python") and not b.skip_reason]
    unused = [pattern for pattern, _, why in SUBSTITUTIONS
              if not why or not any(re.search(pattern, b.text, re.M) for b in runnable)]
    assert not unused, f"substitutions that no block needs (remove them): {unused}"
    for (page, key), reason in EXPECTED_FAILURES.items():
        matches = [b.where for b in runnable if b.page == page and key in b.text]
        assert len(matches) == 1, f"EXPECTED_FAILURES {key!r} on {page} matches {matches}"
        assert reason


def test_examples_address_only_this_host():
    address = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
    found = [(b.where, a) for p in RUN_PAGES for b in blocks_of(p)
             for a in address.findall(b.text) if a != "127.0.0.1"]
    assert not found, f"examples must use 127.0.0.1 or localhost: {found}"


# -- links ----------------------------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(path):
    """The text of ``path`` outside fenced blocks and inline code."""
    text = re.sub(r"^\s*```.*?^\s*```", "", path.read_text(), flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path):
    """GitHub's heading anchors of ``path``: lower case, punctuation dropped, spaces -> '-',
    repeats numbered."""
    seen, result = {}, set()
    for line in re.sub(r"^\s*```.*?^\s*```", "", path.read_text(), flags=re.M | re.S).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


@pytest.mark.parametrize("page", [relative(p) for p in LINK_PAGES])
def test_relative_links_resolve(page):
    path = ROOT / page
    assert path.is_file(), f"{page} is missing"
    broken = []
    for target in LINK.findall(prose(path)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {relative(destination)}")
    assert not broken, f"{page}: " + "; ".join(broken)


# -- running the blocks ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tfds_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


def report(outcomes):
    """Fail for any block that failed unexpectedly or passed despite an expected failure; xfail
    (strict) when the only failures are the expected ones."""
    unexpected = [f"{b.where} failed:\n{error}" for b, error in outcomes
                  if error is not None and not b.expected_failure()]
    fixed = [f"{b.where} passes now: remove its EXPECTED_FAILURES entry "
             f"({b.expected_failure()})" for b, error in outcomes
             if error is None and b.expected_failure()]
    assert not unexpected + fixed, "\n\n".join(unexpected + fixed)
    expected = [f"{b.where}: {b.expected_failure()}" for b, error in outcomes if error is not None]
    if expected:
        pytest.xfail("every other block passed; expected failures: " + "; ".join(expected))


def run_python(page, slow, tmp_path, monkeypatch, data_dir):
    run_python_blocks(to_run(page, "python", slow), tmp_path, monkeypatch, data_dir)


def run_python_blocks(blocks, tmp_path, monkeypatch, data_dir):
    """Run ``blocks`` in order in one namespace, in ``tmp_path``, with TFDS reading and writing
    ``data_dir``; then :func:`report`."""
    import tensorflow_datasets.core.constants as tfds_constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    monkeypatch.setattr(tfds_constants, "DATA_DIR", str(data_dir))
    namespace = {"__name__": "__main__"}
    outcomes = []
    for block in blocks:
        try:
            exec(compile(block.runnable_text(), block.where, "exec"), namespace)
            outcomes.append((block, None))
        except Exception:
            outcomes.append((block, traceback.format_exc(limit=-6)))
    report(outcomes)


def run_bash(page, slow, tmp_path, data_dir):
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PATH"] = os.pathsep.join([os.path.dirname(kzoo_command()),
                                   os.path.dirname(sys.executable), env.get("PATH", "")])
    env["TFDS_DATA_DIR"] = str(data_dir)
    outcomes = []
    for number, block in enumerate(to_run(page, "bash", slow)):
        script = tmp_path / f".block{number}.sh"
        script.write_text(block.runnable_text())
        done = subprocess.run(["bash", "-e", str(script)], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1200)
        error = None if done.returncode == 0 else \
            f"exit {done.returncode}\n$ {block.runnable_text()}{done.stdout[-4000:]}"
        outcomes.append((block, error))
    report(outcomes)


def _pages(language, slow):
    blocks = page_blocks(language)
    if slow:
        return [p for p, bs in blocks.items() if any(b.slow and not b.skip_reason for b in bs)]
    return [p for p, bs in blocks.items() if any(not b.slow and not b.skip_reason for b in bs)]


@pytest.mark.parametrize("page", _pages("python", slow=False))
def test_python_blocks(page, tmp_path, monkeypatch, tfds_data_dir):
    run_python(page, False, tmp_path, monkeypatch, tfds_data_dir)


@pytest.mark.slow
@pytest.mark.parametrize("page", _pages("python", slow=True))
def test_python_blocks_with_the_slow_ones(page, tmp_path, monkeypatch, tfds_data_dir):
    run_python(page, True, tmp_path, monkeypatch, tfds_data_dir)


@pytest.mark.parametrize("page", _pages("bash", slow=False))
def test_bash_blocks(page, tmp_path, tfds_data_dir):
    run_bash(page, False, tmp_path, tfds_data_dir)


@pytest.mark.slow
@pytest.mark.parametrize("page", _pages("bash", slow=True))
def test_bash_blocks_with_the_slow_ones(page, tmp_path, tfds_data_dir):
    run_bash(page, True, tmp_path, tfds_data_dir)


# Every public name of TF Addons 0.23's ``tensorflow_addons/seq2seq/__init__.py``.
TFA_SEQ2SEQ_NAMES = (
    "AttentionMechanism", "AttentionWrapper", "AttentionWrapperState", "BahdanauAttention",
    "BahdanauMonotonicAttention", "LuongAttention", "LuongMonotonicAttention", "hardmax",
    "monotonic_attention", "safe_cumprod", "BasicDecoder", "BasicDecoderOutput",
    "BeamSearchDecoder", "BeamSearchDecoderOutput", "BeamSearchDecoderState",
    "FinalBeamSearchDecoderOutput", "gather_tree", "gather_tree_from_array", "tile_batch",
    "BaseDecoder", "Decoder", "dynamic_decode", "SequenceLoss", "sequence_loss",
    "CustomSampler", "GreedyEmbeddingSampler", "InferenceSampler", "SampleEmbeddingSampler",
    "Sampler", "ScheduledEmbeddingTrainingSampler", "ScheduledOutputTrainingSampler",
    "TrainingSampler")


def test_the_migration_table_names_every_public_tfa_seq2seq_name():
    rows = [line.split("|")[1] for line in
            (ROOT / "docs" / "tfa_seq2seq_migration.md").read_text().splitlines()
            if line.startswith("| `")]
    first_cells = " ".join(rows)
    missing = [name for name in TFA_SEQ2SEQ_NAMES
               if re.search(rf"`{name}[`(.]", first_cells) is None]
    assert not missing, f"tfa.seq2seq names without a row: {missing}"

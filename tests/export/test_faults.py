"""Export faults: a writer killed with SIGKILL (no cleanup runs) mid-write or mid-commit leaves
every earlier version intact and no partial version directory, and the next export clears what
it left; a failing write (disk full, a mocked OSError) raises a clear error and leaves no partial
file.

The killed writers are separate processes that export the same small model and block at the
chosen point (after writing half of ``saved_model.pb``, say) until the test kills them.
"""

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import kzoo
import kzoo.export
from kzoo.export import serving, tflite_export

WRITER = textwrap.dedent("""
    import os, sys, time
    import keras
    import kzoo, kzoo.export
    from kzoo.export import tflite_export
    from tensorflow.python.lib.io import file_io

    mode, target, marker, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    def block():
        open(marker, "w").close()
        time.sleep(600)   # until SIGKILL

    if mode == "saved_model_mid_write":
        real_write = file_io.atomic_write_string_to_file

        def half_then_block(path, contents, overwrite=True):
            if str(path).endswith("saved_model.pb"):
                with open(path, "wb") as handle:   # the variables are already written
                    handle.write(contents[: len(contents) // 2])
                block()
            return real_write(path, contents, overwrite)

        file_io.atomic_write_string_to_file = half_then_block
    elif mode == "saved_model_mid_commit":
        real_rename = os.rename

        def rename(source, target):
            # The old version is aside; the new one is about to move in.
            if os.path.basename(target) == "1" and ".tmp-" in os.path.basename(source):
                block()
            return real_rename(source, target)

        os.rename = rename
    elif mode == "tflite_mid_write":
        class HalfWriter:
            def __init__(self, path, mode):
                self.handle = open(path, mode)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

            def write(self, content):
                self.handle.write(content[: len(content) // 2])
                self.handle.flush()
                block()

        tflite_export.open = HalfWriter

    keras.utils.set_random_seed(seed)
    model = kzoo.build("one_to_one_mlp", input_dim=6, units=8, num_classes=3)
    if mode.startswith("saved_model"):
        kzoo.export.saved_model(model, target, version=1 if "commit" in mode else None,
                                overwrite="commit" in mode)
    else:
        kzoo.export.tflite(model, target)
    print("the writer was not killed")
""")


def small_model(seed):
    keras.utils.set_random_seed(seed)
    return kzoo.build("one_to_one_mlp", input_dim=6, units=8, num_classes=3)


def snapshot(path):
    """``{relative path: bytes}`` of every file under ``path`` (or of the file ``path``)."""
    if os.path.isfile(path):
        return {"": open(path, "rb").read()}
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            files[os.path.relpath(full, path)] = open(full, "rb").read()
    return files


def start_writer(mode, target, marker, seed):
    return subprocess.Popen([sys.executable, "-c", WRITER, mode, str(target), str(marker),
                             str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def kill_when_blocked(writers, timeout=400):
    """SIGKILL each writer as soon as it has reached its blocking point."""
    deadline = time.monotonic() + timeout
    pending = dict(writers)
    while pending and time.monotonic() < deadline:
        for mode, (process, marker) in list(pending.items()):
            if os.path.exists(marker):
                process.send_signal(signal.SIGKILL)
                process.wait()
                del pending[mode]
            elif process.poll() is not None:
                out, err = process.communicate()
                pytest.fail(f"writer {mode} exited before its kill point: {out[-500:]!r} "
                            f"{err[-2000:]!r}")
        time.sleep(0.05)
    for process, _ in pending.values():
        process.kill()
        process.wait()
    assert not pending, f"writers never reached their kill point: {sorted(pending)}"


def serve(version_dir, x):
    return tf.saved_model.load(str(version_dir)).signatures["serving_default"](
        inputs=tf.constant(x))["outputs"].numpy()


def run_tflite(path, x):
    with open(path, "rb") as handle:
        runner = Interpreter(model_content=handle.read()).get_signature_runner()
    return runner(inputs=x)["outputs"]


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Version 1 / a first .tflite written, then each writer killed at its point; returns
    ``{mode: (target, snapshot before, writer pid)}`` and the first model."""
    root = tmp_path_factory.mktemp("faults")
    model = small_model(0)
    targets = {"saved_model_mid_write": root / "mid_write" / "mlp",
               "saved_model_mid_commit": root / "mid_commit" / "mlp",
               "tflite_mid_write": root / "lite" / "mlp.tflite"}
    before = {}
    for mode, target in targets.items():
        if mode.startswith("saved_model"):
            kzoo.export.saved_model(model, target)
        else:
            kzoo.export.tflite(model, target)
        before[mode] = snapshot(target)
    writers = {mode: (start_writer(mode, target, root / f"{mode}.blocked", seed=1),
                      root / f"{mode}.blocked")
               for mode, target in targets.items()}
    kill_when_blocked(writers)
    return model, {mode: (targets[mode], before[mode], writers[mode][0].pid)
                   for mode in targets}


def hidden(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


def test_sigkill_mid_write_leaves_earlier_versions_and_no_partial_version(killed):
    model, runs = killed
    base, before, pid = runs["saved_model_mid_write"]
    # The half-written version is under its recognizable temporary name only.
    assert sorted(n for n in os.listdir(base) if not n.startswith(".")) == \
        ["1", "models.config", "sample_request.json"]
    leftovers = hidden(base)
    assert len(leftovers) == 1 and leftovers[0].startswith(f".2.tmp-{pid}-")
    partial = os.path.join(base, leftovers[0], "saved_model.pb")
    assert 0 < os.path.getsize(partial) < len(before["1/saved_model.pb"])
    assert snapshot(base) == {**before, **snapshot_prefixed(base, leftovers[0])}
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    np.testing.assert_allclose(serve(base / "1", x), model(x), atol=1e-6)

    # The next export takes version 2 and clears the dead writer's leftover.
    assert kzoo.export.saved_model(model, base) == str(base / "2")
    assert hidden(base) == []
    np.testing.assert_allclose(serve(base / "2", x), model(x), atol=1e-6)
    assert {k: v for k, v in snapshot(base).items() if k.startswith("1/")} == \
        {k: v for k, v in before.items() if k.startswith("1/")}


def snapshot_prefixed(base, name):
    return {os.path.join(name, k): v for k, v in snapshot(os.path.join(base, name)).items()}


def test_sigkill_mid_replace_is_undone_by_the_next_export(killed):
    model, runs = killed
    base, before, pid = runs["saved_model_mid_commit"]
    # Killed between moving version 1 aside and moving its replacement in: the old version is
    # whole, under a recognizable name.
    assert "1" not in os.listdir(base)
    aside = [n for n in hidden(base) if n.startswith(f".1.old-{pid}-")]
    assert len(aside) == 1
    assert snapshot(os.path.join(base, aside[0])) == \
        {k[2:]: v for k, v in before.items() if k.startswith("1/")}

    # Any later export into the directory moves it back before choosing a version.
    assert kzoo.export.saved_model(model, base) == str(base / "2")
    assert hidden(base) == []
    after = snapshot(base)
    assert {k: v for k, v in after.items() if k.startswith("1/")} == \
        {k: v for k, v in before.items() if k.startswith("1/")}


def test_sigkill_mid_tflite_write_keeps_the_previous_file(killed):
    model, runs = killed
    path, before, pid = runs["tflite_mid_write"]
    assert snapshot(path) == before
    directory = os.path.dirname(path)
    leftovers = hidden(directory)
    assert len(leftovers) == 1 and leftovers[0].startswith(f".mlp.tflite.tmp-{pid}-")
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    np.testing.assert_allclose(run_tflite(path, x), model(x), atol=1e-5)

    kzoo.export.tflite(model, path)
    assert hidden(directory) == []
    assert snapshot(path) == before   # same model, same bytes


def test_leftovers_of_running_writers_are_left_alone(tmp_path):
    model = small_model(0)
    base = tmp_path / "mlp"
    kzoo.export.saved_model(model, base)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead = int(finished.stdout)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        for name in (f".7.tmp-{dead}-abc", f".7.tmp-{alive.pid}-def",
                     f".models.config.old-{dead}-ghi", f".notes.txt.tmp-{dead}-jkl"):
            os.makedirs(base / name)
        with open(base / "notes.txt", "w") as handle:
            handle.write("not ours")
        kzoo.export.saved_model(model, base)
        # The dead writer's version staging and config aside go (the config exists, so the
        # aside is stale); the running writer's staging and files that are not ours stay.
        assert hidden(base) == sorted([f".7.tmp-{alive.pid}-def", f".notes.txt.tmp-{dead}-jkl"])
    finally:
        alive.kill()
        alive.wait()


class DiskFullWriter:
    """``open`` stand-in whose files take half of what is written, then fail with ENOSPC."""

    def __init__(self, path, mode="r", *args, **kwargs):
        self.path = path
        self.handle = open(path, mode, *args, **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, content):
        self.handle.write(content[: len(content) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)


def test_disk_full_while_writing_tflite_is_clear_and_leaves_no_partial_file(tmp_path,
                                                                            monkeypatch):
    model = small_model(0)
    fresh, existing = tmp_path / "new.tflite", tmp_path / "old.tflite"
    kzoo.export.tflite(model, existing)
    before = snapshot(existing)
    monkeypatch.setattr(tflite_export, "open", DiskFullWriter, raising=False)
    for path in (fresh, existing):
        with pytest.raises(OSError) as caught:
            kzoo.export.tflite(small_model(1), path)
        assert caught.value.errno == errno.ENOSPC
        assert str(caught.value) == (f"[Errno 28] kzoo.export.tflite: writing {str(path)!r} "
                                     f"failed: No space left on device")
    assert sorted(os.listdir(tmp_path)) == ["old.tflite"]
    assert snapshot(existing) == before


def test_disk_full_while_writing_saved_model_is_clear_and_leaves_no_partial_version(
        tmp_path, monkeypatch):
    model = small_model(0)
    base = tmp_path / "mlp"
    kzoo.export.saved_model(model, base)
    before = snapshot(base)
    # serving writes models.config after the staged SavedModel is complete.
    monkeypatch.setattr(serving, "open", DiskFullWriter, raising=False)
    with pytest.raises(OSError, match=r"kzoo.export.saved_model: writing '.*/mlp/2' failed: "
                                      r"No space left on device") as caught:
        kzoo.export.saved_model(small_model(1), base)
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="No space left on device"):
        kzoo.export.saved_model(small_model(1), tmp_path / "new" / "mlp")
    monkeypatch.undo()
    assert snapshot(base) == before
    assert sorted(os.listdir(tmp_path)) == ["mlp"]   # the new base directory is removed too


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_exported_files_follow_the_umask(tmp_path, umask):
    """models.config, sample_request.json and .tflite files get the mode the umask gives any
    new file, as the SavedModel's own files do (a staged temporary file is no 0600 file)."""
    model = kzoo.build("one_to_one_mlp", input_dim=3, units=4, num_layers=1, num_classes=2)
    previous = os.umask(umask)
    try:
        version = kzoo.export.saved_model(model, tmp_path / "served")
        lite = kzoo.export.tflite(model, tmp_path / "model.tflite")
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    for path in (tmp_path / "served" / "models.config", tmp_path / "served" / "sample_request.json",
                 lite, os.path.join(version, "saved_model.pb")):
        assert oct(os.stat(path).st_mode & 0o777) == oct(expected), path

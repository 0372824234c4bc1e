"""Writing export artifacts so that a failure at any point leaves nothing half-written.

Everything is first written under a temporary name in the destination's own directory (so the
final ``os.rename``/``os.replace`` is atomic on one filesystem), then moved into place together;
if any step fails, what was moved is moved back and the temporary names are removed.

A process killed outright (SIGKILL, power loss) runs no cleanup, so the temporary names carry the
writer's process id: ``.<name>.tmp-<pid>-<random>`` (staged) and ``.<name>.old-<pid>-<random>``
(the previous ``name``, moved aside while it is replaced). They are hidden and never a version
number, so TF Serving and ``next_version`` ignore them, and the next export into the same
directory removes them (or moves a lost ``name`` back) once their process no longer runs.
"""

import contextlib
import os
import re
import secrets
import shutil
import tempfile

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[^.]+$")


def describe_os_error(error):
    return error.strerror or str(error)


def make_dirs(path, where):
    """Create ``path`` and missing parents; returns the topmost directory created (to remove on
    failure) or None. An unwritable location raises an OSError that names it."""
    missing = []
    current = path
    while not os.path.exists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if os.path.exists(current) and not os.path.isdir(current):
        raise NotADirectoryError(f"{where}: cannot write into {path!r}: {current!r} is a file, "
                                 f"not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise type(error)(f"{where}: cannot create the directory {path!r} "
                          f"({describe_os_error(error)})") from error
    return missing[-1] if missing else None


def check_writable(directory, where):
    """Raise a clear OSError unless a file can be created in ``directory``."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".kzoo-write-test-", dir=directory)
    except OSError as error:
        raise type(error)(f"{where}: cannot write into {directory!r} "
                          f"({describe_os_error(error)})") from error
    os.close(handle)
    os.remove(probe)


def remove(path):
    if path is None or not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def staged_file(directory, name):
    """A fresh empty file next to ``directory/name``; returns its path.

    Its mode follows the umask, as any file the user's process creates (``tempfile.mkstemp``
    would make it 0600, and the rename would keep that for the final file).
    """
    for _ in range(100):
        path = os.path.join(directory, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(6)}")
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(handle)
        return path
    raise FileExistsError(f"no free temporary name for {name!r} in {directory!r}")


def _running(pid):
    if pid == os.getpid() or os.name != "posix":
        return True   # (on Windows os.kill would terminate the process, not probe it)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True   # another user's live process
    return True


def recover_leftovers(directory, is_ours):
    """Undo what a killed writer left in ``directory``: its staged ``.<name>.tmp-<pid>-*`` are
    removed, and a ``.<name>.old-<pid>-*`` is moved back to ``name`` if ``name`` is missing (the
    writer died between moving the old one aside and moving the new one in), else removed.

    Only names with ``is_ours(name)`` true, and only of processes that no longer run, so an
    export running concurrently in the same directory is left alone.
    """
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return
    for entry in entries:
        match = _LEFTOVER.match(entry)
        if not match or not is_ours(match["name"]) or _running(int(match["pid"])):
            continue
        path = os.path.join(directory, entry)
        final = os.path.join(directory, match["name"])
        if match["kind"] == "old" and not os.path.lexists(final):
            with contextlib.suppress(OSError):
                os.rename(path, final)
        else:
            remove(path)


def clear_os_error(error, where, path):
    """``error`` (an OSError) with a message that names the export function and the
    destination, e.g. "kzoo.export.tflite: writing '/x/m.tflite' failed: No space left on
    device"; errors already phrased by this module are returned as they are."""
    if str(error).startswith(where) or (error.args and str(error.args[-1]).startswith(where)):
        return error
    message = f"{where}: writing {path!r} failed: {describe_os_error(error)}"
    return type(error)(message) if error.errno is None else type(error)(error.errno, message)


class Commit:
    """Moves staged paths onto their final names all at once, or not at all.

    ``add(staged, final)`` records a move; ``commit()`` moves an existing ``final`` aside, moves
    ``staged`` onto it, and after all moves succeed deletes what was moved aside; on a failure it
    restores every final path as it was. ``discard()`` removes whatever is still staged.
    """

    def __init__(self):
        self.moves = []

    def add(self, staged, final):
        self.moves.append((staged, final))

    def commit(self):
        done = []
        try:
            for staged, final in self.moves:
                aside = None
                if os.path.lexists(final):
                    aside = tempfile.mktemp(prefix=f".{os.path.basename(final)}.old-{os.getpid()}-",
                                            dir=os.path.dirname(final))
                    os.rename(final, aside)
                done.append((final, aside))
                os.rename(staged, final)
                done[-1] = (final, aside, True)
        except BaseException:
            for entry in reversed(done):
                final, aside = entry[0], entry[1]
                # Best effort, every entry: one failed restore must not stop the others.
                with contextlib.suppress(OSError):
                    if len(entry) == 3:
                        remove(final)
                    if aside is not None:
                        os.rename(aside, final)
            raise
        for entry in done:
            remove(entry[1])
        self.moves = []

    def discard(self):
        for staged, _ in self.moves:
            remove(staged)
        self.moves = []

"""Writing export artifacts so that a failure at any point leaves nothing half-written.

Everything is first written under a temporary name in the destination's own directory (so the
final ``os.rename``/``os.replace`` is atomic on one filesystem), then moved into place together;
if any step fails, what was moved is moved back and the temporary names are removed.
"""

import contextlib
import os
import shutil
import tempfile


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
    """A fresh temporary file path next to ``directory/name``."""
    handle, path = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=directory)
    os.close(handle)
    return path


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
                    aside = tempfile.mktemp(prefix=f".{os.path.basename(final)}.old-",
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

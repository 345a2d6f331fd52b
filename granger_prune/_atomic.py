"""Atomic file writes: a reader sees the old file or the new one, never a part.

The rule of a write-ahead log: write a temporary file beside the target, flush it
to the disk (``fsync``), rename it over the target (atomic on POSIX), then flush
the folder so that the rename itself survives a power cut.  A crash at any
moment leaves the previous version or the new one, and at most a stray
``*.tmp`` file, which is never read.
"""

import contextlib
import errno
import os
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"


def fsync_folder(folder):
    """Flush a folder's entries (a rename, a new file) to the disk, where the OS allows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError as error:  # some file systems cannot flush a folder; a full disk is an error
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES, errno.EPERM):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path, mode="w", durable=True):
    """Open a temporary file for writing; on a clean exit it replaces ``path`` atomically.

    On an error (a full disk, an interrupt) the temporary file is removed, the
    error propagates and ``path`` keeps its previous content.  With
    ``durable=False`` nothing is flushed to the disk: the rename is still atomic
    for every process (a crash of the writer leaves the old file or the new one),
    but a power cut may lose the write; for files rewritten often, where an
    ``fsync`` would also flush every other dirty page of the file system.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    temporary = path.with_name(path.name + TEMPORARY_SUFFIX)
    try:
        with open(temporary, mode) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    if durable:
        fsync_folder(path.parent)


def atomic_write_text(path, text, durable=True):
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w", durable) as f:
        f.write(text)


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data)

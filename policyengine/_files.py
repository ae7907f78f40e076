"""Files read safely: a regular file only, opened without blocking, at most
so many bytes; anything else refused at once with the reason."""

from __future__ import annotations

import os
import stat

__all__ = ["Unreadable", "read_regular"]

_FILE_KINDS = (
    (stat.S_ISDIR, "it is a directory"),
    (stat.S_ISFIFO, "it is a named pipe (FIFO), not a regular file"),
    (stat.S_ISCHR, "it is a character device, not a regular file"),
    (stat.S_ISBLK, "it is a block device, not a regular file"),
    (stat.S_ISSOCK, "it is a socket, not a regular file"),
)
# Opening never blocks (a FIFO swapped in after the check) nor takes a terminal.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)


class Unreadable(Exception):
    """A file that is not read: ``str()`` says why (``cannot read: ...``)."""


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    for test, why in _FILE_KINDS:
        if test(mode):
            return f"cannot read: {why}"
    return "cannot read: not a regular file"


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file at ``path``, which may hold at most
    ``limit`` bytes. The file type is checked before opening and again on the
    open file, so a directory, a FIFO or a device (``/dev/zero``) is refused at
    once, and the open cannot block.

    Raises:
        Unreadable: The path is invalid or missing, names no regular file, or
            the file is larger than ``limit``; its text says which.
    """
    try:
        found = _not_regular(os.stat(path).st_mode)
        if found is not None:
            raise Unreadable(found)
        fd = os.open(path, _OPEN_FLAGS)
    except ValueError:  # an embedded NUL
        raise Unreadable("cannot read: not a valid path (it holds a NUL character)") from None
    except OSError as e:
        raise Unreadable(f"cannot read: {e.strerror or e}") from None
    try:
        found = _not_regular(os.fstat(fd).st_mode)
        if found is not None:
            raise Unreadable(found)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise Unreadable(f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise Unreadable(f"cannot read: larger than {limit:,} bytes")
    return b"".join(chunks)

"""The one atomic file writer, and small helpers every writer shares.

Everything reroute writes (images, IUV maps, checkpoints, CSV/JSON/HTML
reports, MP4 videos, cached training sets) goes through :func:`atomic_path`:
the data is written to a temporary file beside the target, flushed to disk,
and moved into place with ``os.replace``, so a reader never sees a partial
file and a failed write leaves the old file (or nothing) behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from reroute.errors import InputError

__all__ = [
    "atomic_path",
    "write_atomic",
    "write_bytes_atomic",
    "write_text_atomic",
    "describe_os_error",
    "megabytes",
    "read_input_file",
]


def describe_os_error(exc: BaseException) -> str:
    """First line of an exception's message (at most 200 characters, no final
    full stop), for use inside parentheses in a one-line error."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200].rstrip(".")


def megabytes(n: int) -> str:
    """``n`` bytes as a human-readable size, e.g. ``"51.2 MB"`` (MiB, one decimal)."""
    return f"{n / 2**20:.1f} MB"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success move it to ``path``.

    The parent folder is created. The temporary file (``.NAME.<random>.tmp``,
    created with ``O_EXCL`` and mode 0o666 less the umask) is removed if the
    body raises. Use it for writers that want a file name (torch.save, PyAV);
    :func:`write_atomic` wraps it for writers that take an open binary handle.

    Raises:
        InputError: the folder or file cannot be created or replaced (one
            sentence naming ``path``).
    """
    target = Path(path)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        # O_EXCL: never clobber someone else's file; mode 0o666 honours the umask.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise InputError(f"cannot write {path} ({describe_os_error(exc)})") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Run ``write`` on an open binary temporary file, then move it to ``path``.

    Raises:
        InputError: as :func:`atomic_path`.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    write_atomic(path, lambda f: f.write(data))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def read_input_file(path: str | os.PathLike[str], what: str, max_bytes: int) -> bytes:
    """Read a user-given file whole, refusing what cannot be one.

    Args:
        path: the file.
        what: how to call it in messages, ``"image"`` or ``"IUV file"`` (a noun
            starting with a vowel sound: messages say "not an {what} file").
        max_bytes: larger files are refused before reading.
    Returns:
        the file's bytes (possibly empty: the caller says what an empty file means).
    Raises:
        InputError: ``"{what} not found: PATH"``, a directory, over ``max_bytes``
            (``"PATH is 60.0 MB; {what}s over 50.0 MB are refused"``), or unreadable.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{what} not found: {path}")
    if os.path.isdir(path):
        noun = what if what.endswith("file") else f"{what} file"
        raise InputError(f"{path} is a directory, not an {noun}")
    size = os.path.getsize(path)
    if size > max_bytes:
        raise InputError(f"{path} is {megabytes(size)}; {what}s over {megabytes(max_bytes)} are refused")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path} ({describe_os_error(exc)})") from exc

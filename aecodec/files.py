"""Writing users' files safely: temporary file then rename, never a silent overwrite."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


class OutputError(OSError):
    """An output cannot be written; nothing was left behind."""


def atomic_write(path: str | Path, data: bytes, force: bool = False) -> None:
    """Write data to path all at once: readers see the old file or the new one, never half."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputError(errno.EEXIST, f"{path} already exists (use -f/--force to overwrite)")
    if path.is_dir():
        raise OutputError(errno.EISDIR, f"{path} is a directory")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise OutputError(error.errno, f"cannot write to {folder}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        _publish(tmp, path, force)
    except OutputError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(error.errno, f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _publish(tmp: str, path: Path, force: bool) -> None:
    """Move the finished file into place. Without force, a hard link refuses a path that appeared since
    the check above (another job writing the same name); rename would silently replace it."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputError(errno.EEXIST, f"{path} already exists (use -f/--force to overwrite)") from None
    except OSError:  # a filesystem without hard links: fall back on the check at the start
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

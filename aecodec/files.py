"""Writing users' files safely: never a silent overwrite, never half a regular file.

A typical workflow looks like this::

    check_output(path, force)        # before the work: a refusal should be instant
    atomic_write(path, data, force)  # after it

What happens depends on what the path is, as with cp:

- a new or existing regular file is written to a temporary file `.NAME.<pid>.<random>.tmp`
  in its folder, flushed to disk and renamed into place: readers see the old file or the new one;
- a symlink is followed: its target is replaced that way and the link is kept;
- a device or FIFO (anything neither regular nor a directory) is opened and written in place,
  streamed like stdout, without needing force: replacing it would break it (`/dev/null`);
- a directory is refused.

The folder must exist, unless make_parents (--out-dir creates its tree). A temporary file left by a
writer that was killed (SIGKILL skips every cleanup) is removed by a later write of the same name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
import time
from pathlib import Path

# A live writer touches its temporary file until it is renamed, seconds at most. The pid alone cannot tell
# a dead writer from a live one on another machine (or in another pid namespace) sharing the folder.
STALE_AFTER_S = 60


class OutputError(OSError):
    """An output cannot be written; no file was left behind (a device or FIFO may have had part of the data)."""


def check_output(path: str | Path, force: bool = False, make_parents: bool = False) -> None:
    """Raise OutputError now if atomic_write(path, ..., force, make_parents) would refuse the path."""
    _destination(Path(path), force, make_parents)


def atomic_write(path: str | Path, data: bytes, force: bool = False, make_parents: bool = False) -> None:
    """Write data to path: a regular file all at once, a device or FIFO in place (see the module's docstring)."""
    path = Path(path)
    target = _destination(path, force, make_parents)
    if target is None:
        _write_in_place(path, data)
    else:
        _replace(path, target, data, force, make_parents)


def _destination(path: Path, force: bool, make_parents: bool) -> Path | None:
    """The regular file that writing path replaces (a symlink's target), or None for a file written in place."""
    mode = _mode(path)
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise OutputError(errno.EISDIR, f"{path} is a directory")
        if not stat.S_ISREG(mode):
            return None
        if not force:
            raise OutputError(errno.EEXIST, f"{path} already exists (use -f/--force to overwrite)")
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if not make_parents and not target.parent.is_dir():  # a mistyped folder is an error, as in cp
        raise OutputError(errno.ENOENT, f"cannot write {path}: folder {target.parent} does not exist")
    return target


def _mode(path: Path) -> int | None:
    """What path is, following symlinks (the data lands in their target); None when nothing is there."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:  # nothing there, or a dangling symlink: its target will be written
        return None
    except OSError as error:  # a symlink loop, a file where a folder should be
        raise OutputError(error.errno, f"cannot write {path}: {error.strerror}") from None


def _write_in_place(path: Path, data: bytes) -> None:
    """Stream into a device or FIFO; a FIFO blocks here until it has a reader, as with cp."""
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))  # no O_CREAT: never make a regular file
        try:
            rest = memoryview(data)
            while rest:
                rest = rest[os.write(fd, rest):]
        finally:
            os.close(fd)
    except OSError as error:
        raise OutputError(error.errno, f"cannot write to {path}: {error.strerror or error}") from None


def _replace(path: Path, target: Path, data: bytes, force: bool, make_parents: bool) -> None:
    """Temporary file in target's folder, flushed, then renamed over target; on any failure, no debris."""
    folder = target.parent
    try:
        if make_parents:
            folder.mkdir(parents=True, exist_ok=True)
        _remove_stale(folder, target.name)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as error:
        raise OutputError(error.errno, f"cannot write to {folder}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        _publish(tmp, target, force, path)
    except OutputError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(error.errno, f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _publish(tmp: str, target: Path, force: bool, path: Path) -> None:
    """Move the finished file into place. Without force, a hard link refuses a path that appeared since
    the check above (another job writing the same name); rename would silently replace it."""
    if force:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OutputError(errno.EEXIST, f"{path} already exists (use -f/--force to overwrite)") from None
    except OSError:  # a filesystem without hard links: fall back on the check at the start
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def _remove_stale(folder: Path, name: str) -> None:
    """Remove the temporary files of this name whose writer was killed: its pid is gone, the file untouched
    for STALE_AFTER_S. Another run writing the same name at the same time keeps its file."""
    if os.name != "posix":  # elsewhere os.kill(pid, 0) would terminate the process, not probe it
        return
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d{{1,9}})\.\w+\.tmp")
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            found = pattern.fullmatch(entry.name)
            if found and entry.is_file(follow_symlinks=False) and _stale(entry, int(found[1])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _stale(entry: os.DirEntry, pid: int) -> bool:
    if time.time() - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, run by another user
        return False
    return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

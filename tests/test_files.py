"""Users' files: written atomically, never overwritten without --force, inputs left alone, no debris."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import subprocess
import sys

import pytest
from PIL import Image

from aecodec import files
from aecodec.files import OutputError, atomic_write
from helpers import cli_tiny, one_line_error, photo_like


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FullDisk:
    """A file object whose write stores half the data and then fails the way a full disk does."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.fixture
def full_disk(monkeypatch):
    real = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode="r": FullDisk(real(fd, mode)))


@pytest.fixture
def unwritable(monkeypatch):
    """What a read-only folder does to mkstemp; chmod cannot show it, as tests may run as root."""
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)


# -- atomic_write ----------------------------------------------------------------------------


def test_writes_the_bytes_and_leaves_no_temporary_file(tmp_path):
    atomic_write(tmp_path / "out.aec", b"payload")
    assert (tmp_path / "out.aec").read_bytes() == b"payload"
    assert listing(tmp_path) == ["out.aec"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "out.aec", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.aec").stat().st_mode) == 0o640


def test_creates_missing_folders(tmp_path):
    atomic_write(tmp_path / "a" / "b" / "out.aec", b"x")
    assert (tmp_path / "a" / "b" / "out.aec").read_bytes() == b"x"


def test_existing_file_is_kept_without_force(tmp_path):
    target = tmp_path / "out.aec"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists") as raised:
        atomic_write(target, b"new")
    assert raised.value.errno == errno.EEXIST
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["out.aec"]
    atomic_write(target, b"new", force=True)
    assert target.read_bytes() == b"new" and listing(tmp_path) == ["out.aec"]


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path, monkeypatch):
    """Two jobs writing one name: the check at the start has passed for both."""
    target = tmp_path / "out.aec"
    real_fsync = os.fsync

    def fsync_then_race(fd):
        real_fsync(fd)
        target.write_bytes(b"the other job's file")
    monkeypatch.setattr(files.os, "fsync", fsync_then_race)
    with pytest.raises(OutputError, match="already exists"):
        atomic_write(target, b"ours")
    assert target.read_bytes() == b"the other job's file" and listing(tmp_path) == ["out.aec"]


def test_a_directory_is_not_replaced(tmp_path):
    (tmp_path / "out.aec").mkdir()
    with pytest.raises(OutputError):
        atomic_write(tmp_path / "out.aec", b"x")
    with pytest.raises(OutputError, match="directory"):
        atomic_write(tmp_path / "out.aec", b"x", force=True)
    assert (tmp_path / "out.aec").is_dir()


@pytest.mark.parametrize("existing", [False, True])
def test_full_disk_leaves_no_partial_file(tmp_path, full_disk, existing):
    target = tmp_path / "out.aec"
    if existing:
        target.write_bytes(b"old")
    with pytest.raises(OutputError, match="No space left") as raised:
        atomic_write(target, b"x" * 100_000, force=True)
    assert raised.value.errno == errno.ENOSPC
    assert listing(tmp_path) == (["out.aec"] if existing else [])
    if existing:
        assert target.read_bytes() == b"old"


def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.aec"
    target.write_bytes(b"old")

    def refuse(*args):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write(target, b"new", force=True)
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["out.aec"]


def test_unwritable_folder(tmp_path, unwritable):
    with pytest.raises(OutputError, match="cannot write to .*Permission denied"):
        atomic_write(tmp_path / "out.aec", b"x")
    assert listing(tmp_path) == []


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupt(fd):
        raise KeyboardInterrupt
    monkeypatch.setattr(files.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "out.aec", b"x")
    assert listing(tmp_path) == []


# -- through the command line ----------------------------------------------------------------


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo_like(24, 20)).save(path)
    return path


def test_round_trip_leaves_the_input_untouched(tiny_weights, photo, tmp_path):
    before = digest(photo)
    assert cli_tiny("compress", str(photo)).exit_code == 0
    assert digest(photo) == before
    aec = tmp_path / "photo.aec"
    aec_digest = digest(aec)
    result = cli_tiny("decompress", str(aec))  # would land on photo.png: the original
    assert "already exists" in one_line_error(result)
    assert digest(photo) == before and digest(aec) == aec_digest
    assert cli_tiny("decompress", str(aec), "-o", str(tmp_path / "back.png")).exit_code == 0
    assert digest(aec) == aec_digest
    assert listing(tmp_path) == ["back.png", "photo.aec", "photo.png"]


@pytest.mark.parametrize("streaming", [False, True])
def test_existing_output_needs_force(tiny_weights, photo, tmp_path, streaming):
    target = tmp_path / "out.aec"
    target.write_bytes(b"precious")
    source = ["-"] if streaming else [str(photo)]
    result = cli_tiny("compress", *source, "-o", str(target), input=photo.read_bytes())
    assert "already exists" in one_line_error(result)
    assert target.read_bytes() == b"precious"
    result = cli_tiny("compress", *source, "-o", str(target), "--force", input=photo.read_bytes())
    assert result.exit_code == 0 and target.read_bytes()[:4] == b"AEC\x1a"
    assert listing(tmp_path) == ["out.aec", "photo.png"]


@pytest.mark.parametrize("streaming", [False, True])
def test_full_disk_in_the_cli(tiny_weights, photo, tmp_path, full_disk, streaming):
    source = ["-"] if streaming else [str(photo)]
    result = cli_tiny("compress", *source, "-o", str(tmp_path / "out.aec"), input=photo.read_bytes())
    assert "No space left on device" in one_line_error(result)
    assert listing(tmp_path) == ["photo.png"]


def test_unwritable_folder_in_the_cli(tiny_weights, photo, tmp_path, unwritable):
    result = cli_tiny("compress", str(photo), "-o", str(tmp_path / "out.aec"))
    assert "Permission denied" in one_line_error(result)
    assert listing(tmp_path) == ["photo.png"]


def test_decompress_full_disk(tiny_weights, photo, tmp_path, monkeypatch):
    assert cli_tiny("compress", str(photo)).exit_code == 0
    real = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode="r": FullDisk(real(fd, mode)))
    result = cli_tiny("decompress", str(tmp_path / "photo.aec"), "-o", str(tmp_path / "out.png"))
    assert "No space left on device" in one_line_error(result)
    assert listing(tmp_path) == ["photo.aec", "photo.png"]


def test_nothing_is_written_outside_the_outputs(tiny_weights, photo, tmp_path):
    """ONNX Runtime would create ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ (a device id, an events table)."""
    from helpers import source_tree_env
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {k: v for k, v in source_tree_env().items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache))
    done = subprocess.run([sys.executable, "-m", "aecodec", "compress", str(photo), "--weights", str(tiny_weights)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list(home.rglob("*")) == [] and not cache.exists()

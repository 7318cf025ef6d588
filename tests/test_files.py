"""Users' files: written atomically, never overwritten without --force, inputs left alone, no debris."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import subprocess
import sys
import threading
import time

import pytest
from PIL import Image

from aecodec import files
from aecodec.files import OutputError, atomic_write
from helpers import TINY, aecodec_command, cli_tiny, one_line_error, only_line, photo_like


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


def test_creates_missing_folders_when_asked(tmp_path):
    """--out-dir mirrors its inputs' tree."""
    atomic_write(tmp_path / "a" / "b" / "out.aec", b"x", make_parents=True)
    assert (tmp_path / "a" / "b" / "out.aec").read_bytes() == b"x"


def test_a_missing_folder_is_an_error_and_is_not_created(tmp_path):
    """A mistyped -o folder: cp refuses it too."""
    with pytest.raises(OutputError, match=f"folder {tmp_path / 'a' / 'b'} does not exist") as raised:
        atomic_write(tmp_path / "a" / "b" / "out.aec", b"x")
    assert raised.value.errno == errno.ENOENT and listing(tmp_path) == []


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
    with pytest.raises(OutputError, match="out.aec is a directory$"):  # not "already exists (use -f)" first
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


# -- special files, symlinks, leftovers ----------------------------------------------------------


@contextlib.contextmanager
def fifo_reader(fifo):
    """Read a FIFO to its end in a thread; got["data"] holds what arrived. Never leaves the test hanging."""
    got = {}

    def read():
        with open(fifo, "rb") as f:
            got["data"] = f.read()
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        thread.join(10)
        if thread.is_alive():  # nobody opened it for writing: let the reader go
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(10)


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def dev_full(tmp_path):
    """A /dev/full of our own (a root-only mknod), so that a fix that fails cannot replace the system's."""
    path = tmp_path / "full"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        os.close(os.open(path, os.O_WRONLY))
    except OSError:
        pytest.skip("making a character device needs root, and a filesystem that allows devices")
    return path


def test_a_fifo_is_written_into_without_force(fifo, tmp_path):
    with fifo_reader(fifo) as got:
        atomic_write(fifo, b"payload" * 10_000)
    assert got.get("data") == b"payload" * 10_000
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and listing(tmp_path) == ["fifo"]


def test_a_device_is_written_into_and_its_errors_reported(dev_full, tmp_path):
    for force in (False, True):
        with pytest.raises(OutputError, match=f"cannot write to {dev_full}: No space left on device") as raised:
            atomic_write(dev_full, b"x" * 100_000, force=force)
        assert raised.value.errno == errno.ENOSPC
        assert stat.S_ISCHR(os.lstat(dev_full).st_mode) and listing(tmp_path) == ["full"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_dev_full_needs_no_force_and_stays_a_device():
    """Without force, so that a failing fix can only refuse it, not replace it."""
    with pytest.raises(OutputError, match="cannot write to /dev/full: No space left on device"):
        atomic_write("/dev/full", b"x")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


def test_a_symlink_is_followed_and_kept(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "photo.aec"
    target.write_bytes(b"old")
    link = tmp_path / "out.aec"
    link.symlink_to(target)
    with pytest.raises(OutputError, match=f"{link} already exists"):
        atomic_write(link, b"new")
    atomic_write(link, b"new", force=True)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new"
    assert listing(tmp_path) == ["out.aec", "real"] and listing(tmp_path / "real") == ["photo.aec"]


def test_a_dangling_symlink_writes_its_target(tmp_path):
    link = tmp_path / "out.aec"
    link.symlink_to("new.aec")
    atomic_write(link, b"data")
    assert link.is_symlink() and (tmp_path / "new.aec").read_bytes() == b"data"


def test_the_temporary_name_carries_the_writer_pid(tmp_path, monkeypatch):
    seen = []
    real_fsync = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: (seen.extend(listing(tmp_path)), real_fsync(fd)))
    atomic_write(tmp_path / "out.aec", b"x")
    assert len(seen) == 1 and re.fullmatch(rf"\.out\.aec\.{os.getpid()}\.\w+\.tmp", seen[0]), seen


def test_a_killed_writers_leftover_is_removed_and_nothing_else(tmp_path):
    """A SIGKILLed run leaves .NAME.<pid>.<random>.tmp; a later write of NAME removes it once its pid is gone."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(done.stdout), os.getpid()
    old = time.time() - 2 * files.STALE_AFTER_S
    names = {"dead": f".out.aec.{dead}.k3j_x9q2.tmp", "alive": f".out.aec.{alive}.a8b7c6d5.tmp",
             "young": f".out.aec.{dead}.young123.tmp", "other": f".other.aec.{dead}.k3j_x9q2.tmp"}
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"leftover")
        if key != "young":  # just written: maybe a live writer on another machine sharing the folder
            os.utime(tmp_path / name, (old, old))
    atomic_write(tmp_path / "out.aec", b"x")
    assert listing(tmp_path) == sorted(["out.aec", names["alive"], names["young"], names["other"]])


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


# -- special outputs through the command line: compress FILE -o (batch) and compress - -o (streaming)


def compress_to(output, photo, streaming, *args):
    source = ["-"] if streaming else [str(photo)]
    return cli_tiny("compress", *source, "-o", str(output), *args, input=photo.read_bytes())


@pytest.mark.parametrize("streaming", [False, True])
def test_fifo_output_in_the_cli(tiny_weights, photo, tmp_path, fifo, streaming):
    with fifo_reader(fifo) as got:
        result = compress_to(fifo, photo, streaming)
    assert result.exit_code == 0, result.stderr
    assert got.get("data", b"")[:4] == b"AEC\x1a" and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert listing(tmp_path) == ["fifo", "photo.png"]


@pytest.mark.parametrize("streaming", [False, True])
def test_device_output_with_force_in_the_cli(tiny_weights, photo, tmp_path, dev_full, streaming):
    result = compress_to(dev_full, photo, streaming, "-f")
    assert one_line_error(result).endswith(f"cannot write to {dev_full}: No space left on device")
    assert stat.S_ISCHR(os.lstat(dev_full).st_mode) and listing(tmp_path) == ["full", "photo.png"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_dev_full_output_fails_in_one_line(tiny_weights, photo, tmp_path):
    """The issue's command, without -f, so that a failing fix can only refuse /dev/full, not replace it."""
    done = aecodec_command("compress", str(photo), "-o", "/dev/full", *TINY, cwd=tmp_path, text=True, timeout=120)
    assert only_line(done, 1).endswith(": cannot write to /dev/full: No space left on device")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_stdout_on_a_full_disk_is_named(tiny_weights, photo, tmp_path):
    with open("/dev/full", "wb") as full:
        done = aecodec_command("compress", str(photo), "-o", "-", *TINY, cwd=tmp_path, stdout=full, text=True,
                               timeout=120)
    assert only_line(done, 1) == "aecodec: error: cannot write to stdout: No space left on device"


@pytest.mark.parametrize("streaming", [False, True])
def test_symlink_output_in_the_cli(tiny_weights, photo, tmp_path, streaming):
    target = tmp_path / "real.aec"
    target.write_bytes(b"old")
    (tmp_path / "link.aec").symlink_to(target)
    assert "link.aec already exists" in one_line_error(compress_to(tmp_path / "link.aec", photo, streaming))
    assert compress_to(tmp_path / "link.aec", photo, streaming, "-f").exit_code == 0
    assert (tmp_path / "link.aec").is_symlink() and target.read_bytes()[:4] == b"AEC\x1a"


@pytest.mark.parametrize("streaming", [False, True])
def test_directory_output_says_so_at_once(tiny_weights, photo, tmp_path, streaming):
    (tmp_path / "adir").mkdir()
    assert one_line_error(compress_to(tmp_path / "adir", photo, streaming)).endswith("adir is a directory")
    assert listing(tmp_path / "adir") == []


@pytest.mark.parametrize("streaming", [False, True])
def test_missing_output_folder_is_not_created(tiny_weights, photo, tmp_path, streaming):
    missing = tmp_path / "nonexistent_dir"
    error = one_line_error(compress_to(missing / "out.aec", photo, streaming))
    assert error.endswith(f"folder {missing} does not exist")
    assert listing(tmp_path) == ["photo.png"]


def test_a_streaming_refusal_comes_before_the_work(tiny_weights, tmp_path):
    """`-` then -o: the output is checked before stdin is coded (here it is not even an image)."""
    (tmp_path / "out.aec").write_bytes(b"precious")
    result = cli_tiny("compress", "-", "-o", str(tmp_path / "out.aec"), input=b"not an image")
    assert "out.aec already exists" in one_line_error(result)

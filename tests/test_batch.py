"""Many files through the CLI (folders, worker processes, failure policy) and pipes through stdin/stdout."""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from aecodec import batch, container
from aecodec.cli import main
from helpers import TINY as W
from helpers import aecodec_command, one_line_error, photo_like, source_tree_env


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """20 files: 19 small photos, some in a subfolder, and one corrupt file that sorts first."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    for i in range(19):
        name = f"sub/img{i:02d}.png" if i % 3 == 0 else f"img{i:02d}.png"
        Image.fromarray(photo_like(48, 64, seed=i)).save(folder / name)
    (folder / "00_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    return folder


@pytest.fixture(scope="module")
def compressed(photos, tmp_path_factory):
    """The photos compressed with two worker processes: (output folder, finished process)."""
    out = tmp_path_factory.mktemp("compressed") / "out"
    done = aecodec_command("compress", str(photos), "--out-dir", str(out), "--jobs", "2", *W, cwd=photos,
                           text=True, timeout=300)
    return out, done


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_folder_with_jobs_reports_the_failure_and_does_the_rest(photos, compressed):
    out, done = compressed
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.aec"))
    expected = sorted(p.relative_to(photos).with_suffix(".aec").as_posix() for p in photos.rglob("img*.png"))
    assert len(written) == 19 and written == expected  # the tree is mirrored
    assert one_line_error(done).startswith(f"aecodec: error: {photos / '00_broken.png'}: ")
    assert "compressed 19 files, 1 failed:" in done.stderr


def test_decompress_folder_to_jpg(compressed, tmp_path):
    out, _ = compressed
    result = invoke("decompress", str(out), "--out-dir", str(tmp_path), "--format", "jpg", *W)
    assert result.exit_code == 0, result.output
    jpgs = list(tmp_path.rglob("*.jpg"))
    assert len(jpgs) == 19 and len(list((tmp_path / "sub").glob("*.jpg"))) == 7
    with Image.open(jpgs[0]) as image:
        assert (image.format, image.size) == ("JPEG", (64, 48))
    assert "decompressed 19 files:" in result.stderr


def test_fail_fast_stops_at_the_first_failure(photos, tmp_path):
    result = invoke("compress", str(photos), "--out-dir", str(tmp_path), "--fail-fast", *W)
    assert result.exit_code == 1
    assert list(tmp_path.rglob("*.aec")) == []
    assert "compressed 0 files, 1 failed, 19 not attempted" in result.stderr


def test_keep_going_is_the_default(photos, tmp_path):
    result = invoke("compress", str(photos), "--out-dir", str(tmp_path), "--keep-going", "-q", "20", *W)
    assert result.exit_code == 1
    assert len(list(tmp_path.rglob("*.aec"))) == 19


def test_no_overwrite_without_force(photos, tmp_path):
    source, dest = photos / "img01.png", tmp_path / "one.aec"
    assert invoke("compress", str(source), "-o", str(dest), "-q", "30", *W).exit_code == 0
    first = dest.read_bytes()
    again = invoke("compress", str(source), "-o", str(dest), "-q", "90", *W)
    assert again.exit_code == 1 and "already exists (use -f/--force to overwrite)" in again.stderr
    assert dest.read_bytes() == first
    assert invoke("compress", str(source), "-o", str(dest), "-q", "90", "-f", *W).exit_code == 0
    assert dest.read_bytes() != first


def test_all_succeeded_exits_zero(photos, tmp_path):
    inputs = [str(photos / "img01.png"), str(photos / "img02.png")]
    result = invoke("compress", *inputs, "--out-dir", str(tmp_path), *W)
    assert result.exit_code == 0 and "compressed 2 files:" in result.stderr


def test_plan_refuses_two_inputs_with_one_output(tmp_path):
    for name in ("a.png", "a.jpg"):
        Image.fromarray(photo_like(8, 8)).save(tmp_path / name)
    with pytest.raises(ValueError, match="would both be written to"):
        batch.plan([str(tmp_path)], None, ".aec", "compress")
    with pytest.raises(ValueError, match="must be the only input"):
        batch.plan(["-", str(tmp_path / "a.png")], None, ".aec", "compress")


def test_output_never_replaces_its_input(tmp_path, codec):
    source = tmp_path / "a.aec"
    source.write_bytes(b"whatever")
    outcome = batch.process(codec, batch.Task(source, source), batch.Options("decompress", force=True))
    assert outcome.error == "the output would replace the input" and source.read_bytes() == b"whatever"


def test_worker_shape_keeps_jobs_times_threads_within_the_cores():
    assert batch.worker_shape(jobs=2, threads=0, tasks=20, cores=8) == (2, 4)
    assert batch.worker_shape(jobs=16, threads=0, tasks=20, cores=8) == (8, 1)
    assert batch.worker_shape(jobs=4, threads=0, tasks=2, cores=8) == (2, 4)
    assert batch.worker_shape(jobs=2, threads=3, tasks=20, cores=8) == (2, 3)  # explicit threads are kept


def test_decompress_will_not_write_aec(tmp_path):
    with pytest.raises(ValueError, match="cannot tell an image format"):
        batch.format_for(tmp_path / "out.aec")


def test_summary_line():
    summary = batch.Summary(total=5, done=3, failed=1, bytes_in=1_500_000, bytes_out=150_000)
    assert summary.line("compress") == "compressed 3 files, 1 failed, 1 not attempted: 1.5 MB -> 150.0 kB (10.0x)"


def test_python_m_aecodec(tmp_path):
    done = aecodec_command("--version", cwd=tmp_path, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "aecodec, version 0.1.0"


def test_pipes_are_binary_safe(photos, tmp_path, codec):
    png = (photos / "img01.png").read_bytes()
    compressed = aecodec_command("compress", "-", *W, cwd=tmp_path, input=png)  # cat a.png | aecodec compress -
    assert compressed.returncode == 0, compressed.stderr
    aec = compressed.stdout
    assert aec[:4] == b"AEC\x1a"
    decompressed = aecodec_command("decompress", "-", *W, cwd=tmp_path, input=aec)  # aecodec decompress - < a.aec
    assert decompressed.returncode == 0, decompressed.stderr
    with Image.open(io.BytesIO(decompressed.stdout)) as image:
        assert image.format == "PNG"
        assert np.array_equal(np.asarray(image), np.asarray(codec.decompress(aec)))


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGPIPE")
def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path, codec):
    """`aecodec decompress a.aec -o - | head -c 10`: no error line, and the status a killed cat would give."""
    aec = codec.compress(photo_like(640, 640, seed=3), quality=90)
    png = io.BytesIO()
    codec.decompress(aec).save(png, format="PNG")
    assert png.tell() > 4 * 65536  # several pipe buffers, so the writer is still writing when the reader leaves
    source = tmp_path / "a.aec"
    source.write_bytes(aec)
    with subprocess.Popen([sys.executable, "-m", "aecodec", "decompress", str(source), "-o", "-", *W], cwd=tmp_path,
                          env=source_tree_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout.read(10)[:4] == b"\x89PNG"
        process.stdout.close()
        stderr = process.stderr.read()
    assert process.returncode == 141, stderr
    assert stderr == b""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_refuses_binary_to_and_from_a_terminal(photos, tmp_path):
    import pty
    source = str(photos / "img01.png")
    leader, terminal = pty.openpty()
    try:
        refused = aecodec_command("compress", source, "-o", "-", *W, cwd=tmp_path, stdout=terminal)
        forced = aecodec_command("compress", source, "-o", "-", "-f", *W, cwd=tmp_path, stdout=terminal)
        from_terminal = aecodec_command("compress", "-", *W, cwd=tmp_path, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(leader)
    assert refused.returncode == 2 and b"refusing to write binary data to a terminal" in refused.stderr
    assert forced.returncode == 0, forced.stderr
    assert from_terminal.returncode == 2 and b"stdin, which is a terminal" in from_terminal.stderr


def _children(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory) -> Path:
    """Enough work that two workers are still busy when Ctrl-C comes."""
    folder = tmp_path_factory.mktemp("many")
    for i in range(60):
        Image.fromarray(photo_like(256, 256, seed=i)).save(folder / f"{i:02d}.png")
    return folder


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="needs Linux's /proc children lists")
@pytest.mark.parametrize("when", ["workers starting", "first file written"])
def test_ctrl_c_stops_a_batch_in_one_line_keeping_finished_files(many_photos, tmp_path, when):
    """`aecodec compress photos/ --out-dir o --jobs 2`, then Ctrl-C: the terminal signals the whole process group."""
    out = tmp_path / "o"
    with subprocess.Popen([sys.executable, "-m", "aecodec", "compress", str(many_photos), "--out-dir", str(out),
                           "--jobs", "2", *W], cwd=tmp_path, env=source_tree_env(), start_new_session=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          # As from a terminal: a test run started in the background (`pytest &` from a script)
                          # ignores SIGINT, and a Python started with it ignored never raises KeyboardInterrupt.
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as process:
        while process.poll() is None:
            started = len(_children(process.pid)) >= 2 if when == "workers starting" else any(out.glob("*.aec"))
            if started:
                break
            time.sleep(0.005)
        finished_before = sorted(out.glob("*.aec"))
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    assert (process.returncode, stderr) == (130, "aecodec: interrupted\n")
    written = sorted(out.glob("*.aec")) if out.exists() else []
    assert set(finished_before) <= set(written) and len(written) < 60
    for path in written:  # whole files only: each one parses, CRC included
        container.unpack(path.read_bytes())
    leftovers = [p.name for p in out.rglob("*") if p.suffix != ".aec"] if out.exists() else []
    assert leftovers == []  # no temporary file of one cut short


def _alive(pid: str) -> bool:
    """Running, not a zombie: an orphan that exited may wait a while for a reaper that does not come."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _gone_within(pids: list[str], seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if _alive(pid)]


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="needs Linux's /proc children lists")
def test_workers_exit_when_the_batch_is_killed(many_photos, tmp_path):
    """kill -9 on `aecodec compress photos/ --jobs 2`: its workers and resource tracker follow it within seconds,
    so that a caller reading its stderr to the end is not left waiting."""
    out = tmp_path / "o"
    out.mkdir()
    with subprocess.Popen([sys.executable, "-m", "aecodec", "compress", str(many_photos), "--out-dir", str(out),
                           "--jobs", "2", *W], cwd=tmp_path, env=source_tree_env(), start_new_session=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        helpers = []
        try:
            while process.poll() is None and not any(out.glob("*.aec")):  # the workers are started and busy
                time.sleep(0.005)
            helpers = _children(process.pid)
            assert process.poll() is None and len(helpers) >= 2  # two workers, and the resource tracker
            process.kill()
            assert _gone_within(helpers, 10) == []
            process.communicate(timeout=10)  # end of output: nobody holds the pipes any more
        finally:
            for pid in helpers:  # on failure, leave nothing behind
                if _alive(pid):
                    os.kill(int(pid), signal.SIGKILL)
    assert len(list(out.glob("*.aec"))) < 60


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_worker_whose_parent_is_gone_exits_without_the_kernels_help(tmp_path):
    """The fallback where prctl is unavailable: a thread waiting on the parent's sentinel. A parent
    starts a watcher as the pool starts its workers, then is killed; the watcher must exit on its own."""
    parent = ("import multiprocessing, time; from aecodec import batch; "
              "watcher = multiprocessing.get_context('spawn').Process(target=batch._watch_parent); watcher.start(); "
              "print(watcher.pid, flush=True); time.sleep(60)")
    with subprocess.Popen([sys.executable, "-c", parent], env=source_tree_env(), stdout=subprocess.PIPE,
                          text=True) as process:
        pid = process.stdout.readline().strip()
        time.sleep(1)  # the watcher is waiting, not starting
        assert _alive(pid)
        process.kill()
        assert _gone_within([pid], 5) == []
        assert process.stdout.read() == ""  # and it no longer holds the pipe


def test_a_worker_whose_parent_died_before_it_started_watching_exits_at_once(tmp_path):
    """The race: the parent dies between spawning a worker and the worker's prctl, so no signal will come."""
    done = subprocess.run([sys.executable, "-c", "from aecodec import batch; batch._exit_with_parent(-1); print('on')"],
                          env=source_tree_env(), capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")


def test_the_summary_counts_the_bytes_of_coded_files_only(photos, tmp_path):
    good, broken = photos / "img01.png", photos / "00_broken.png"
    tasks = batch.plan([str(good), str(broken)], str(tmp_path), ".aec", "compress")
    summary = batch.run(tasks, batch.Options("compress", weights=W[1]), progress=False)
    assert (summary.done, summary.failed) == (1, 1)
    assert (summary.bytes_in, summary.bytes_out) == (good.stat().st_size, (tmp_path / "img01.aec").stat().st_size)


def test_a_batch_where_every_file_failed_reports_no_sizes(tmp_path):
    """Nothing was coded, so nothing was read into a file or written: "0 files, 2 failed: 38 B -> 0 B" misleads."""
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    result = invoke("compress", str(tmp_path / "a.png"), str(tmp_path / "b.png"), *W)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "compressed 0 files, 2 failed"


def test_a_size_target_reaches_the_workers_with_its_unit():
    """--jobs pickles the options for each worker: the target's text must survive, or messages fall back to bytes."""
    import pickle
    from aecodec.ratecontrol import parse_size
    options = pickle.loads(pickle.dumps(batch.Options("compress", target_size=parse_size("1.5KiB"))))
    assert (options.target_size, options.target_size.text, options.target_size.words(1000)) == (1536, "1.5KiB",
                                                                                               "0.977 KiB")


# -- start-up (issue 23): one file draws no bar and names a PNG without Pillow's plugins ----------------


@pytest.mark.parametrize("files", [1, 2])
def test_failures_are_reported_with_and_without_a_progress_bar(tmp_path, files):
    """One file gets a stand-in for tqdm's bar (tqdm is not imported for it), two get the bar: both report."""
    names = [tmp_path / f"{i}.png" for i in range(files)]
    for name in names:
        name.write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    tasks = batch.plan([str(name) for name in names], str(tmp_path / "out"), ".aec", "compress")
    reported = []
    summary = batch.run(tasks, batch.Options("compress", weights=W[1]), progress=True, report=reported.append)
    assert summary.failed == files and [o.task.source for o in reported] == names


def test_a_png_output_is_named_without_loading_pillows_plugins():
    """decode_png writes PNG itself: Image.preinit() would import five plugins (4 ms) only to name it."""
    script = ("import sys; from pathlib import Path; from aecodec import batch; "
              "assert batch.format_for(Path('out.PNG')) == 'PNG'; "
              "print(sorted(m for m in sys.modules if m.startswith('PIL.') and m.endswith('ImagePlugin')))")
    done = subprocess.run([sys.executable, "-c", script], env=source_tree_env(), capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr[-2000:]


@pytest.mark.parametrize("name, fmt", [("a.jpg", "JPEG"), ("a.JPEG", "JPEG"), ("a.tif", "TIFF"), ("a.bmp", "BMP"),
                                       ("a.webp", "WEBP"), ("a.gif", "GIF"), ("a.png", "PNG")])
def test_format_for_still_asks_pillow_for_the_other_extensions(name, fmt):
    assert batch.format_for(Path(name)) == fmt


@pytest.mark.parametrize("name", ["a.aec", "a.unknown", "noextension"])
def test_format_for_refuses_what_it_cannot_write(name):
    with pytest.raises(ValueError, match="cannot tell an image format"):
        batch.format_for(Path(name))

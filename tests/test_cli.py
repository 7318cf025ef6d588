import json
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from aecodec import __version__
from aecodec.bench.graphics import text_on_blue
from aecodec.cli import main
from aecodec.codec import Codec
from helpers import TINY as W
from helpers import TINY_WEIGHTS, aecodec_command, aecodec_without, one_line_error, only_line, photo_like


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo_like(70, 90)).save(path)
    return path


@pytest.mark.parametrize("command", [[], ["compress"], ["decompress"], ["info"], ["bench"], ["train"], ["export"]])
def test_every_command_has_help_with_examples(runner, command):
    result = runner.invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_version(runner):
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_compress_decompress_info(runner, png):
    assert runner.invoke(main, ["compress", str(png), "-q", "60", *W]).exit_code == 0
    aec = png.with_suffix(".aec")
    info = runner.invoke(main, ["info", str(aec)])
    assert info.exit_code == 0
    for field in ("format_version", "model_id", "width", "quality", "latent bytes", "bpp"):
        assert field in info.output
    png.unlink()
    assert runner.invoke(main, ["decompress", str(aec), *W]).exit_code == 0
    assert Image.open(png).size == (90, 70)


def test_no_detail_writes_a_version_1_file_and_info_shows_the_layer(runner, tmp_path):
    sharp = tmp_path / "text.png"
    Image.fromarray(text_on_blue()[:48, :64]).save(sharp)
    with_detail, without = tmp_path / "with.aec", tmp_path / "without.aec"
    assert runner.invoke(main, ["compress", str(sharp), "-q", "95", "-o", str(with_detail), *W]).exit_code == 0
    assert runner.invoke(main, ["compress", str(sharp), "-q", "95", "--no-detail", "-o", str(without), *W]).exit_code == 0
    assert (with_detail.read_bytes()[4], without.read_bytes()[4]) == (2, 1)
    info = runner.invoke(main, ["info", str(with_detail)])
    assert "detail bytes" in info.output and "format_version: 2" in info.output
    assert "detail bytes" not in runner.invoke(main, ["info", str(without)]).output
    assert "--no-detail" in runner.invoke(main, ["compress", "--help"]).output


def test_no_deblock_with_no_detail_writes_a_version_1_file_at_low_quality(runner, png, tmp_path):
    deblocked, plain = tmp_path / "deblocked.aec", tmp_path / "plain.aec"
    base = ["compress", str(png), "-q", "20", "--no-detail", *W]
    assert runner.invoke(main, [*base, "-o", str(deblocked)]).exit_code == 0
    assert runner.invoke(main, [*base, "--no-deblock", "-o", str(plain)]).exit_code == 0
    assert (deblocked.read_bytes()[4], plain.read_bytes()[4]) == (2, 1)
    assert "deblocked: True" in runner.invoke(main, ["info", str(deblocked)]).output
    assert "deblocked: False" in runner.invoke(main, ["info", str(plain)]).output
    assert "--no-deblock" in runner.invoke(main, ["compress", "--help"]).output


def test_output_format_follows_extension(runner, png, tmp_path):
    aec = tmp_path / "x.aec"
    assert runner.invoke(main, ["compress", str(png), "-o", str(aec), *W]).exit_code == 0
    out = tmp_path / "x.jpg"
    assert runner.invoke(main, ["decompress", str(aec), "-o", str(out), *W]).exit_code == 0
    assert Image.open(out).format == "JPEG"


def test_target_size_lands_under_budget(runner, png, tmp_path):
    aec = tmp_path / "t.aec"
    result = runner.invoke(main, ["compress", str(png), "--target-size", "1.5KB", "-o", str(aec), *W])
    assert result.exit_code == 0, result.output
    assert aec.stat().st_size <= 1500


def test_existing_output_is_kept_without_force(runner, png):
    aec = png.with_suffix(".aec")
    aec.write_bytes(b"precious")
    result = runner.invoke(main, ["compress", str(png), *W])
    assert result.exit_code == 1 and "already exists" in result.output
    assert aec.read_bytes() == b"precious"
    assert runner.invoke(main, ["compress", str(png), "-f", *W]).exit_code == 0
    assert aec.read_bytes() != b"precious"


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),  # compared case-insensitively
    (lambda p: p.write_bytes(b"not an image at all"), "not an image"),
])
def test_bad_inputs_give_one_clean_line(runner, tmp_path, make, message):
    path = tmp_path / "input.png"
    make(path)
    result = runner.invoke(main, ["compress", str(path), *W])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aecodec: error:") and message in lines[0].lower()
    assert "Traceback" not in result.output


def test_truncated_aec_gives_one_clean_line(runner, png, tmp_path):
    assert runner.invoke(main, ["compress", str(png), *W]).exit_code == 0
    aec = png.with_suffix(".aec")
    cut = tmp_path / "cut.aec"
    cut.write_bytes(aec.read_bytes()[:50])
    result = runner.invoke(main, ["decompress", str(cut), "-o", str(tmp_path / "o.png"), *W])
    assert "lengths add up to" in one_line_error(result)
    assert not (tmp_path / "o.png").exists()


# -- the exact commands a new user types, each in a fresh interpreter ----------------------------------


@pytest.mark.parametrize("command, purpose", [
    (["train", "--minutes", "0.1", "--out", "x"], "aecodec train needs torch"),
    (["export", "some.ckpt"], "aecodec export needs torch and onnx"),
])
def test_a_missing_extra_is_one_line_naming_it(tmp_path, command, purpose):
    (tmp_path / "some.ckpt").write_bytes(b"")
    done = aecodec_without(["torch", "onnx"], *command, cwd=tmp_path, text=True, timeout=120)
    assert only_line(done, 1) == (f"aecodec: error: {purpose}, from the 'train' extra: "
                                  f'pip install torch==2.13.0 "aecodec[train]"')
    assert not (tmp_path / "x").exists()


def test_info_reads_stdin(png, tmp_path):
    aec = tmp_path / "photo.aec"
    aec.write_bytes(Codec(TINY_WEIGHTS).compress(photo_like(70, 90)))
    with open(aec, "rb") as stdin:
        done = aecodec_command("info", "-", "--json", cwd=tmp_path, stdin=stdin, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["width"] == 90


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(9):
        Image.fromarray(photo_like(32, 40, seed=i)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("args, line", [
    (["photos/", "--out-dir", "o", "--target-bpp", "0"],
     "aecodec: error: Invalid value for '--target-bpp': 0.0 is not in the range x>0."),
    (["photos/", "--out-dir", "o", "-q", "50", "--target-bpp", "0.5"],
     "aecodec: error: give at most one of -q/--quality, --target-bpp and --target-size, "
     "not -q/--quality and --target-bpp"),
    (["photos/", "--out-dir", "o", "--target-size", "0KB"],
     "aecodec: error: Invalid value for '--target-size': size must be positive, not '0KB'"),
    (["photos/", "--out-dir", "o", "-q", "200"],
     "aecodec: error: Invalid value for '-q' / '--quality': quality must be between 1 and 100, not 200.0"),
    (["photos/", "-o", "o"], "aecodec: error: -o/--output names one file; use --out-dir for several inputs"),
])
def test_argument_errors_are_one_line_before_any_work(photos, tmp_path, args, line):
    done = aecodec_command("compress", *args, *W, cwd=tmp_path, text=True)
    assert only_line(done, 2) == line
    assert not (tmp_path / "o").exists()


def test_an_unreachable_bpp_target_is_answered_in_bpp(png, tmp_path):
    done = aecodec_command("compress", str(png), "--target-bpp", "0.05", *W, cwd=tmp_path, text=True)
    line = only_line(done, 1)
    assert line.startswith(f"aecodec: error: {png}: target of 0.05 bpp is unreachable: the smallest file this model "
                           "makes for this image, at quality 1, is "), line
    assert line.endswith(" bpp") and "bytes" not in line


@pytest.fixture
def aec(tmp_path):
    path = tmp_path / "a.aec"
    path.write_bytes(Codec(TINY_WEIGHTS).compress(photo_like(70, 90), quality=60))
    return path


def test_format_contradicting_the_extension_is_refused(aec, tmp_path):
    done = aecodec_command("decompress", "a.aec", "--format", "jpg", "-o", "out.png", *W, cwd=tmp_path, text=True)
    assert only_line(done, 2) == "aecodec: error: --format jpg contradicts -o out.png, whose extension means PNG"
    assert not (tmp_path / "out.png").exists()


def test_format_and_extension_may_agree(aec, tmp_path):
    done = aecodec_command("decompress", "a.aec", "--format", "jpg", "-o", "out.jpeg", *W, cwd=tmp_path)
    assert done.returncode == 0 and Image.open(tmp_path / "out.jpeg").format == "JPEG"


def test_webp_output_is_lossy_unless_lossless_is_asked_for(aec, tmp_path):
    decoded = np.asarray(Codec(TINY_WEIGHTS).decompress(aec.read_bytes()))
    for name, extra in (("lossy.webp", []), ("lossless.webp", ["--lossless"])):
        done = aecodec_command("decompress", "a.aec", "-o", name, *extra, *W, cwd=tmp_path, text=True)
        assert done.returncode == 0 and done.stderr == "", done.stderr
    with Image.open(tmp_path / "lossless.webp") as image:
        assert np.array_equal(np.asarray(image), decoded)
    with Image.open(tmp_path / "lossy.webp") as image:
        assert not np.array_equal(np.asarray(image), decoded)


def test_lossless_jpeg_is_refused(aec, tmp_path):
    done = aecodec_command("decompress", "a.aec", "-o", "out.jpg", "--lossless", *W, cwd=tmp_path, text=True)
    assert only_line(done, 2) == "aecodec: error: --lossless: JPEG output cannot be lossless: use png, tiff, bmp or webp"
    assert not (tmp_path / "out.jpg").exists()


def test_gif_output_says_it_has_a_palette(aec, tmp_path):
    done = aecodec_command("decompress", "a.aec", "-o", "out.gif", *W, cwd=tmp_path, text=True)
    assert done.returncode == 0
    assert only_line(done, 0) == ("aecodec: warning: a.aec: GIF holds at most 256 colours: "
                                  "the image was reduced to a palette")


def test_an_aec_file_given_as_an_image_is_coded_with_a_warning(aec, tmp_path):
    (tmp_path / "renamed.png").write_bytes(aec.read_bytes())
    done = aecodec_command("compress", "renamed.png", "-o", "again.aec", *W, cwd=tmp_path, text=True)
    assert only_line(done, 0) == ("aecodec: warning: renamed.png: the input is already an .aec file: "
                                  "it was decoded and coded again, losing quality twice")
    assert (tmp_path / "again.aec").read_bytes()[:4] == b"AEC\x1a"


def declared_only(width: int, height: int) -> bytes:
    """An .aec header declaring a size, with empty streams: what a hostile file costs nothing to send."""
    body = struct.pack("<4sBBB8sIIHII", b"AEC\x1a", 1, 0, 0, bytes(8), width, height, 100, 0, 0)
    return body + struct.pack("<I", zlib.crc32(body))


def test_decoding_refuses_more_pixels_than_pillow_allows(tmp_path):
    (tmp_path / "big.aec").write_bytes(declared_only(10_000, 10_000))  # 100 Mpx, Pillow allows 89.5
    done = aecodec_command("decompress", "big.aec", "-o", "out.png", *W, cwd=tmp_path, text=True)
    assert only_line(done, 1) == (
        "aecodec: error: big.aec: image of 10000x10000 pixels is above the decompression-bomb limit of 89478485 "
        "pixels (PIL.Image.MAX_IMAGE_PIXELS; --allow-large, or allow_large=True, lifts the limit)")
    lifted = aecodec_command("decompress", "big.aec", "-o", "out.png", "--allow-large", *W, cwd=tmp_path, text=True)
    assert "decompression-bomb" not in only_line(lifted, 1)  # it got past the limit, to the model check
    assert not (tmp_path / "out.png").exists()
    assert aecodec_command("info", "big.aec", cwd=tmp_path).returncode == 0  # the header alone is cheap


def test_png_is_fast_by_default_and_smallest_when_asked(aec, tmp_path):
    """Decoded PNGs are written at zlib level 1; --max-compression writes level 9: the same pixels, fewer bytes."""
    decoded = np.asarray(Codec(TINY_WEIGHTS).decompress(aec.read_bytes()))
    for name, extra in (("fast.png", []), ("small.png", ["--max-compression"])):
        done = aecodec_command("decompress", "a.aec", "-o", name, *extra, *W, cwd=tmp_path, text=True)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        with Image.open(tmp_path / name) as image:
            assert np.array_equal(np.asarray(image), decoded)
    fast, small = (tmp_path / "fast.png").stat().st_size, (tmp_path / "small.png").stat().st_size
    assert small < fast


@pytest.mark.parametrize("target, unit, factor", [("0.05KB", "KB", 1000), ("0.05KiB", "KiB", 1024),
                                                  ("0.00005MB", "MB", 1000**2), ("50", "bytes", 1)])
def test_an_unreachable_size_target_is_answered_in_the_unit_given(runner, png, target, unit, factor):
    smallest = len(Codec(TINY_WEIGHTS).compress(png, quality=1))
    result = runner.invoke(main, ["compress", str(png), "--target-size", target, *W])
    asked = target if factor > 1 else f"{target} bytes"
    prefix = (f"aecodec: error: {png}: target of {asked} is unreachable: the smallest file this model makes for "
              "this image, at quality 1, is ")
    line = one_line_error(result)
    assert line.startswith(prefix) and line.endswith(f" {unit}"), line
    shown = float(line[len(prefix):-len(unit) - 1])
    assert smallest <= shown * factor < smallest * 1.01  # three digits, rounded up: never as if it fitted


def usage_line(result) -> str:
    """The one line of a command refused for its options: exit status 2, nothing else said."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("args, line", [
    (["compress", "missing.png", "--out-dir", "od", "-o", "x.aec"], "give -o/--output or --out-dir, not both"),
    (["decompress", "missing.aec", "--out-dir", "od", "-o", "x.png"], "give -o/--output or --out-dir, not both"),
    (["compress", "-", "--out-dir", "od"], "'-' (stdin) is written to stdout or -o, not to --out-dir"),
    (["decompress", "missing.aec", "--max-compression", "-o", "x.jpg"],
     "--max-compression: it applies to PNG output only, not JPEG"),
    (["decompress", "missing.aec", "--max-compression", "--format", "webp"],
     "--max-compression: it applies to PNG output only, not WEBP"),
    (["compress", "missing.png", "-o", "t.jpg"],
     "-o t.jpg names a JPEG file, but compress writes .aec files (name it t.aec; decompress writes JPEG)"),
    (["compress", "missing.png", "-o", "T.PNG"],
     "-o T.PNG names a PNG file, but compress writes .aec files (name it T.aec; decompress writes PNG)"),
])
def test_options_that_would_be_ignored_or_misnamed_are_refused_before_any_file_is_read(runner, tmp_path, args,
                                                                                        line):
    """The inputs do not exist: a refusal that came after reading them would say so instead."""
    with runner.isolated_filesystem(temp_dir=tmp_path):
        assert usage_line(runner.invoke(main, [*args, *W])) == f"aecodec: error: {line}"
        assert not any(tmp_path.rglob("x.*")) and not any(tmp_path.rglob("od"))


@pytest.mark.parametrize("name", ["small", "small.bin", "small.AEC"])
def test_compress_output_may_be_named_anything_but_an_image(runner, png, tmp_path, name):
    result = runner.invoke(main, ["compress", str(png), "-o", str(tmp_path / name), *W])
    assert result.exit_code == 0, result.output
    assert (tmp_path / name).read_bytes()[:4] == b"AEC\x1a"


def test_format_gif_is_offered_as_the_gif_extension_is(runner, aec):
    result = runner.invoke(main, ["decompress", str(aec), "--format", "gif", *W])
    assert result.exit_code == 0, result.output
    with Image.open(aec.with_suffix(".gif")) as image:
        assert image.format == "GIF"
    assert "--format [png|jpg|webp|bmp|tiff|gif]" in runner.invoke(main, ["decompress", "--help"]).output

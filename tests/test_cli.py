import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from aecodec import __version__
from aecodec.cli import main
from helpers import TINY as W
from helpers import one_line_error, photo_like


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

"""All 24 Kodak images round-trip at five qualities with the shipped model, through API and CLI,
and reproduce the committed benchmark results."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from aecodec import container
from aecodec.bench.codecs import AECODEC_QUALITIES
from aecodec.cli import main
from aecodec.codec import Codec
from aecodec.metrics import psnr
from aecodec.bundle import default_weights_root
from helpers import KODAK

QUALITIES = (1, 25, 50, 75, 100)
pytestmark = [
    pytest.mark.slow,  # 24 images x 5 qualities with the shipped model: minutes on 2 cores
    pytest.mark.skipif(not KODAK.is_dir() or not (default_weights_root() / "main").is_dir(),
                       reason="needs ../shared/data/kodak and the shipped weights"),
]
RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "kodak" / "results.json"


@pytest.fixture(scope="module")
def originals() -> dict[str, np.ndarray]:
    """Each Kodak image's pixels by file name, read once."""
    return {path.name: np.asarray(Image.open(path).convert("RGB")) for path in sorted(KODAK.glob("*.png"))}


@pytest.fixture(scope="module")
def api_files(originals):
    """(image stem, quality) -> (the .aec file, its decoded pixels), through the Python API."""
    codec = Codec()
    files = {}
    for name, rgb in originals.items():
        for q in QUALITIES:
            data = codec.compress(rgb, quality=q)
            files[(Path(name).stem, q)] = (data, np.asarray(codec.decompress(data)))
    return files


def test_api_round_trips_all_24(api_files, originals):
    assert len(originals) == 24 and len(api_files) == 24 * len(QUALITIES)
    for name, rgb in originals.items():
        coded = [api_files[(Path(name).stem, q)] for q in QUALITIES]
        assert all(decoded.shape == rgb.shape for _, decoded in coded), name
        sizes = [len(data) for data, _ in coded]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), name  # higher quality, larger file
        scores = [psnr(decoded, rgb) for _, decoded in coded]
        assert scores[-1] > scores[0] + 3, name


def test_cli_round_trips_all_24(api_files, tmp_path):
    runner, codec = CliRunner(), Codec()
    for q in QUALITIES:
        out = tmp_path / f"q{q}"
        result = runner.invoke(main, ["compress", str(KODAK), "--out-dir", str(out / "aec"), "-q", str(q)])
        assert result.exit_code == 0, result.output
        result = runner.invoke(main, ["decompress", str(out / "aec"), "--out-dir", str(out / "png")])
        assert result.exit_code == 0, result.output
        for path in sorted(KODAK.glob("*.png")):
            data = (out / "aec" / f"{path.stem}.aec").read_bytes()
            assert container.read_header(data).quality == q
            decoded = np.asarray(Image.open(out / "png" / f"{path.stem}.png"))
            # Same bitstream decoder: the CLI's pixels equal the API's decode of the CLI's file.
            assert np.array_equal(decoded, np.asarray(codec.decompress(data)))
            assert len(data) == pytest.approx(len(api_files[(path.stem, q)][0]), rel=0.02)


def test_committed_kodak_results_are_reproduced(api_files, originals):
    """bench/results/kodak/ was measured with the shipped model, and re-encoding gives its numbers.

    Sizes may move by a byte or so where another CPU rounds the analysis network differently.
    """
    results = json.loads(RESULTS.read_text())
    assert Codec().model_id.hex() in results["codecs"]["aecodec"], "committed results are from another model"
    checked = 0
    for row in results["measurements"]:
        key = (Path(row["image"]).stem, row["quality"])
        if row["codec"] == "aecodec" and key in api_files:
            data, decoded = api_files[key]
            assert len(data) == pytest.approx(row["bytes"], rel=0.005), key
            assert psnr(decoded, originals[Path(row["image"]).name]) == pytest.approx(row["psnr"], abs=0.01), key
            checked += 1
    assert checked == 24 * len(set(QUALITIES) & set(AECODEC_QUALITIES))

"""--effort: refinement lowers the real RD loss, files decode with the unchanged decoder, and
without torch it fails in one line; the target search works at every level."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from aecodec import container, entropy, fixedpoint, transform
from aecodec.effort import EFFORT_ITERATIONS, fit_quality_refined, iterations_for
from aecodec.quality import rate_tradeoff
from helpers import TINY, TINY_WEIGHTS, aecodec_without, cli, only_line, photo_like, source_tree_env

QUALITY = 60


@pytest.fixture
def effort_extra():
    """What refining needs, the 'effort' extra: torch, and onnx to read the weights into it. The tests
    without it (the range check, the search, the messages of an install without torch) still run."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return photo_like(72, 96, seed=3)  # not a multiple of 64: the padding is coded but not scored


def coded_rd_loss(codec, data: bytes, rgb: np.ndarray) -> float:
    """bits per pixel of the whole file + lambda * 255^2 * MSE of what the decoder shows."""
    decoded = np.asarray(codec.decompress(data), dtype=np.float64)
    mse = ((decoded - rgb) ** 2).mean() / 255**2
    quality = container.read_header(data).quality
    return len(data) * 8 / (rgb.shape[0] * rgb.shape[1]) + rate_tradeoff(codec.bundle, quality) * 255**2 * mse


def refine(codec, rgb, quality, iterations):
    gained = transform.analyse(codec.model, rgb) * transform.gain(codec.model, quality)
    hyper_latent = transform.hyper_analyse(codec.model, gained)
    return codec.refiner().refine(rgb, gained, hyper_latent, quality, iterations)


@pytest.mark.usefixtures("effort_extra")
def test_refinement_lowers_the_rd_loss_of_the_coded_file(codec, rgb):
    plain = codec.compress(rgb, quality=QUALITY)
    refined = codec.compress(rgb, quality=QUALITY, effort=2)
    assert coded_rd_loss(codec, refined, rgb) < 0.97 * coded_rd_loss(codec, plain, rgb)
    assert codec.compress(rgb, quality=QUALITY, effort=2) == refined  # seeded: the same file every time


@pytest.mark.usefixtures("effort_extra")
def test_refined_file_decodes_to_the_symbols_that_were_chosen(codec, rgb):
    refined = refine(codec, rgb, QUALITY, 30)
    assert refined.iteration > 0 and refined.loss < refined.start_loss
    coded = transform.code_given(codec.model, refined.latent, refined.hyper_latent, QUALITY)
    data = transform.file_of(codec.model, coded, *rgb.shape[:2])
    hyper_latent, mean, residual = transform.decode_latent(codec.model, container.unpack(data))
    assert np.array_equal(hyper_latent, refined.hyper_latent)
    exact_mean, _ = fixedpoint.entropy_parameters(codec.bundle.hyper_synthesis, refined.hyper_latent,
                                                  codec.bundle.scale_table)
    assert np.array_equal(mean, exact_mean)
    # The refinement's latent sits at the centre of the bin it chose: the exact means round it the same way.
    offset = refined.latent - exact_mean - residual
    assert np.abs(offset).max() < 0.05
    assert codec.decompress(data).size == (rgb.shape[1], rgb.shape[0])


@pytest.mark.usefixtures("effort_extra")
def test_nothing_better_found_sends_exactly_the_effort_0_file(codec, rgb):
    refined = refine(codec, rgb, QUALITY, 0)
    assert refined.iteration == 0 and refined.loss == refined.start_loss
    gained = transform.analyse(codec.model, rgb) * transform.gain(codec.model, QUALITY)
    assert np.array_equal(refined.latent, gained)
    coded = transform.code_given(codec.model, refined.latent, refined.hyper_latent, QUALITY)
    assert transform.file_of(codec.model, coded, *rgb.shape[:2]) == \
        codec.compress(rgb, quality=QUALITY, detail=False, deblock=False)


@pytest.mark.usefixtures("effort_extra")
def test_target_size_fits_at_every_level_and_buys_quality(codec, rgb):
    budget = len(codec.compress(rgb, quality=QUALITY))
    plain = container.read_header(codec.compress(rgb, target_size=budget)).quality
    data = codec.compress(rgb, target_size=budget, effort=1)
    assert len(data) <= budget
    assert container.read_header(data).quality >= plain
    assert len(codec.compress(rgb, target_bpp=budget * 8 / rgb[..., 0].size, effort=1)) <= budget


def test_fit_quality_refined_keeps_the_best_refinement_that_fits():
    def size(quality):  # a file size that grows with quality; refinement saves a fifth
        return int(1000 + 50 * quality)

    def encode(quality):
        return bytes(size(quality))

    refined_at = []

    def refine(quality):
        refined_at.append(quality)
        return bytes(int(0.8 * size(quality)))

    quality, data = fit_quality_refined(encode, refine, budget=3000)
    assert len(data) <= 3000 and quality > 40 and len(refined_at) == 2
    # Refinement that makes files larger: the effort-0 file, which fits.
    quality, data = fit_quality_refined(encode, lambda q: bytes(2 * size(q)), budget=3000)
    assert data == encode(quality) and len(data) <= 3000


def test_effort_levels_are_checked(codec, rgb):
    assert iterations_for(0) == 0 and list(EFFORT_ITERATIONS) == sorted(EFFORT_ITERATIONS)
    with pytest.raises(ValueError, match="effort must be"):
        codec.compress(rgb, effort=len(EFFORT_ITERATIONS))


@pytest.mark.usefixtures("effort_extra")
def test_pillow_plugin_and_cli_take_effort(codec, rgb, tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="AEC", quality=QUALITY, effort=1, codec=codec)
    assert buffer.getvalue() == codec.compress(rgb, quality=QUALITY, effort=1)
    source = tmp_path / "photo.png"
    Image.fromarray(rgb).save(source)
    result = cli("compress", source, "-q", QUALITY, "--effort", 1, "-o", tmp_path / "photo.aec", *TINY)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "photo.aec").read_bytes() == buffer.getvalue()
    assert cli("compress", source, "--effort", len(EFFORT_ITERATIONS), *TINY).exit_code == 2  # a usage error


def test_effort_without_torch_is_one_line_and_effort_0_still_works(tmp_path):
    source = tmp_path / "photo.png"
    Image.fromarray(photo_like(48, 64)).save(source)
    done = aecodec_without(["torch"], "compress", "photo.png", "--effort", "1", *TINY, cwd=tmp_path)
    line = only_line(done, 1)
    assert line.startswith("aecodec: error: effort above 0 needs torch") and 'pip install' in line
    assert '"aecodec[effort]"' in line
    assert not list(tmp_path.glob("*.aec")) and not list(tmp_path.glob(".*.tmp"))
    done = aecodec_without(["torch"], "compress", "photo.png", *TINY, cwd=tmp_path)
    assert done.returncode == 0 and (tmp_path / "photo.aec").is_file()


def test_api_effort_without_torch_names_the_extra():
    code = (f"import sys; sys.modules['torch'] = None\n"
            f"import numpy as np, aecodec\n"
            f"from aecodec.effort import EffortUnavailable\n"
            f"codec = aecodec.Codec({str(TINY_WEIGHTS)!r})\n"
            f"rgb = np.zeros((32, 32, 3), np.uint8)\n"
            f"assert codec.compress(rgb, quality=50)\n"
            f"try:\n    codec.compress(rgb, effort=1)\nexcept EffortUnavailable as error:\n    print(error)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=source_tree_env(),
                          check=True)
    assert done.stdout.strip().endswith('pip install torch==2.13.0 "aecodec[effort]"'), done.stdout


@pytest.mark.usefixtures("effort_extra")
def test_bench_names_effort_codecs_only_when_asked(codec, rgb):
    from aecodec.bench.codecs import available_codecs, requested_efforts

    assert "aecodec-effort1" not in available_codecs(codec)
    efforts = requested_efforts(["aecodec", "aecodec-effort1", "jpeg"])
    spec = available_codecs(codec, efforts=efforts)["aecodec-effort1"]
    data = spec.encode(rgb, QUALITY)
    assert data == codec.compress(rgb, quality=QUALITY, effort=1) and spec.decode(data).shape == rgb.shape


def escaped_values() -> np.ndarray:
    """Values around every varint length boundary, up to the largest the encoder accepts."""
    edges = np.array([1 << (7 * k - 1) for k in range(1, 4)])  # zig-zag: where a varint grows a byte
    near = np.concatenate([edges - 1, edges, edges + 1, [entropy.MAX_ESCAPE - 1]])
    return np.concatenate([np.arange(-300, 301), near, -near])


def test_escape_bits_are_the_bytes_the_encoder_writes():
    values = escaped_values()
    values = values[values != 0]  # the one value the table below holds: every other one escapes
    tables = entropy.EntropyTables([np.array([(1 << entropy.PMF_BITS) - 1, 1])], np.array([0]))
    blob = entropy.encode(values, np.zeros(len(values), np.int64), tables)
    words = int.from_bytes(blob[:4], "little")
    assert 8 * (len(blob) - 4 - 4 * words) == entropy.escape_bits(values).sum()


@pytest.mark.usefixtures("effort_extra")
def test_refinement_prices_escapes_as_entropy_does():
    import torch

    from aecodec.refine_torch.refiner import escape_bits
    values = escaped_values()
    priced = escape_bits(torch.from_numpy(values).float()).numpy()
    assert np.array_equal(priced, entropy.escape_bits(values))


@pytest.mark.usefixtures("effort_extra")
def test_refinement_charges_an_integer_hyper_latent_what_value_bits_says(codec):
    import torch

    from aecodec.refine_torch.refiner import HyperTableBits
    tables = codec.bundle.hyper_tables
    rng = np.random.default_rng(0)
    low, high = tables.offsets[:, None] - 3, (tables.offsets + tables.sizes)[:, None] + 3
    values = rng.integers(low, high, (len(tables), 30))  # inside each table, and escaped just beyond it
    values[:, :4] = [10000, -10000, 8192, -8193]  # escapes of 3-byte varints
    hyper_latent = torch.from_numpy(values.reshape(1, len(tables), 5, 6)).float()
    charged = float(HyperTableBits(tables, torch.device("cpu"))(hyper_latent))
    expected = sum(entropy.value_bits(tables, row)[:, c].sum() for c, row in enumerate(values))
    assert charged == pytest.approx(expected, rel=1e-6)

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecodec.bench import available_codecs, load_reference, main_bench, run_bench, select_codecs
from aecodec.bench.curves import Curve
from aecodec.bench.report import bd_matrix
from helpers import aecodec_without, only_line

ANCHORS = Path(__file__).parent / "data" / "anchors"  # two of ../shared/anchors/kodak, shipped (see its README)

pytestmark = pytest.mark.filterwarnings("ignore:MS-SSIM on a .* image is not standard")


class FakeCodec:
    """Stands in for aecodec: PNG of the image with the low bits dropped by quality."""

    def compress(self, image, quality=75.0):
        shift = int(round((100 - quality) / 25))
        buf = io.BytesIO()
        Image.fromarray((image >> shift) << shift).save(buf, "PNG")
        return buf.getvalue()

    def decompress(self, data):
        return Image.open(io.BytesIO(data))


def _smooth_noise(path, seed, w=96, h=64):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 8, w // 8, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
    image.save(path)
    return path


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    return [_smooth_noise(folder / f"img{i}.png", i) for i in range(2)]


def _few_qualities(specs, n=3):
    # Three points per codec keep the test fast; the full sweeps are for real runs.
    return {k: type(s)(s.name, s.qualities[2:2 + n], s.encode, s.decode, s.note) for k, s in specs.items()}


def test_run_bench_measures_every_point(images):
    specs = _few_qualities(select_codecs(["jpeg", "webp", "aecodec"], available_codecs(FakeCodec())))
    results = run_bench(images, specs, repeats=2, progress=False)
    assert len(results.measurements) == 3 * 2 * 3
    m = results.measurements[0]
    assert m.bytes > 0 and m.bpp == pytest.approx(8 * m.bytes / (96 * 64))
    assert 10 < m.psnr < 60 and 0 < m.ms_ssim <= 1 and m.encode_ms >= 0
    means = [r for r in results.means() if r["codec"] == "jpeg"]
    assert len(means) == 3 and all(r["images"] == 2 for r in means)
    first = [x for x in results.measurements if x.codec == "jpeg" and x.quality == means[0]["quality"]]
    assert means[0]["psnr"] == pytest.approx(np.mean([x.psnr for x in first]))
    assert means[0]["decode_mpx_s"] == pytest.approx(96 * 64 / 1e6 / (means[0]["decode_ms"] / 1e3))
    assert set(results.peak_rss_mb) == {"jpeg", "webp", "aecodec"}
    assert results.env["threads"] == 1 and results.env["cpu"]


def test_main_bench_writes_json_csv_markdown(images, tmp_path):
    out = tmp_path / "out"
    refs = [ANCHORS / "kodak__jpeg.json"]
    main_bench([images[0].parent], ["jpeg", "webp", "aecodec"], out, refs, aecodec_codec=FakeCodec(),
               progress=False, plots=False)
    doc = json.loads((out / "results.json").read_text())
    assert {"env", "codecs", "means", "measurements", "peak_rss_mb"} <= set(doc)
    assert doc["env"]["pillow_libraries"]["webp"]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(doc["measurements"]) > 0
    assert {"codec", "image", "quality", "bytes", "bpp", "psnr", "ms_ssim", "encode_ms"} <= set(rows[0])
    summary = (out / "summary.md").read_text()
    assert "## webp" in summary and "BD-rate, PSNR" in summary and "test \\ anchor" in summary
    assert "| encode MPx/s | decode MPx/s |" in summary
    assert "| JPEG (ref) |" in summary


def test_plots_are_written(images, tmp_path):
    pytest.importorskip("matplotlib")
    specs = _few_qualities({"jpeg": available_codecs()["jpeg"]})
    out = tmp_path / "out"
    results = run_bench(images[:1], specs, progress=False)
    from aecodec.bench.report import write_report

    paths = write_report(results, out, [Curve("ref", (0.5, 1.0), (30.0, 33.0), (), True)])
    assert paths["plot_psnr"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "rd_ms_ssim_db.png").exists()


def test_unknown_codec_is_refused():
    with pytest.raises(ValueError, match="aecodec needs a model"):
        select_codecs(["aecodec"], available_codecs())


def test_bd_matrix_rows_are_tested_against_columns():
    a = Curve("a", (0.25, 0.5, 1.0), (28.0, 31.0, 34.0))
    b = Curve("b", (0.125, 0.25, 0.5), (28.0, 31.0, 34.0), reference=True)
    matrix = bd_matrix([a, b], "psnr")
    assert matrix[0][0] is None and matrix[1][0].percent == pytest.approx(-50.0)
    assert bd_matrix([a, b], "ms_ssim_db") == []  # neither has MS-SSIM


def test_load_reference_reads_compressai_json():
    jpeg = load_reference(ANCHORS / "kodak__jpeg.json")
    assert jpeg.name == "JPEG" and jpeg.reference
    assert len(jpeg.bpp) == len(jpeg.psnr) == len(jpeg.ms_ssim) == 19
    assert jpeg.psnr[0] == pytest.approx(23.779894921045457)
    # Papers publishing only MS-SSIM in dB are converted back to linear MS-SSIM.
    elic = load_reference(ANCHORS / "kodak__paper-elic2022_ms-ssim.json")
    assert not elic.psnr and elic.has("ms_ssim_db") and not elic.has("psnr")
    assert elic.quality("ms_ssim_db")[0] == pytest.approx(11.593)
    assert math.isclose(elic.ms_ssim[0], 1 - 10 ** (-1.1593))


def test_bench_imports_neither_torch_nor_matplotlib():
    code = "import sys, aecodec.bench; print(sorted({'torch', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]"


def test_readme_results_section_and_card(tmp_path):
    """bench/readme_results.py: BD-rates have the right sign and the README keeps its other text."""
    rates, psnrs = [0.25, 0.5, 1.0, 2.0], [26.0, 29.0, 32.0, 35.0]
    means = [{"codec": codec, "quality": q, "bpp": r * factor, "psnr": p, "ms_ssim": 1 - 10 ** (-p / 20)}
             for codec, factor in (("jpeg", 1.0), ("aecodec", 0.5)) for q, r, p in zip(range(4), rates, psnrs)]
    env = {"date": "2026-01-01T00:00:00", "cpu": "cpu", "threads": 1, "python": "3", "numpy": "2", "pillow": "13",
           "pillow_libraries": {}, "imagecodecs": None, "onnxruntime": "1"}
    results = {"env": env, "codecs": {"jpeg": "j", "aecodec": "a"}, "means": means,
               "measurements": [{"image": "a.png"}, {"image": "b.png"}]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    readme = tmp_path / "README.md"
    readme.write_text("# top\n<!-- results -->\nstale section\n<!-- /results -->\n## after\n<!-- training -->\n"
                      "<!-- /training -->\n")
    card = tmp_path / "manifest.json"
    card.write_text(json.dumps({
        "model_id": "x", "kodak_rd": None, "training_steps": 1234, "pixels_seen": 2.5e9, "training_seconds": 7200,
        "model_config": {"channels": 8, "latent_channels": 12, "levels": 3, "lambda_min": 0.01, "lambda_max": 0.1},
        "train_config": {"batch": 16, "crop": 128}}))
    subprocess.run([sys.executable, "-m", "bench.readme_results", "--results", str(tmp_path / "results.json"),
                    "--readme", str(readme), "--card", str(card)], check=True, cwd=Path(__file__).parents[1])
    text = readme.read_text()
    assert text.startswith("# top\n<!-- results -->") and "<!-- /results -->\n## after\n<!-- training -->" in text
    assert "1,234 steps" in text and "2.50 gigapixels" in text and "2.0 hours" in text
    assert "stale section" not in text and "| jpeg | -50.0% [26.0–35.0 dB]" in text and "2 Kodak images" in text
    rd = json.loads(card.read_text())["kodak_rd"]
    assert rd["bd_rate_psnr_percent"] == {"jpeg": -50.0} and len(rd["points"]) == 4


def test_learning_curve_compares_each_model_with_the_anchors_and_the_one_before():
    """bench/learning_curve.py and its README table: half the bits at four times the pixels, -29.3% per doubling."""
    from bench.learning_curve import compare, entry
    from bench.readme_results import learning_lines
    rates, psnrs = [0.25, 0.5, 1.0, 2.0], [26.0, 29.0, 32.0, 35.0]
    curve = lambda factor: [{"quality": q, "bpp": r * factor, "psnr": p}  # noqa: E731
                            for q, r, p in zip(range(4), rates, psnrs)]
    card = lambda steps, pixels: {"model_id": f"m{steps}", "training_steps": steps, "pixels_seen": pixels}  # noqa: E731
    models = [entry(card(1, 1e9), "a", curve(1.0), "aecodec"), entry(card(2, 2e9), "b", None, "not measured"),
              entry(card(3, 4e9), "c", curve(0.5), "aecodec-nodetail")]
    compare(models, {"jpeg": curve(2.0), "webp": curve(1.0)})
    assert [m["bd_rate_psnr_percent"] for m in models] == [
        {"jpeg": -50.0, "webp": 0.0, "previous model": None},
        {"jpeg": None, "webp": None, "previous model": None},
        {"jpeg": -75.0, "webp": -50.0, "previous model": -50.0}]
    table = learning_lines({"anchors": {"date": "2026-01-01"}, "models": models})
    assert "| m3 | 3 | 4.00 | -75.0% | -50.0% | -50.0% | -29.3% |" in table  # two doublings since m1


def test_speed_bench_times_every_stage_and_the_file_io(images, tmp_path):
    from click.testing import CliRunner

    from aecodec.cli import main
    from helpers import TINY_WEIGHTS

    out = tmp_path / "speed"
    result = CliRunner().invoke(main, ["bench", "--speed", str(images[0]), "--out", str(out), "--threads", "1",
                                       "--weights", str(TINY_WEIGHTS)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "speed.json").read_text())
    assert report["image"] == "96x64" and report["repeats"] >= 5
    for call, stages in (("compress", ("analysis", "hyper_analysis", "hyper_synthesis", "entropy_coding")),
                         ("decompress", ("hyper_synthesis", "entropy_coding", "synthesis"))):
        row = report[call]
        assert all(row[stage] > 0 for stage in stages), row
        assert sum(row[stage] for stage in stages) <= row["total"]
        # Both figures are stored to two decimals: a slow machine's 0.34 MPx/s is 0.335 before rounding.
        assert row["megapixels_per_second"] == pytest.approx(96 * 64 / 1e6 / (row["total"] / 1000), rel=1e-2,
                                                             abs=0.005)
    io_steps = report["file_io"]["steps"]
    assert set(io_steps) == {"read_image", "write_aec", "read_aec", "write_png"}
    # Each step is rounded to 0.01 ms: reading a 200-byte .aec rounds to 0 on a fast machine; all four do not.
    assert min(io_steps.values()) >= 0 and sum(io_steps.values()) > 0
    assert report["file_io"]["compress"] == pytest.approx(io_steps["read_image"] + io_steps["write_aec"], abs=0.02)
    assert report["model_load_ms"] > 0 and report["environment"]["threads"] == 1
    assert report["command_line"]["decompress_ms"] > report["decompress"]["total"]  # a whole process, start-up too
    markdown = (out / "speed.md").read_text()
    assert "| file I/O (read input, write output) |" in markdown and "Loading the model" in markdown
    assert "| one `aecodec decompress in.aec -o out.png` from a shell, start-up included |  |" in markdown


def test_bench_without_matplotlib_leaves_the_plots_out_and_says_so_first(images, tmp_path):
    done = aecodec_without(["matplotlib"], "bench", str(images[0].parent), "--codecs", "jpeg", "--out", "o",
                           cwd=tmp_path, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[0] == ("aecodec: warning: plots left out: they need matplotlib, "
                                           "from the 'bench' extra: pip install \"aecodec[bench]\"")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["results.csv", "results.json", "summary.md"]


def test_bench_refuses_a_named_codec_it_cannot_run_before_starting(images, tmp_path):
    done = aecodec_without(["imagecodecs"], "bench", str(images[0].parent), "--codecs", "jpeg,jxl", "--out", "o",
                           cwd=tmp_path, text=True, timeout=300)
    assert only_line(done, 1) == ("aecodec: error: --codecs jxl: it needs imagecodecs, from the 'bench' extra: "
                                  "pip install \"aecodec[bench]\"")
    assert not (tmp_path / "o").exists()


def test_codecs_left_out_are_named_with_the_reason(monkeypatch):
    from aecodec.bench.codecs import unavailable_codecs
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # as if not installed
    assert "jxl" not in available_codecs()
    assert unavailable_codecs()["jxl"] == "it needs imagecodecs, from the 'bench' extra: pip install \"aecodec[bench]\""


def test_rd_plot_keeps_its_legend_off_the_curves_and_names_the_image_set():
    pytest.importorskip("matplotlib")
    from aecodec.bench.plots import draw_rd
    rng = np.random.default_rng(0)
    bpp = np.linspace(0.1, 2.5, 12)
    curves = [Curve(f"codec{i}", tuple(bpp), tuple(24 + 6 * np.log2(1 + bpp * (1 + i / 4)) + rng.normal(0, .2, 12)),
                    (), i >= 6) for i in range(12)]  # a dozen curves spread over the whole plot, as on Kodak
    fig = draw_rd(curves, "psnr", title="kodak, 24 images")
    fig.draw_without_rendering()  # runs the layout, which places the legend
    ax, = fig.axes
    assert ax.get_title() == "kodak, 24 images"
    legend = (fig.legends or [ax.get_legend()])[0].get_window_extent()
    points = np.concatenate([ax.transData.transform(np.column_stack(line.get_data())) for line in ax.lines])
    inside = (points[:, 0] >= legend.x0) & (points[:, 0] <= legend.x1) & (points[:, 1] >= legend.y0) & (
        points[:, 1] <= legend.y1)
    assert not inside.any()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_bench_draws_its_progress_bar_on_a_terminal_only(images, tmp_path):
    """As batch compress does: stderr sent to a log gets the summary line, not carriage-return frames."""
    import fcntl
    import os
    import pty
    import struct
    import termios
    args = ("bench", str(images[0].parent), "--codecs", "jpeg", "--no-plots")
    logged = aecodec_without([], *args, "--out", "logged", cwd=tmp_path, text=True, timeout=300)
    assert logged.returncode == 0 and logged.stderr.endswith("\nwrote logged/summary.md (2 images)\n")
    assert "\r" not in logged.stderr and "bench:" not in logged.stderr, repr(logged.stderr)
    leader, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # tqdm draws nothing in 0 columns
    try:
        shown = aecodec_without([], *args, "--out", "shown", cwd=tmp_path, stderr=terminal, timeout=300)
        screen = os.read(leader, 65536)
    finally:
        os.close(terminal)
        os.close(leader)
    assert shown.returncode == 0 and b"\rbench: 100%" in screen, screen

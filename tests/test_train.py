"""Training runs, resumes exactly, and exports a bundle the runtime decodes."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from aecodec.codec import Codec  # noqa: E402
from aecodec.train.config import ModelConfig, TrainConfig  # noqa: E402
from aecodec.train.export import export  # noqa: E402
from aecodec.train.loop import load_checkpoint, train  # noqa: E402
from helpers import photo_like  # noqa: E402

TINY = ModelConfig(channels=8, latent_channels=12, levels=3)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        Image.fromarray(photo_like(80, 96, seed=i)).save(folder / f"p{i}.png")
    return folder


def config(photos, steps):
    return TrainConfig(data=str(photos), crop=64, batch=2, minutes=5, max_steps=steps, validation_images=2,
                       threads=1, checkpoint_minutes=100, validate_minutes=100)


def test_resume_continues_exactly(photos, tmp_path):
    straight = train(config(photos, 4), TINY, tmp_path / "straight")
    train(config(photos, 2), TINY, tmp_path / "split")
    resumed = train(config(photos, 4), None, tmp_path / "split", resume=tmp_path / "split" / "last.ckpt")
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["step"] == b["step"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_checkpoint_carries_configs_and_validation_log(photos, tmp_path):
    path = train(config(photos, 2), TINY, tmp_path)
    checkpoint = load_checkpoint(path)
    assert ModelConfig(**checkpoint["model_config"]) == TINY
    assert checkpoint["pixels_seen"] == 2 * 2 * 64 * 64
    rows = (tmp_path / "validation.csv").read_text().splitlines()
    assert rows[0].startswith("step,pixels_seen,level,bpp,psnr") and len(rows) == 1 + 4


def test_export_decodes_in_the_runtime(photos, tmp_path):
    path = train(config(photos, 2), TINY, tmp_path / "run")
    model_id = export(path, tmp_path / "bundle", photos, calibration_images=2)
    codec = Codec(tmp_path / "bundle")
    assert codec.model_id == model_id
    rgb = photo_like(40, 56, seed=9)
    assert np.asarray(codec.decompress(codec.compress(rgb, quality=30))).shape == rgb.shape


def test_extrapolated_gains_continue_the_trained_line(photos, tmp_path):
    from aecodec.train.export import extrapolate_gains
    trained = np.log(np.array([[1.0, 2.0], [2.0, 3.0], [4.0, 4.0]]))
    rows = extrapolate_gains(trained, 2)
    assert np.array_equal(rows[2:], trained)
    assert np.allclose(rows[:2], [trained[0] - 2 * (trained[1] - trained[0]), trained[0] - (trained[1] - trained[0])])


def test_extrapolated_levels_reach_lower_rates(photos, tmp_path):
    path = train(config(photos, 2), TINY, tmp_path / "run")
    bundles = []
    for extra in (0, 3):
        export(path, tmp_path / f"bundle{extra}", photos, calibration_images=2, extrapolated_levels=extra)
        codec = Codec(tmp_path / f"bundle{extra}")
        assert codec.bundle.levels == TINY.levels + extra
        rgb = photo_like(64, 64, seed=3)
        assert np.asarray(codec.decompress(codec.compress(rgb, quality=1))).shape == rgb.shape
        bundles.append(codec.bundle)
    plain, stretched = bundles
    assert np.array_equal(plain.log_gain[-1], stretched.log_gain[-1])  # quality 100 is unchanged
    assert (stretched.log_gain[0] < plain.log_gain[0]).all()  # quality 1 quantises more coarsely


def test_checkpoint_recovered_from_weights_matches_and_resumes(photos, tmp_path):
    from aecodec.train.export import prepare_for_export
    from aecodec.train.loop import model_from_checkpoint
    from aecodec.train.recover import checkpoint_from_weights
    path = train(config(photos, 3), TINY, tmp_path / "run")
    export(path, tmp_path / "bundle", photos, calibration_images=2, extrapolated_levels=2)
    recovered_path = checkpoint_from_weights(tmp_path / "bundle", tmp_path / "recovered" / "start.ckpt")
    # export clamps the GDN parameters into range; everything else must come back as trained
    original = prepare_for_export(model_from_checkpoint(load_checkpoint(path)))
    recovered = model_from_checkpoint(load_checkpoint(recovered_path)).eval()
    for name in ("analysis", "hyper_analysis", "synthesis"):
        for key, value in getattr(original, name).state_dict().items():
            assert torch.equal(value, getattr(recovered, name).state_dict()[key]), (name, key)
    assert torch.allclose(original.log_gain, recovered.log_gain)
    with torch.no_grad():
        hyper_latent = torch.round(torch.randn(1, TINY.channels, 4, 4) * 3)
        a, b = original.hyper_synthesis(hyper_latent), recovered.hyper_synthesis(hyper_latent)
        assert (a - b).abs().max() < 0.02 * a.abs().max()  # 12-bit weights, only rounding apart
        values = torch.arange(-6.0, 7.0).repeat(TINY.channels, 1)[:, None, :]
        mass = [torch.sigmoid(p.hyper_prior.logits_cdf(values + 0.5)) - torch.sigmoid(p.hyper_prior.logits_cdf(values - 0.5))
                for p in (original, recovered)]
        assert (mass[0] - mass[1]).abs().sum(-1).max() < 0.1  # refitted from the integer pmfs
    resumed = train(config(photos, 4), None, tmp_path / "recovered", resume=recovered_path)
    assert load_checkpoint(resumed)["step"] == 4


def test_cli_trains_on_from_a_weights_folder(photos, tmp_path):
    from click.testing import CliRunner

    from aecodec.cli import main
    # No step limit: the CLI run inherits the bundle's training config, and with it any max_steps.
    path = train(replace(config(photos, 0), minutes=0.005), TINY, tmp_path / "run")
    steps = load_checkpoint(path)["step"]
    export(path, tmp_path / "bundle", photos, calibration_images=2)
    args = ["train", "--data", str(photos), "--out", str(tmp_path / "again"), "--minutes", "0.01", "--threads", "1",
            "--batch-size", "2", "--crop", "64"]
    both = CliRunner().invoke(main, [*args, "--init-weights", str(tmp_path / "bundle"), "--resume", str(path)])
    assert both.exit_code != 0 and "not both" in both.output
    done = CliRunner().invoke(main, [*args, "--init-weights", str(tmp_path / "bundle")], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert (tmp_path / "again" / "from_weights.ckpt").is_file()
    assert load_checkpoint(tmp_path / "again" / "last.ckpt")["step"] > steps, done.output

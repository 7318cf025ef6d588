"""Training runs, resumes exactly, and exports a bundle the runtime decodes."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from aecodec import container  # noqa: E402
from aecodec.codec import Codec  # noqa: E402
from aecodec.model_config import ModelConfig  # noqa: E402
from aecodec.train.config import TrainConfig  # noqa: E402
from aecodec.train.export import export  # noqa: E402
from aecodec.train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint  # noqa: E402
from aecodec.train.loop import train  # noqa: E402
from helpers import cli, one_line_error, photo_like  # noqa: E402

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
    resumed = train(config(photos, 4), None, tmp_path / "split", resume=load_checkpoint(tmp_path / "split" / "last.ckpt"))
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a.step == b.step == 4
    for key, value in a.model.items():
        assert torch.equal(value, b.model[key]), key


def test_checkpoint_carries_configs_and_validation_log(photos, tmp_path):
    path = train(config(photos, 2), TINY, tmp_path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.model_config == TINY and checkpoint.train_config == config(photos, 2)
    assert checkpoint.pixels_seen == 2 * 2 * 64 * 64
    rows = (tmp_path / "validation.csv").read_text().splitlines()
    assert rows[0].startswith("step,pixels_seen,level,bpp,psnr") and len(rows) == 1 + 4
    # Photos it trained on, validated the same way beside them (issue 22, item 6): other photos, other rates.
    seen = (tmp_path / "validation_training.csv").read_text().splitlines()
    assert seen[0] == rows[0] and len(seen) == len(rows) and seen[1:] != rows[1:]


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
    resumed = train(config(photos, 4), None, tmp_path / "recovered", resume=load_checkpoint(recovered_path))
    assert load_checkpoint(resumed).step == 4


def test_cli_trains_on_from_a_weights_folder(photos, tmp_path):
    from click.testing import CliRunner

    from aecodec.cli import main
    # The bundle's training config stops at step 2; a command-line run is budgeted by time alone.
    path = train(config(photos, 2), TINY, tmp_path / "run")
    steps = load_checkpoint(path).step
    export(path, tmp_path / "bundle", photos, calibration_images=2)
    args = ["train", "--data", str(photos), "--out", str(tmp_path / "again"), "--minutes", "0.01", "--threads", "1",
            "--batch-size", "2", "--crop", "64"]
    both = CliRunner().invoke(main, [*args, "--init-weights", str(tmp_path / "bundle"), "--resume", str(path)])
    assert both.exit_code != 0 and "not both" in both.output
    done = CliRunner().invoke(main, [*args, "--init-weights", str(tmp_path / "bundle"), "--ema-decay", "0.5",
                                     "--synthetic-share", "0.5", "--lr-decay-fraction", "0.1", "--add-top-levels", "1"],
                              catch_exceptions=False)
    assert done.exit_code == 0, done.output
    trained = load_checkpoint(tmp_path / "again" / "last.ckpt")
    assert (trained.train_config.ema_decay, trained.train_config.synthetic_share,
            trained.train_config.lr_decay_fraction) == (0.5, 0.5, 0.1)
    assert trained.model_config.levels == TINY.levels + 1 and trained.ema_model is not None
    fresh = CliRunner().invoke(main, [*args, "--add-top-levels", "1"])
    assert fresh.exit_code != 0 and "give --resume or --init-weights" in fresh.output
    assert (tmp_path / "again" / "from_weights.ckpt").is_file()
    assert load_checkpoint(tmp_path / "again" / "last.ckpt").step > steps, done.output


def test_lower_bound_lets_gradient_lift_a_value_back_over_the_bound():
    from aecodec.refine_torch.model import lower_bound
    x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    bounded = lower_bound(x, 1.0)
    assert torch.equal(bounded.detach(), torch.tensor([1.0, 1.0, 2.0]))
    bounded.sum().backward()  # d/dx of +sum: descent pushes every value down
    assert torch.equal(x.grad, torch.tensor([0.0, 0.0, 1.0]))  # below the bound, no push further down
    x.grad = None
    (-lower_bound(x, 1.0).sum()).backward()  # descent pushes every value up
    assert torch.equal(x.grad, torch.tensor([-1.0, -1.0, -1.0]))  # so the gradient reaches all of them


def test_gdn_gammas_below_zero_can_come_back():
    from aecodec.refine_torch.model import SimplifiedGDN
    gdn = SimplifiedGDN(2)
    with torch.no_grad():
        gdn.gamma.fill_(-0.1)  # dead under a plain clamp
    x = torch.rand(1, 2, 4, 4) + 0.5
    gdn(x).sum().backward()  # a smaller output wants a larger normaliser: gammas should rise
    assert (gdn.gamma.grad < 0).all()  # a plain clamp gives exactly 0 here


def test_moving_average_is_kept_resumed_and_exported(photos, tmp_path):
    run = replace(config(photos, 3), ema_decay=0.5)
    path = train(run, TINY, tmp_path / "run")
    checkpoint = load_checkpoint(path)
    raw, average = checkpoint.model, checkpoint.ema_model
    assert any(not torch.equal(raw[k], average[k]) for k in raw)
    exported = model_from_checkpoint(checkpoint).state_dict()
    assert all(torch.equal(exported[k], average[k]) for k in average)
    moments = {i: state["exp_avg"].clone() for i, state in checkpoint.optimizer["state"].items()}
    resumed = load_checkpoint(train(replace(run, max_steps=4), None, tmp_path / "run", resume=checkpoint))
    assert resumed.step == 4 and resumed.ema_model is not None
    # The checkpoint handed in is left as it was, so it can start another run.
    assert all(torch.equal(moments[i], state["exp_avg"]) for i, state in checkpoint.optimizer["state"].items())


def test_learning_rate_drops_tenfold_for_the_last_part_of_the_run():
    from aecodec.train.loop import learning_rate
    run = TrainConfig(lr=1e-3, max_steps=110, lr_decay_fraction=0.2)
    assert learning_rate(run, 10, 10, 0.0) == 1e-3
    assert learning_rate(run, 89, 10, 0.0) == 1e-3
    assert learning_rate(run, 90, 10, 0.0) == pytest.approx(1e-4)
    timed = TrainConfig(lr=1e-3, minutes=10, lr_decay_fraction=0.5)
    assert learning_rate(timed, 0, 0, 299.0) == 1e-3 and learning_rate(timed, 0, 0, 301.0) == pytest.approx(1e-4)
    assert learning_rate(TrainConfig(lr=1e-3), 10**6, 0, 10**6) == 1e-3


def test_synthetic_share_mixes_graphics_into_batches(photos):
    from aecodec.train.data import CropSampler
    from aecodec.train.synthetic import synthetic_crop
    rng = np.random.default_rng(0)
    crop = synthetic_crop(rng, 48)
    assert crop.shape == (48, 48, 3) and crop.dtype == np.uint8
    assert len(np.unique(crop.reshape(-1, 3), axis=0)) > 2  # drew something on the ground
    flat = [np.full((64, 64, 3), 128, np.uint8)]
    only_photos = CropSampler(flat, 48, 1.0, synthetic_share=0.0).batch(rng, 4)
    only_graphics = CropSampler(flat, 48, 1.0, synthetic_share=1.0).batch(rng, 4)
    assert only_photos.shape == only_graphics.shape == (4, 3, 48, 48)
    assert np.all(only_photos == 128 / 255) and not np.all(only_graphics == 128 / 255)


def test_extra_top_levels_keep_the_trained_ones_and_train_on(photos, tmp_path):
    from aecodec.train.levels import with_extra_top_levels
    path = train(replace(config(photos, 2), ema_decay=0.9), TINY, tmp_path / "run")
    checkpoint = load_checkpoint(path)
    extended = with_extra_top_levels(checkpoint, 1)
    new_config = extended.model_config
    assert new_config.levels == TINY.levels + 1
    assert np.allclose(new_config.lambdas()[:-1], TINY.lambdas())  # the trained levels keep their lambdas
    assert new_config.lambdas()[-1] > TINY.lambda_max
    for key in ("model", "ema_model"):
        old, new = getattr(checkpoint, key)["log_gain"], getattr(extended, key)["log_gain"]
        assert torch.equal(new[:-1], old) and torch.allclose(new[-1], 2 * old[-1] - old[-2])
    save_checkpoint(tmp_path / "extended.ckpt", extended)
    resumed = load_checkpoint(train(replace(config(photos, 3), ema_decay=0.9), None, tmp_path / "run",
                                    resume=load_checkpoint(tmp_path / "extended.ckpt")))
    assert resumed.step == 3 and resumed.model["log_gain"].shape[0] == TINY.levels + 1


def test_widened_latent_computes_what_the_narrow_model_did_and_trains_on(photos, tmp_path):
    from aecodec.train.widen import with_wider_latent
    path = train(replace(config(photos, 2), ema_decay=0.9), TINY, tmp_path / "run")
    checkpoint = load_checkpoint(path)
    wide = with_wider_latent(checkpoint, 20)
    assert wide.model_config.latent_channels == 20
    narrow_model, wide_model = (model_from_checkpoint(c).eval() for c in (checkpoint, wide))
    x = torch.from_numpy(photo_like(64, 64, seed=5).transpose(2, 0, 1).copy()).float()[None] / 255
    level = torch.tensor([1.0])
    with torch.no_grad():
        narrow, widened = narrow_model(x, level, noise=False), wide_model(x, level, noise=False)
        latent = wide_model.analysis(x)
    assert torch.allclose(narrow["x_hat"], widened["x_hat"], atol=1e-5)
    assert latent[:, 12:].abs().max() > 0  # the new channels carry a signal to learn from
    bits = [sum(-torch.log2(lk).sum() for lk in out["likelihoods"]) for out in (narrow, widened)]
    assert torch.allclose(bits[0], bits[1], rtol=0.05)  # new channels cost next to nothing at first
    from aecodec.train.loss import rd_loss
    wide_model.train()
    rd_loss(wide_model(x, level), x, wide_model.lambdas(level))["loss"].backward()
    assert wide_model.analysis[6].weight.grad[12:].abs().sum() > 0  # the new rows can learn
    with pytest.raises(ValueError, match="already has 12"):
        with_wider_latent(checkpoint, 12)
    save_checkpoint(tmp_path / "wide.ckpt", wide)
    resumed = load_checkpoint(train(replace(config(photos, 3), ema_decay=0.9), None, tmp_path / "run",
                                    resume=load_checkpoint(tmp_path / "wide.ckpt")))
    assert resumed.step == 3 and resumed.model["analysis.6.weight"].shape[0] == 20


def test_level_balance_weighs_each_crop_and_leaves_the_logged_loss_alone(photos, tmp_path):
    from aecodec.train.loss import rd_loss
    x = torch.rand(2, 3, 8, 8)
    out = {"x_hat": x + 0.1, "likelihoods": (torch.full((2, 4), 0.5), torch.full((2, 1), 0.25))}
    lambdas = torch.tensor([0.01, 0.1])
    plain = rd_loss(out, x, lambdas)
    per_sample = lambdas * 255**2 * 0.01 + torch.tensor([6 / 64, 6 / 64])
    assert torch.allclose(plain["loss"], per_sample.mean()) and torch.equal(plain["objective"], plain["loss"])
    weighted = rd_loss(out, x, lambdas, torch.tensor([2.0, 0.5]))
    assert torch.allclose(weighted["objective"], (per_sample * torch.tensor([2.0, 0.5])).mean())
    assert torch.equal(weighted["loss"], plain["loss"])
    balanced = load_checkpoint(train(replace(config(photos, 2), level_balance=0.5), TINY, tmp_path / "b"))
    straight = load_checkpoint(train(config(photos, 2), TINY, tmp_path / "s"))
    assert balanced.train_config.level_balance == 0.5
    assert any(not torch.equal(balanced.model[k], straight.model[k]) for k in straight.model)


def bundle_files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_cli_export_records_the_data_and_replaces_a_bundle_only_with_force(photos, tmp_path, monkeypatch):
    from aecodec.bundle import read_card
    from aecodec.train.data import file_list_sha256, list_images
    monkeypatch.chdir(tmp_path)  # so that the old default --out, weights/main, could only land in here
    start = train(config(photos, 2), TINY, tmp_path / "start")
    run = tmp_path / "run"
    trained = cli("train", "--data", photos, "--out", run, "--resume", start, "--minutes", "0.01", "--threads", "1",
                  "--batch-size", "2", "--crop", "64")
    assert trained.exit_code == 0, trained.output
    args = ["export", run / "last.ckpt", "--calibration-data", photos]
    assert cli(*args).exit_code == 0
    assert not (tmp_path / "weights").exists()
    assert read_card(run / "export")["data"] == {
        "folder": str(photos), "photos": 6, "file_list_sha256": file_list_sha256(photos, list_images(photos)),
        "held_out_for_validation": 2}
    first = bundle_files(run / "export")
    refused = one_line_error(cli(*args))
    assert f"{run / 'export'} already holds a weights bundle" in refused and "-f/--force" in refused
    assert bundle_files(run / "export") == first
    assert cli(*args, "--force").exit_code == 0
    assert Codec(run / "export").model_id.hex() == read_card(run / "export")["model_id"]


def test_export_leaves_no_half_bundle_and_says_when_the_data_is_not_recorded(photos, tmp_path):
    from aecodec.bundle import read_card
    path = train(config(photos, 2), TINY, tmp_path / "run")
    old = torch.load(path, weights_only=False)  # as a checkpoint from before the data record
    del old["train_config"]["data_photos"], old["train_config"]["data_list_sha256"]
    torch.save(old, tmp_path / "old.ckpt")
    too_small = tmp_path / "small"
    too_small.mkdir()
    for stem in load_checkpoint(path).validation_stems:
        Image.fromarray(photo_like(32, 32)).save(too_small / f"{stem}.png")
    with pytest.raises(ValueError, match="no calibration photo"):  # fails after the networks are written
        export(tmp_path / "old.ckpt", tmp_path / "new", too_small, calibration_images=2)
    assert not (tmp_path / "new").exists()
    export(tmp_path / "old.ckpt", tmp_path / "bundle", photos, calibration_images=2)
    data = read_card(tmp_path / "bundle")["data"]
    assert data["folder"] == str(photos) and data["photos"] is None
    assert data["note"] == "the number of photos and their list are not recorded in the checkpoint"
    first = bundle_files(tmp_path / "bundle")
    with pytest.raises(FileExistsError, match="use -f/--force"):
        export(tmp_path / "old.ckpt", tmp_path / "bundle", photos, calibration_images=2)
    with pytest.raises(ValueError, match="no calibration photo"):
        export(tmp_path / "old.ckpt", tmp_path / "bundle", too_small, calibration_images=2, force=True)
    assert bundle_files(tmp_path / "bundle") == first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left
    mine = tmp_path / "mine"  # a folder without bundle files needs no -f, and keeps what else it holds
    mine.mkdir()
    (mine / "notes.txt").write_text("kept")
    model_id = export(tmp_path / "old.ckpt", mine, photos, calibration_images=2)
    assert Codec(mine).model_id == model_id and (mine / "notes.txt").read_text() == "kept"


def test_cli_train_says_how_many_photos_validation_holds_out(tmp_path):
    from aecodec.train.data import split_validation
    folder = tmp_path / "photos"
    folder.mkdir()
    for count in (5, 8):  # large enough to train on: holding out eight is what leaves none
        for i in range(count):
            Image.fromarray(photo_like(130, 130, seed=i)).save(folder / f"p{i}.png")
        result = cli("train", "--data", folder, "--out", tmp_path / "run", "--minutes", "0.01", "--threads", "1")
        assert one_line_error(result) == (f"aecodec: error: {count} training photos found, but 8 are held out for "
                                          "validation: training needs at least 9 (use a few hundred)")
    assert not (tmp_path / "run").exists()
    nine = [folder / f"p{i}.png" for i in range(9)]
    assert [len(part) for part in split_validation(nine, 8)] == [1, 8]


def test_compiled_gdn_layers_compute_what_the_eager_ones_do():
    """train/compiled.py: the same outputs and gradients, the same state_dict, one GDN layer per stage."""
    from aecodec.refine_torch.model import HyperpriorModel
    from aecodec.train.compiled import compile_gdn_layers
    torch.manual_seed(0)
    eager = HyperpriorModel(TINY)
    compiled = HyperpriorModel(TINY)
    compiled.load_state_dict(eager.state_dict())
    assert compile_gdn_layers(compiled) == 6  # three in the analysis, three inverse in the synthesis
    assert list(compiled.state_dict()) == list(eager.state_dict())
    x, level = torch.rand(2, 3, 64, 64), torch.tensor([0.5, 1.5])
    outputs = []
    for model in (eager, compiled):
        torch.manual_seed(1)  # the same rounding noise
        out = model(x, level)
        out["x_hat"].square().mean().backward()
        outputs.append((out["x_hat"], [p.grad for p in model.parameters()]))
    (a, grads_a), (b, grads_b) = outputs
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    assert all(torch.allclose(g, h, rtol=1e-3, atol=1e-6) for g, h in zip(grads_a, grads_b) if g is not None)


def test_cli_compiles_the_gdn_layers_for_bf16_on_a_cpu_only(monkeypatch, photos, tmp_path):
    from aecodec.train import cli_support
    seen = []
    monkeypatch.setattr(cli_support, "train", lambda config, *rest: seen.append(config.compile_gdn))
    monkeypatch.setattr(cli_support, "with_data_record", lambda config, checkpoint: config)
    common = dict(data=str(photos), out=tmp_path, minutes=0.01, resume=None, lr=None, batch=2, crop=64, channels=8,
                  latent_channels=12, threads=1, device="cpu", checkpoint_minutes=100)
    for bf16, compile_gdn in ((True, None), (False, None), (True, False), (False, True)):
        cli_support.run_training(bf16=bf16, compile_gdn=compile_gdn, **common)
    assert seen == [True, False, False, True]


def test_an_added_context_computes_what_the_model_did_then_trains_and_exports(photos, tmp_path):
    """--add-context: the last layer starts at zero, so the first step is the old model exactly; training
    resumes with Adam's old moments in place, and export writes a bundle whose files are format version 3."""
    from aecodec.train.widen import with_context
    path = train(replace(config(photos, 2), ema_decay=0.9), TINY, tmp_path / "run")
    checkpoint = load_checkpoint(path)
    grown = with_context(checkpoint, 6, 10)
    before, after = (model_from_checkpoint(c).eval() for c in (checkpoint, grown))
    x = torch.from_numpy(photo_like(64, 64, seed=5).transpose(2, 0, 1).copy()).float()[None] / 255
    level = torch.tensor([1.5])
    with torch.no_grad():
        old, new = before(x, level, noise=False), after(x, level, noise=False)
    assert torch.equal(old["x_hat"], new["x_hat"])
    assert all(torch.equal(a, b) for a, b in zip(old["likelihoods"], new["likelihoods"]))
    with pytest.raises(ValueError, match="already has a context"):
        with_context(grown, 6, 10)
    save_checkpoint(tmp_path / "context.ckpt", grown)
    resumed = load_checkpoint(train(replace(config(photos, 4), ema_decay=0.9, context_lr_scale=5.0), None,
                                    tmp_path / "run", resume=load_checkpoint(tmp_path / "context.ckpt")))
    assert resumed.step == 4 and resumed.model["context.out.weight"].abs().sum() > 0  # the context learns
    model_group, context_group = resumed.optimizer["param_groups"]  # the one group of before, split
    assert context_group["lr"] == 5 * model_group["lr"] and len(context_group["params"]) == 7
    export(tmp_path / "run" / "last.ckpt", tmp_path / "bundle", calibration_dir=photos)
    codec = Codec(tmp_path / "bundle")
    data = codec.compress(photo_like(40, 56, seed=6), quality=50)
    assert container.read_header(data).version == 3 and codec.decompress(data).size == (56, 40)
    # --init-weights rebuilds the context from its integers, and training goes on from there
    from aecodec.train.recover import checkpoint_from_weights
    recovered_path = checkpoint_from_weights(tmp_path / "bundle", tmp_path / "recovered" / "start.ckpt")
    trained, recovered = (model_from_checkpoint(load_checkpoint(p)).eval().context
                          for p in (tmp_path / "run" / "last.ckpt", recovered_path))
    inputs = [torch.randn(1, 12, 6, 6) * 2 for _ in range(3)]
    with torch.no_grad():
        want, got = (c(*inputs, c.level_bias[1:2]) for c in (trained, recovered))
    for name, a, b, before in zip(("mean", "scale"), want, got, inputs[1:]):  # changes equal to 2% of their size
        assert (a - b).abs().max() < 0.02 * (a - before).abs().max() + 1e-3, name
    resumed = train(config(photos, 6), None, tmp_path / "recovered", resume=load_checkpoint(recovered_path))
    assert load_checkpoint(resumed).step == 6

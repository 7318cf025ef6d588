"""The GPU window, dry-run on the CPU: pack, train with a budget, check every device limit, join, resume."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from aecodec.model_config import ModelConfig  # noqa: E402
from aecodec.refine_torch.model import HyperpriorModel  # noqa: E402
from aecodec.train.checkpoint import load_checkpoint  # noqa: E402
from aecodec.train.config import TrainConfig  # noqa: E402
from aecodec.train.loop import train  # noqa: E402
from helpers import ROOT, photo_like, source_tree_env  # noqa: E402
from scripts.gpu_limits import RETURN_FILES, LimitError, check_return  # noqa: E402
from scripts.gpu_pieces import fitted_checkpoint, join_pieces, write_pieces  # noqa: E402

TINY = ModelConfig(channels=8, latent_channels=12, levels=3)
# A checkpoint file's keys, as loop.py wrote them before checkpoint.py: older files must keep loading.
CHECKPOINT_KEYS = {"model", "optimizer", "ema_model", "step", "pixels_seen", "seconds_trained", "model_config",
                   "train_config", "rng", "validation_stems"}


def run(args, cwd, **env):
    result = subprocess.run(args, cwd=cwd, env=source_tree_env(**env), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    """A CPU run's checkpoint, packed, trained for a tiny window with small pieces, and joined."""
    work = tmp_path_factory.mktemp("work")
    source = work / "source"
    source.mkdir()
    for i in range(12):
        Image.fromarray(photo_like(96, 128, seed=i)).save(source / f"photo{i}.png")
    config = TrainConfig(data=str(source), crop=64, batch=2, max_steps=2, validation_images=2, threads=1,
                         ema_decay=0.9, synthetic_share=0.25, checkpoint_minutes=100, validate_minutes=100)
    start = load_checkpoint(train(config, TINY, work / "cpu"))
    packed = run([sys.executable, "-m", "scripts.gpu_pack", "--data", str(source), "--checkpoint",
                  "cpu/last.ckpt", "--out", "pack", "--crop", "64", "--synthetic", "4", "--synthetic-side", "96"],
                 cwd=work)
    dry_run = run(["bash", str(ROOT / "scripts" / "gpu_train.sh"), "0.05", "--lr", "1e-4"], cwd=work,
                  DEVICE="cpu", OUT="out", BATCH="2", CROP="64", PIECE_MB="0.1", PYTHON=sys.executable)
    joined = run([sys.executable, "-m", "scripts.gpu_join", "out", "--out", "gpu/last.ckpt"], cwd=work)
    return {"work": work, "source": source, "start": start, "packed": packed, "dry_run": dry_run, "joined": joined}


def test_pack_holds_weights_photos_and_synthetic_bank_but_not_held_out_photos(window):
    pack = window["work"] / "pack"
    stems = {p.stem for p in (pack / "photos").glob("*.jpg")}
    held_out = set(window["start"].validation_stems)
    assert len(held_out) == 2 and not stems & held_out and len(stems) == 10
    assert len(list((pack / "synthetic").glob("*.png"))) == 4
    start = load_checkpoint(pack / "start.pt")
    assert start.optimizer is None and start.ema_model is None  # one copy of the weights travels
    assert "travels: tree" in window["packed"] and "(limit 64 MiB)" in window["packed"]


def test_dry_run_checks_both_ways_and_states_the_needed_rate(window):
    out = window["dry_run"]
    assert "travels: tree" in out and "comes back: " in out
    assert "50 Gpx in a 9-minute window needs 92.6 MPx/s" in out
    files = check_return(window["work"] / "out")  # what the script checked, checked again
    assert len(files) <= RETURN_FILES and sum(name.startswith("last.ckpt.part") for name, _ in files) >= 2
    assert all(size <= 0.1 * 2**20 for name, size in files if ".part" in name)
    manifest = json.loads((window["work"] / "out" / "last.ckpt.json").read_text())
    assert manifest["kept"] == "Adam moments in fp32"


def test_joined_checkpoint_has_the_keys_and_continues_the_cpu_run(window):
    path = window["work"] / "gpu" / "last.ckpt"
    start, gpu = window["start"], load_checkpoint(path)
    assert set(torch.load(path, weights_only=False)) == CHECKPOINT_KEYS
    assert gpu.step > start.step
    assert gpu.pixels_seen == start.pixels_seen + (gpu.step - start.step) * 2 * 64 * 64
    assert gpu.ema_model is not None and gpu.optimizer["state"]
    assert gpu.validation_stems == start.validation_stems
    # The CPU run's own settings come back, the window only recorded beside them.
    assert gpu.train_config.batch == 2 and gpu.train_config.lr == start.train_config.lr
    assert gpu.train_config.extra["gpu_windows"][-1]["lr"] == 1e-4


def test_cli_resumes_the_joined_checkpoint(window):
    work = window["work"]
    run([sys.executable, "-m", "aecodec", "train", "--resume", "gpu/last.ckpt", "--data", str(window["source"]),
         "--out", "again", "--minutes", "0.02", "--threads", "1"], cwd=work)
    gpu, resumed = load_checkpoint(work / "gpu" / "last.ckpt"), load_checkpoint(work / "again" / "last.ckpt")
    assert resumed.step > gpu.step
    assert resumed.validation_stems == gpu.validation_stems


def test_checkpoint_sheds_adam_moments_before_it_would_not_come_back(window, tmp_path):
    checkpoint = load_checkpoint(window["work"] / "gpu" / "last.ckpt")
    full, kept = fitted_checkpoint(checkpoint, piece_bytes=2**20)
    assert kept == "Adam moments in fp32"
    # Pieces so small that six (eight files less the manifest and the log) cannot hold it all.
    piece = len(full) // 6 - 1
    data, kept = fitted_checkpoint(checkpoint, piece_bytes=piece)
    assert kept == "Adam moments in bf16" and len(data) <= 6 * piece
    with pytest.raises(LimitError):
        fitted_checkpoint(checkpoint, piece_bytes=len(full) // 40)
    with pytest.raises(LimitError):
        fitted_checkpoint(checkpoint, piece_bytes=16 * 2**20)  # a 16 MiB file does not come back
    write_pieces(data, tmp_path / "out", {}, piece_bytes=piece)
    joined = load_checkpoint(join_pieces(tmp_path / "out", tmp_path / "last.ckpt"))
    model = HyperpriorModel(TINY)
    optimizer = torch.optim.Adam(model.parameters())
    optimizer.load_state_dict(joined.optimizer)  # bf16 moments come back as the fp32 Adam's own
    assert all(s["exp_avg"].dtype == torch.float32 for s in optimizer.state.values())


def test_join_refuses_a_damaged_piece(window, tmp_path):
    out = tmp_path / "out"
    write_pieces(b"x" * 1000, out, {}, piece_bytes=300)
    (out / "last.ckpt.part1").write_bytes(b"y" * 300)
    with pytest.raises(ValueError, match="part1"):
        join_pieces(out, tmp_path / "last.ckpt")
    assert not (tmp_path / "last.ckpt").exists()


def test_return_check_names_what_would_not_come_back(tmp_path):
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("x")
    (tmp_path / "bad name.txt").write_text("x")
    with pytest.raises(LimitError) as error:
        check_return(tmp_path)
    assert "folders down" in str(error.value) and "bad name.txt" in str(error.value)


def windows(picture, crop):
    """Every crop x crop window of picture, flipped every way: what an unscaled device crop may be."""
    h, w = picture.shape[:2]
    found = set()
    for top in range(h - crop + 1):
        for left in range(w - crop + 1):
            window = picture[top:top + crop, left:left + crop]
            for flipped in (window, window[::-1], window[:, ::-1], window[::-1, ::-1]):
                found.add(flipped.tobytes())
    return found


def test_device_crops_are_flipped_windows_of_the_pictures():
    from scripts.gpu_crops import DeviceCrops
    photos = [photo_like(40, 44, seed=1), photo_like(36, 38, seed=2)]
    synthetic = [photo_like(34, 34, seed=3)]
    crops = DeviceCrops(photos, synthetic, crop=32, min_scale=1.0, synthetic_share=0.3, device="cpu")
    batch = crops.batch(24, torch.Generator().manual_seed(0))
    assert batch.shape == (24, 3, 32, 32) and batch.is_contiguous(memory_format=torch.channels_last)
    allowed = set().union(*(windows(p, 32) for p in photos + synthetic))
    patches = (batch.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert all(patch.tobytes() in allowed for patch in patches)
    assert any(patch.tobytes() in windows(synthetic[0], 32) for patch in patches)
    # Scaled windows are resampled: values stay in range, and they are no longer plain copies.
    scaled = DeviceCrops(photos, [], crop=32, min_scale=0.6, synthetic_share=0.0, device="cpu")
    batch = scaled.batch(24, torch.Generator().manual_seed(0))
    assert 0 <= batch.min() and batch.max() <= 1
    patches = (batch.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert sum(patch.tobytes() not in allowed for patch in patches) > 0


class FixedCrops:
    """DeviceCrops' batch() without the randomness: the same crops every step."""

    def __init__(self, x):
        self.x = x

    def batch(self, count, generator):
        return self.x


def test_window_steps_through_the_cpu_loops_train_step():
    """scripts/gpu_train.py's Trainer steps as the CPU loop does (level balance, clipping, Adam, moving
    average): from the same weights, crops and levels, the same weights come out."""
    from aecodec.train import loop
    from aecodec.train.distributed import Ranks
    from scripts.gpu_train import Trainer
    config = TrainConfig(batch=2, crop=64, ema_decay=0.9, level_balance=0.5, device="cpu")
    x = torch.from_numpy(np.stack([photo_like(64, 64, seed=i) for i in range(2)]).transpose(0, 3, 1, 2).copy())
    x = (x.float() / 255).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(config.seed)  # the same initial weights as start_run's
    window = Trainer(None, TINY, config, FixedCrops(x), use_compile=False)
    run = loop.start_run(config, TINY, None, Ranks(), "cpu")
    losses, generator = loop.step_losses(run.model, run.model, config), torch.Generator().manual_seed(config.seed)
    for i in range(3):
        torch.manual_seed(i)  # the rounding noise: torch's global generator
        window.step(1e-2)
        level = torch.rand(2, generator=generator) * (TINY.levels - 1)  # what the Trainer drew
        torch.manual_seed(i)
        loop.train_step(run, losses, (x, level), config, 1e-2)
    assert window.run.step == run.step == 3 and window.run.pixels_seen == run.pixels_seen
    for ours, theirs in ((window.run.model, run.model), (window.run.average, run.average)):
        for key, value in ours.state_dict().items():
            assert torch.equal(value, theirs.state_dict()[key]), key


def test_a_divergence_returns_weights_and_counters_to_the_last_snapshot():
    from scripts.gpu_train import Trainer
    config = TrainConfig(batch=2, crop=64, ema_decay=0.9, device="cpu")
    x = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    window = Trainer(None, TINY, config, FixedCrops(x), use_compile=False)
    window.step(1e-2)
    kept, weights = window.snapshot(), {k: v.clone() for k, v in window.run.average.state_dict().items()}
    window.step(1e-2)
    window.step(1e-2)
    window.restore(kept)
    assert (window.run.step, window.run.pixels_seen) == (1, 2 * 64 * 64)
    assert all(torch.equal(v, weights[k]) for k, v in window.run.average.state_dict().items())

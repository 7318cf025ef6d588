"""Checkpoints: files written by every earlier version load, and what is saved comes back as it was."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aecodec.train.checkpoint import (  # noqa: E402
    Checkpoint, load_checkpoint, model_from_checkpoint, rng_state, save_checkpoint)
from aecodec.model_config import ModelConfig  # noqa: E402
from aecodec.refine_torch.model import HyperpriorModel  # noqa: E402
from aecodec.train.config import TrainConfig  # noqa: E402

TINY = ModelConfig(channels=8, latent_channels=12, levels=3)


def plain_dict(**changes) -> dict:
    """A checkpoint as loop.py wrote it before checkpoint.py existed: a dict with these keys."""
    model = HyperpriorModel(TINY)
    state = {"model": model.state_dict(), "optimizer": torch.optim.Adam(model.parameters()).state_dict(),
             "ema_model": None, "step": 7, "pixels_seen": 7 * 2 * 64 * 64, "seconds_trained": 1.5,
             "model_config": TINY.to_dict(), "train_config": TrainConfig(batch=2).to_dict(),
             "rng": rng_state(np.random.default_rng(0)), "validation_stems": ["p0", "p1"]}
    return {**state, **changes}


def test_a_plain_dict_checkpoint_loads_and_saves_back_the_same_keys(tmp_path):
    state = plain_dict()
    torch.save(state, tmp_path / "old.ckpt")
    checkpoint = load_checkpoint(tmp_path / "old.ckpt")
    assert checkpoint.model_config == TINY and checkpoint.train_config == TrainConfig(batch=2)
    assert (checkpoint.step, checkpoint.pixels_seen, checkpoint.validation_stems) == (7, 7 * 2 * 64 * 64, ["p0", "p1"])
    save_checkpoint(tmp_path / "again.ckpt", checkpoint)
    again = torch.load(tmp_path / "again.ckpt", weights_only=False)
    assert set(again) == set(state)
    assert again["model_config"] == state["model_config"] and again["train_config"] == state["train_config"]
    assert all(torch.equal(again["model"][k], v) for k, v in state["model"].items())
    assert not (tmp_path / "again.ckpt.tmp").exists()


def test_the_first_checkpoints_load_without_the_fields_added_since(tmp_path):
    state = plain_dict()
    for later in ("seconds_trained", "ema_model", "validation_stems"):
        del state[later]
    del state["train_config"]["ema_decay"], state["train_config"]["synthetic_share"]
    torch.save(state, tmp_path / "first.ckpt")
    checkpoint = load_checkpoint(tmp_path / "first.ckpt")
    assert checkpoint.seconds_trained == 0.0 and checkpoint.ema_model is None and checkpoint.validation_stems is None
    assert checkpoint.train_config.ema_decay == TrainConfig.ema_decay


def test_the_network_is_the_moving_average_where_there_is_one():
    raw = HyperpriorModel(TINY).state_dict()
    average = {k: v + 1 if v.is_floating_point() else v for k, v in raw.items()}
    checkpoint = Checkpoint.from_dict(plain_dict(model=raw, ema_model=average))
    assert torch.equal(model_from_checkpoint(checkpoint).log_gain, average["log_gain"])
    assert torch.equal(model_from_checkpoint(checkpoint, averaged=False).log_gain, raw["log_gain"])

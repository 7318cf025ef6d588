"""Two CPU processes train one model over gloo, as torchrun would start them.

Both ranks must end with the same weights, a split run must resume exactly, and rank 0
alone writes; pixels_seen counts both ranks' crops.
"""

import multiprocessing
import os
import socket

import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from aecodec.model_config import ModelConfig  # noqa: E402
from aecodec.train.config import TrainConfig  # noqa: E402
from aecodec.train.checkpoint import load_checkpoint  # noqa: E402
from helpers import photo_like  # noqa: E402

TINY = ModelConfig(channels=8, latent_channels=12, levels=3)
WORLD = 2
BATCH, CROP = 2, 64


def config(photos, steps):
    return TrainConfig(data=str(photos), crop=CROP, batch=BATCH, minutes=5, max_steps=steps, validation_images=2,
                       threads=1, checkpoint_minutes=100, validate_minutes=100)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def rank_main(rank, ports, photos, out):
    """One rank: torchrun's environment, then three runs (straight, first half, resumed half)."""
    from aecodec.train import loop

    built = []

    class Remembered(loop.HyperpriorModel):  # keeps a handle on the model train() builds, to compare ranks
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    loop.HyperpriorModel = Remembered
    os.environ.update(MASTER_ADDR="127.0.0.1", WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank),
                      OMP_NUM_THREADS="1")
    runs = [("straight", 4, TINY, None), ("split", 2, TINY, None), ("split", 4, None, f"{out}/split/last.ckpt")]
    for port, (name, steps, model_config, resume) in zip(ports, runs):
        os.environ["MASTER_PORT"] = str(port)  # each run starts and ends its own process group
        checkpoint = load_checkpoint(resume) if resume else None
        loop.train(config(photos, steps), model_config, f"{out}/{name}", resume=checkpoint)
        torch.save(built[-1].state_dict(), f"{out}/{name}_rank{rank}.pt")


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory):
    photos = tmp_path_factory.mktemp("photos")
    for i in range(6):
        Image.fromarray(photo_like(80, 96, seed=i)).save(photos / f"p{i}.png")
    out = tmp_path_factory.mktemp("runs")
    context = multiprocessing.get_context("spawn")
    ports = free_ports(3)
    ranks = [context.Process(target=rank_main, args=(rank, ports, str(photos), str(out))) for rank in range(WORLD)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=600)
    for process in ranks:
        if process.is_alive():  # a hung collective: fail rather than hang the suite
            process.terminate()
    assert [p.exitcode for p in ranks] == [0] * WORLD
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_both_ranks_hold_identical_weights(two_rank_runs):
    for name in ("straight", "split"):
        assert_same(torch.load(two_rank_runs / f"{name}_rank0.pt"), torch.load(two_rank_runs / f"{name}_rank1.pt"))


def test_two_rank_run_resumes_exactly(two_rank_runs):
    straight = load_checkpoint(two_rank_runs / "straight" / "last.ckpt")
    resumed = load_checkpoint(two_rank_runs / "split" / "last.ckpt")
    assert straight.step == resumed.step == 4
    assert_same(straight.model, resumed.model)
    assert_same(straight.model, torch.load(two_rank_runs / "straight_rank0.pt"))


def test_each_rank_draws_its_own_crops_and_all_are_counted(two_rank_runs):
    checkpoint = load_checkpoint(two_rank_runs / "straight" / "last.ckpt")
    assert checkpoint.pixels_seen == 4 * WORLD * BATCH * CROP * CROP
    streams = [state["numpy"]["state"] for state in checkpoint.rng["ranks"]]
    assert len(streams) == WORLD and streams[0] != streams[1]
    assert checkpoint.rng["numpy"] == checkpoint.rng["ranks"][0]["numpy"]


def test_only_rank_zero_writes_logs(two_rank_runs):
    rows = (two_rank_runs / "straight" / "validation.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # one header, one row per validated level: no second rank's copy

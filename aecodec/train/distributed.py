"""Several processes train one model: torchrun's ranks, DistributedDataParallel, rank 0's clock.

Under torchrun every process sees WORLD_SIZE, RANK and LOCAL_RANK::

    torchrun --nproc_per_node 2 -m aecodec train --out runs/ddp                 # 2 CPU processes, gloo
    torchrun --nproc_per_node 8 -m aecodec train --device cuda --out runs/ddp   # 8 GPUs, NCCL

Each rank draws its own crops (its own seed) and DDP averages the gradients, so every
rank holds the same weights after every step; --batch-size is per rank. What the clock
decides (stop, save, validate, the learning-rate schedule) is rank 0's, broadcast: a rank
that stopped on its own clock would leave the others waiting in a collective for good.
Without WORLD_SIZE (or with 1) everything here is a no-op and training runs as before.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process group was started here, so it is ended here too

    @property
    def leader(self) -> bool:
        """Rank 0 alone writes checkpoints, CSV logs and the progress bar."""
        return self.rank == 0


def start(device: str) -> tuple[Ranks, str]:
    """Join the process group torchrun describes (if any); return the ranks and this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), device
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if cuda else "gloo")
    return Ranks(rank, world, local_rank, owns), device


def finish(ranks: Ranks) -> None:
    """Wait until rank 0 has written everything, then leave the group if it was started here."""
    if ranks.world > 1:
        dist.barrier()
        if ranks.owns_group:
            dist.destroy_process_group()


def wrap(model: torch.nn.Module, ranks: Ranks, device: str) -> torch.nn.Module:
    """The module to call for training steps: DDP averages its gradients across ranks."""
    if ranks.world == 1:
        return model
    # The GDN's 1x1 gammas in channels_last have strides DDP's buckets do not expect; for a
    # 1x1 kernel both layouts are the same memory, so the warning it raises says nothing.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DistributedDataParallel(model, device_ids=[torch.device(device).index] if device.startswith("cuda")
                                   else None)


def leader_values(values: list[float], ranks: Ranks, device: str) -> list[float]:
    """Rank 0's values, on every rank."""
    if ranks.world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def gather(value: object, ranks: Ranks) -> list:
    """Every rank's value (any picklable object), in rank order, on every rank."""
    if ranks.world == 1:
        return [value]
    values = [None] * ranks.world
    dist.all_gather_object(values, value)
    return values


def seed_rank(seed: int, ranks: Ranks, step: int = 0) -> np.random.Generator:
    """This rank's crop stream; torch's generator (the rounding noise) is re-seeded to match.

    Rank 0 of a fresh run keeps the single-process seeds, so a one-rank run is unchanged.
    """
    if ranks.rank == 0 and step == 0:
        return np.random.default_rng(seed)
    sequence = np.random.SeedSequence([seed, ranks.rank, step])
    torch.manual_seed(int(sequence.generate_state(1, np.uint64)[0]))
    return np.random.default_rng(sequence)


def saved_rng(rng: dict, ranks: Ranks) -> dict | None:
    """This rank's random state in a checkpoint: exact when the run had as many ranks.

    The top level is rank 0's (a checkpoint from one process has no other), so any run
    can continue rank 0's stream; other ranks of a run that changed size start afresh.
    """
    per_rank = rng.get("ranks")
    if per_rank and len(per_rank) == ranks.world:
        return per_rank[ranks.rank]
    return rng if ranks.rank == 0 else None


def merged_rng(states: list[dict]) -> dict:
    """The checkpoint's "rng": rank 0's state, plus every rank's when there are several."""
    return states[0] if len(states) == 1 else {**states[0], "ranks": states}

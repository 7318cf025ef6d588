"""The training step under each memory allocator: glibc's malloc, tcmalloc and jemalloc.

    python -m bench.train_malloc            # bench/results/train_malloc.json (run with nothing else on the machine)

Each allocator gets a fresh process (an allocator is chosen when a process starts: LD_PRELOAD),
which times the loop's own step, loop.sampled_batch then loop.train_step, as `aecodec train` runs it:
the long run's settings (batch 4 of 256x256 crops, bf16 where the CPU has it, compiled GDN layers,
the moving average, 15% synthetic crops), from --checkpoint (default runs/main/last.ckpt) or a fresh
model, on a quarter of the training photos. The first 10 steps are warm-up and not counted.
aecodec/train/malloc.py makes `aecodec train` use tcmalloc from this result.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from aecodec.train.malloc import LIBRARY, library_path

LIBRARIES = {"glibc": None, "tcmalloc": LIBRARY, "jemalloc": "libjemalloc.so.2"}


def time_steps(checkpoint: Path | None, steps: int, warmup: int = 10) -> dict:
    """Seconds per training step, median and mean, in this process."""
    import torch

    from aecodec.model_config import ModelConfig
    from aecodec.refine_torch.precision import fast_bf16_cpu
    from aecodec.train import distributed
    from aecodec.train.checkpoint import load_checkpoint
    from aecodec.train.compiled import compile_gdn_layers
    from aecodec.train.config import TrainConfig
    from aecodec.train.data import CropSampler, list_images, split_validation
    from aecodec.train.loop import load_photos, sampled_batch, start_run, step_losses, train_step

    torch.set_num_threads(2)
    resume = load_checkpoint(checkpoint) if checkpoint and checkpoint.exists() else None
    config = TrainConfig(crop=256, batch=4, ema_decay=0.999, synthetic_share=0.15, level_balance=0.5,
                         bf16=fast_bf16_cpu(), compile_gdn=True, threads=2, lr=1e-4)
    ranks, device = distributed.start("cpu")
    run = start_run(config, resume.model_config if resume else ModelConfig(), resume, ranks, device)
    compile_gdn_layers(run.model)
    paths, _ = split_validation(list_images(config.data), 8, resume.validation_stems if resume else None)
    sampler = CropSampler(load_photos(paths[::4], config, "photos", True), config.crop, config.min_scale,
                          config.synthetic_share)
    losses = step_losses(run.model, run.model, config)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        metrics = train_step(run, losses, sampled_batch(run, sampler, config), config, config.lr)
        float(metrics["loss"].detach().mean())
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return {"seconds_per_step_median": round(statistics.median(times), 4),
            "seconds_per_step_mean": round(statistics.mean(times), 4), "steps": steps, "bf16": config.bf16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/main/last.ckpt"))
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("bench/results/train_malloc.json"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_steps(args.checkpoint, args.steps)))
        return
    from aecodec.bench.runner import cpu_model
    results = {}
    for name, library in LIBRARIES.items():
        path = library_path(name=library) if library else None
        if library and path is None:
            results[name] = {"error": f"{library} is not installed"}
            continue
        env = {**os.environ, **({"LD_PRELOAD": path} if path else {})}
        child = subprocess.run([sys.executable, "-m", "bench.train_malloc", "--child", "--checkpoint",
                                str(args.checkpoint), "--steps", str(args.steps)],
                               env=env, capture_output=True, text=True, check=True)
        results[name] = json.loads(child.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    args.out.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_model(), "threads": 2,
        "checkpoint": str(args.checkpoint), "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()

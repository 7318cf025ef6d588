"""Training throughput of the shipped architecture, in megapixels per second, per configuration.

    python -m bench.train_throughput --out bench/results/train_throughput.json

Run it with nothing else on the machine: timings taken beside a training run are worthless.
Every configuration trains the same model on the same random crops for a few steps;
the first steps (warm-up, compilation) are not timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from aecodec.bench.runner import cpu_model
from aecodec.model_config import ModelConfig
from aecodec.refine_torch.model import HyperpriorModel
from aecodec.refine_torch.precision import fast_bf16_cpu
from aecodec.train.compiled import compile_gdn_layers
from aecodec.train.loss import rd_loss

# Names are used on the command line (comma-separated), so they hold no commas.
CONFIGS = {
    "fp32-eager": {"bf16": False, "channels_last": False, "compile": False, "compile_gdn": False},
    "fp32-channels-last": {"bf16": False, "channels_last": True, "compile": False, "compile_gdn": False},
    "bf16-channels-last": {"bf16": True, "channels_last": True, "compile": False, "compile_gdn": False},
    "fp32-compile": {"bf16": False, "channels_last": False, "compile": True, "compile_gdn": False},
    "bf16-channels-last-compile": {"bf16": True, "channels_last": True, "compile": True, "compile_gdn": False},
    # `aecodec train`'s default for bf16 on a CPU: only the GDN layers compiled (aecodec/train/compiled.py).
    "fp32-channels-last-compiled-gdn": {"bf16": False, "channels_last": True, "compile": False, "compile_gdn": True},
    "bf16-channels-last-compiled-gdn": {"bf16": True, "channels_last": True, "compile": False, "compile_gdn": True},
}


def time_config(model_config: ModelConfig, batch: int, crop: int, steps: int, warmup: int, **opts) -> dict:
    torch.manual_seed(0)
    model = HyperpriorModel(model_config)
    x = torch.rand(batch, 3, crop, crop)
    if opts["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    if opts["compile_gdn"]:
        compile_gdn_layers(model)
    forward = torch.compile(model) if opts["compile"] else model
    level = torch.rand(batch) * (model_config.levels - 1)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        out = forward(x, level, bf16=opts["bf16"])
        loss = rd_loss(out, x, model.lambdas(level))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    step = statistics.median(times)
    return {"seconds_per_step": round(step, 3), "megapixels_per_second": round(batch * crop * crop / step / 1e6, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/train_throughput.json")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated, from: " + ", ".join(CONFIGS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model_config = ModelConfig()
    results = {}
    for name in names:
        try:
            results[name] = time_config(model_config, args.batch, args.crop, args.steps, warmup=2, **CONFIGS[name])
        except Exception as error:  # a configuration this machine cannot run is reported, not fatal
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        print(name, results[name], flush=True)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_model(),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_has_fast_bf16": fast_bf16_cpu(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "model_config": model_config.to_dict(), "batch": args.batch, "crop": args.crop, "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

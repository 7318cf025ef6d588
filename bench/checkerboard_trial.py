"""Does a checkerboard context model pay for the shipped model? A go/no-go before format version 3.

    nice -n 10 python -m bench.checkerboard_trial --checkpoint runs/main/last.ckpt --minutes 30
    nice -n 10 python -m bench.checkerboard_trial --checkpoint runs/main/last.ckpt --joint-steps 2000

Issue 22 asks for a two-pass checkerboard context (He et al., CVPR 2021) on top of the mean-scale
hyperprior, kept only if an equal-pixel comparison on the held-out training photos shows it better.
This is the first stage the issue describes: the analysis, synthesis and hyperprior stay frozen (the
moving average of the checkpoint) and only the context network trains. Both sides of the comparison
are then the same frozen model, so they have seen the same pixels; the context trains on the pixels
reported beside it.

The latent is split in a checkerboard. Anchors ((row + column) even) are coded as today, with the
hyperprior's mean and scale. The other half gets its mean and scale from the hyperprior plus a small
network over the decoded anchors: a 5x5 convolution that only reads anchors (12 taps), then two 1x1
layers over it and the hyperprior's mean and scale, with a bias per rate level (the decoder knows the
quality from the header). Its last layer starts at zero, so step 0 is today's model exactly.

Trained on rate alone: with the straight-through rounding the reconstruction round(y - mean) + mean
passes no gradient to the mean. Evaluated with hard rounding on the run's 8 held-out photos (centre
crops of at most 512, never Kodak) at three rate levels: bits (hyper-latent, anchors, the rest) and
PSNR after the frozen synthesis, with and without the context. Rates are the Gaussian model's, not
the entropy coder's tables: close, and the same for both sides.

Stage two (--joint-steps) trains every part together, as the main loop does (batch 4 of 256, level
balance 0.5, Adam and the moving average carried on from the checkpoint), in four arms from the same
checkpoint on the same crops, levels and noise: without the context (base), with the context of stage
one, without it but with the latent's rate measured on the rounded residual instead of added noise
(issue 22, item 3), and with a penalty on the error's steps across 16-pixel block boundaries (item 5).
The moving averages are compared at four levels by BD-rate (PSNR) against base, and by the grid ratio
of bench/grid.py's smooth pictures at the two lowest levels.
The context's weights pass between the stages in --context-weights, outside the repository.
--whiteness only measures how much the anchors could tell a non-anchor (see whiteness()).

--ablation measures a checkpoint whose model has its own context (the long run since step 193,329,
aecodec train --add-context): bits and PSNR at the four levels with its context and with the context
left out (the non-anchors then take the hyperprior's mean and scale), and the BD-rate between them. It
says what the context does in that model; it is not an equal-pixel comparison of training with and
without one (stage two is).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aecodec.metrics import bd_rate, grid_ratio
from aecodec.refine_torch.checkerboard import CheckerboardContext, anchor_mask
from aecodec.refine_torch.model import HyperpriorModel, gaussian_likelihood, quantize, round_ste
from aecodec.refine_torch.precision import fast_bf16_cpu
from aecodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from aecodec.train.data import CropSampler, list_images, load_photo, split_validation
from aecodec.train.loop import centre_crop, update_average
from aecodec.train.loss import level_weights, rd_loss
from bench.grid import as_batch, as_picture, smooth_images

EVAL_LEVELS = (0.0, 3.5, 7.0)  # the lowest, middle and highest trained lambda of the shipped model
JOINT_LEVELS = (0.0, 7 / 3, 14 / 3, 7.0)  # four points for a BD-rate between the arms
GRID_WEIGHT = 0.5  # the grid arm's weight on boundary_step_error beside the MSE


def frozen_parts(model: HyperpriorModel, x: torch.Tensor, level: torch.Tensor, bf16: bool):
    """(gained latent, rounded hyper-latent, mean, scale) of the frozen model, as the codec makes them."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    gain, _ = model.gains(level)
    with torch.no_grad():
        with autocast:
            latent = model.analysis(x)
        latent = latent.float() * gain
        with autocast:
            hyper_latent = torch.round(model.hyper_analysis(latent).float())
            params = model.hyper_synthesis(hyper_latent)
        mean, scale = params.float().chunk(2, 1)
    return latent, hyper_latent, mean, scale


def two_pass(model: HyperpriorModel, context: CheckerboardContext | None, latent, mean, scale, level,
             noise: bool) -> dict:
    """Bits of each half (B,) and the decoded latent; context None: today's one pass."""
    anchors = anchor_mask(*latent.shape[2:], latent.device)
    residual = torch.round(latent - mean)
    anchor_bits = -torch.log2(gaussian_likelihood(quantize(latent - mean, noise), scale)) * anchors
    decoded = residual + mean
    if context is not None:
        level_bias = model.interpolate(context.level_bias, level)
        mean, scale = context(decoded * anchors, mean, scale, level_bias)
    rest = 1 - anchors
    rest_bits = -torch.log2(gaussian_likelihood(quantize(latent - mean, noise), scale)) * rest
    decoded = decoded * anchors + (torch.round(latent - mean) + mean) * rest
    return {"anchor_bits": anchor_bits.flatten(1).sum(1), "rest_bits": rest_bits.flatten(1).sum(1),
            "decoded": decoded}


def joint_forward(model: HyperpriorModel, context: CheckerboardContext | None, x: torch.Tensor,
                  level: torch.Tensor, bf16: bool, rounded_rate: bool = False) -> dict:
    """HyperpriorModel.forward with the non-anchors' mean and scale from the context, for training every
    part together (noise in the rates, straight-through rounding in the reconstruction, as the loop
    trains); context None computes exactly HyperpriorModel.forward. rounded_rate: the latent's rate is
    measured on the straight-through rounded residual, as it is coded, instead of on added noise
    (issue 22, item 3; the hyper-latent keeps its noise)."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    gain, inverse_gain = model.gains(level)
    with autocast:
        latent = model.analysis(x)
    latent = latent.float() * gain
    with autocast:
        hyper_latent = model.hyper_analysis(latent)
    hyper_latent = hyper_latent.float()
    hyper_likelihood = model.hyper_prior.likelihood(quantize(hyper_latent, True))
    with autocast:
        params = model.hyper_synthesis(round_ste(hyper_latent))
    mean, scale = params.float().chunk(2, dim=1)
    if context is not None:
        anchors = anchor_mask(*latent.shape[2:], latent.device)
        decoded_anchors = (round_ste(latent - mean) + mean) * anchors
        context_mean, context_scale = context(decoded_anchors, mean, scale,
                                              model.interpolate(context.level_bias, level))
        mean = mean * anchors + context_mean * (1 - anchors)
        scale = scale * anchors + context_scale * (1 - anchors)
    residual = round_ste(latent - mean) if rounded_rate else quantize(latent - mean, True)
    latent_likelihood = gaussian_likelihood(residual, scale)
    with autocast:
        x_hat = model.synthesis((round_ste(latent - mean) + mean) * inverse_gain)
    return {"x_hat": x_hat.float(), "likelihoods": (latent_likelihood, hyper_likelihood)}


@torch.no_grad()
def evaluate(model: HyperpriorModel, context: CheckerboardContext, photos: list[np.ndarray]) -> list[dict]:
    """Per level: bpp of each part and PSNR, mean over photos, with and without the context."""
    rows = []
    for level_value in EVAL_LEVELS:
        sums = {}
        for photo in photos:
            crop = centre_crop(photo, 512)
            x = as_batch(crop)
            level = torch.full((1,), level_value)
            latent, hyper_latent, mean, scale = frozen_parts(model, x, level, bf16=False)
            hyper_bits = -torch.log2(model.hyper_prior.likelihood(hyper_latent)).sum().item()
            pixels = crop.shape[0] * crop.shape[1]
            for name, ctx in (("base", None), ("context", context)):
                coded = two_pass(model, ctx, latent, mean, scale, level, noise=False)
                _, inverse_gain = model.gains(level)
                x_hat = model.synthesis(coded["decoded"] * inverse_gain).clamp(0, 1)
                mse = (x_hat - x).pow(2).mean().item()
                for key, value in (("hyper_bpp", hyper_bits / pixels),
                                   ("anchor_bpp", coded["anchor_bits"].item() / pixels),
                                   ("rest_bpp", coded["rest_bits"].item() / pixels),
                                   ("psnr", -10 * math.log10(mse))):
                    sums.setdefault(f"{name}_{key}", []).append(value)
        row = {"level": level_value, **{k: float(np.mean(v)) for k, v in sums.items()}}
        for name in ("base", "context"):
            row[f"{name}_bpp"] = row[f"{name}_hyper_bpp"] + row[f"{name}_anchor_bpp"] + row[f"{name}_rest_bpp"]
        row["rate_change_percent"] = 100 * (row["context_bpp"] / row["base_bpp"] - 1)
        row["psnr_change_db"] = row["context_psnr"] - row["base_psnr"]
        rows.append(row)
    return rows


@torch.no_grad()
def whiteness(model: HyperpriorModel, photos: list[np.ndarray]) -> list[dict]:
    """How much a non-anchor's neighbours could tell about it, by level (EVAL_LEVELS), over the held-out
    photos: the correlation of its residual (latent - mean) with the mean of its 4 anchor neighbours'
    rounded residuals, and that of its |residual| / scale with the same for the neighbours."""
    rows = []
    for level_value in EVAL_LEVELS:
        pairs = {"residual": ([], []), "magnitude": ([], [])}
        for photo in photos:
            x = as_batch(centre_crop(photo, 512))
            latent, _, mean, scale = frozen_parts(model, x, torch.full((1,), level_value), bf16=False)
            residual = latent - mean
            rest = anchor_mask(*latent.shape[2:], latent.device)[0, 0] == 0
            for name, own, neighbours in (("residual", residual, torch.round(residual)),
                                          ("magnitude", residual.abs() / scale, torch.round(residual).abs() / scale)):
                padded, (height, width) = F.pad(neighbours, (1, 1, 1, 1)), own.shape[2:]
                four = sum(padded[..., r:r + height, c:c + width] for r, c in ((0, 1), (2, 1), (1, 0), (1, 2))) / 4
                pairs[name][0].append(own[..., rest].flatten())
                pairs[name][1].append(four[..., rest].flatten())
        rows.append({"level": level_value, **{f"{name}_correlation": float(np.corrcoef(
            torch.cat(a).numpy(), torch.cat(b).numpy())[0, 1]) for name, (a, b) in pairs.items()}})
    return rows


@torch.no_grad()
def measure(model: HyperpriorModel, context: CheckerboardContext | None, photos: list[np.ndarray]) -> list[dict]:
    """bpp and PSNR by level (JOINT_LEVELS), hard rounding, mean over photos."""
    rows = []
    for level_value in JOINT_LEVELS:
        bpp, psnr = [], []
        for photo in photos:
            crop = centre_crop(photo, 512)
            x = as_batch(crop)
            level = torch.full((1,), level_value)
            latent, hyper_latent, mean, scale = frozen_parts(model, x, level, bf16=False)
            coded = two_pass(model, context, latent, mean, scale, level, noise=False)
            hyper_bits = -torch.log2(model.hyper_prior.likelihood(hyper_latent)).sum()
            bits = coded["anchor_bits"] + coded["rest_bits"] + hyper_bits
            x_hat = model.synthesis(coded["decoded"] * model.gains(level)[1]).clamp(0, 1)
            bpp.append(bits.item() / (crop.shape[0] * crop.shape[1]))
            psnr.append(-10 * math.log10((x_hat - x).pow(2).mean().item()))
        rows.append({"level": level_value, "bpp": float(np.mean(bpp)), "psnr": float(np.mean(psnr))})
    return rows


@dataclass(frozen=True)
class Arm:
    """One way of training every part together for stage two."""

    name: str
    context: bool = False  # the checkerboard context of stage one, trained on with the rest
    rounded_rate: bool = False  # the latent's rate on the rounded residual, not on added noise (item 3)
    grid_weight: float = 0.0  # boundary_step_error's weight beside the MSE (item 5)


ARMS = {arm.name: arm for arm in (Arm("base"), Arm("context", context=True), Arm("rounded_rate", rounded_rate=True),
                                  Arm("grid", grid_weight=GRID_WEIGHT))}


def boundary_step_error(x_hat: torch.Tensor, x: torch.Tensor, period: int = 16) -> torch.Tensor:
    """Per sample (B,): the mean squared step of the error x_hat - x across period-pixel block boundaries,
    rows and columns together. A grid that the picture does not have is exactly such a step."""
    error = x_hat - x
    across_columns = error[..., :, period::period] - error[..., :, period - 1:-1:period]
    across_rows = error[..., period::period, :] - error[..., period - 1:-1:period, :]
    return (across_columns.pow(2).flatten(1).mean(1) + across_rows.pow(2).flatten(1).mean(1)) / 2


def train_arm(checkpoint, arm: Arm, context: CheckerboardContext, sampler: CropSampler, steps: int, lr: float,
              bf16: bool) -> tuple[HyperpriorModel, CheckerboardContext | None]:
    """Every part trained together for steps, as the main loop trains (batch 4, level balance 0.5, Adam with
    the checkpoint's moments, moving average 0.999 from the checkpoint's); returns the moving averages."""
    model = HyperpriorModel(checkpoint.model_config)
    model.load_state_dict(checkpoint.model)
    model = model.to(memory_format=torch.channels_last).train()
    average = copy.deepcopy(model).requires_grad_(False)
    average.load_state_dict(checkpoint.ema_model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    optimizer.load_state_dict(copy.deepcopy(checkpoint.optimizer))
    for group in optimizer.param_groups:
        group["lr"] = lr
    pairs = [(average, model)]
    context = copy.deepcopy(context).train() if arm.context else None
    if context is not None:
        optimizer.add_param_group({"params": list(context.parameters()), "lr": lr})
        pairs.append((copy.deepcopy(context).requires_grad_(False), context))
    rng = np.random.default_rng(2)
    torch.manual_seed(2)  # every arm draws the same crops, levels and rounding noise
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    for step in range(steps):
        x = torch.from_numpy(sampler.batch(rng, 4)).contiguous(memory_format=torch.channels_last)
        level = torch.from_numpy(rng.uniform(0, model.config.levels - 1, 4)).float()
        lambdas = model.lambdas(level)
        out = joint_forward(model, context, x, level, bf16, arm.rounded_rate)
        weights = level_weights(lambdas, model.config, 0.5)
        metrics = rd_loss(out, x, lambdas, weights)
        objective = metrics["objective"]
        if arm.grid_weight:  # as much more distortion, lambda * 255^2 * weight * the boundary steps
            objective = objective + (weights * lambdas * 255 ** 2 * arm.grid_weight
                                     * boundary_step_error(out["x_hat"], x)).mean()
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        for slow, fast in pairs:
            update_average(slow, fast, 0.999)
        if step % 100 == 0:
            print(f"{arm.name} step {step} loss {metrics['loss'].item():.4f}", flush=True)
    return average.eval(), pairs[1][0].eval() if context is not None else None


@torch.no_grad()
def grid_ratios(model: HyperpriorModel, context: CheckerboardContext | None) -> dict:
    """metrics.grid_ratio of bench/grid.py's smooth pictures decoded by the torch model (hard rounding),
    mean over the pictures, at the two lowest of JOINT_LEVELS, where the grid shows."""
    ratios = {}
    for level_value in JOINT_LEVELS[:2]:
        values = []
        for picture in smooth_images().values():
            x = as_batch(picture)
            level = torch.full((1,), level_value)
            latent, _, mean, scale = frozen_parts(model, x, level, bf16=False)
            coded = two_pass(model, context, latent, mean, scale, level, noise=False)
            values.append(grid_ratio(as_picture(model.synthesis(coded["decoded"] * model.gains(level)[1]))))
        ratios[f"{level_value:.2f}"] = float(np.mean(values))
    return ratios


def joint(args, checkpoint, photos, training) -> None:
    """Stage two: the arms from the same checkpoint, on the same crops, for the same steps. Arms already in
    the results file (from the same checkpoint and steps) are kept, so one arm can be added to a run."""
    config = checkpoint.model_config
    context = CheckerboardContext(config.latent_channels, config.levels, args.context, args.hidden)
    context.load_state_dict(torch.load(args.context_weights))
    sampler = CropSampler([p for p in (load_photo(q, 1280, args.crop) for q in training) if p is not None],
                          args.crop, 0.6, 0.15)
    path = args.out.with_name(args.out.stem + "_joint.json")
    result = json.loads(path.read_text()) if path.exists() else {}
    if (result.get("checkpoint_step"), result.get("steps")) != (checkpoint.step, args.joint_steps):
        start = model_from_checkpoint(checkpoint).eval()
        result = {"start": measure(start, None, photos), "start_with_context": measure(start, context, photos)}
    if "start_grid_ratio" not in result:  # results from before the grid arm lack it
        result["start_grid_ratio"] = grid_ratios(model_from_checkpoint(checkpoint).eval(), None)
    for name in args.arms:
        began = time.monotonic()
        model, trained_context = train_arm(checkpoint, ARMS[name], context, sampler, args.joint_steps,
                                           args.lr_joint, True)
        result[name] = measure(model, trained_context, photos)
        result[f"{name}_grid_ratio"] = grid_ratios(model, trained_context)
        result[f"{name}_minutes"] = (time.monotonic() - began) / 60
        print(name, json.dumps(result[name]), flush=True)
    arms = [name for name in ARMS if name in result]
    rates = {name: ([r["bpp"] for r in result[name]], [r["psnr"] for r in result[name]]) for name in arms}
    for name in arms:
        if name != "base" and "base" in rates:
            result[f"bd_rate_{name}_vs_base_percent"] = bd_rate(*rates["base"], *rates[name]).percent
    result.update(steps=args.joint_steps, pixels=args.joint_steps * 4 * args.crop ** 2, grid_weight=GRID_WEIGHT,
                  checkpoint_step=checkpoint.step, date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


def ablation(args, checkpoint, model: HyperpriorModel, photos: list[np.ndarray]) -> None:
    """The checkpoint's model with its context and without it, at JOINT_LEVELS, on the held-out photos."""
    if model.context is None:
        raise SystemExit(f"{args.checkpoint} has no context: --ablation measures one that has")
    with_context, without = measure(model, model.context, photos), measure(model, None, photos)
    result = {"checkpoint_step": checkpoint.step, "checkpoint_pixels": checkpoint.pixels_seen,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "held_out": len(photos), "with_context": with_context, "without_context": without,
              "bd_rate_with_vs_without_percent": bd_rate([r["bpp"] for r in without], [r["psnr"] for r in without],
                                                         [r["bpp"] for r in with_context],
                                                         [r["psnr"] for r in with_context]).percent,
              "rate_change_percent": [100 * (a["bpp"] / b["bpp"] - 1) for a, b in zip(with_context, without)]}
    path = args.out.with_name(args.out.stem + "_ablation.json")
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/main/last.ckpt"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/train"))
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--eval-minutes", type=float, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--joint-steps", type=int, default=0,
                        help="stage two: train base and context arms together for this many steps each, "
                             "starting from the context stage one saved beside --out")
    parser.add_argument("--lr-joint", type=float, default=1e-4)
    parser.add_argument("--ablation", action="store_true",
                        help="measure the checkpoint's own context against leaving it out (writes *_ablation.json)")
    parser.add_argument("--whiteness", action="store_true",
                        help="only measure how much the anchors could tell (writes *_whiteness.json)")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                        help="stage two's arms to train (the rest are kept from the results file)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/checkerboard_trial.json"),
                        help="stage one's results; stage two writes *_joint.json beside it")
    parser.add_argument("--context-weights", type=Path, default=Path("runs/checkerboard_context.pt"),
                        help="stage one writes the trained context here, stage two starts from it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    checkpoint = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(checkpoint).eval().requires_grad_(False)
    config = model.config
    training, held_out = split_validation(list_images(args.data), 8, checkpoint.validation_stems)
    photos = [load_photo(p, 1280, 512) for p in held_out]
    photos = [p for p in photos if p is not None]
    if args.joint_steps:
        joint(args, checkpoint, photos, training)
        return
    if args.ablation:
        ablation(args, checkpoint, model, photos)
        return
    if args.whiteness:
        rows = whiteness(model, photos)
        path = args.out.with_name(args.out.stem + "_whiteness.json")
        path.write_text(json.dumps({"checkpoint_step": checkpoint.step, "levels": rows}, indent=1) + "\n")
        print(json.dumps(rows, indent=1))
        return
    sampler = CropSampler([p for p in (load_photo(q, 1280, args.crop) for q in training) if p is not None],
                          args.crop, 0.6)
    context = CheckerboardContext(config.latent_channels, config.levels, args.context, args.hidden)
    optimizer = torch.optim.Adam(context.parameters(), lr=args.lr)
    rng = np.random.default_rng(1)
    bf16 = fast_bf16_cpu()
    history = [{"step": 0, "pixels": 0, "evaluation": evaluate(model, context, photos)}]
    print(json.dumps(history[-1]), flush=True)
    step, pixels, start, last_eval, window = 0, 0, time.monotonic(), time.monotonic(), []
    while time.monotonic() - start < args.minutes * 60:
        x = torch.from_numpy(sampler.batch(rng, args.batch_size)).contiguous(memory_format=torch.channels_last)
        level = torch.from_numpy(rng.uniform(0, config.levels - 1, args.batch_size)).float()
        latent, _, mean, scale = frozen_parts(model, x, level, bf16)
        coded = two_pass(model, context, latent, mean, scale, level, noise=True)
        loss = coded["rest_bits"].sum() / (x.shape[0] * x.shape[2] * x.shape[3])  # non-anchor bpp
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(context.parameters(), 1.0)
        optimizer.step()
        step, pixels = step + 1, pixels + x.shape[0] * x.shape[2] * x.shape[3]
        window.append(loss.item())
        if step % 50 == 0:
            print(f"step {step} pixels {pixels / 1e6:.0f} MPx non-anchor bpp {np.mean(window):.4f}", flush=True)
            window.clear()
        if time.monotonic() - last_eval > args.eval_minutes * 60:
            history.append({"step": step, "pixels": pixels, "evaluation": evaluate(model, context, photos)})
            print(json.dumps(history[-1]), flush=True)
            last_eval = time.monotonic()
    history.append({"step": step, "pixels": pixels, "evaluation": evaluate(model, context, photos)})
    print(json.dumps(history[-1]), flush=True)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "checkpoint_step": checkpoint.step, "checkpoint_pixels": checkpoint.pixels_seen,
              "held_out": [p.stem for p in held_out], "settings": vars(args) | {"bf16": bf16},
              "context_parameters": sum(p.numel() for p in context.parameters()), "history": history}
    result["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in result["settings"].items()}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.context_weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(context.state_dict(), args.context_weights)


if __name__ == "__main__":
    main()

"""Write the README's results section from the committed benchmark files.

    python -m bench.readme_results --reference ../shared/anchors/kodak/kodak__vtm.json ...

Reads bench/results/kodak/results.json, bench/results/speed/{speed,compressai}.json,
bench/results/large_image.json and the --effort results (bench/results/effort_gain.json,
bench/results/kodak_effort/results.json), and replaces the text between the
``<!-- results -->`` and ``<!-- /results -->`` markers in README.md. Every
figure in that section therefore comes from a file in bench/results/.
With ``--card weights/main/manifest.json`` it also records our Kodak curve
and BD-rates in the model card (the card is not part of the model id), and
fills the ``<!-- training -->`` section from the card and
bench/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from aecodec.bench.curves import Curve, load_references
from aecodec.bench.speed import speed_table
from aecodec.effort import EFFORT_ITERATIONS
from aecodec.metrics import bd_rate

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- results -->", "<!-- /results -->"
TRAINING_START, TRAINING_END = "<!-- training -->", "<!-- /training -->"
OURS = "aecodec"


def curves_from(results: dict) -> dict[str, Curve]:
    by_codec: dict[str, list[dict]] = {}
    for row in results["means"]:
        by_codec.setdefault(row["codec"], []).append(row)
    return {name: Curve(name, *(tuple(r[f] for r in rows) for f in ("bpp", "psnr", "ms_ssim")))
            for name, rows in by_codec.items()}


def without_lowest_rate(curve: Curve) -> Curve:
    keep = sorted(range(len(curve.bpp)), key=lambda i: curve.bpp[i])[1:]
    pick = lambda values: tuple(values[i] for i in keep) if values else values  # noqa: E731
    return Curve(curve.name, pick(curve.bpp), pick(curve.psnr), pick(curve.ms_ssim), curve.reference)


def bd_cell(test: Curve, anchor: Curve, metric: str) -> str:
    if not (test.has(metric) and anchor.has(metric)):
        return "n/a"
    r = bd_rate(anchor.bpp, anchor.quality(metric), test.bpp, test.quality(metric))  # test (B) against anchor (A)
    if math.isnan(r.percent):
        return "no overlap"
    return f"{r.percent:+.1f}% [{r.low:.1f}–{r.high:.1f} dB]"


def bd_table(ours: Curve, anchors: list[Curve]) -> list[str]:
    lines = ["| anchor | BD-rate, PSNR-RGB | BD-rate, MS-SSIM (dB) |", "|---|---:|---:|"]
    for anchor in anchors:
        label = anchor.name + (" (published)" if anchor.reference else "")
        lines.append(f"| {label} | {bd_cell(ours, anchor, 'psnr')} | {bd_cell(ours, anchor, 'ms_ssim_db')} |")
    return lines


def rd_table(results: dict) -> list[str]:
    lines = ["| quality | bpp | PSNR-RGB (dB) | MS-SSIM |", "|---:|---:|---:|---:|"]
    for row in results["means"]:
        if row["codec"] == OURS:
            lines.append(f"| {row['quality']:g} | {row['bpp']:.3f} | {row['psnr']:.2f} | {row['ms_ssim']:.4f} |")
    return lines


def speed_lines(speed: dict) -> list[str]:
    env = speed["environment"]
    return [f"Compress and decompress of a {speed['image']} image (Kodak kodim23, quality {speed['quality']}), "
            f"median of {speed['repeats']} runs, {env['threads']} threads, {env['cpu']}, "
            f"onnxruntime {env['onnxruntime']}, "
            + (f"model {speed['model']} (format version {speed['format_version']}), " if "model" in speed else "")
            + "model loaded once:", "", *speed_table(speed)]


def large_lines(large: dict) -> list[str]:
    steps = large["steps"]
    lines = [f"A {large['image']} photo ({large['threads']} threads): compress "
             f"{steps['compress']['seconds']:.0f} s at {steps['compress']['peak_rss_mb']} MiB peak RSS, decompress "
             f"{steps['decompress']['seconds']:.0f} s at {steps['decompress']['peak_rss_mb']} MiB "
             f"(`bench/large_image.py`, limit {large['limit_mb']} MiB)" + (f"; {large['note']}." if large.get("note") else ".")]
    decodes = [(name, steps[name]) for name in ("decompress", "decompress_detail", "decompress_crafted",
                                                "decompress_crafted_detail") if "baseline" in steps.get(name, {})]
    if decodes:
        lines += ["", f"Peak memory of a decode to PNG, band by band, against {large['baseline']} (whole images):", "",
                  "| file | format version | peak RSS | before |", "|---|---:|---:|---:|"]
        lines += [f"| {step['image']}{' with a detail layer' if name.endswith('detail') else ''}"
                  f"{' (crafted: 500 KB declaring 63 MP)' if 'crafted' in name else ''} | {step['version']} | "
                  f"{step['peak_rss_mb']} MiB | {step['baseline']['peak_rss_mb']} MiB |" for name, step in decodes]
    return lines


def standing(ours: Curve, curves: dict[str, Curve]) -> list[str]:
    """One plain sentence on where aecodec stands against the everyday codecs."""
    parts = []
    for name, label in (("jpeg", "Pillow JPEG (4:2:0)"), ("webp", "WebP"), ("avif", "AVIF")):
        if name in curves:
            r = bd_rate(curves[name].bpp, curves[name].psnr, ours.bpp, ours.psnr)
            if not math.isnan(r.percent):
                verb = "fewer" if r.percent < 0 else "more"
                parts.append(f"{abs(r.percent):.1f}% {verb} bits than {label}")
    if not parts:
        return []
    return [f"**Where aecodec stands:** for the same PSNR-RGB it needs {', '.join(parts)} "
            "(BD-rate over the quality range both cover)."]


def encode_seconds_per_mpx(results: dict, codec: str) -> float:
    rows = [m for m in results["measurements"] if m["codec"] == codec]
    return sum(m["encode_ms"] for m in rows) / 1e3 / (sum(m["width"] * m["height"] for m in rows) / 1e6)


def top_psnr(results: dict, codec: str) -> float:
    return max((r for r in results["means"] if r["codec"] == codec), key=lambda r: r["quality"])["psnr"]


def effort_lines(gain: dict, kodak_effort: dict | None, shell: dict | None = None) -> list[str]:
    """The --effort levels: the subset curve they were chosen from, and the full-Kodak check of the top one."""
    means = {row["iterations"]: row for row in gain["means"]}
    lines = [f"`--effort N` refines each image's latents before coding them (same decoder, same format; needs "
             f"torch). The levels were chosen from the gain against iterations on {len(gain['rows']) // len(means)} "
             f"Kodak image-quality pairs (`bench/effort_gain.py`, model {gain['model_id']}, {gain['threads']} "
             f"threads, bf16 {'on' if gain['bf16'] else 'off'}); BD-rate (PSNR-RGB) of the mean curve against "
             "effort 0, negative is smaller:", "",
             "| effort | iterations | BD-rate on the subset | encode s/MPx |", "|---:|---:|---:|---:|"]
    level_of = {iterations: effort for effort, iterations in enumerate(EFFORT_ITERATIONS)}
    for iterations, row in sorted(means.items()):
        effort = level_of.get(iterations, "not a level")
        bd = row.get("bd_rate_psnr_percent")
        cell = "0 (the reference)" if iterations == 0 else ("n/a" if bd is None else f"{bd:+.1f}%")
        lines.append(f"| {effort} | {iterations} | {cell} | {row['encode_s_per_mpx']:.1f} |")
    lines += ["", "The encode s/MPx above are the refinement's own time inside one process (analysis, "
              "refinement and coding, the model and torch already loaded, no detail layer), measured "
              f"{gain.get('date', 'on 2026-11-29')} on the AMD EPYC with AVX-512 of that session (the file does not "
              "record its CPU; that day's Kodak results say AMD EPYC)."]
    if shell:
        mean_wall = sum(shell["effort1_wall_s"]) / len(shell["effort1_wall_s"])
        pixels = 600 * 400 / 1e6
        lines[-1] += (f" One whole command from a shell, `{shell['command']}` on {shell['image']}, takes "
                      f"{mean_wall:.1f} s ({mean_wall / pixels:.0f} s/MPx) on {shell['cpu']} ({shell['cpu_flags']}), "
                      f"{shell['threads']}, against {shell['effort0_wall_s']:.2f} s at effort 0: it includes "
                      f"{shell['includes']} (`bench/results/effort_shell.json`).")
    lines.append("")
    if kodak_effort:
        curves = curves_from(kodak_effort)
        tops = sorted(name for name in curves if name.startswith("aecodec-effort"))
        for name in tops:
            qualities = ", ".join(f"{r['quality']:g}" for r in kodak_effort["means"] if r["codec"] == name)
            lines += [f"All {len({m['image'] for m in kodak_effort['measurements']})} Kodak images at qualities "
                      f"{qualities} (`aecodec bench --codecs aecodec,{name}`, "
                      f"[`bench/results/kodak_effort/`](bench/results/kodak_effort/), "
                      f"{kodak_effort['env']['threads']} threads): **{name} against effort 0: "
                      f"{bd_cell(curves[name], curves[OURS], 'psnr')}** (PSNR-RGB), "
                      f"{bd_cell(curves[name], curves[OURS], 'ms_ssim_db')} (MS-SSIM in dB); encode "
                      f"{encode_seconds_per_mpx(kodak_effort, name):.1f} s/MPx against "
                      f"{encode_seconds_per_mpx(kodak_effort, OURS):.2f} s/MPx at effort 0. At the top quality it "
                      f"reaches {top_psnr(kodak_effort, name):.2f} dB, against {top_psnr(kodak_effort, OURS):.2f} dB."
                      + (f" {kodak_effort['note']}" if kodak_effort.get("note") else ""), ""]
    return lines


NO_DETAIL = "aecodec-nodetail"


def mean_row(results: dict, codec: str, quality: float) -> dict:
    return next(r for r in results["means"] if r["codec"] == codec and r["quality"] == quality)


def detail_lines(results: dict, tuning: dict | None, graphics: dict | None) -> list[str]:
    """The detail layer: what it is, the weight it was tuned to on held-out photos, what it does on Kodak and
    on graphics."""
    lines = ["A learned transform with M latent channels per 16×16 block cannot carry every fine texture, thin line "
             "or saturated edge, however many bits it is given. So after coding the latents the encoder decodes its "
             "own file and adds **pixel corrections** (`aecodec/detail.py`, format version 2) in the 16×16 blocks "
             "and colour channels where they pay for their bits at the quality's own lambda, coded with the model's "
             "integer tables. Photographs at low and middle qualities get few or none; text, line art, UI and the "
             "highest qualities get many. `--no-detail` (API: `detail=False`) leaves them out: a faster encode. "
             "With `--no-deblock` too (the deblocking filter, below), the file is format version 1, which aecodec "
             "builds older than the layer read. Images above 2²⁴ pixels get no detail layer, to bound the encoder's "
             "memory.", ""]
    if tuning:
        cells = ", ".join(f"{name}: {c['bd_rate_vs_none']['percent']:+.1f}% (top {c['psnr'][-1]:.2f} dB at "
                          f"{c['bpp'][-1]:.2f} bpp)" for name, c in tuning["curves"].items() if name != "none")
        none = tuning["curves"]["none"]
        lines += [f"The encoder weighs distortion by {tuning['shipped_scale']:g} × lambda: the model's own curve "
                  "buys quality more cheaply than its lambda says, so corrections must beat the curve, not lambda. "
                  f"The weight was chosen on the {len(tuning['photos'])} held-out training photos, never Kodak "
                  f"(`bench/detail_tuning.py`, model {tuning['model_id']}): BD-rate against no corrections over the "
                  f"model's own range (top {none['psnr'][-1]:.2f} dB at {none['bpp'][-1]:.2f} bpp) by weight: "
                  f"{cells}.", ""]
    curves = curves_from(results)
    if NO_DETAIL in curves:
        ours, plain = curves[OURS], curves[NO_DETAIL]
        top = max(q for q in (r["quality"] for r in results["means"] if r["codec"] == OURS))
        with_top, without_top = mean_row(results, OURS, top), mean_row(results, NO_DETAIL, top)
        encode = [sum(r["encode_ms"] for r in results["means"] if r["codec"] == c) /
                  sum(1 for r in results["means"] if r["codec"] == c) for c in (OURS, NO_DETAIL)]
        lines += [f"On Kodak (`aecodec` against `{NO_DETAIL}`, same model, tables above): "
                  f"{bd_cell(ours, plain, 'psnr')} (PSNR-RGB) and {bd_cell(ours, plain, 'ms_ssim_db')} (MS-SSIM, which "
                  f"the corrections do not aim for) over the range both cover; quality {top:g} rises from "
                  f"{without_top['psnr']:.2f} dB at {without_top['bpp']:.2f} bpp to **{with_top['psnr']:.2f} dB at "
                  f"{with_top['bpp']:.2f} bpp**. Above the model's own top the corrections are no more efficient than "
                  "JPEG, so BD-rates against other codecs, taken over the wider range, read worse than the model's "
                  f"alone would: against JPEG {bd_cell(ours, curves['jpeg'], 'psnr')} where the model alone has "
                  f"{bd_cell(plain, curves['jpeg'], 'psnr')}. Encode, mean over the qualities at "
                  f"{results['env']['threads']} thread: {encode[0]:.0f} ms per image against {encode[1]:.0f} ms "
                  f"(the encoder decodes its own file); decode at quality {top:g}: {with_top['decode_ms']:.0f} "
                  f"against {without_top['decode_ms']:.0f} ms.", ""]
    if graphics:
        lines += [f"Synthetic graphics against Pillow JPEG at the same quality number, and aecodec again within the "
                  f"size of JPEG's file (`bench/graphics.py`, [`bench/results/graphics.json`](bench/results/graphics.json),"
                  f" model {graphics['model_id']}); PSNR-RGB in dB, at bpp:", "",
                  "| quality | picture | aecodec | JPEG | aecodec within JPEG's size |", "|---:|---|---:|---:|---:|"]
        for quality, rows in graphics["results"].items():
            lines += [f"| {quality} | {r['image']} | {r['aecodec_psnr']:.1f} at {r['aecodec_bpp']:.2f} | "
                      f"{r['jpeg_psnr']:.1f} at {r['jpeg_bpp']:.2f} | {r['same_size_psnr']:.1f} at "
                      f"{r['same_size_bpp']:.2f} |" for r in rows]
        lines.append("")
    return lines


def section(results: dict, references: list[Curve], speeds: list[tuple[dict, dict | None]], large: dict | None,
            gain: dict | None = None, kodak_effort: dict | None = None, tuning: dict | None = None,
            graphics: dict | None = None, effort_shell: dict | None = None) -> str:
    """The README's results; speeds: (aecodec bench --speed, CompressAI's) for each machine measured."""
    env = results["env"]
    curves = curves_from(results)
    ours = curves[OURS]
    others = [c for name, c in curves.items() if name != OURS]
    libs = env["pillow_libraries"]
    codecs = "; ".join(f"**{name}**: {note}" for name, note in results["codecs"].items())
    images = len({m["image"] for m in results["measurements"]})
    lines = [
        f"Measured by `aecodec bench` on the {images} Kodak images on {env['date'][:10]}: {env['cpu']}, "
        f"{env['threads']} thread, Python {env['python']}, numpy {env['numpy']}, Pillow {env['pillow']} "
        f"(libjpeg-turbo {libs.get('libjpeg_turbo')}, libwebp {libs.get('webp')}, libavif {libs.get('avif')}, "
        f"OpenJPEG {libs.get('jpg_2000')}), imagecodecs {env['imagecodecs']}, onnxruntime {env['onnxruntime']}. "
        "bpp counts whole files, headers included; PSNR is the mean of per-image PSNR-RGB. "
        "Everything is in [`bench/results/kodak/`](bench/results/kodak/): per-image JSON and CSV, "
        "[summary.md](bench/results/kodak/summary.md) with every codec against every other.", "",
        *standing(ours, curves), "",
        f"Codecs: {codecs}.", "",
        "![Rate–distortion on Kodak, PSNR-RGB](bench/results/kodak/rd_psnr.png)", "",
        "BD-rate of aecodec against each codec (negative: aecodec needs fewer bits for the same quality; "
        "in brackets the quality range both curves cover):", "",
        *bd_table(ours, others + references), "",
    ]
    if "jpeg" in curves and "webp" in curves:
        webp, jpeg = curves["webp"], curves["jpeg"]
        lines += [f"Sanity check of the harness: WebP against Pillow JPEG comes out at "
                  f"{bd_cell(webp, jpeg, 'psnr')} (PSNR-RGB); the figure measured independently with "
                  f"Pillow 13 was −37.6%. The low end of the overlap matters: without WebP's lowest-rate point, "
                  f"where JPEG is at its worst, it is {bd_cell(without_lowest_rate(webp), jpeg, 'psnr')}.", ""]
    lines += [f"aecodec's own curve (means over the {images} images):", "", *rd_table(results), "",
              "![Rate–distortion on Kodak, MS-SSIM](bench/results/kodak/rd_ms_ssim_db.png)", ""]
    for machine, (speed, compressai) in enumerate(speeds):
        lines += (["### Speed", ""] if not machine else []) + [*speed_lines(speed), ""]
        if compressai:
            lines += [f"CompressAI {compressai['compressai']}'s mean–scale hyperprior (N=128, M=192; torch "
                      f"{compressai['torch']}, {compressai['threads']} threads), timed the same way on the same "
                      f"image by `bench/compressai_speed.py`: compress {compressai['compress_ms']:.0f} ms, decompress "
                      f"{compressai['decompress_ms']:.0f} ms. aecodec: {speed['compress']['total']:.0f} ms and "
                      f"{speed['decompress']['total']:.0f} ms, entropy coding included in both: "
                      f"{compressai['compress_ms'] / speed['compress']['total']:.1f}x and "
                      f"{compressai['decompress_ms'] / speed['decompress']['total']:.1f}x as fast.", ""]
    if large:
        lines += [*large_lines(large), ""]
    if gain:
        lines += ["### Encode effort", "", *effort_lines(gain, kodak_effort, effort_shell)]
    lines += ["### Detail layer", "", *detail_lines(results, tuning, graphics)]
    return "\n".join(lines)


def ablation_lines(ablation: dict) -> list[str]:
    """The equal-pixel comparison table from bench/train_ablation.py, and the decision taken from it."""
    levels = [f"{lv:g}" for lv in ablation["eval_levels"]]
    lambdas = [next(v["scores"][lv]["lambda"] for v in ablation["variants"]) for lv in levels]
    lines = [f"What learns fastest here (`bench/train_ablation.py`): every variant resumes the same checkpoint "
             f"(step {ablation['start_checkpoint_step']:,}, {ablation['start_pixels_seen'] / 1e9:.2f} Gpx) and trains "
             f"the same pixels; the RD loss (lambda * 255^2 * MSE + bpp, latents rounded) is measured on the "
             f"{len(ablation['held_out_photos'])} held-out training photos, never Kodak. Lower is better.", "",
             "| variant | Gpx | s/step | " + " | ".join(f"RD loss at lambda {lam:.4f}" for lam in lambdas) + " |",
             "|---|---:|---:|" + "---:|" * len(levels)]
    for v in ablation["variants"]:
        seconds = f"{v['seconds_per_step']:.2f}" if v.get("seconds_per_step") else ""
        cells = " | ".join(f"{v['scores'][lv]['rd_loss']:.4f}" for lv in levels)
        lines.append(f"| {v['name']} | {v['pixels'] / 1e9:.2f} | {seconds} | {cells} |")
    if ablation.get("decision"):
        lines += ["", ablation["decision"]]
    return lines + [""]


def learning_lines(learning: dict) -> list[str]:
    """bench/learning_curve.py's table: each shipped model's learned part against the same anchors."""
    anchors = learning["anchors"]
    lines = [f"What training bought (`bench/learning_curve.py`, `bench/results/learning_curve.json`): every shipped "
             f"model's learned part alone (no detail layer) on Kodak, against the JPEG and WebP curves of "
             f"{anchors['date']} and against the model shipped before it (BD-rate, PSNR-RGB), and that last figure "
             "per doubling of the training pixels. A ship's commit message says what else changed with it.", "",
             "| model | steps | Gpx | against JPEG | against WebP | against the previous model | per doubling |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    cell = lambda value: "" if value is None else f"{value:+.1f}%"  # noqa: E731
    before = None
    for m in learning["models"]:
        bd = m["bd_rate_psnr_percent"]
        step = bd["previous model"]
        doubling = (100 * ((1 + step / 100) ** (1 / math.log2(m["gigapixels"] / before["gigapixels"])) - 1)
                    if step is not None and before else None)
        lines.append(f"| {m['model_id']} | {m['steps']:,} | {m['gigapixels']:.2f} | {cell(bd['jpeg'])} | "
                     f"{cell(bd['webp'])} | {cell(step)} | {cell(doubling)} |")
        before = m if m["curve"] else before
    return lines + [""]


def training_section(card: dict, throughput: dict | None, learning: dict | None, *ablations: dict | None) -> str:
    """How the shipped model was trained, and how fast training runs here."""
    cfg, train = card["model_config"], card["train_config"]
    hours = card["training_seconds"] / 3600
    lines = [
        f"The shipped model (id `{card['model_id']}`, card in `weights/main/manifest.json`): N={cfg['channels']}, "
        f"M={cfg['latent_channels']}, {cfg['levels']} trained rate levels for lambda {cfg['lambda_min']:.3g} to "
        f"{cfg['lambda_max']:.3g}, plus {card.get('extrapolated_levels', 0)} extrapolated below them"
        + (f", and a checkerboard context of {cfg['context_channels']} and {cfg['context_hidden']} channels (its "
           "files are format version 3)" if cfg.get("context_channels") else "") + ". It was trained "
        f"for {card['training_steps']:,} steps, {card['pixels_seen'] / 1e9:.2f} gigapixels in all, in {hours:.1f} "
        f"hours of training steps (the last run: {train['batch']} crops of {train['crop']}x{train['crop']} pixels "
        f"a step, on {train.get('device', 'cpu')}, {train.get('threads', 0) or 'all'} threads). That is a "
        "small fraction of the training published models get, and the Kodak results above show it.", "",
    ]
    if learning:
        lines += learning_lines(learning)
    if throughput:
        lines += [f"Training throughput (`bench/train_throughput.py`, {throughput['date'][:10]}, "
                  f"{throughput.get('cpu', 'CPU not recorded')}, torch "
                  f"{throughput['torch']}, {throughput['threads']} threads, CPU capability "
                  f"{throughput['cpu_capability']}, fast bf16: {'yes' if throughput['cpu_has_fast_bf16'] else 'no'}; "
                  f"batch {throughput['batch']} of {throughput['crop']}x{throughput['crop']}):", "",
                  "| configuration | s/step | MPx/s |", "|---|---:|---:|"]
        for name, row in throughput["results"].items():
            if "error" in row:
                lines.append(f"| {name} | failed: {row['error']} | |")
            else:
                lines.append(f"| {name} | {row['seconds_per_step']:.2f} | {row['megapixels_per_second']:.3f} |")
        lines.append("")
        if not throughput["cpu_has_fast_bf16"]:
            lines += ["This CPU has neither AMX nor AVX-512 bf16, so bf16 autocast is far slower than fp32 here "
                      "(above); `aecodec train` picks bf16 only on CUDA or on a CPU with those units, and trains in fp32 "
                      "otherwise.", ""]
        else:
            lines += ["This CPU has AVX-512 bf16 (or AMX), so bf16 autocast beats fp32 here (above) and `aecodec train` "
                      "uses it; on a CPU without those units bf16 is about ten times slower than fp32, and training "
                      "picks fp32 there.", ""]
    for ablation in ablations:
        if ablation:
            lines += ablation_lines(ablation)
    return "\n".join(lines)


def replace_between(text: str, start: str, end: str, body: str, where: Path) -> str:
    if start not in text or end not in text:
        raise SystemExit(f"{where}: no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n\n{body}\n{end}{tail}"


def card_rd(results: dict) -> dict:
    """The model card's ``kodak_rd``: our curve and BD-rates against the codecs benched beside it."""
    curves = curves_from(results)
    ours = curves[OURS]
    bd = {}
    for name, anchor in curves.items():
        if name != OURS:
            r = bd_rate(anchor.bpp, anchor.psnr, ours.bpp, ours.psnr)
            bd[name] = None if math.isnan(r.percent) else round(r.percent, 2)
    points = [{k: round(row[k], 4) for k in ("quality", "bpp", "psnr", "ms_ssim")}
              for row in results["means"] if row["codec"] == OURS]
    return {"source": "bench/results/kodak/results.json", "date": results["env"]["date"][:10],
            "points": points, "bd_rate_psnr_percent": bd}


def speeds_measured() -> list[tuple[dict, dict | None]]:
    """(speed.json, compressai.json or None) of bench/results/speed/ and of each machine's folder beside it
    (its name says the machine; before/ holds the figures an earlier change replaced)."""
    root = ROOT / "bench/results/speed"
    folders = [root, *sorted(p for p in root.iterdir() if p.is_dir() and p.name != "before")]
    return [(json.loads((f / "speed.json").read_text()),
             json.loads((f / "compressai.json").read_text()) if (f / "compressai.json").exists() else None)
            for f in folders if (f / "speed.json").exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", action="append", default=[], help="CompressAI results JSON to compare")
    parser.add_argument("--results", default=ROOT / "bench/results/kodak/results.json", type=Path)
    parser.add_argument("--readme", default=ROOT / "README.md", type=Path)
    parser.add_argument("--card", type=Path, help="also write kodak_rd into this model card (manifest.json)")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    large_path = ROOT / "bench/results/large_image.json"
    throughput_path = ROOT / "bench/results/train_throughput.json"
    ablation_path = ROOT / "bench/results/train_ablation.json"
    cooldown_path = ROOT / "bench/results/train_cooldown.json"
    gain_path = ROOT / "bench/results/effort_gain.json"
    kodak_effort_path = ROOT / "bench/results/kodak_effort/results.json"
    tuning_path, graphics_path = ROOT / "bench/results/detail_tuning.json", ROOT / "bench/results/graphics.json"
    balance_path = ROOT / "bench/results/train_balance.json"
    large, throughput, ablation, cooldown, gain, kodak_effort, tuning, graphics, balance = (
        json.loads(p.read_text()) if p.exists() else None
        for p in (large_path, throughput_path, ablation_path, cooldown_path, gain_path, kodak_effort_path,
                  tuning_path, graphics_path, balance_path))
    text = args.readme.read_text()
    shell_path = ROOT / "bench/results/effort_shell.json"
    effort_shell = json.loads(shell_path.read_text()) if shell_path.exists() else None
    body = section(results, load_references(args.reference), speeds_measured(), large, gain, kodak_effort, tuning,
                   graphics, effort_shell)
    text = replace_between(text, START, END, body, args.readme)
    if args.card:
        card = json.loads(args.card.read_text())
        card["kodak_rd"] = card_rd(results)
        args.card.write_text(json.dumps(card, indent=2) + "\n")
        learning_path = ROOT / "bench/results/learning_curve.json"
        learning = json.loads(learning_path.read_text()) if learning_path.exists() else None
        training = training_section(card, throughput, learning, ablation, cooldown, balance)
        text = replace_between(text, TRAINING_START, TRAINING_END, training, args.readme)
    args.readme.write_text(text)


if __name__ == "__main__":
    main()

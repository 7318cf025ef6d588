"""Fuzz the .aec decoder: mutate valid files, expect a FormatError or a decoded image, nothing else.

A typical run looks like this::

    nice -n 19 python -m bench.fuzz_decoder --cases 100000          # bench/results/fuzz_decoder.json
    python -m bench.fuzz_decoder --replay 1234 --seed 0             # one case again, with its traceback

Seed files are tiny (16x16 and a few odd layouts) and made with the test model in
tests/data/tiny_weights (and, for format version 3, the same model with a checkerboard
context, tests/data/tiny_context_weights), so one case costs a few milliseconds. Every case draws its
own random generator from (seed, index), so any finding replays alone. Most raw
mutations would only ever reach the CRC check, so three cases in four get their CRC
recomputed, and the structure-aware mutators rewrite one stream (or the decoded
integer values behind it) and fix the lengths and the CRC: that is where crashes hide.
"""

from __future__ import annotations

import argparse
import faulthandler
import io
import json
import platform
import random
import re
import struct
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from aecodec import container, transform
from aecodec.codec import Codec
from aecodec.container import FormatError
from aecodec.rewrite import fix_crc, join_streams, restream, split_streams  # shared with the hostile-decoder tests

ROOT = Path(__file__).resolve().parents[1]

WEIGHTS = ROOT / "tests" / "data" / "tiny_weights"
CONTEXT_WEIGHTS = ROOT / "tests" / "data" / "tiny_context_weights"  # version-3 seeds: names starting "context"
MAX_DECODED_PIXELS = 1 << 20  # larger declared sizes are valid and merely slow: counted, not decoded
SLOW_SECONDS = 2.0
HANG_SECONDS = 120  # faulthandler dumps every thread's stack and exits if one case takes this long
INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
FIELDS = {"version": (4, "B"), "layout": (5, "B"), "flags": (6, "B"), "width": (15, "I"), "height": (19, "I"),
          "quality": (23, "H"), "hyper_len": (25, "I"), "latent_len": (29, "I"), "optional_len": (33, "I")}


def seed_files(codec: Codec, context_codec: Codec) -> dict[str, bytes]:
    """Valid files covering every layout, the optional streams, odd sizes, a 2x2 hyper-latent grid, the
    detail layer (format version 2) on a noisy picture and on lines, and the deblocking flag (version 2);
    the rest are version 1 files, but for the context_* files of context_codec's model: version 3, with
    two bands in one and a detail layer in another."""
    from PIL import Image, ImageCms
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:80, 0:72]
    rgb = np.stack([(x * 3) % 256, (y * 3) % 256, (x + y) % 256], axis=2).astype(np.uint8)
    rgb = np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)
    alpha = ((x + 2 * y) % 256).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F] = "fuzz"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with_side = Image.fromarray(rgb[:16, :16])
    with_side.info["icc_profile"] = icc
    buffer = io.BytesIO()
    with_side.save(buffer, "PNG", icc_profile=icc, exif=exif)
    lines = np.full((80, 24, 3), (30, 40, 200), np.uint8)
    lines[::5] = (237, 237, 18)
    v1 = {"detail": False, "deblock": False}
    return {
        "rgb16": codec.compress(rgb[:16, :16], quality=50, **v1),
        "grey9x17": codec.compress(rgb[:9, :17, 0], quality=20, **v1),
        "rgba16": codec.compress(np.dstack([rgb[:16, :16], alpha[:16, :16]]), quality=80, **v1),
        "la15x3": codec.compress(np.dstack([rgb[:15, :3, 1], alpha[:15, :3]]), quality=5, **v1),
        "icc_exif16": codec.compress(buffer.getvalue(), quality=60, **v1),
        "rgb80x72": codec.compress(rgb, quality=95, **v1),
        "detail80x72": codec.compress(rgb, quality=95),
        "detail_lines80x24": codec.compress(lines, quality=90),
        "deblocked80x72": codec.compress(rgb, quality=15, detail=False),
        "context_rgb16": context_codec.compress(rgb[:16, :16], quality=50, **v1),
        "context_bands560x16": context_codec.compress(np.tile(rgb[:80, :16], (7, 1, 1)), quality=30, **v1),
        "context_detail80x72": context_codec.compress(rgb, quality=95),
    }


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """One generic mutation of a byte string (may be empty)."""
    b = bytearray(data)
    op = rng.choice(("flip", "flip", "byte", "truncate", "extend", "insert", "delete", "random"))
    if op in ("flip", "byte") and b:
        for _ in range(rng.choice((1, 1, 2, 3, 8))):
            p = rng.randrange(len(b))
            b[p] = b[p] ^ (1 << rng.randrange(8)) if op == "flip" else rng.choice((0, 0xFF, 0x80, rng.randrange(256)))
    elif op == "truncate":
        del b[rng.randrange(len(b) + 1):]
    elif op == "extend":
        b += rng.randbytes(rng.choice((1, 4, rng.randrange(64))))
    elif op == "insert":
        p = rng.randrange(len(b) + 1)
        b[p:p] = rng.randbytes(rng.randrange(1, 16))
    elif op == "delete" and b:
        p = rng.randrange(len(b))
        del b[p:p + rng.randrange(1, 16)]
    else:
        b = bytearray(rng.randbytes(rng.choice((0, 1, 4, 8, len(b)))))
    return bytes(b)


def perturb(rng: random.Random, values: np.ndarray) -> np.ndarray:
    values = values.astype(np.int64)  # a copy, wide enough for the big values (decode_latent's may be narrow)
    flat = values.reshape(-1)
    big = (1 << 15, 1 << 20, (1 << 24) - 1, 1 << 24, 1 << 30, (1 << 34) - 1)
    for _ in range(rng.choice((1, 2, 5, len(flat)))):
        p = rng.randrange(len(flat))
        flat[p] = rng.choice((flat[p] + rng.choice((-1, 1)), rng.choice(big) * rng.choice((-1, 1)),
                              rng.randrange(-300, 300)))
    return values


def mutate_values(rng: random.Random, codec: Codec, data: bytes) -> bytes:
    """Re-encode the file from perturbed hyper-latent and/or residual integers: deep, CRC-valid cases."""
    hyper, _, residual = transform.decode_latent(codec.model, container.unpack(data))
    if rng.random() < 0.5:
        hyper = perturb(rng, hyper)
    if rng.random() < 0.6:
        residual = perturb(rng, residual)
    return restream(codec, data, hyper, residual)


def mutate(rng: random.Random, codec: Codec, data: bytes) -> tuple[str, bytes]:
    """(mutator name, mutated file) for one case."""
    kind = rng.choice(("raw", "raw", "field", "stream", "stream", "values"))
    if kind == "raw":
        fixed = rng.random() < 0.75
        out = mutate_bytes(rng, data)
        return ("raw+crc" if fixed else "raw"), (fix_crc(out) if fixed and len(out) >= 4 else out)
    if kind == "field":
        name = rng.choice(list(FIELDS))
        at, fmt = FIELDS[name]
        b = bytearray(data)
        value = rng.choice(INTERESTING + (rng.getrandbits(32),)) & ((1 << 8 * struct.calcsize(fmt)) - 1)
        struct.pack_into("<" + fmt, b, at, value)
        return f"field:{name}", fix_crc(bytes(b))
    if kind == "stream":
        header, length_at, streams = split_streams(data)
        i = rng.randrange(len(streams))
        streams[i] = mutate_bytes(rng, streams[i])
        names = ["hyper", "latent"] + ["optional"] * (len(streams) - 2)
        return f"stream:{names[i]}", join_streams(header, length_at, streams)
    return "values", mutate_values(rng, codec, data)


def bucket(message: str) -> str:
    """Group similar messages: numbers and Pillow's detail in parentheses do not make a new bucket."""
    message = re.sub(r"\(.*", "(...)", message)
    message = re.sub(r"0x[0-9a-f]+|\b[0-9a-f]{16}\b", "N", message)  # flags, model ids
    return re.sub(r"\d+", "N", message)[:120]


def run_case(codec: Codec, data: bytes) -> tuple[str, str | None]:
    """(outcome bucket, traceback for anything that is not FormatError or success)."""
    try:
        header = container.read_header(data)
        if header.width * header.height > MAX_DECODED_PIXELS:
            return "skipped: declares a large image", None
    except FormatError:
        pass  # decompress reports it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            codec.decompress(data)
            outcome, trace = "ok", None
        except FormatError as error:
            outcome, trace = f"FormatError: {bucket(str(error))}", None
        except BaseException as error:  # noqa: BLE001 - this is what we are hunting
            if isinstance(error, KeyboardInterrupt):
                raise
            outcome, trace = f"CRASH {type(error).__name__}: {bucket(str(error))}", traceback.format_exc()
    if caught and trace is None:
        w = caught[0]
        outcome, trace = f"WARNING {w.category.__name__}: {bucket(str(w.message))}", f"{w.filename}:{w.lineno}"
    return outcome, trace


def fuzz(cases: int, seed: int, seconds: float | None, start: int = 0, step: int = 1) -> dict:
    plain, with_context = Codec(WEIGHTS, threads=1), Codec(CONTEXT_WEIGHTS, threads=1)
    seeds = seed_files(plain, with_context)
    names = sorted(seeds)
    outcomes, mutators, findings, slow = Counter(), Counter(), [], []
    began, done = time.perf_counter(), 0
    for index in range(start, start + cases * step, step):
        if seconds is not None and time.perf_counter() - began > seconds:
            break
        rng = random.Random(seed * 1_000_003 + index)
        name = names[index % len(names)]
        codec = with_context if name.startswith("context") else plain
        mutator, data = mutate(rng, codec, seeds[name])
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        t0 = time.perf_counter()
        outcome, trace = run_case(codec, data)
        took = time.perf_counter() - t0
        faulthandler.cancel_dump_traceback_later()
        outcomes[outcome] += 1
        mutators[mutator] += 1
        done += 1
        if took > SLOW_SECONDS:
            slow.append({"case": index, "seconds": round(took, 2), "seed_file": name, "mutator": mutator})
        if trace is not None and len(findings) < 50:
            findings.append({"case": index, "outcome": outcome, "seed_file": name, "mutator": mutator,
                             "input_hex": data.hex() if len(data) < 4096 else None, "trace": trace})
    return {"cases": done, "seconds": round(time.perf_counter() - began, 1), "outcomes": dict(outcomes),
            "mutators": dict(mutators), "findings": findings, "slow": slow,
            "seed_files": {n: len(seeds[n]) for n in names}}


def _worker(args):
    return fuzz(*args)


def merge(parts: list[dict]) -> dict:
    total = {"cases": 0, "seconds": max(p["seconds"] for p in parts), "outcomes": Counter(), "mutators": Counter(),
             "findings": [], "slow": [], "seed_files": parts[0]["seed_files"]}
    for p in parts:
        total["cases"] += p["cases"]
        total["outcomes"].update(p["outcomes"])
        total["mutators"].update(p["mutators"])
        total["findings"] += p["findings"]
        total["slow"] += p["slow"]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--minutes", type=float, help="Stop after this long even if --cases are not done.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="Processes; cases are split between them.")
    parser.add_argument("--replay", type=int, help="Run one case index and print its outcome and traceback.")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "fuzz_decoder.json"))
    args = parser.parse_args()
    if args.replay is not None:
        result = fuzz(1, args.seed, None, start=args.replay)
        print(json.dumps(result, indent=2))
        return
    seconds = args.minutes * 60 if args.minutes else None
    if args.workers > 1:
        from multiprocessing import Pool
        jobs = [(-(-args.cases // args.workers), args.seed, seconds, w, args.workers) for w in range(args.workers)]
        with Pool(args.workers) as pool:
            result = merge(pool.map(_worker, jobs))
    else:
        result = fuzz(args.cases, args.seed, seconds)
    crashes = sum(v for k, v in result["outcomes"].items() if k.startswith(("CRASH", "WARNING")))
    result = {"tool": "bench/fuzz_decoder.py", "seed": args.seed, "workers": args.workers,
              "cases_per_second": round(result["cases"] / max(result["seconds"], 1e-9), 1),
              "crashes_or_warnings": crashes, **result,
              "outcomes": dict(sorted(result["outcomes"].items(), key=lambda kv: -kv[1])),
              "environment": {"python": platform.python_version(), "numpy": np.__version__,
                              "machine": platform.machine(), "max_decoded_pixels": MAX_DECODED_PIXELS}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['cases']} cases in {result['seconds']} s ({result['cases_per_second']}/s), "
          f"{crashes} crashes or warnings, {len(result['slow'])} slow; wrote {args.out}")


if __name__ == "__main__":
    main()

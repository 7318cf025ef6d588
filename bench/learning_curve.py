"""What each gigapixel of training bought: every shipped model's learned part on Kodak, against today's anchors.

    python -m bench.learning_curve                                   # bench/results/learning_curve.json
    python -m bench.learning_curve --extra /tmp/old/results.json     # a model whose ship lacked the curve

Each ship commit (subject "Ship model ...", touching weights/main/manifest.json) gives its model card
(steps, pixels seen) and the Kodak results committed with it. The learned part's curve is that file's
``aecodec-nodetail`` codec, or its ``aecodec`` codec when the commit predates the detail layer (no
aecodec/detail.py), or a results file given with --extra that names the model (``aecodec bench
--codecs aecodec-nodetail --weights OLD``: the format of the learned part has not changed, so today's
code codes an old bundle as it did then). A model whose ship is not yet committed (weights/main in
the working tree) is included from the working tree's results.

Every curve is compared with the newest committed JPEG and WebP curves (bench/results/kodak/), so
rows differ only by the model, and with the model shipped before it. Curves found once are kept in
the output file, so --extra is needed only once. The README's training section shows the table.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
from pathlib import Path

from aecodec.metrics import bd_rate

ROOT = Path(__file__).resolve().parent.parent
CARD = "weights/main/manifest.json"
RESULTS = "bench/results/kodak/results.json"
OUT = ROOT / "bench/results/learning_curve.json"
MODEL_ID = re.compile(r"\bmodel ([0-9a-f]{16})\b")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def at_commit(commit: str, path: str) -> str | None:
    """A file's text at a commit; None where it did not exist."""
    done = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def curve_of(results: dict, codec: str) -> list[dict] | None:
    points = [{k: row[k] for k in ("quality", "bpp", "psnr")} for row in results["means"] if row["codec"] == codec]
    return points or None


def model_of(results: dict, codec: str) -> str | None:
    found = MODEL_ID.search(results.get("codecs", {}).get(codec, ""))
    return found.group(1) if found else None


def learned_curve(results: dict, has_detail_layer: bool) -> tuple[list[dict] | None, str]:
    """(the learned part's Kodak curve, which codec gave it) of one results file."""
    if curve_of(results, "aecodec-nodetail"):
        return curve_of(results, "aecodec-nodetail"), "aecodec-nodetail"
    if not has_detail_layer:
        return curve_of(results, "aecodec"), "aecodec (no detail layer yet)"
    return None, ""


def shipped_models() -> list[dict]:
    """One entry per ship commit, oldest first: the card's figures and the learned curve committed with it."""
    log = git("log", "--reverse", "--format=%H %s", "--", CARD).splitlines()
    models = []
    for commit, subject in (line.split(" ", 1) for line in log):
        if not subject.startswith("Ship model"):
            continue
        card = json.loads(at_commit(commit, CARD))
        text = at_commit(commit, RESULTS)
        curve, source = learned_curve(json.loads(text), at_commit(commit, "aecodec/detail.py") is not None) \
            if text else (None, "")
        models.append(entry(card, commit[:7], curve, source))
    return models


def entry(card: dict, commit: str, curve: list[dict] | None, source: str) -> dict:
    return {"model_id": card["model_id"], "commit": commit, "steps": card["training_steps"],
            "gigapixels": round(card["pixels_seen"] / 1e9, 2), "curve": curve, "curve_from": source}


def working_tree_model(models: list[dict]) -> dict | None:
    """weights/main and its Kodak results in the working tree, when that model is not shipped yet."""
    card = json.loads((ROOT / CARD).read_text())
    if any(m["model_id"] == card["model_id"] for m in models):
        return None
    results = json.loads((ROOT / RESULTS).read_text())
    same = model_of(results, "aecodec-nodetail") == card["model_id"]
    return entry(card, "working tree", curve_of(results, "aecodec-nodetail") if same else None,
                 "aecodec-nodetail" if same else "")


def compare(models: list[dict], anchors: dict) -> None:
    """Each model's BD-rate (PSNR-RGB) against the anchors and against the model before it, in place."""
    previous = None
    for model in models:
        curve = model["curve"]
        model["bd_rate_psnr_percent"] = {name: _bd(anchor, curve) for name, anchor in anchors.items()}
        model["bd_rate_psnr_percent"]["previous model"] = _bd(previous, curve)
        previous = curve or previous


def _bd(anchor: list[dict] | None, test: list[dict] | None) -> float | None:
    if not anchor or not test:
        return None
    r = bd_rate([p["bpp"] for p in anchor], [p["psnr"] for p in anchor], [p["bpp"] for p in test],
                [p["psnr"] for p in test])
    return None if math.isnan(r.percent) else round(r.percent, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", type=Path, action="append", default=[],
                        help="aecodec bench results.json with an aecodec-nodetail curve of an older model")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    # Curves the ship commits lack: found by an earlier run (kept in --out), or given now with --extra.
    found = ({m["model_id"]: (m["curve"], m["curve_from"]) for m in json.loads(args.out.read_text())["models"]}
             if args.out.exists() else {})
    for path in args.extra:
        results = json.loads(path.read_text())
        found[model_of(results, "aecodec-nodetail")] = (curve_of(results, "aecodec-nodetail"),
                                                        "aecodec-nodetail, benched after its ship (--extra)")
    models = shipped_models()
    newest = working_tree_model(models)
    models += [newest] if newest else []
    for model in models:
        if model["curve"] is None:
            model["curve"], model["curve_from"] = found.get(model["model_id"], (None, "not measured"))
    current = json.loads((ROOT / RESULTS).read_text())
    anchors = {name: curve_of(current, name) for name in ("jpeg", "webp")}
    compare(models, anchors)
    report = {"anchors": {"source": RESULTS, "date": current["env"]["date"][:10],
                          "codecs": {name: current["codecs"][name] for name in anchors}},
              "models": models}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for m in models:
        bd = m["bd_rate_psnr_percent"]
        print(f"{m['model_id']} {m['gigapixels']:6.2f} Gpx  jpeg {bd['jpeg']}  webp {bd['webp']}  "
              f"previous {bd['previous model']}  ({m['curve_from']})")


if __name__ == "__main__":
    main()

"""The GPU workflow, run on the CPU: pack a training set, train with a budget, resume from its checkpoint."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from aecodec.train.loop import load_checkpoint  # noqa: E402
from helpers import photo_like  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def run(args, cwd, **env):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    result = subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_pack_train_and_resume_on_cpu(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for i in range(12):
        Image.fromarray(photo_like(96, 128, seed=i)).save(source / f"photo{i}.png")
    work = tmp_path / "work"
    work.mkdir()
    run([sys.executable, str(ROOT / "scripts" / "gpu_pack.py"), "--data", str(source), "--out", "pack",
         "--max-mb", "0.2"], cwd=work)
    packed = sorted((work / "pack" / "photos").glob("*.jpg"))
    assert len(packed) == 12 and sum(p.stat().st_size for p in packed) <= 0.2e6

    run(["bash", str(ROOT / "scripts" / "gpu_train.sh"), "0.05"], cwd=work,
        DEVICE="cpu", OUT="out", BATCH="2", CROP="64")
    gpu_checkpoint = load_checkpoint(work / "out" / "run" / "last.ckpt")
    assert gpu_checkpoint["step"] >= 1

    run([sys.executable, "-m", "aecodec", "train", "--resume", "out/run/last.ckpt", "--data", str(source),
         "--out", "cpu", "--minutes", "0.02", "--threads", "1"], cwd=work)
    resumed = load_checkpoint(work / "cpu" / "last.ckpt")
    assert resumed["step"] > gpu_checkpoint["step"]
    # The pack keeps the photos' names, so the CPU run holds out the same photos as the GPU run.
    assert resumed["validation_stems"] == gpu_checkpoint["validation_stems"]

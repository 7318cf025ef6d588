"""The runtime must never pull in torch or onnx: checked in a fresh interpreter."""

import subprocess
import sys
from pathlib import Path

from conftest import TINY_WEIGHTS

SCRIPT = f"""
import sys
import numpy as np
import aecodec
codec = aecodec.Codec({str(TINY_WEIGHTS)!r})
rgb = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
image = codec.decompress(codec.compress(rgb, quality=50))
assert image.size == (64, 48)
heavy = sorted(m for m in ("torch", "onnx", "matplotlib") if m in sys.modules)
print(",".join(heavy) or "clean")
"""


def test_round_trip_imports_neither_torch_nor_onnx():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, check=True)
    assert out.stdout.strip() == "clean"


def test_import_aecodec_is_light():
    code = "import sys, aecodec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, check=True)
    assert out.stdout.strip() == "False"

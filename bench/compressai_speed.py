"""Time CompressAI's mean-scale hyperprior on this machine, for the speed comparison in the README.

    pip install --no-deps compressai==1.2.8 && pip install scipy
    python -m bench.compressai_speed ../shared/data/kodak/kodim23.png --threads 2

The model is mbt2018-mean at N=128, M=192 (CompressAI's ``MeanScaleHyperprior``),
freshly initialised: pretrained weights would need a download, and the
networks' time does not depend on the weights' values. compress() and
decompress() include CompressAI's own rANS coding. CompressAI 1.2.8 imports
point-cloud and vision packages at import time that the image models never
use; rather than install them, they are replaced by empty stand-ins.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

UNUSED_IMPORTS = ("pandas", "pointops", "torch_scatter", "timm", "h5py", "plyfile", "torch_geometric",
                  "torchvision", "einops", "matplotlib")


class StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import hook that answers the unused packages with empty modules."""

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in UNUSED_IMPORTS:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = mock.MagicMock()
        module.__path__, module.__spec__ = [], spec
        return module

    def exec_module(self, module):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="bench/results/speed/compressai.json")
    args = parser.parse_args()
    sys.meta_path.insert(0, StandIns())
    import compressai
    import numpy as np
    import torch
    from compressai.models import MeanScaleHyperprior
    from PIL import Image

    torch.set_num_threads(args.threads)
    net = MeanScaleHyperprior(128, 192).eval()
    net.update(force=True)
    rgb = np.array(Image.open(args.image).convert("RGB"))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    encode, decode = [], []
    with torch.no_grad():
        for _ in range(args.repeats + 1):  # the first run warms up and is not counted
            start = time.perf_counter()
            out = net.compress(x)
            encode.append(time.perf_counter() - start)
            start = time.perf_counter()
            net.decompress(out["strings"], out["shape"])
            decode.append(time.perf_counter() - start)
    report = {"model": "compressai MeanScaleHyperprior(N=128, M=192), untrained", "image": f"{x.shape[3]}x{x.shape[2]}",
              "compressai": compressai.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "repeats": args.repeats, "compress_ms": round(1000 * statistics.median(encode[1:]), 1),
              "decompress_ms": round(1000 * statistics.median(decode[1:]), 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()

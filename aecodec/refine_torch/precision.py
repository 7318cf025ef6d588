"""Whether bf16 pays on this machine: asked by the refinement's and training's defaults alike."""

from __future__ import annotations

from pathlib import Path


def fast_bf16_cpu() -> bool:
    """bf16 pays on CPUs with AMX or AVX-512 bf16; elsewhere it is far slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags

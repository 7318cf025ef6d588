"""``--effort``: spend encoding time on a smaller file, with the same decoder.

A typical workflow looks like this::

    iterations = iterations_for(effort)            # 0 for effort 0: today's single pass
    refiner = load_refiner(bundle, threads)         # torch, from the 'effort' extra
    quality, data = fit_quality_refined(encode, refine, budget)   # --target-size at effort > 0

Effort above 0 refines each image's latent and hyper-latent against the
model's rate-distortion loss (``aecodec.refine_torch.refiner``), then codes them on the
usual exact path: only which integers are sent changes. The refinement needs
torch, which the runtime never imports at effort 0: ``load_refiner`` is the
runtime's one import of ``aecodec.refine_torch``, and that never imports ``aecodec.train``.
"""

from __future__ import annotations

from typing import Callable

from . import quality as quality_rules
from .extras import INSTALL, MissingExtra, missing
from .ratecontrol import fit_quality

# Refinement iterations of each level, index = effort, chosen from bench/effort_gain.py's curve on
# a Kodak subset (bench/results/effort_gain.json, model 5a9815c124e6700e): BD-rate against effort 0
# of -3.0, -6.9, -8.3 and -9.3% at 25, 50, 100 and 200 iterations. 10 iterations gained nothing
# (the annealing has no time to settle), so the levels start at 25; doubling past 200 would double
# an already long encode (75 s/MPx at 2 threads) for about 1% more.
EFFORT_ITERATIONS = (0, 25, 50, 100, 200)
MAX_EFFORT = len(EFFORT_ITERATIONS) - 1
NEEDS = ["torch", "onnx"]  # the 'effort' extra


class EffortUnavailable(MissingExtra):
    """Effort above 0 was asked for, but torch (the 'effort' extra) is not installed."""


def iterations_for(effort: int, lowest: int = 0) -> int:
    """Refinement iterations of an effort level; the only check of its range (lowest: 1 where 0 means nothing)."""
    if not isinstance(effort, int) or not lowest <= effort <= MAX_EFFORT:
        raise ValueError(f"effort must be an integer from {lowest} to {MAX_EFFORT}, not {effort!r}")
    return EFFORT_ITERATIONS[effort]


def _unavailable(absent: str) -> EffortUnavailable:
    return EffortUnavailable(f"effort above 0 needs {absent}, from the 'effort' extra: {INSTALL['effort']}")


def check_effort_available() -> None:
    """Raise EffortUnavailable before any work when torch or onnx is missing; imports neither."""
    absent = missing(NEEDS)
    if absent:
        raise _unavailable(absent[0])


def load_refiner(bundle, threads: int = 0):
    """The torch refinement of a weights bundle, or one line saying what to install."""
    try:
        from .refine_torch.refiner import Refiner
    except ImportError as error:
        raise _unavailable((error.name or "torch").split(".")[0]) from None
    return Refiner(bundle, threads=threads)


def fit_quality_refined(encode: Callable[[float], bytes], refine: Callable[[float], bytes], budget: int,
                        search: Callable = fit_quality) -> tuple[float, bytes]:
    """The highest quality whose refined file fits the budget, for two refinements rather than one
    per bisection step (a refinement costs seconds to minutes; an effort-0 encode, milliseconds).

    search (fit_quality, or it with the wording of its error) bisects at effort 0; refine there;
    refinement saves bits at the same quality, so bisect again at effort 0 for the budget grown by
    the share refinement saved, refine there, and keep that file when it fits. What is returned
    always fits: the second refinement, else the first, else (when refinement made the file
    larger) the effort-0 file.
    """
    quality, plain = search(encode, budget)
    first = refine(quality)
    if len(first) > budget:
        return quality, plain
    if len(first) >= len(plain) or quality >= quality_rules.MAX:
        return quality, first
    higher, _ = fit_quality(encode, int(budget * len(plain) / len(first)))  # a larger budget: reachable
    if higher <= quality:
        return quality, first
    second = refine(higher)
    return (higher, second) if len(second) <= budget else (quality, first)

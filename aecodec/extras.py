"""Optional extras: find out before any work starts whether a command's packages are installed.

A typical workflow looks like this::

    require("train", ["torch"], "aecodec train")   # MissingExtra names the extra to install
    if missing(["matplotlib"]): ...                 # leave the plots out, and say so

Checking with find_spec imports nothing, so a missing package is reported in
one line before a long run, never as a traceback at its end.
"""

from __future__ import annotations

import importlib.util

INSTALL = {
    # torch first: the extra's range accepts the CPU wheel, which pip would not pick by itself
    "train": 'pip install torch==2.13.0 "aecodec[train]"',
    "bench": 'pip install "aecodec[bench]"',
    "effort": 'pip install torch==2.13.0 "aecodec[effort]"',
}


class MissingExtra(RuntimeError):
    """A command needs packages from an optional extra that is not installed."""


def missing(modules: list[str]) -> list[str]:
    """The modules of this list that cannot be imported."""
    return [name for name in modules if not _found(name)]


def _found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or half-removed install counts as missing
        return False


def require(extra: str, modules: list[str], purpose: str) -> None:
    """Raise MissingExtra, naming the extra and how to install it, unless every module is there."""
    absent = missing(modules)
    if absent:
        raise MissingExtra(f"{purpose} needs {' and '.join(absent)}, from the '{extra}' extra: {INSTALL[extra]}")

"""aecodec: a learned image codec with bit-exact, machine-independent decoding.

    import aecodec
    data = aecodec.compress("photo.png", quality=60)
    aecodec.decompress(data).save("photo.out.png")

Importing aecodec registers the ``.aec`` format with Pillow as well. It stays
cheap: ``Codec`` and the functions above load ONNX Runtime on first use.
"""

from importlib import import_module as _import_module

from . import pillow_plugin  # noqa: F401  registers .aec with Pillow; its only side effect
from .container import FormatError
from .imageio import ImageError
from .limits import PixelLimitError
from .ratecontrol import TargetError

__version__ = "0.1.0"
__all__ = ["Codec", "FormatError", "ImageError", "PixelLimitError", "TargetError", "compress", "decompress",
           "info", "__version__"]

_LAZY = {"Codec": "codec", "compress": "api", "decompress": "api", "info": "api"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(_import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy names too, so that dir() and tab completion show what the package offers."""
    return sorted({*globals(), *_LAZY})

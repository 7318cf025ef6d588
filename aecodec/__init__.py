"""aecodec: a learned image codec with bit-exact, machine-independent decoding.

    import aecodec
    data = aecodec.compress("photo.png", quality=60)
    aecodec.decompress(data).save("photo.out.png")

Importing aecodec registers the ``.aec`` format with Pillow as well.
"""

from .api import compress, decompress, info
from .codec import Codec
from .container import FormatError
from .imageio import ImageError
from .ratecontrol import TargetError

__version__ = "0.1.0"
__all__ = ["Codec", "FormatError", "ImageError", "TargetError", "compress", "decompress", "info", "__version__"]

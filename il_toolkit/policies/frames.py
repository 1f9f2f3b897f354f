"""Moved to :mod:`il_toolkit.features.frames` (the shared feature pipeline); this path keeps old imports working."""

from il_toolkit.features.frames import *  # noqa: F401,F403
from il_toolkit.features.frames import (  # noqa: F401  (names without __all__)
    ERROR_LENGTH_SCALE,
    FRAMES,
    TaskFrame,
    get_frame,
    pusht_block_decode,
    pusht_block_encode,
    pusht_block_features,
    pusht_push_decode,
    pusht_push_encode,
    pusht_push_features,
)

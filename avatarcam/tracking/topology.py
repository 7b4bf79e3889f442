"""Named index sets of MediaPipe's 478-point face mesh, and its triangles."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

FACE_OVAL = [
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
]
INNER_LIPS = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191]
# The inner-lip loop as two chains running corner to corner (same length: column i faces column i).
LOWER_LIP_CHAIN = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
UPPER_LIP_CHAIN = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
OUTER_LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
# "Right" and "left" are the subject's own: the right eye is on the image's left in a frontal portrait.
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
RIGHT_IRIS = [468, 469, 470, 471, 472]  # centre first
LEFT_IRIS = [473, 474, 475, 476, 477]
# The two rings of points above each upper lid, column by column with the lid's own points (retarget.EYE_LIDS):
# the lashes lie between the lid and the first ring, the lid's skin up to the second.
LID_RINGS = {
    "right": ([247, 30, 29, 27, 28, 56, 190], [113, 225, 224, 223, 222, 221, 189]),
    "left": ([467, 260, 259, 257, 258, 286, 414], [342, 445, 444, 443, 442, 441, 413]),
}
RIGHT_BROW = [70, 63, 105, 66, 107, 46, 53, 52, 65, 55]
LEFT_BROW = [300, 293, 334, 296, 336, 276, 283, 282, 295, 285]

# Points that move with the skull, not with expressions: the pose is fitted on these.
RIGID = [
    1,
    4,
    5,
    6,
    168,
    197,
    195,
    10,
    151,
    9,
    8,
    109,
    338,
    67,
    297,
    103,
    332,
    33,
    133,
    362,
    263,
    234,
    454,
    127,
    356,
    116,
    345,
    123,
    352,
    50,
    280,
    93,
    323,
    6,
    122,
    351,
    245,
    465,
]

# Points used by the signals (EVAL.md).
MOUTH_UPPER, MOUTH_LOWER = 13, 14
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
RIGHT_LID_UP, RIGHT_LID_DOWN, LEFT_LID_UP, LEFT_LID_DOWN = 159, 145, 386, 374
NOSE_TIP, FOREHEAD, CHIN, RIGHT_CHEEK, LEFT_CHEEK = 1, 10, 152, 234, 454
MOUTH_RIGHT, MOUTH_LEFT = 61, 291


@lru_cache(maxsize=1)
def face_triangles() -> np.ndarray:
    """The tessellation's triangles (from its edge list), with the eyes and mouth left as holes.

    The animator fills the eye holes with its own triangles (so the irises can move) and the mouth hole with
    a mouth interior, so neither is stretched lip or eyelid skin.
    """
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    edges = {tuple(sorted(e)) for e in FACEMESH_TESSELATION}
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    triangles = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    holes = [set(INNER_LIPS), set(RIGHT_EYE), set(LEFT_EYE)]
    kept = [t for t in sorted(triangles) if not any(set(t) <= hole for hole in holes)]
    return np.asarray(kept, dtype=np.int32)

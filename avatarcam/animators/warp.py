"""The geometric animator: a depth-ordered piecewise-affine warp of the whole portrait.

Control points are the avatar's 478 landmarks, a ring around the head that turns with it (hair), a wider ring
whose upper half follows it partly (hair ends; the shoulders stay) and the fixed image border. The warped person
is laid over a clean plate of the background (person mask), so the background stays put. Eyes get their own
triangles with the irises inside, so gaze and blinks move; the mouth is a hole that is filled with the driver's
own mouth interior made to fit the avatar (interior.py; a dark interior when there is no driver image), so an
open mouth never shows smeared lips. No skin triangle is stretched further than the driver's own (limits.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from avatarcam.animators.folds import folded, push_out_of_hull, push_outside, unfold, wide
from avatarcam.animators.interior import (
    OwnTeeth,
    interior_softness,
    lip_look,
    lips_round,
    match_lip_colour,
    soft_edge,
)
from avatarcam.animators.limits import StretchLimiter
from avatarcam.animators.mesh import (
    backward_map,
    delaunay_inside,
    fill_holes,
    paint_index_map,
    signed_areas,
    triangle_affines,
)
from avatarcam.colour import grey, is_greyscale
from avatarcam.config import AnimatorConfig
from avatarcam.motion.stretch import skin_triangles, tears
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import canonical_face, fit_pose, from_canonical, to_canonical
from avatarcam.tracking.segmentation import clean_plate
from avatarcam.types import Avatar, Face, Frame, Motion

N_LANDMARKS = 478
# Per eye: the lid points at the eye's middle (upper, lower), the iris points, and the eye's corners.
EYE_AXES = ((159, 145, T.RIGHT_IRIS, (33, 133)), (386, 374, T.LEFT_IRIS, (263, 362)))
HEAD_RING_SCALE = 1.3  # hair ring, as a multiple of the face oval around its centre
HAIR_EXTRA = 0.25  # the ring reaches further above the face, where hair is
NECK_FOLLOW = 0.7  # below the chin the ring moves 70% as much as the head: the neck bends, shoulders stay
OUTER_RING_SCALE = 2.6  # outer ring: hair ends and shoulders
HAIR_DEPTH = 0.3  # the rings lie this far behind the face's outline (canonical units: inter-ocular distances)
OUTER_FOLLOW = 1.0  # how much the outer ring follows the head (only with a person mask; else it stays fixed)
OPEN_MOUTH_AREA = 0.002  # inner-lip area, in iod², above which a mouth counts as open
RING_CLEARANCE = 0.3  # a ring point the face hides is moved this far (iod; twice for the outer ring) past the hull
SLIDE_DEAD_ZONE = 0.5  # inter-ocular distances the head moves before the body starts sliding along with it
# The fixed frame stands this far (share of the image side) outside the image: a face that reaches the image's
# edge then stretches that band instead of folding over the frame. The rings stop short of it.
BORDER_OUTSET = 0.25
RING_REACH = 0.2
OWN_TEETH_FADE = (1.0, 3.0)  # driver's mouth opening (1: just open) over which a smile's own teeth give way
MAX_SQUEEZE = 8.0  # a face triangle drawn this many times smaller than it is in the portrait is a sliver
RIM_IOD = 0.06  # inter-ocular distances over which the interior fades in under the avatar's own lips
EYE_SHUT_RANGE = (0.6, 0.9)  # share of the eye's opening closed over which it fades into a lash line


def mouth_triangles() -> np.ndarray:
    """A strip between the lower and upper inner-lip chains (both run corner to corner)."""
    tris = []
    lower, upper = T.LOWER_LIP_CHAIN, T.UPPER_LIP_CHAIN
    for i in range(len(lower) - 1):
        for tri in ((lower[i], lower[i + 1], upper[i + 1]), (lower[i], upper[i + 1], upper[i])):
            if len(set(tri)) == 3:
                tris.append(tri)
    return np.asarray(tris, np.int32)


def irises_follow_lids(points: np.ndarray, open_gaps: list[float]) -> np.ndarray:
    """A closing eye takes its iris with it: across the lid line the iris points reach no further than the lids
    have closed (relative to `open_gaps`, the portrait's own lid gaps), else the eye's triangles fold and the
    iris and sclera show through closed lids."""
    points = points.copy()
    for (upper, lower, iris, _), axis, closed in zip(
        EYE_AXES, _eye_normals(points), lid_closures(points, open_gaps), strict=True
    ):
        offset = points[iris] - (points[upper] + points[lower]) / 2
        points[iris] -= np.outer(offset @ axis * closed, axis)
    return points


def _eye_normals(points: np.ndarray) -> list[np.ndarray]:
    """Per eye, the unit vector across it (perpendicular to the line through its corners, pointing down)."""
    normals = []
    for *_, (a, b) in EYE_AXES:
        along = points[b] - points[a]
        normal = np.array([-along[1], along[0]]) / max(float(np.linalg.norm(along)), 1e-9)
        normals.append(normal if normal[1] >= 0 else -normal)
    return normals


def lid_gaps(points: np.ndarray) -> list[float]:
    """Per eye, the opening between the middle lid points, measured across the eye."""
    return [
        float((points[lower] - points[upper]) @ axis)
        for (upper, lower, *_), axis in zip(EYE_AXES, _eye_normals(points), strict=True)
    ]


def lid_closures(points: np.ndarray, open_gaps: list[float]) -> list[float]:
    """Per eye, how far the lids have closed (0 open as in `open_gaps`, the portrait's own gaps; 1 shut)."""
    return [
        1.0 - min(1.0, max(gap, 0.0) / max(open_gap, 1e-6))
        for gap, open_gap in zip(lid_gaps(points), open_gaps, strict=True)
    ]


def border_points(size: int, per_side: int = 9, outset: float = 0.0) -> np.ndarray:
    """Fixed points along a square frame `outset` pixels outside the image's border."""
    edge = np.linspace(-outset, size - 1 + outset, per_side)
    zeros, last, inner = np.full_like(edge, -outset), np.full_like(edge, size - 1 + outset), edge[1:-1]
    return np.concatenate(
        [
            np.stack([edge, zeros], 1),
            np.stack([edge, last], 1),
            np.stack([zeros[1:-1], inner], 1),
            np.stack([last[1:-1], inner], 1),
        ]
    )


def _mouth_opening(points: np.ndarray) -> float:
    """Inner-lip area in units of OPEN_MOUTH_AREA·iod²: above 1 the mouth counts as open."""
    iod = float(np.linalg.norm(points[T.RIGHT_EYE_OUTER, :2] - points[T.LEFT_EYE_OUTER, :2]))
    return _polygon_area(points[T.INNER_LIPS, :2]) / max(OPEN_MOUTH_AREA * iod * iod, 1e-9)


def _mouth_open(points: np.ndarray) -> bool:
    return _mouth_opening(points) > 1.0


def _polygon_box(polygon: np.ndarray, shape: tuple[int, ...], grow: int = 2) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1: the polygon's bounding box grown by `grow` px (by default, room for its anti-aliased edge),
    in the image."""
    x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int) - grow, 0)
    x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + grow + 1, (shape[1], shape[0]))
    return int(x0), int(y0), int(x1), int(y1)


def _polygon_mask(polygon: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """uint8 mask of the polygon over `box` (0–255, anti-aliased at sub-pixel precision)."""
    x0, y0, x1, y1 = box
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((polygon - (x0, y0)) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return mask


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


@dataclass(frozen=True)
class _Look:
    """What drawing needs of the prepared avatar. A plan keeps the look it was made with: drawn on another thread
    while the next avatar is prepared, a frame never mixes two."""

    image: np.ndarray
    mask: np.ndarray | None  # the person mask, laid over `plate`
    plate: np.ndarray | None  # the background with the person painted out
    lip_colour: np.ndarray
    lip_chroma: float  # the median chroma of the portrait's lip band: the interior's colour is measured against it
    greyscale: bool
    softness: float  # Gaussian σ of the portrait's blur (the mouth interior is matched to it)
    own_interior: bool  # the portrait shows its teeth
    own_teeth: OwnTeeth | None  # and those teeth, laid over the driver's interior
    eye_gaps: list[float]
    lash_colours: list[np.ndarray]


@dataclass(frozen=True)
class WarpPlan:
    """One frame's geometry, ready to draw: where every point goes, which triangle covers each grid cell and
    each triangle's map back to the portrait."""

    look: _Look
    dst: np.ndarray
    index_map: np.ndarray  # grid×grid triangle numbers
    affines: np.ndarray  # per triangle, 2×3: target pixel → portrait pixel
    cell: float  # pixels per grid cell
    face_from: int  # triangle numbers from here on are the face's (below: the background's)
    driver: Frame | None
    driver_face: Face | None


class WarpAnimator:
    name = "warp"
    status = ""
    draws_portrait = True
    last_folds = 0  # triangles drawn mirror-inverted in the last frame (a fold: texture flipped over)
    last_tears = 0  # face triangles stretched past the tear limit in the last frame (animators/limits.py)

    def __init__(self, config: AnimatorConfig) -> None:
        self.config = config
        self._mouth = mouth_triangles()
        self.avatar: Avatar | None = None

    def prepare(self, avatar: Avatar) -> None:
        self.avatar = avatar
        size = avatar.size
        face = avatar.face
        lm = face.landmarks.astype(np.float64)
        canon = to_canonical(lm, face.scale, face.rotation, face.translation)
        self._canon = canon
        self._skin = skin_triangles()
        limit = self.config.warp.stretch_limit
        self._limiter = StretchLimiter(N_LANDMARKS, limit) if limit > 0 else None
        # The face's outline is its landmarks' convex hull, not the mesh's oval: in a turned portrait the nose and
        # lips stick out past the oval, and background triangles must not carry them (a ghost profile).
        outline = cv2.convexHull(lm[:N_LANDMARKS, :2].astype(np.float32), returnPoints=False).ravel()
        iod = float(np.linalg.norm(lm[T.RIGHT_EYE_OUTER, :2] - lm[T.LEFT_EYE_OUTER, :2]))
        self._ring_box = (-RING_REACH * size, size - 1 + RING_REACH * size)
        ring_src = self._place_rings(canon, lm[outline, :2], iod, has_mask=avatar.mask is not None)
        self._fixed = border_points(size, outset=BORDER_OUTSET * size)
        self._src = np.concatenate([lm[:, :2], ring_src, self._fixed]).astype(np.float64)
        self._ring_slice = slice(N_LANDMARKS, N_LANDMARKS + len(ring_src))
        self._is_ring = np.zeros(len(self._src), bool)
        self._is_ring[self._ring_slice] = True

        # Background: Delaunay over the face outline, both rings and the border (covers the whole image).
        self._outline = outline
        bg_ids = np.concatenate([outline, np.arange(N_LANDMARKS, len(self._src))])
        background = bg_ids[Delaunay(self._src[bg_ids]).simplices].astype(np.int32)
        # Triangles spanning the face's outline lie under the face mesh; where that shows nothing (a turned-over
        # triangle left out), they would stretch the whole face across the gap.
        self._background = background[(background >= N_LANDMARKS).any(axis=1)]
        eyes = [
            delaunay_inside(lm[ids, :2], lm[contour, :2], np.asarray(ids))
            for contour, iris in ((T.RIGHT_EYE, T.RIGHT_IRIS), (T.LEFT_EYE, T.LEFT_IRIS))
            for ids in [contour + iris]
        ]
        self._face = np.concatenate([T.face_triangles(), *eyes, self._mouth]).astype(np.int32)
        self._front_winding = np.sign(signed_areas(canonical_face(), self._face))  # axes point as the image's
        self._eye_gaps = lid_gaps(lm[:, :2])
        self._triangles = np.concatenate([self._background, self._face])
        # With a person mask the background stays exactly still: the warped person is laid over a clean plate.
        plate = None
        if avatar.mask is not None:
            zone = np.zeros((size, size), np.float32)
            cv2.fillConvexPoly(zone, cv2.convexHull(np.round(self._outer_ring).astype(np.int32)), 1.0)
            # The face is person and is painted out of the plate even where the segmenter missed it (a profile's
            # nose against a dark background): else a copy of it stays behind when the head turns.
            face_area = np.zeros((size, size), np.float32)
            cv2.fillConvexPoly(face_area, np.round(lm[outline, :2]).astype(np.int32), 1.0)
            plate = clean_plate(avatar.image, np.maximum(avatar.mask, face_area), np.maximum(zone, face_area))
        lip_colour, lip_chroma = lip_look(avatar.image, lm)
        self._look = _Look(
            image=avatar.image,
            mask=avatar.mask,
            plate=plate,
            lip_colour=lip_colour,
            lip_chroma=lip_chroma,
            greyscale=is_greyscale(avatar.image),
            softness=interior_softness(avatar.image, lm),
            # A portrait that already shows its teeth keeps its own (stretched) interior when there is no driver.
            own_interior=_mouth_open(lm),
            # A mouth only parted (a blurred portrait's lips read apart) has no teeth to lend: only a grin's do.
            own_teeth=OwnTeeth.of(avatar.image, lm[T.UPPER_LIP_CHAIN, :2], lm[T.LOWER_LIP_CHAIN, :2])
            if _mouth_opening(lm) >= OWN_TEETH_FADE[1]
            else None,
            eye_gaps=self._eye_gaps,
            lash_colours=[self._lash_colour(avatar.image, lm[contour, :2]) for contour in (T.RIGHT_EYE, T.LEFT_EYE)],
        )

    def _place_rings(self, canon: np.ndarray, outline: np.ndarray, iod: float, has_mask: bool) -> np.ndarray:
        """Sets the two rings around the head (canonical frame) and how much each point follows the head;
        returns their positions in the portrait, none inside the face's `outline` (`iod`: the eyes' distance)."""
        oval = canon[T.FACE_OVAL]
        centre = oval.mean(axis=0)
        offsets = oval - centre
        inner = centre + offsets * HEAD_RING_SCALE
        above = offsets[:, 1] < 0
        inner[above, 1] += offsets[above, 1] * HAIR_EXTRA
        outer = centre + offsets * OUTER_RING_SCALE
        rings = np.concatenate([inner, outer])
        # The hair lies behind the face's outline: under a turn it moves like a point at that depth.
        rings[:, 2] = np.concatenate([oval[:, 2], oval[:, 2]]) + HAIR_DEPTH
        self._ring_canon = rings
        # With a person mask the outer ring (hair ends) follows the head too, since the background comes from
        # the clean plate; without one it stays fixed so the background is not dragged along. Only its upper
        # half follows: a turning or tilting head does not carry the shoulders. Both rings fade smoothly from
        # top to bottom: a step would shear the hair at the sides of a tilted head.
        height = offsets[:, 1] / np.abs(offsets[:, 1]).max()  # −1 at the top of the face, +1 at the chin
        inner_follow = 1.0 - (1.0 - NECK_FOLLOW) * _smoothstep(height, 0.0, 0.6)
        outer_follow = OUTER_FOLLOW * (1.0 - _smoothstep(height, -0.4, 0.2)) if has_mask else np.zeros_like(height)
        self._ring_follow = np.concatenate([inner_follow, outer_follow])[:, None]
        face = self.avatar.face
        projected = from_canonical(rings, face.scale, face.rotation, face.translation)[:, :2]
        # Behind a turned face the ring projects into it (the far cheek's hair lies behind the nose): such a point
        # would pin hair and background to the face. It moves out past the outline, and keeps that offset.
        clearance = np.repeat([RING_CLEARANCE * iod, 2 * RING_CLEARANCE * iod], len(oval))
        pushed = push_outside(projected, outline, clearance)
        self._outer_ring = pushed[len(oval) :]
        # A point off the image has nothing to carry, and crowded against the frame it would fold: left out.
        kept = np.all((pushed >= 0) & (pushed <= self.avatar.size - 1), axis=1)
        placed = np.clip(pushed[kept], *self._ring_box)
        self._ring_canon, self._ring_follow = self._ring_canon[kept], self._ring_follow[kept]
        self._outer = (np.arange(len(rings)) >= len(oval))[kept]
        self._ring_shift = placed - projected[kept]
        return placed

    def __call__(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> np.ndarray:
        return self.draw(self.plan(motion, driver, driver_face))

    def plan(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> WarpPlan:
        """The frame's geometry: targets, triangles far to near into a grid of triangle numbers (the part with
        state: the rings, the fold count)."""
        if self.avatar is None:
            raise RuntimeError("WarpAnimator.prepare(avatar) must be called first")
        size = self.avatar.size
        dst = self._targets(motion.landmarks.astype(np.float64), motion.driver_stretch)
        grid = min(self.config.warp.grid, size)
        cell = size / grid
        affines, ok = triangle_affines(dst, self._src, self._triangles)
        depth = motion.landmarks[self._face, 2].mean(axis=1)
        n_bg = len(self._background)
        # A face triangle squeezed to a sliver still paints the grid cells along its edges, whose centres lie off
        # it: its map, far from the identity there, fetches pixels from elsewhere in the portrait (a bright speck
        # of teeth on a cheek, a dark one by a nostril). It shows nothing, so its neighbours cover those cells.
        squeeze = np.linalg.norm(affines[n_bg:, :, :2], axis=(1, 2)) > MAX_SQUEEZE * np.sqrt(2.0)
        squeeze[-len(self._mouth) :] = False
        ok[n_bg:] &= ~squeeze
        # Far to near. A face triangle that faces away (its winding is not the frontal face's) is not drawn: depth
        # order alone let slivers of a turned cheek's back side show, mirrored, past its front (a torn cheek); the
        # few cells that nothing else covers take their nearest drawn neighbour's map. (A triangle a turned
        # portrait shows from behind but the target shows from the front is drawn: its texture is all there is.)
        areas = signed_areas(dst, self._face)
        back = np.sign(areas) != self._front_winding
        back &= wide(dst, self._face, areas, back)
        back[-len(self._mouth) :] = False  # the mouth's strip is the mouth fill's business
        order = np.concatenate([np.arange(n_bg), n_bg + np.argsort(-depth, kind="stable")])
        order = order[ok[order] & ~np.concatenate([np.zeros(n_bg, bool), back])[order]]
        # Grid cell i stands for output pixel (i + 0.5)·cell − 0.5, as cv2.resize assumes when it upsamples.
        index_map = fill_holes(paint_index_map((grid, grid), (dst + 0.5) / cell - 0.5, self._triangles, order))
        # The background's folds that remain (its ring could not give way) are counted; the mouth's strip is not.
        bg_folds = folded(self._src, dst, self._background)
        self.last_folds = 0
        if bg_folds.any():
            shown = np.bincount(index_map[index_map >= 0], minlength=len(self._triangles))[:n_bg] > 0
            self.last_folds = int(np.count_nonzero(shown & bg_folds))
        return WarpPlan(self._look, dst, index_map, affines, cell, n_bg, driver, driver_face)

    def draw(self, plan: WarpPlan) -> np.ndarray:
        """The pixels of a planned frame: the portrait remapped over its clean plate, the mouth interior, shut eyes.
        Reads only the plan, so it may run on another thread while the next frame is planned."""
        look = plan.look
        size = look.image.shape[0]
        map_x, map_y = backward_map(plan.index_map, plan.affines, plan.cell)
        map_x, map_y = self._smooth_background(map_x, map_y, plan.index_map >= plan.face_from, plan.cell)
        if map_x.shape[0] != size:
            map_x = cv2.resize(map_x, (size, size), interpolation=cv2.INTER_LINEAR)
            map_y = cv2.resize(map_y, (size, size), interpolation=cv2.INTER_LINEAR)
        out = cv2.remap(look.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        if look.mask is not None:
            person = cv2.remap(look.mask, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
            out = cv2.blendLinear(out, look.plate, person, 1.0 - person)
        if self.config.warp.mouth_interior:
            self._fill_mouth(out, plan)
        self._shut_eyes(out, plan)
        return out

    @staticmethod
    def _shut_eyes(out: np.ndarray, plan: WarpPlan) -> None:
        """A nearly closed eye is drawn as a lash line: squeezed between the lids, the sclera's highlight showed
        as white specks and the iris as a smudge."""
        dst = plan.dst
        for contour, closed, lash in zip(
            (T.RIGHT_EYE, T.LEFT_EYE), lid_closures(dst, plan.look.eye_gaps), plan.look.lash_colours, strict=True
        ):
            alpha = float(_smoothstep(np.array(closed), *EYE_SHUT_RANGE))
            if alpha <= 0.0:
                continue
            polygon = dst[contour]
            x0, y0, x1, y1 = _polygon_box(polygon, out.shape)
            region = out[y0:y1, x0:x1]
            if region.size == 0:
                continue
            a = _polygon_mask(polygon, (x0, y0, x1, y1)).astype(np.float32)[..., None] * (alpha / 255.0)
            region[:] = (region * (1 - a) + lash * a).astype(np.uint8)

    def close(self) -> None:
        self.avatar = None

    @staticmethod
    def _smooth_background(map_x: np.ndarray, map_y: np.ndarray, on_face: np.ndarray, cell: float):
        """Blurs the displacement outside the face: piecewise-affine creases in hair and neck disappear,
        while the face itself (where landmark accuracy matters) keeps its exact map."""
        grid = map_x.shape[0]
        ident = (np.arange(grid, dtype=np.float32) + 0.5) * cell - 0.5
        dx, dy = map_x - ident[None, :], map_y - ident[:, None]
        sigma = grid / 40
        blur_x = cv2.GaussianBlur(dx, (0, 0), sigma)
        blur_y = cv2.GaussianBlur(dy, (0, 0), sigma)
        keep = np.clip(cv2.GaussianBlur(on_face.astype(np.float32), (0, 0), sigma / 2) * 2, 0, 1)
        map_x = ident[None, :] + dx * keep + blur_x * (1 - keep)
        map_y = ident[:, None] + dy * keep + blur_y * (1 - keep)
        return map_x.astype(np.float32), map_y.astype(np.float32)

    def _targets(self, landmarks: np.ndarray, driver_stretch: np.ndarray | None) -> np.ndarray:
        """Where every control point goes: landmarks as given (skin stretched no further than it may be), the rings
        (partly) with the head, border fixed."""
        scale, rot, trans = fit_pose(landmarks)
        ring_now = from_canonical(self._ring_canon, scale, rot, trans)[:, :2] + self._ring_shift
        ring_src = self._src[self._ring_slice]
        # Past a dead zone the whole body slides with the head (someone moving along the sofa), so the rings that
        # follow the head only partly (neck, shoulders) do not shear under it until the hair between them folds.
        move = trans[:2] - self.avatar.face.translation[:2]
        dead = SLIDE_DEAD_ZONE * scale
        slide = move - dead * np.tanh(move / dead)
        ring = ring_src + (ring_now - ring_src) * self._ring_follow + (1.0 - self._ring_follow) * slide
        # The face moves further than its rings where they follow it only partly (the neck), and the inner ring
        # further than the outer one (the shoulders): a ring point that the face's outline, or the inner ring,
        # passes over rides on its edge instead, else hair folds over the cheek.
        inner, outer = ~self._outer, self._outer
        ring[inner] = push_out_of_hull(ring[inner], landmarks[self._outline, :2])
        ring[outer] = push_out_of_hull(ring[outer], np.concatenate([landmarks[self._outline, :2], ring[inner]]))
        ring = np.clip(ring, *self._ring_box)
        rigid, iod = self.rigid_head(scale, rot, trans)
        limited = self._limiter is not None
        points = self._limiter(rigid, landmarks, iod, driver_stretch) if limited else landmarks[:, :2]
        self.last_tears = (
            0 if limited and self._limiter.converged else tears(rigid, points, self._skin, iod, driver_stretch)
        )
        points = irises_follow_lids(points, self._eye_gaps)
        dst = np.concatenate([points, ring, self._fixed])
        unfold(dst, self._src, self._background, self._is_ring, self._ring_box)
        return dst

    def rigid_head(self, scale: float, rot: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, float]:
        """The portrait's face held rigid in this pose (2-D points), what an expression's stretch is measured
        against, and its inter-ocular distance in pixels."""
        iod = scale * float(np.linalg.norm(self._canon[T.RIGHT_EYE_OUTER, :2] - self._canon[T.LEFT_EYE_OUTER, :2]))
        return from_canonical(self._canon, scale, rot, trans)[:, :2], iod

    @staticmethod
    def _lash_colour(image: np.ndarray, contour: np.ndarray) -> np.ndarray:
        """The mean of the darkest fifth of the eye's pixels in the portrait: lashes, lid line and pupil."""
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(contour).astype(np.int32)], 1)
        pixels = image[mask > 0].reshape(-1, 3).astype(np.float32)
        if len(pixels) < 5:
            return np.array([40.0, 30.0, 30.0], np.float32)
        light = pixels.sum(axis=1)
        return pixels[light <= np.percentile(light, 20)].mean(axis=0)

    def _fill_mouth(self, out: np.ndarray, plan: WarpPlan) -> None:
        """Paints a mouth interior inside the target inner-lip polygon when the mouth is open."""
        dst, driver, face, look = plan.dst, plan.driver, plan.driver_face, plan.look
        inner = dst[T.INNER_LIPS]
        if not _mouth_open(dst):
            return
        opening = _mouth_opening(face.landmarks[:, :2]) if face is not None and driver is not None else 0.0
        driver_open = opening > 1.0
        # A smile's own teeth, stretched, while the driver's mouth is shut (it has no interior to lend), fading
        # into the driver's as it opens: a hard switch at the threshold flickered between the two.
        lend = float(_smoothstep(np.array(opening), *OWN_TEETH_FADE)) if look.own_interior else 1.0
        if lend <= 0.0:
            return
        iod = float(np.linalg.norm(dst[T.RIGHT_EYE_OUTER] - dst[T.LEFT_EYE_OUTER]))
        rim = RIM_IOD * iod
        x0, y0, x1, y1 = _polygon_box(inner, out.shape, grow=2 + int(np.ceil(rim)))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        local = dst - (x0, y0)
        mask = _polygon_mask(inner, (x0, y0, x1, y1))
        region = out[y0:y1, x0:x1]
        if driver_open:
            driver_lm = face.landmarks[:, :2].astype(np.float64)
            affines, ok = triangle_affines(local, driver_lm, self._mouth)
            order = np.flatnonzero(ok)
            index_map = paint_index_map(mask.shape, local, self._mouth, order)
            index_map[index_map < 0] = order[0] if len(order) else -1
            map_x, map_y = backward_map(index_map, affines, 1.0)
            interior = cv2.remap(driver.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            driver_lip, driver_chroma = lip_look(driver.image, driver_lm)
            interior = match_lip_colour(interior, driver_lip, look.lip_colour, (driver_chroma, look.lip_chroma))
            if look.greyscale:  # a black-and-white photo stays black and white, teeth and tongue included
                interior = grey(interior)
            if look.softness > 0.0:  # as soft as the portrait: crisp teeth on a blurred face look pasted on
                interior = cv2.GaussianBlur(np.ascontiguousarray(interior, np.float32), (0, 0), look.softness)
            if look.own_teeth is not None:
                interior = look.own_teeth.lay(interior, local[T.UPPER_LIP_CHAIN])
        else:
            interior = np.broadcast_to(look.lip_colour * 0.25, region.shape)
        # Inside the lips the interior fades in from the avatar's own lips at their edge (their colour round each
        # point, carried in): the driver's lip rim and the portrait's stretched lip crease (a dark ring round a
        # pasted-in mouth) are never seen, and no outline shows where the lips end.
        depth = soft_edge(mask, rim)[..., None]
        fill = lips_round(region, mask, rim, look.lip_colour) * (1 - depth) + interior * depth
        alpha = mask.astype(np.float32)[..., None] * (lend / 255.0)
        region[:] = (region * (1 - alpha) + fill * alpha).astype(np.uint8)

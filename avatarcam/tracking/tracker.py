"""The Tracker stage: landmarks → filtered Face (pose + expression), one call per frame."""

from __future__ import annotations

import cv2
import numpy as np

from avatarcam.config import TrackerConfig
from avatarcam.tracking.facemesh import make_detector
from avatarcam.tracking.filters import OneEuroFilter
from avatarcam.tracking.geometry import expression_signals, fit_pose, from_canonical, lower_face_indices, to_canonical
from avatarcam.types import Face, Frame


def face_from_landmarks(landmarks: np.ndarray, blendshapes: dict[str, float] | None = None) -> Face:
    scale, rot, trans = fit_pose(landmarks)
    return Face(
        landmarks=landmarks.astype(np.float32),
        rotation=rot,
        translation=trans,
        scale=scale,
        expression=expression_signals(landmarks),
        blendshapes=blendshapes,
    )


class Tracker:
    """Detects the face, fits its pose, and smooths pose and shape separately.

    Pose noise moves the whole face and is what a viewer sees as jitter, so it gets the stronger filter;
    the shape in the canonical frame (expressions) gets a faster one so blinks and lip motion keep their timing.
    """

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self._detect = make_detector(
            config.backend, config.task_file, config.per_frame_detection, config.min_confidence
        )
        self._pose = OneEuroFilter(config.pose_min_cutoff, config.pose_beta, scale=1.0)
        # The lips and jaw move fastest (speech): they get their own, higher rest cutoff.
        cutoff = np.full((478, 1), config.expression_min_cutoff)
        cutoff[lower_face_indices()] = config.mouth_min_cutoff
        self._shape = OneEuroFilter(cutoff, config.expression_beta, scale=0.05)
        self._reference_scale = 0.0

    @property
    def faces_found(self) -> int:
        return self._detect.faces_found

    def reset(self) -> None:
        self._pose.reset()
        self._shape.reset()

    def __call__(self, frame: Frame) -> Face | None:
        found = self._detect(frame.image)
        if found is None:
            self.reset()
            return None
        landmarks, blendshapes = found
        scale, rot, trans = fit_pose(landmarks)
        t = frame.timestamp_ns * 1e-9
        # Pose as one vector: rotation vector (radians), translation in face units, log scale.
        rvec = cv2.Rodrigues(rot)[0].ravel()
        pose = self._pose(np.concatenate([rvec, trans / scale, [np.log(scale)]]), t)
        scale_f = float(np.exp(pose[6]))
        rot_f = cv2.Rodrigues(pose[:3])[0]
        trans_f = pose[3:6] * scale_f
        shape = self._shape(to_canonical(landmarks.astype(np.float64), scale, rot, trans), t)
        smoothed = from_canonical(shape, scale_f, rot_f, trans_f).astype(np.float32)
        return Face(
            landmarks=smoothed,
            rotation=rot_f,
            translation=trans_f,
            scale=scale_f,
            expression=expression_signals(smoothed),
            blendshapes=blendshapes,
        )

    def close(self) -> None:
        self._detect.close()

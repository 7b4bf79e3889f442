"""The `talking-head` animator: the warp draws the whole portrait, the talking-head generator repairs the face.

Per frame: warp at full size → crop the face at 128² → generator (ONNX Runtime; int8 on CPU by default) →
its masked change, feathered at the crop's edge, scaled back and added to the warp (the warp keeps its full
resolution wherever the generator leaves it alone; no seam). A portrait starts at once with the meta-trained
weights; in live runs a fine-tune for it starts as a background job (idle priority, one thread) and its result
is swapped in when ready.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from avatarcam.animators.talking_head.crops import (
    CROP_SIZE,
    crop,
    draw_landmarks,
    face_box,
    feather,
    paste,
    to_tensor_layout,
)
from avatarcam.animators.talking_head.runtime import FineTuned, TalkingHeadNet, portrait_dir
from avatarcam.animators.warp import WarpAnimator, WarpPlan
from avatarcam.colour import grey, is_greyscale
from avatarcam.config import AnimatorConfig
from avatarcam.runtime.background import BackgroundJob
from avatarcam.types import Avatar, Face, Frame, Motion

log = logging.getLogger(__name__)
FINETUNE_JOB = "avatarcam.train.talking_head.finetune"  # run by name: the live path imports no training code


@dataclass(frozen=True)
class TalkingHeadPlan:
    warp: WarpPlan
    box: np.ndarray  # the face's crop box (x0, y0, side)
    drawing: np.ndarray  # the target landmarks drawn in the crop, in the network's layout
    session: Any
    style: np.ndarray
    greyscale: bool


class TalkingHeadAnimator:
    name = "talking-head"
    draws_portrait = True

    def __init__(self, config: AnimatorConfig) -> None:
        self.config = config.talking_head
        self.warp = WarpAnimator(config)
        self.net = TalkingHeadNet(self.config.precision, self.config.threads)
        self._window = feather(CROP_SIZE)[None]
        self._session = self.net.meta_generator
        self._style: np.ndarray | None = None
        self._pending: tuple | None = None  # (portrait key, session, style) from a finished fine-tune
        self._lock = threading.Lock()
        self._job: BackgroundJob | None = None
        self.avatar: Avatar | None = None
        self.finetuned = False
        self._finetune_failed = False

    @property
    def status(self) -> str:
        if self.finetuned:
            return "fine-tuned"
        if self._job is not None and self._job.running:
            return f"fine-tuning this portrait in the background ({self._job.describe()})"
        return "fine-tune failed: meta-trained weights" if self._finetune_failed else ""

    def prepare(self, avatar: Avatar) -> None:
        self.warp.prepare(avatar)
        self.avatar = avatar
        self._greyscale = is_greyscale(avatar.image)
        face = avatar.face
        box = face_box(face.landmarks)
        frame = to_tensor_layout(crop(avatar.image, box))
        self._session = self.net.meta_generator
        self._style = self.net.style(frame, to_tensor_layout(draw_landmarks(face.landmarks, box)))
        self.finetuned = self._finetune_failed = False
        tuned = FineTuned(portrait_dir(avatar.key, self.net.base))
        if tuned.ready:
            self._session, self._style = self.net.open_finetuned(tuned), tuned.style()
            self.finetuned = True
        elif self.config.finetune and avatar.source:
            self._start_finetune(avatar)

    def _start_finetune(self, avatar: Avatar) -> None:
        """The fine-tune as a background job; a watcher loads its result when it ends."""
        if self._job is not None:
            self._job.kill()
        self._job = BackgroundJob(FINETUNE_JOB, [avatar.source, "--steps", str(self.config.finetune_steps)])
        log.info("fine-tuning %s in the background; it switches over when done", avatar.name)
        threading.Thread(target=self._await_finetune, args=(self._job, avatar.key), daemon=True).start()

    def _await_finetune(self, job: BackgroundJob, key: str) -> None:
        code = job.wait()
        if job is not self._job:  # superseded by another portrait's fine-tune, or stopped by close()
            return
        if code != 0:
            log.warning("background fine-tune failed (exit %d); staying on the meta-trained weights", code)
            self._finetune_failed = True
            return
        tuned = FineTuned(portrait_dir(key, self.net.base))
        if tuned.ready:
            loaded = (key, self.net.open_finetuned(tuned), tuned.style())
            with self._lock:
                self._pending = loaded

    def _switch_if_ready(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending and self.avatar is not None and pending[0] == self.avatar.key:
            _, self._session, self._style = pending
            self.finetuned = True
            log.info("switched %s to its fine-tuned weights", self.avatar.name)

    def __call__(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> np.ndarray:
        return self.draw(self.plan(motion, driver, driver_face))

    def plan(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> TalkingHeadPlan:
        """The warp's plan, the face's crop box and landmark drawing, and the generator and style of the moment
        (a fine-tune swapped in mid-flight applies from the next plan)."""
        if self.avatar is None or self._style is None:
            raise RuntimeError("TalkingHeadAnimator.prepare(avatar) must be called first")
        if self._pending is not None:
            self._switch_if_ready()
        box = face_box(motion.landmarks)
        drawing = to_tensor_layout(draw_landmarks(motion.landmarks, box))
        warp = self.warp.plan(motion, driver, driver_face)
        return TalkingHeadPlan(warp, box, drawing, self._session, self._style, self._greyscale)

    def draw(self, plan: TalkingHeadPlan) -> np.ndarray:
        warped = self.warp.draw(plan.warp)
        before = to_tensor_layout(crop(warped, plan.box))
        image, mask = self.net.generate(plan.session, before, plan.drawing, plan.style)
        change = (mask * (image - before) * self._window * 127.5).transpose(1, 2, 0)
        if plan.greyscale:  # the generator learned colour faces: on a black-and-white photo it may only shade
            change = grey(change)
        return paste(warped, np.ascontiguousarray(change), plan.box)

    @property
    def last_folds(self) -> int:
        """Triangles of the underlying warp turned over in the last frame (see WarpAnimator.last_folds)."""
        return self.warp.last_folds

    def close(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            job.kill()
        self.warp.close()
        self.avatar = None

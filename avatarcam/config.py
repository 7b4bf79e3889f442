"""One dataclass tree holds every setting; defaults live here only.

A TOML file (`--config FILE`, or the user's config dir) overrides the defaults section by section, and CLI flags
override both.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP_NAME = "avatarcam"


@dataclass
class SourceConfig:
    kind: str = "auto"  # auto (camera, else demo) | camera | file | demo
    camera: int = 0  # camera index
    path: str = ""  # video file for kind=file
    width: int = 640
    height: int = 480
    fps: float = 30.0
    loop: bool = True  # loop a video file


@dataclass
class TrackerConfig:
    backend: str = "facemesh"  # facemesh (bundled) | landmarker (needs a .task file)
    task_file: str = ""  # MediaPipe Face Landmarker bundle, used by backend=landmarker
    min_confidence: float = 0.5
    # Detect on every frame instead of following last frame's region: landmarks ~25% closer to the truth on
    # real clips (measured by `avatarcam eval`) for ~0.5 ms more per frame.
    per_frame_detection: bool = True
    # One Euro filter (Casiraghi et al.): cutoff in Hz at rest, and how fast it opens with speed.
    # Tuned on real clips with `avatarcam eval`: the landmark jitter of the output stays at or below the
    # driver's own while landmark error stays under a pixel (a stronger filter trades one for the other).
    pose_min_cutoff: float = 3.0
    pose_beta: float = 50.0
    expression_min_cutoff: float = 4.0
    expression_beta: float = 2.0
    mouth_min_cutoff: float = 20.0  # lips and jaw (speech is the fastest expression): +0.03 mouth correlation


@dataclass
class RetargetConfig:
    expression_gain: float = 1.0  # scales the driver's expression deltas
    rotation_gain: float = 1.0
    translation_gain: float = 1.0
    max_yaw_deg: float = 40.0
    max_pitch_deg: float = 30.0
    max_roll_deg: float = 35.0
    hold_seconds: float = 0.5  # keep the last pose this long when the face is lost
    ease_seconds: float = 1.0  # then ease to neutral over this long
    # The avatar's head stays in its frame: its sideways and vertical moves ease to a stop where this share of the
    # face (of its width or height) has passed the image's edge; a driver whose face is cut by its camera's edge
    # (this share of its landmarks outside) counts as lost.
    frame_overhang: float = 0.3
    edge_lost_share: float = 0.1


@dataclass
class AnimatorConfig:
    name: str = "warp"
    size: int = 512  # the avatar is drawn at size×size
    grid: int = 256  # warp field resolution, at most the image size (the image itself is warped at full size);
    # 256 places landmarks ~0.07 px closer than 128 for ~1.8 ms more per frame
    mouth_interior: bool = True  # paste the driver's colour-matched mouth interior into an open mouth
    # talking-head: int8 (CPU default, ~3× faster) or fp32; fine-tune a new portrait in the background (live runs)
    precision: str = "int8"
    finetune: bool = True
    finetune_steps: int = 300
    threads: int = 0  # ONNX Runtime CPU threads (0: its default)
    # faceswap: the trained model (a name from `avatarcam train faceswap --name`, or its folder); colour transfer
    # reinhard | histogram | none; mask erosion and feather in pixels of the 128² crop; blend feather | poisson;
    # temporal smoothing of the swapped face (share of the previous frame); keep the driver's own lips, and eyes,
    # over the swap (they then follow exactly: talking, blinks, gaze); nod the swapped face with the driver's pitch
    # (the decoder hardly draws it); with no face: passthrough | hold
    swap_model: str = ""
    swap_colour: str = "reinhard"
    swap_erode: int = 4
    swap_blur: int = 8
    swap_blend: str = "feather"
    swap_smoothing: float = 0.35
    swap_keep_mouth: bool = True
    swap_keep_eyes: bool = True
    swap_follow_pitch: bool = True
    swap_no_face: str = "passthrough"


@dataclass
class OutputConfig:
    sink: str = "auto"  # auto (virtual cam, else preview, else file) | virtual | preview | file | null
    width: int = 960
    height: int = 540
    fps: float = 30.0
    path: str = "avatarcam.mp4"  # for sink=file
    mirror: bool = False
    hud: bool = True  # drawn in the preview or monitor window only, never in what the call sees
    monitor: bool = True  # a preview window beside the virtual camera or recording (where a display exists)


@dataclass
class HotkeyConfig:
    global_keys: bool = True  # listen system-wide (pynput) so keys work while the call app has focus
    bindings: dict[str, str] = field(
        default_factory=lambda: {
            "next_avatar": "<ctrl>+<alt>+n",
            "previous_avatar": "<ctrl>+<alt>+p",
            "reset_reference": "<ctrl>+<alt>+r",
            "passthrough": "<ctrl>+<alt>+t",
            "freeze": "<ctrl>+<alt>+f",
            "hud": "<ctrl>+<alt>+h",
            "mirror": "<ctrl>+<alt>+m",
            "quit": "<ctrl>+<alt>+q",
        }
    )
    # Single keys in the preview window.
    preview_keys: dict[str, str] = field(
        default_factory=lambda: {
            "next_avatar": "n",
            "previous_avatar": "p",
            "reset_reference": "r",
            "passthrough": "t",
            "freeze": "f",
            "hud": "h",
            "mirror": "m",
            "quit": "q",
        }
    )


@dataclass
class Config:
    avatar: str = ""  # portrait image; empty = the bundled default avatar
    avatars_dir: str = ""  # folder of portraits for next/previous avatar
    source: SourceConfig = field(default_factory=SourceConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    retarget: RetargetConfig = field(default_factory=RetargetConfig)
    animator: AnimatorConfig = field(default_factory=AnimatorConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    hotkeys: HotkeyConfig = field(default_factory=HotkeyConfig)


def _merge(obj: Any, values: dict[str, Any], where: str) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"unknown setting '{where}{key}' (known: {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"setting '{where}{key}' is a section, not a value")
            _merge(current, value, f"{where}{key}.")
        elif isinstance(current, dict):
            current.update(value)
        else:
            setattr(obj, key, type(current)(value))


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file (if any), then `overrides` ({"section.key": value} or nested dicts)."""
    config = Config()
    if path:
        try:
            with open(path, "rb") as fh:
                _merge(config, tomllib.load(fh), "")
        except FileNotFoundError:
            raise ValueError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *sections, key = dotted.split(".")
        nested: dict[str, Any] = {key: value}
        for section in reversed(sections):
            nested = {section: nested}
        _merge(config, nested, "")
    return config

"""One dataclass tree holds every setting; defaults live here only.

A TOML file (`--config FILE`, else `config.toml` in the user's config folder when there is one) overrides the
defaults section by section, and CLI flags override both. The result is frozen: nothing changes a setting
after `load_config`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP_NAME = "avatarcam"


def choices(values: tuple[str, ...] | str, default: str) -> Any:
    """A text setting with a fixed set of values (or the name of a registry listing them), checked at load."""
    return field(default=default, metadata={"choices": values})


@dataclass(frozen=True)
class SourceConfig:
    kind: str = choices("source", "auto")  # auto (camera, else demo) | camera | file | demo | audio (voice only)
    camera: int = 0  # camera index
    path: str = ""  # video file for kind=file
    width: int = 640
    height: int = 480
    fps: float = 30.0
    loop: bool = True  # loop a video file


@dataclass(frozen=True)
class TrackerConfig:
    backend: str = choices(("facemesh", "landmarker"), "facemesh")  # landmarker needs a .task file
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class WarpConfig:
    grid: int = 256  # warp field resolution, at most the image size (the image itself is warped at full size);
    # 256 places landmarks ~0.07 px closer than 128 for ~1.8 ms more per frame
    mouth_interior: bool = True  # lay a mouth interior, harmonised to the portrait, into an open mouth
    # the most an expression may magnify a face triangle's texture beyond the rigid head (0: no limit); past it
    # the skin tears into a smeared, hard-edged patch (animators/limits.py)
    stretch_limit: float = 2.0


@dataclass(frozen=True)
class TalkingHeadConfig:
    precision: str = choices(("int8", "fp32"), "int8")  # int8: the CPU default, ~3× faster
    finetune: bool = True  # fine-tune a new portrait in the background (live runs)
    finetune_steps: int = 300
    threads: int = 0  # ONNX Runtime CPU threads (0: its default)


COLOUR_MODES = ("reinhard", "histogram", "none")
BLEND_MODES = ("feather", "poisson")


@dataclass(frozen=True)
class FaceSwapConfig:
    model: str = ""  # the trained model: a name from `avatarcam train faceswap --name`, or its folder
    precision: str = choices(("int8", "fp32"), "int8")  # int8 where the export kept it
    threads: int = 0
    colour: str = choices(COLOUR_MODES, "reinhard")  # colour transfer to the driver's skin
    erode: int = 4  # mask erosion and feather, in pixels of the 128² crop
    blur: int = 8
    blend: str = choices(BLEND_MODES, "feather")
    smoothing: float = 0.35  # temporal smoothing of the swapped face (share of the previous frame)
    # keep the driver's own lips, and eyes, over the swap (they then follow exactly: talking, blinks, gaze)
    keep_mouth: bool = True
    keep_eyes: bool = True
    follow_pitch: bool = True  # nod the swapped face with the driver's pitch (the decoder hardly draws it)
    no_face: str = choices(("passthrough", "hold"), "passthrough")


@dataclass(frozen=True)
class AnimatorConfig:
    name: str = choices("animator", "warp")
    size: int = 512  # the avatar is drawn at size×size
    warp: WarpConfig = field(default_factory=WarpConfig)
    talking_head: TalkingHeadConfig = field(default_factory=TalkingHeadConfig)
    faceswap: FaceSwapConfig = field(default_factory=FaceSwapConfig)


@dataclass(frozen=True)
class EditsConfig:
    """Attribute edits of the avatar (StarGAN), toggled by hotkeys; an edited portrait goes through the
    avatar-preparation chain in the background and is swapped in."""

    attributes: tuple[str, ...] = ("smiling", "old", "young", "female")  # one toggle action each: edit_NAME
    precision: str = choices(("int8", "fp32"), "int8")
    threads: int = 1  # the edit runs beside the live loop: one thread keeps the call's frame rate


@dataclass(frozen=True)
class AudioConfig:
    """The microphone (`run --audio`): played into a loopback device delayed to meet the avatar, and driving the
    avatar's mouth while no face is tracked (`--source audio`: no camera at all)."""

    enabled: bool = False  # --audio: pass the voice through to the call, delayed to match the video
    input: str = ""  # microphone: a device number or part of its name ("" the system default)
    output: str = "auto"  # where the call listens: a device number or name; auto: the loopback device found
    sample_rate: int = 48000
    block_ms: float = 10.0  # callback size: the delay can be no shorter than one block
    offset_ms: float = 0.0  # added to the measured video latency (the camera's and the call's own delays)
    step_ms: float = 10.0  # what each of the audio_later / audio_earlier hotkeys adds
    max_delay_ms: float = 1500.0
    fade_ms: float = 50.0  # crossfade of each delay change
    vad: str = choices(("silero", "energy"), "silero")
    voice_mouth: bool = True  # the voice opens the mouth while the face is lost
    blend_seconds: float = 0.3  # voice ↔ tracking hand-over


@dataclass(frozen=True)
class OutputConfig:
    sink: str = choices("sink", "auto")  # auto (virtual cam, else preview, else file) | virtual | preview | file | null
    width: int = 960
    height: int = 540
    fps: float = 30.0
    path: str = "avatarcam.mp4"  # for sink=file
    mirror: bool = False
    hud: bool = True  # drawn in the preview or monitor window only, never in what the call sees
    monitor: bool = True  # a preview window beside the virtual camera or recording (where a display exists)


BADGE_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
MARKS = ("watermark", "badge")  # the disclosure stages: last in every chain a user configures


@dataclass(frozen=True)
class MarksConfig:
    """Disclosure and provenance: a visible badge and an invisible watermark in every frame sent or rendered."""

    badge: bool = True  # false: the frames carry a "badge hidden" notice for their first seconds instead
    badge_text: str = "AI avatar"
    badge_corner: str = choices(BADGE_CORNERS, "bottom-right")
    badge_opacity: float = 0.75
    notice_seconds: float = 5.0  # how long the frames sent say that the badge was hidden
    # The watermark's key. The product's own by default, so that anyone can check a recording with
    # `avatarcam verify`; another key makes the mark readable only with it.
    watermark_key: str = "avatarcam"
    watermark_strength: float = 2.2  # RMS in grey levels: PSNR 41 dB; more than 2.5 goes below 40 dB (README)


@dataclass(frozen=True)
class ChainConfig:
    """The frame path: stage names from the stage registry, in order (the sink comes last, always)."""

    stages: tuple[str, ...] = field(
        default=(
            "track",
            "retarget",
            "voice",
            "animate",
            "draw",
            "edit",
            "compose",
            "mirror",
            "audio",
            "watermark",
            "badge",
        ),
        metadata={"choices": "stage"},
    )
    # Live runs: the stages run on their own threads, split after these stages, joined by queues of one that drop
    # the oldest (tracking frame t+1 while frame t is planned and frame t-1 drawn). False: one thread, in turn.
    pipelined: bool = True
    split_after: tuple[str, ...] = ("track", "animate")


@dataclass(frozen=True)
class HotkeyConfig:
    global_keys: bool = True  # listen system-wide (pynput) so keys work while the call app has focus
    # Action → keys: a combination ("<ctrl>+<alt>+n") works system-wide, a single character in the preview window.
    bindings: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "next_avatar": ("<ctrl>+<alt>+n", "n"),
            "previous_avatar": ("<ctrl>+<alt>+p", "p"),
            "reset_reference": ("<ctrl>+<alt>+r", "r"),
            "passthrough": ("<ctrl>+<alt>+t", "t"),
            "freeze": ("<ctrl>+<alt>+f", "f"),
            "hud": ("<ctrl>+<alt>+h", "h"),
            "mirror": ("<ctrl>+<alt>+m", "m"),
            "badge": ("<ctrl>+<alt>+b", "b"),
            "quit": ("<ctrl>+<alt>+q", "q"),
            "edit_smiling": ("<ctrl>+<alt>+1", "1"),
            "edit_old": ("<ctrl>+<alt>+2", "2"),
            "edit_young": ("<ctrl>+<alt>+3", "3"),
            "edit_female": ("<ctrl>+<alt>+4", "4"),
            "new_identity": ("<ctrl>+<alt>+i", "i"),
            "keep_identity": ("<ctrl>+<alt>+k", "k"),
            "audio_later": ("<ctrl>+<alt>+.", "."),
            "audio_earlier": ("<ctrl>+<alt>+,", ","),
        }
    )


@dataclass(frozen=True)
class Config:
    avatar: str = ""  # portrait image; empty = the bundled default avatar
    avatars_dir: str = ""  # folder of portraits for next/previous avatar
    source: SourceConfig = field(default_factory=SourceConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    retarget: RetargetConfig = field(default_factory=RetargetConfig)
    animator: AnimatorConfig = field(default_factory=AnimatorConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    edits: EditsConfig = field(default_factory=EditsConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    marks: MarksConfig = field(default_factory=MarksConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    hotkeys: HotkeyConfig = field(default_factory=HotkeyConfig)


def user_config_file() -> Path:
    """`config.toml` in the platform's user config folder (XDG / APPDATA / Application Support)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / APP_NAME / "config.toml"


def _valid_choices(spec: tuple[str, ...] | str) -> tuple[str, ...]:
    if isinstance(spec, tuple):
        return spec
    from avatarcam import registry  # a registry's names; imported here: it names modules of every layer

    return ("auto", *registry.by_kind(spec).names()) if spec in ("source", "sink") else registry.by_kind(spec).names()


def _value(current: Any, value: Any, spec: dataclasses.Field, where: str) -> Any:
    if isinstance(current, bool) and not isinstance(value, bool):
        raise ValueError(f"setting '{where}' takes true or false, not {value!r}")
    if isinstance(current, tuple):
        value = (value,) if isinstance(value, str) else tuple(value)
    elif isinstance(current, dict):
        value = {**current, **{k: (v,) if isinstance(v, str) else tuple(v) for k, v in value.items()}}
    else:
        try:
            value = type(current)(value)
        except (TypeError, ValueError):
            raise ValueError(f"setting '{where}' takes a {type(current).__name__}, not {value!r}") from None
    if "choices" in spec.metadata:
        valid = _valid_choices(spec.metadata["choices"])
        for item in value if isinstance(value, tuple) else (value,):
            if item not in valid:
                raise ValueError(f"unknown {where} '{item}' (valid: {', '.join(valid)})")
    return value


def _merged(obj: Any, values: dict[str, Any], where: str) -> Any:
    """`obj` with `values` applied: a new frozen tree, every value checked."""
    names = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"unknown setting '{where}{key}' (known: {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"setting '{where}{key}' is a section, not a value")
            changes[key] = _merged(current, value, f"{where}{key}.")
        else:
            changes[key] = _value(current, value, names[key], f"{where}{key}")
    return dataclasses.replace(obj, **changes)


def nested(dotted: dict[str, Any]) -> dict[str, Any]:
    """{"section.key": value} → {"section": {"key": value}}, leaving out None values (flags not given)."""
    tree: dict[str, Any] = {}
    for name, value in dotted.items():
        if value is None:
            continue
        *sections, key = name.split(".")
        node = tree
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = value
    return tree


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file (`path`, else the user's config file if it exists), then `overrides`
    ({"section.key": value}; None values are left out). Unknown settings and values say what is valid."""
    config = Config()
    file = Path(path) if path else user_config_file()
    if path or file.is_file():
        try:
            with open(file, "rb") as fh:
                config = _merged(config, tomllib.load(fh), "")
        except FileNotFoundError:
            raise ValueError(f"config file not found: {file}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {file} is not valid TOML: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{file}: {exc}") from None
    config = _merged(config, nested(overrides or {}), "")
    if config.chain.stages[-len(MARKS) :] != MARKS:
        raise ValueError(
            f"chain.stages must end with {', '.join(MARKS)}: every frame sent carries the disclosure (the badge's "
            "hotkey hides it, saying so in the frames)"
        )
    return config

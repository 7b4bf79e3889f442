"""The "AI avatar" badge: drawn last in the configured corner of every frame sent or rendered; hiding it, by the
hotkey or the settings, puts a notice in the frames the call sees."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import TALKING_FRAMES
from test_pipeline import KeyedSink, ListSource, Pipelines, make_config, virtual_sink

from avatarcam.avatar import load_avatar
from avatarcam.config import Config, HotkeyConfig, MarksConfig, OutputConfig, load_config
from avatarcam.hotkeys import Hotkeys
from avatarcam.marks.verify import verify
from avatarcam.render import render_video
from avatarcam.stages import Packet
from avatarcam.stages.badge import BadgeStage
from avatarcam.types import Avatar, Frame

NOTICE_GREY = 24  # the label's box colour: drawn opaque, the notice leaves it exact


def badge_frame(stage: BadgeStage, width: int = 640, height: int = 360) -> np.ndarray:
    image = np.full((height, width, 3), 128, np.uint8)
    packet = Packet(Frame(image, 0, 0), None, image=image)  # type: ignore[arg-type]
    stage(packet)
    assert packet.image is not None and (packet.image is not image or not stage.on)
    return packet.image


def changed_box(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the pixels that differ from the grey background."""
    ys, xs = np.nonzero((image != 128).any(axis=2))
    return (ys.min(), ys.max(), xs.min(), xs.max()) if len(ys) else None


def notice_width(image: np.ndarray) -> int:
    """Columns of the bottom fifth that hold the notice's opaque box."""
    band = image[-image.shape[0] // 5 :]
    return int(((band == NOTICE_GREY).all(axis=2).sum(axis=0) >= 3).sum())


@pytest.mark.parametrize("corner", ["bottom-right", "top-left"])
def test_the_badge_is_drawn_in_its_corner(corner: str) -> None:
    config = Config(marks=MarksConfig(badge_corner=corner, badge_opacity=0.5))
    top, bottom, left, right = changed_box(badge_frame(BadgeStage(config)))  # type: ignore[misc]
    assert bottom - top < 40 and right - left < 160  # small
    if corner == "bottom-right":
        assert top > 300 and left > 480
    else:
        assert bottom < 60 and right < 160


def test_the_text_and_opacity_come_from_the_settings() -> None:
    plain = badge_frame(BadgeStage(Config()))
    longer = changed_box(badge_frame(BadgeStage(Config(marks=MarksConfig(badge_text="AI avatar (synthetic)")))))
    assert longer is not None and longer[3] - longer[2] > np.ptp(np.nonzero((plain != 128).any(axis=2))[1]) + 40
    faint = badge_frame(BadgeStage(Config(marks=MarksConfig(badge_opacity=0.2))))
    assert np.abs(faint.astype(int) - 128).max() < np.abs(plain.astype(int) - 128).max()


def test_hiding_says_so_in_the_frames_for_a_while() -> None:
    stage = BadgeStage(Config(marks=MarksConfig(notice_seconds=0.1), output=OutputConfig(fps=30.0)))
    assert notice_width(badge_frame(stage)) == 0
    assert "hidden" in stage.toggle()
    assert all(notice_width(badge_frame(stage)) > 150 for _ in range(3))  # 0.1 s at 30 fps
    assert changed_box(badge_frame(stage)) is None  # then the frame is the user's own
    assert stage.toggle() == "AI badge shown" and changed_box(badge_frame(stage)) is not None


def test_off_in_the_settings_still_says_so_at_the_start() -> None:
    stage = BadgeStage(Config(marks=MarksConfig(badge=False, notice_seconds=0.1)))
    assert notice_width(badge_frame(stage)) > 150


def test_the_hotkey_hides_the_badge_only_with_the_notice_in_the_frames_sent(
    demo_frames: list[Frame], fake_virtualcam, astronaut_face: Avatar
) -> None:
    pipelines = Pipelines(astronaut_face)
    config = replace(
        make_config(640, 360, marks=True), marks=MarksConfig(notice_seconds=0.2, badge_corner="bottom-right")
    )
    source = ListSource(f.image for f in demo_frames[:20])
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, KeyedSink(sink, {5: "b"}), hotkeys=Hotkeys(HotkeyConfig()))
        pipeline.run()
        pipelines.close(pipeline)
    sent = fake_virtualcam.instances[0].frames
    assert len(sent) == 20 and "hidden" in pipeline.message
    assert all(notice_width(f) == 0 for f in sent[:5])  # the badge (translucent), no notice
    assert all(notice_width(f) > 150 for f in sent[5:11])  # hidden: 0.2 s at 30 fps of notice in the call
    assert all(notice_width(f) == 0 for f in sent[11:])


def test_the_settings_cannot_leave_the_marks_out(tmp_path: Path) -> None:
    unmarked = [name for name in load_config().chain.stages if name not in ("watermark", "badge")]
    for stages in (unmarked, [*unmarked, "badge"], [*unmarked, "badge", "watermark"]):
        with pytest.raises(ValueError, match="chain.stages must end with watermark, badge"):
            load_config(overrides={"chain.stages": stages})
    settings = tmp_path / "settings.toml"
    settings.write_text(f"[chain]\nstages = {unmarked!r}\n".replace("'", '"'))
    with pytest.raises(ValueError, match="every frame sent carries the disclosure"):
        load_config(settings)


def test_render_marks_the_file(talking_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered.mp4"
    config = Config()  # 512²: the watermark needs room for a few of its tiles (README)
    render_video(config, load_avatar(None, config.animator.size), talking_video, out, progress=False)
    verdict = verify(out, config.marks.watermark_key, seconds=TALKING_FRAMES / 30.0)  # the whole clip: one window
    assert verdict.payload is not None and len(verdict.found) == 1

"""The invisible watermark: embedded by the product's stage in real rendered frames, read back after real ffmpeg
compression, scaling and cropping; imperceptible; silent on unmarked real frames; `avatarcam verify` and its
messages for bad input."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import write_mp4

from avatarcam.avatar import load_avatar
from avatarcam.cli import main
from avatarcam.config import Config
from avatarcam.eval.watermark import ATTACKS, ffmpeg_attack, psnr, render_clip
from avatarcam.io.sources import VideoFileSource
from avatarcam.marks import payload as code
from avatarcam.marks.payload import Payload
from avatarcam.marks.watermark import Watermark
from avatarcam.stages import Packet
from avatarcam.stages.chain import Chain, build_stages
from avatarcam.stages.watermark import WatermarkStage
from avatarcam.types import Frame

KEY = Config().marks.watermark_key


@pytest.fixture(scope="module")
def rendered(shared_data: Path) -> tuple[list[np.ndarray], float]:
    """Two seconds of a real clip animating the default avatar (512²), unmarked."""
    return render_clip(Config(), shared_data / "driving" / "lp_d14.mp4", 60)


@pytest.fixture(scope="module")
def stage() -> WatermarkStage:
    return WatermarkStage(Config())


def mark(stage: WatermarkStage, images: list[np.ndarray]) -> list[np.ndarray]:
    marked = []
    for index, image in enumerate(images):
        packet = Packet(Frame(image, 0, index), None, image=image)  # type: ignore[arg-type]
        stage(packet)
        assert packet.image is not None
        marked.append(packet.image)
    return marked


@pytest.fixture(scope="module")
def marked(rendered: tuple[list[np.ndarray], float], stage: WatermarkStage) -> list[np.ndarray]:
    return mark(stage, rendered[0])


@pytest.fixture
def ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg absent")


def test_the_payload_round_trips_and_a_wrong_bit_fails_its_crc() -> None:
    payload = Payload(code.PRODUCT, 0x01, 0xBEEF)
    bits = code.encode(payload)
    assert len(bits) == code.CODE_BITS and code.decode(bits) == payload
    for index in (0, 17, code.CODE_BITS - 1):
        flipped = bits.copy()
        flipped[index] ^= 1
        assert code.decode(flipped) is None
    assert str(payload) == "avatarcam 0.1, session beef"


def test_the_mark_is_imperceptible_and_cheap(rendered, marked, stage: WatermarkStage) -> None:
    assert min(psnr(a, b) for a, b in zip(rendered[0], marked, strict=True)) >= 40.0
    assert not any(np.shares_memory(a, b) for a, b in zip(rendered[0], marked, strict=True))  # never in place
    image = rendered[0][0]
    packet = Packet(Frame(image, 0, 0), None, image=image)  # type: ignore[arg-type]
    times = []
    for _ in range(30):
        packet.image = image
        start = time.perf_counter()
        stage(packet)
        times.append((time.perf_counter() - start) * 1e3)
    assert np.median(times) < 2.0  # ms per 512² frame


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_found_with_its_payload_after(attack: str, ffmpeg, rendered, marked, stage: WatermarkStage) -> None:
    received = ffmpeg_attack(marked, rendered[1], attack)
    detection = Watermark(KEY).detect(received)
    assert detection.payload == stage.payload
    assert detection.confidence > 0.0 and detection.sync_z > 0.0


def test_the_live_output_survives_a_call(ffmpeg, rendered, stage: WatermarkStage) -> None:
    """The frame a live run sends (960×540: the avatar letterboxed over its backdrop, marked, badged), sent at
    500 kbit/s and 640×480 as a call might."""
    config = Config()
    avatar = load_avatar(None, config.animator.size)
    chain = Chain([*build_stages(config, ["compose", "mirror"]), stage, *build_stages(config, ["badge"])])
    sent = []
    for index, image in enumerate(rendered[0]):
        packet = chain(Packet(Frame(image, 0, index), avatar, image=image))
        assert packet.image is not None and packet.image.shape == (540, 960, 3)
        sent.append(packet.image)
    assert Watermark(KEY).detect(ffmpeg_attack(sent, rendered[1], "H.264 500 kbit/s 640×480")).payload == stage.payload


def test_one_frame_is_enough_uncompressed(marked, stage: WatermarkStage) -> None:
    assert Watermark(KEY).detect(marked[:1]).payload == stage.payload


def test_another_key_finds_nothing(marked) -> None:
    assert not Watermark("someone else's key").detect(marked).found


def test_no_false_positives_on_unmarked_real_frames(shared_data: Path, rendered) -> None:
    """Two frames of every real driver clip (each read as an image) and the unmarked render: none is found."""
    codec = Watermark(KEY)
    windows = [rendered[0], rendered[0][:1]]
    for clip in sorted((shared_data / "driving").iterdir()):
        with VideoFileSource(clip, loop=False) as source:
            windows += [[source.read().image]]  # type: ignore[union-attr]
            for _ in range(30):
                source.skip()
            if (frame := source.read()) is not None:
                windows.append([frame.image])
    assert len(windows) > 60
    found = [index for index, window in enumerate(windows) if codec.detect(window).found]
    assert found == []


def save_png(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def test_verify_says_found_with_the_payload(tmp_path: Path, marked, rendered, stage, capsys) -> None:
    assert main(["verify", str(save_png(tmp_path / "frame.png", marked[0]))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("found: avatarcam") and f"session {stage.payload.session:04x}" in out
    assert "confidence" in out
    video = write_mp4(tmp_path / "call.mp4", marked + marked, fps=rendered[1])  # two windows of 2 s
    assert main(["verify", str(video)]) == 0
    assert capsys.readouterr().out.startswith("found in 2 of 2 windows of 2 s: avatarcam")


def test_verify_says_not_found(tmp_path: Path, rendered, marked, capsys) -> None:
    assert main(["verify", str(save_png(tmp_path / "plain.png", rendered[0][0]))]) == 1
    assert capsys.readouterr().out.startswith("not found: no watermark of this key in the image")
    assert main(["verify", "--key", "another", str(save_png(tmp_path / "marked.png", marked[0]))]) == 1


def test_verify_bad_input_gets_one_clear_line(tmp_path: Path, rendered, capsys) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "notes.mp4").write_text("not a video")
    short = write_mp4(tmp_path / "short.mp4", rendered[0][:20], fps=30.0)
    tiny = save_png(tmp_path / "tiny.png", np.full((40, 60, 3), 128, np.uint8))
    expected = {
        tmp_path / "missing.png": "no such file",
        tmp_path / "notes.png": "cannot read image",
        tmp_path / "notes.mp4": "cannot read video file",
        short: "has 20 frames (0.7 s): shorter than one 2-second window (60 frames)",
        tiny: "the picture is 60×40: the watermark needs at least",
    }
    for path, message in expected.items():
        assert main(["verify", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("avatarcam: error: ") and message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


def test_the_pattern_is_weaker_on_flat_areas_where_the_eye_would_see_it():
    from avatarcam.marks.watermark import MASK_RANGE, masking_gain

    image = np.full((256, 512, 3), 128, np.uint8)
    image[:, 256:] = np.random.default_rng(0).integers(60, 200, (256, 256, 1), dtype=np.uint8)  # detail
    gain = masking_gain(image)
    assert gain[:, :200].mean() < 0.6 * gain[:, 312:].mean()
    assert np.sqrt(np.mean(gain**2)) == pytest.approx(1.0, abs=1e-3)  # the same energy: the same PSNR
    assert gain.min() >= MASK_RANGE[0] * 0.5 and gain.max() <= MASK_RANGE[1] * 2

"""Loading portraits: good ones become avatars, bad ones fail with an AvatarError that says why."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarcam import avatar as avatar_module
from avatarcam.avatar import AvatarError, list_avatars, load_avatar, make_avatar, read_image, square_crop
from avatarcam.types import Avatar


def write_rgb(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """The default avatar's portrait file, 300×300 RGB."""
    return read_image(avatar_module.default_avatar_path())


def test_default_avatar_loads(astronaut_face: Avatar, portrait: np.ndarray) -> None:
    assert astronaut_face.image.shape == (256, 256, 3) and astronaut_face.size == 256
    assert astronaut_face.name == "default_avatar"
    assert astronaut_face.face.landmarks.shape == (478, 3)
    assert len(astronaut_face.key) == 16
    # The key names the original portrait (per-portrait caches): the same at every size it is drawn at...
    assert load_avatar(None, 256).key == astronaut_face.key
    assert load_avatar(None, 192).key == astronaut_face.key
    assert make_avatar(portrait, 512).key == astronaut_face.key
    # ...and another portrait (here the same one mirrored) has another key.
    mirrored = make_avatar(np.ascontiguousarray(portrait[:, ::-1]), 256)
    assert len(mirrored.key) == 16 and mirrored.key != astronaut_face.key


def test_an_alpaca_is_not_a_face(shared_data: Path) -> None:
    alpaca = shared_data / "portraits" / "lp_s36.jpg"
    if not alpaca.is_file():
        pytest.skip(f"shared data absent: {alpaca}")
    with pytest.raises(AvatarError, match=r"no face found in lp_s36: use a portrait with one clearly visible"):
        load_avatar(alpaca, 256)


def test_blank_image_has_no_face(tmp_path: Path) -> None:
    path = write_rgb(tmp_path / "blank.png", np.full((300, 400, 3), 180, np.uint8))
    with pytest.raises(AvatarError, match="no face found in blank"):
        load_avatar(path, 256)


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(AvatarError, match="corrupt.png"):
        load_avatar(path, 256)


def test_truncated_png_is_refused(tmp_path: Path, portrait: np.ndarray) -> None:
    whole = write_rgb(tmp_path / "whole.png", portrait).read_bytes()
    path = tmp_path / "truncated.png"
    path.write_bytes(whole[:200])  # a valid header, then nothing
    with pytest.raises(AvatarError, match="truncated.png"):
        load_avatar(path, 256)


def test_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a portrait\n")
    with pytest.raises(AvatarError, match=r"notes.txt is not an image file"):
        load_avatar(path, 256)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(AvatarError, match="empty.png"):
        load_avatar(path, 256)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AvatarError, match="portrait not found: .*nobody.png"):
        load_avatar(tmp_path / "nobody.png", 256)
    with pytest.raises(AvatarError, match="portrait not found"):
        load_avatar(tmp_path, 256)  # a folder is not a portrait


def test_tiny_face_is_refused_with_a_size_message(tmp_path: Path, portrait: np.ndarray) -> None:
    canvas = np.full((1200, 1200, 3), 200, np.uint8)
    canvas[10:310, 10:310] = portrait  # the face is a few percent of the image, in a corner
    path = write_rgb(tmp_path / "far_away.png", canvas)
    with pytest.raises(AvatarError, match=r"face in far_away is too small.*crop the portrait closer"):
        load_avatar(path, 256)


def test_face_just_under_the_minimum_share_is_refused(portrait: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """A face the detector finds, but narrower than MIN_FACE_FRACTION of the square, is refused too."""
    canvas = np.full((600, 600, 3), 200, np.uint8)
    canvas[150:450, 150:450] = portrait  # the face is about 15% of the width
    make_avatar(canvas, 256)
    monkeypatch.setattr(avatar_module, "MIN_FACE_FRACTION", 0.3)
    with pytest.raises(AvatarError, match=r"too small \(1\d% of the image width"):
        make_avatar(canvas, 256, name="smallish")


def test_two_faces_animates_the_largest(portrait: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    canvas = np.full((512, 512, 3), 200, np.uint8)
    canvas[100:400, 0:300] = portrait  # big face on the left
    canvas[150:330, 320:500] = cv2.resize(portrait, (180, 180), interpolation=cv2.INTER_AREA)  # small, right
    with caplog.at_level(logging.WARNING, logger="avatarcam.avatar"):
        two = make_avatar(canvas, 512, name="two")
    assert "two has 2 faces: animating the largest" in caplog.text
    centre_x = two.face.landmarks[:, 0].mean()
    width = np.ptp(two.face.landmarks[:, 0])
    assert centre_x < 300 and width > 90  # the big one, on the left


def test_two_faces_side_by_side_frame_the_square_around_the_largest(
    tmp_path: Path, portrait: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    """A wide photo of two people: the centre square cuts both faces in half, so the square moves over the
    larger one (the user is told) instead of "no face found"."""
    small = cv2.resize(portrait, (240, 240), interpolation=cv2.INTER_AREA)
    wide = np.full((300, 590, 3), 200, np.uint8)
    wide[:, :300] = portrait  # the larger face, left (x 104–196)
    wide[30:270, 350:] = small  # a smaller one, right (x 433–507)
    assert make_avatar_or_none(square_crop(wide, 256)) is None  # the centre square (x 145–445) cuts both
    path = write_rgb(tmp_path / "pair.png", wide)
    with caplog.at_level(logging.WARNING, logger="avatarcam.avatar"):
        pair = load_avatar(path, 256)
    assert "pair has 2 faces: animating the largest" in caplog.text
    assert "framing the square around it" in caplog.text
    # The left portrait's own square: the avatar is that face, framed as when it is loaded alone.
    alone = make_avatar(portrait, 256)
    np.testing.assert_allclose(pair.face.landmarks[:, :2], alone.face.landmarks[:, :2], atol=3.0)


def test_a_centred_face_keeps_the_centre_square(tmp_path: Path, portrait: np.ndarray) -> None:
    """Single-face portraits are framed exactly as `square_crop` frames them (eval and caches depend on it)."""
    wide = cv2.copyMakeBorder(portrait, 0, 0, 60, 60, cv2.BORDER_REPLICATE)
    avatar = load_avatar(write_rgb(tmp_path / "wide.png", wide), 256)
    np.testing.assert_array_equal(avatar.image, square_crop(wide, 256))


def make_avatar_or_none(square: np.ndarray) -> Avatar | None:
    try:
        return make_avatar(square, square.shape[0])
    except AvatarError:
        return None


def test_huge_image_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_rgb(tmp_path / "huge.png", np.full((800, 900, 3), 90, np.uint8))
    monkeypatch.setattr(avatar_module, "MAX_PIXELS", 500_000)  # as if 800×900 were beyond 40 MP
    decoded_flags: list[int] = []
    real_imdecode = cv2.imdecode

    def spy(data, flags):
        decoded_flags.append(flags)
        return real_imdecode(data, flags)

    monkeypatch.setattr(avatar_module.cv2, "imdecode", spy)
    with pytest.raises(AvatarError, match=r"huge.png is too large \(\d+×\d+ px\)"):
        load_avatar(path, 256)
    assert cv2.IMREAD_COLOR not in decoded_flags  # only the 1/8 preview was decoded


def test_square_crop_contract() -> None:
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, 100:200] = 255  # the centre square is white, the sides black
    out = square_crop(wide, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert out.min() == 255
    tall = np.zeros((300, 100, 3), np.uint8)
    tall[100:200] = 255
    assert square_crop(tall, 50).min() == 255
    small = np.full((20, 30, 3), 77, np.uint8)  # upscaled
    up = square_crop(small, 128)
    assert up.shape == (128, 128, 3) and np.all(up == 77)


def test_list_avatars(tmp_path: Path, portrait: np.ndarray) -> None:
    write_rgb(tmp_path / "b.png", portrait)
    write_rgb(tmp_path / "a.JPG", portrait)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_avatars(tmp_path)] == ["a.JPG", "b.png"]
    with pytest.raises(AvatarError, match="avatar folder not found"):
        list_avatars(tmp_path / "missing")


def test_a_turned_portrait_is_accepted_with_a_warning(
    shared_data: Path, astronaut_face: Avatar, caplog: pytest.LogCaptureFixture
) -> None:
    """A near-profile portrait (a real clip's first frame) still loads, and the user is told why a frontal one
    animates better; a frontal one gets no such warning."""
    from avatarcam.io.sources import read_video

    frames, _ = read_video(shared_data / "driving" / "spectre_0Fi83BHQsMA_00002.mp4", max_frames=1)
    with caplog.at_level(logging.WARNING, logger="avatarcam.avatar"):
        avatar = make_avatar(frames[0], 256, name="profile")
    assert avatar.face is not None
    assert "profile is turned" in caplog.text and "frontal portrait animates best" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="avatarcam.avatar"):
        make_avatar(astronaut_face.image, astronaut_face.size, name="frontal")
    assert "turned" not in caplog.text

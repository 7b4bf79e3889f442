"""Rebuilds default_avatar.png: the face of scikit-image's astronaut photo (NASA, public domain).

Run: python -m avatarcam.assets.make_default_avatar
"""

from pathlib import Path

import cv2


def main() -> None:
    import skimage.data

    crop = skimage.data.astronaut()[0:300, 75:375]  # a square around the face, hair and collar
    out = Path(__file__).with_name("default_avatar.png")
    cv2.imwrite(str(out), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

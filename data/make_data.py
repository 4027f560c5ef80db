"""Write the course's test images into ``data/`` from scikit-image's bundled images.

Run once by the maintainers (``python data/make_data.py``); the PNGs it writes are committed,
so nothing is downloaded at run time.  Every source image is CC0 or public domain (see
``data/README.md``).  Each is centre-cropped to a square and resized to 256 x 256 with
anti-aliasing, then stored as 8-bit PNG.
"""
from pathlib import Path

import numpy as np
import skimage.data
from skimage.io import imsave
from skimage.transform import resize
from skimage.util import img_as_ubyte

SIZE = 256
# name in data/ -> (scikit-image loader, keep colour?)
IMAGES = {
    "camera": ("camera", False),
    "astronaut": ("astronaut", True),
    "coffee": ("coffee", True),
    "chelsea": ("chelsea", True),
    "grass": ("grass", False),
    "brick": ("brick", False),
}


def centre_square(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return img[top:top + s, left:left + s]


def main() -> None:
    out = Path(__file__).parent
    for name, (loader, colour) in IMAGES.items():
        img = centre_square(getattr(skimage.data, loader)())
        img = resize(img, (SIZE, SIZE), anti_aliasing=True)  # floats in [0, 1]
        if not colour and img.ndim == 3:
            raise ValueError(f"{name}: expected a gray source image")
        imsave(out / f"{name}.png", img_as_ubyte(img), check_contrast=False)
        print(f"wrote {name}.png {img.shape}")


if __name__ == "__main__":
    main()

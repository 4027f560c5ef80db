"""The NTK denoiser's recipe, step by step, against Gaussian blur, non-local means and BM3D.

    python bench/denoisers.py             # every shipped image, 128 and 256, sigma 15/25/50
    python bench/denoisers.py --quick     # 64 x 64, sigma 25 only (a smoke run)

Every method sees the same noisy image (seed 0 per image).  No method sees the clean image
except the Gaussian blur, whose width is chosen by an ORACLE (best PSNR over a grid): it is a
ceiling for linear stationary smoothing, not a denoiser.  Non-local means uses scikit-image
with the usual rule of thumb (h = 0.8 sigma, 5 x 5 patches, 13 x 13 search window) and BM3D
the ``bm3d`` package with the true sigma.  The NTK rows (all with the SURE stop):

- ``poster``: the paper's filter, one kernel of the raw 3 x 3 patches (exact up to 64 x 64,
  Nyström with 512 landmarks above);
- ``windowed, no pilot``: centred 5 x 5 patches, 10 x 10 windows, a step per window;
- ``windowed + pilot``: the same, then a second pass with the first estimate's kernel (the
  default of ``ntk_denoise``).

Writes ``bench/denoisers.md`` (machine, date, mean table, per-image table).  Timings vary
on a shared machine: compare within one run.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch
from skimage.filters import gaussian
from skimage.metrics import structural_similarity
from skimage.restoration import denoise_nl_means

from ntkutils.denoise import ntk_denoise
from ntkutils.images import add_noise, list_images, load_image, psnr, to_chw, to_hwc

HERE = Path(__file__).resolve().parent
GRAY = ("camera", "brick", "grass")


def _hwc(img: torch.Tensor) -> np.ndarray:
    return to_hwc(img.detach().double().numpy())  # (H, W, C)


def _chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(to_chw(np.atleast_3d(arr)).copy()).float()


def _blur_oracle(y, x, sigma):
    best = None
    for s in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0):
        out = _chw(gaussian(_hwc(y), sigma=s, channel_axis=-1))
        if best is None or psnr(out.clamp(0, 1), x) > psnr(best.clamp(0, 1), x):
            best = out
    return best


def _nlm(y, x, sigma):
    return _chw(denoise_nl_means(_hwc(y), h=0.8 * sigma, sigma=sigma, patch_size=5,
                                 patch_distance=6, channel_axis=-1, fast_mode=True))


def _bm3d(y, x, sigma):
    import bm3d

    img = _hwc(y)
    out = bm3d.bm3d_rgb(img, sigma) if img.shape[2] == 3 else bm3d.bm3d(img[..., 0], sigma)
    return _chw(out)


def _ntk(**options):
    def run(y, x, sigma):
        return ntk_denoise(y, sigma, generator=torch.Generator().manual_seed(0), **options)
    return run


METHODS = {
    "Gaussian blur (width by oracle)": _blur_oracle,
    "NTK, poster (raw 3x3)": _ntk(recipe="poster"),
    "NTK, windowed, no pilot": _ntk(pilot=False),
    "NTK, windowed + pilot (default)": _ntk(),
    "non-local means (h = 0.8 sigma)": _nlm,
    "BM3D": _bm3d,
}


def _ssim(x_hat, x):
    return structural_similarity(_hwc(x_hat.clamp(0, 1)), _hwc(x), channel_axis=-1,
                                 data_range=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 x 64, sigma 25 only")
    args = parser.parse_args()
    torch.set_num_threads(2)
    sizes, sigmas = ((64,), (25,)) if args.quick else ((128, 256), (15, 25, 50))
    rows = []  # (size, sigma, image, method, psnr, ssim, seconds)
    for size in sizes:
        for s255 in sigmas:
            sigma = s255 / 255
            for name in list_images():
                x = load_image(name, size=size, gray=name in GRAY)
                y = add_noise(x, sigma, generator=torch.Generator().manual_seed(0))
                rows.append((size, s255, name, "noisy", psnr(y.clamp(0, 1), x),
                             _ssim(y, x), 0.0))
                for method, run in METHODS.items():
                    start = time.perf_counter()
                    x_hat = run(y, x, sigma)
                    seconds = time.perf_counter() - start
                    rows.append((size, s255, name, method, psnr(x_hat.clamp(0, 1), x),
                                 _ssim(x_hat, x), seconds))
                    print(f"{size} sigma {s255} {name:10s} {method:36s} "
                          f"{rows[-1][4]:6.2f} dB {seconds:6.2f} s", flush=True)
    _write(rows, sizes, sigmas)


def _write(rows, sizes, sigmas) -> None:
    methods = ["noisy", *METHODS]
    lines = [
        "# The NTK denoiser against the classical ones (bench/denoisers.py)",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}; "
        f"{datetime.date.today().isoformat()}. Every shipped image, noise seed 0. "
        "Only the Gaussian blur sees the clean image (its width is an oracle's choice).",
        "",
        "## Mean over the images: PSNR (dB) / SSIM / seconds",
        "",
        "| size | sigma | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for size in sizes:
        for s in sigmas:
            cells = []
            for m in methods:
                sel = [r for r in rows if r[0] == size and r[1] == s and r[3] == m]
                cells.append(f"{np.mean([r[4] for r in sel]):.2f} / "
                             f"{np.mean([r[5] for r in sel]):.3f} / "
                             f"{np.mean([r[6] for r in sel]):.1f}")
            lines.append(f"| {size} | {s} | " + " | ".join(cells) + " |")
    lines += ["", "## Per image: PSNR (dB)", "",
              "| size | sigma | image | " + " | ".join(methods) + " |",
              "|---|---|---|" + "---|" * len(methods)]
    for size in sizes:
        for s in sigmas:
            for name in list_images():
                sel = {r[3]: r for r in rows if r[0] == size and r[1] == s and r[2] == name}
                lines.append(f"| {size} | {s} | {name} | "
                             + " | ".join(f"{sel[m][4]:.2f}" for m in methods) + " |")
    (HERE / "denoisers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

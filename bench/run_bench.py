"""Benchmarks of the course's denoisers, side by side, in one run.

    python bench/run_bench.py            # all cases, about 10 minutes on a 2-core CPU
    python bench/run_bench.py --quick    # smaller sizes, a minute or two (a smoke run)

Every case runs in a fresh Python process so that its peak memory (resident set size above
the process's size after the imports) is its own.  The same images and the same noise
(camera, sigma = 25/255, seed 0) are used throughout.  The results are printed as a markdown
table and written to ``bench/results.md`` with the machine they came from; the README
reports them.  Timings on a shared machine vary (up to 8x here): compare ratios within one
run, never across machines.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

SIGMA = 25 / 255
HERE = Path(__file__).resolve().parent


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _noisy(size: int, crop: int | None = None):
    import torch

    from ntkutils.images import add_noise, load_image

    x = load_image("camera", size=size, crop=crop)
    y = add_noise(x, SIGMA, generator=torch.Generator().manual_seed(0))
    return x, y


def case_filter(method: str, size: int, m: int) -> dict:
    """The NTK denoiser with the exact kernel or Nyström (SURE stopping)."""
    import torch

    from ntkutils.denoise import ntk_denoise
    from ntkutils.images import psnr

    x, y = _noisy(size)
    base = _rss_mib()
    start = time.perf_counter()
    x_hat, info = ntk_denoise(y, SIGMA, recipe="poster", method=method, n_landmarks=m,
                              return_info=True,
                              generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    return {"psnr": psnr(x_hat, x), "noisy": psnr(y, x), "seconds": seconds,
            "peak_mib": _rss_mib() - base, "step": info.step}


def case_nlm(size: int) -> dict:
    """scikit-image non-local means, h tuned on the clean image over a grid (an oracle)."""
    import numpy as np
    from skimage.restoration import denoise_nl_means

    from ntkutils.images import psnr
    import torch

    x, y = _noisy(size)
    img = y[0].double().numpy()
    best = None
    for factor in (0.6, 0.7, 0.8, 0.9, 1.0, 1.2):
        start = time.perf_counter()
        out = denoise_nl_means(img, h=factor * SIGMA, sigma=SIGMA, patch_size=5,
                               patch_distance=6, fast_mode=True)
        seconds = time.perf_counter() - start
        score = psnr(torch.from_numpy(np.asarray(out))[None], x.double())
        if best is None or score > best["psnr"]:
            best = {"psnr": score, "seconds": seconds, "h": factor}
    return best


def case_bm3d(size: int) -> dict:
    """BM3D (the optional `bm3d` package, non-commercial licence) when installed."""
    try:
        import bm3d
    except ImportError:
        return {"skipped": "bm3d not installed (pip install bm3d)"}
    import numpy as np
    import torch

    from ntkutils.images import psnr

    x, y = _noisy(size)
    start = time.perf_counter()
    out = bm3d.bm3d(y[0].double().numpy(), sigma_psd=SIGMA)
    seconds = time.perf_counter() - start
    return {"psnr": psnr(torch.from_numpy(np.asarray(out))[None], x.double()),
            "seconds": seconds}


def case_cnn(size: int, n_steps: int, channels: int, depth: int) -> dict:
    """A GD-trained vanilla CNN (noisy image as input), best step by the oracle."""
    import torch

    from ntkutils.networks import build_vanilla_cnn
    from ntkutils.training import fit

    x, y = _noisy(size)
    model = build_vanilla_cnn(1, channels, depth, generator=torch.Generator().manual_seed(0))
    run = fit(model, y, y, optimizer="gd", n_steps=n_steps, x=x, record_every=10,
              progress=False)
    per_step = run.seconds / n_steps
    return {"psnr": run.best_psnr, "best_step": run.best_step,
            "seconds_to_best": per_step * run.best_step, "seconds_total": run.seconds}


def case_empirical(size: int, width: int, method: str, out: str) -> dict:
    """Empirical NTK of the single-hidden-layer CNN: generic Jacobian vs structured."""
    import torch

    from ntkutils.kernels import ntk_empirical
    from ntkutils.networks import build_single_layer_cnn

    x, _ = _noisy(size, crop=2 * size)
    model = build_single_layer_cnn(1, width, generator=torch.Generator().manual_seed(0))
    model = model.double()
    start = time.perf_counter()
    K = ntk_empirical(model, x.double(), method=method)
    seconds = time.perf_counter() - start
    torch.save(K, out)  # the parent compares the two kernels entry by entry
    return {"seconds": seconds}


CASES = {
    "filter": case_filter, "nlm": case_nlm, "bm3d": case_bm3d, "cnn": case_cnn,
    "empirical": case_empirical,
}


def run_case(name: str, **kwargs) -> dict:
    """Run one case in a fresh interpreter and return its JSON result."""
    proc = subprocess.run(
        [sys.executable, __file__, "--case", name, "--kwargs", json.dumps(kwargs)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {name} {kwargs} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(CASES[args.case](**json.loads(args.kwargs))))
        return

    q = args.quick
    small, big, mid = (32, 64, 48) if q else (64, 256, 128)
    rows = []

    def add(section, method, res, extra=""):
        rows.append((section, method, res, extra))
        print(section, method, res, flush=True)

    sec = f"exact vs Nyström filter, {small}x{small}"
    add(sec, "exact kernel + eigh", run_case("filter", method="exact", size=small, m=0))
    for m in ((64, 256) if q else (256, 1024)):
        add(sec, f"Nyström, m = {m}", run_case("filter", method="nystrom", size=small, m=m))
    sec = f"denoisers, {big}x{big}"
    add(sec, "NTK + Nyström, m = 512",
        run_case("filter", method="nystrom", size=big, m=min(512, big * big // 4)))
    add(sec, "non-local means (scikit-image, h tuned by oracle)", run_case("nlm", size=big))
    add(sec, "BM3D", run_case("bm3d", size=big))
    sec = f"no training vs training, {mid}x{mid}"
    add(sec, "NTK + Nyström, m = 512",
        run_case("filter", method="nystrom", size=mid, m=min(512, mid * mid // 4)))
    add(sec, "GD-trained vanilla CNN (depth 3, 64 channels; best step by oracle)",
        run_case("cnn", size=mid, n_steps=100 if q else 1000, channels=64, depth=3))
    sec = "empirical NTK, 1 hidden layer, 32x32"
    width = 512 if q else 4096
    import tempfile

    import torch

    tmp = Path(tempfile.mkdtemp())
    gen = run_case("empirical", size=32, width=width, method="generic",
                   out=str(tmp / "generic.pt"))
    st = run_case("empirical", size=32, width=width, method="structured",
                  out=str(tmp / "structured.pt"))
    k_gen, k_st = torch.load(tmp / "generic.pt"), torch.load(tmp / "structured.pt")
    agree = float((k_gen - k_st).abs().max() / k_gen.abs().max())
    add(sec, f"generic Jacobian (torch.func), width {width}", gen)
    add(sec, f"structured (feature products), width {width}", st,
        f"speed-up {gen['seconds'] / st['seconds']:.0f}x; largest entry difference "
        f"{agree:.1e} of the largest entry")
    write_table(rows, quick=q)


def _fmt(res: dict) -> tuple[str, str, str]:
    if "skipped" in res:
        return "—", "—", res["skipped"]
    p = f"{res['psnr']:.2f}" if "psnr" in res else "—"
    s = res.get("seconds", res.get("seconds_to_best"))
    notes = []
    if "peak_mib" in res:
        notes.append(f"peak memory {res['peak_mib']:.0f} MiB")
    if "step" in res:
        notes.append(f"t = {res['step']} (SURE)")
    if "best_step" in res:
        notes.append(f"best step {res['best_step']}, {res['seconds_total']:.1f} s in all")
    if "h" in res:
        notes.append(f"h = {res['h']} sigma")
    if "noisy" in res:
        notes.append(f"noisy {res['noisy']:.2f} dB")
    return p, f"{s:.2f}", "; ".join(notes)


def write_table(rows, quick: bool) -> None:
    import torch

    lines = [
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}, "
        f"torch {torch.__version__}; image camera, sigma = 25/255, seed 0"
        + (" (quick run)" if quick else ""),
        "",
        "| comparison | method | PSNR (dB) | seconds | notes |",
        "|---|---|---|---|---|",
    ]
    for section, method, res, extra in rows:
        p, s, notes = _fmt(res)
        notes = "; ".join(filter(None, [notes, extra]))
        lines.append(f"| {section} | {method} | {p} | {s} | {notes} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not quick:
        (HERE / "results.md").write_text(text)


if __name__ == "__main__":
    main()

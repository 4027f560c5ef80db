"""Measurements behind docs/notes/linearised-gd.md (issue 13, item 2).

Run from the repository root, one part at a time (each prints its lines):

    TQDM_DISABLE=1 /tmp/cpu-slot .venv/bin/python docs/notes/linearised_gd_measure.py cross
    TQDM_DISABLE=1 /tmp/cpu-slot .venv/bin/python docs/notes/linearised_gd_measure.py grid
    TQDM_DISABLE=1 /tmp/cpu-slot .venv/bin/python docs/notes/linearised_gd_measure.py deep

``cross``: size of the cross-channel blocks of the empirical NTK at initialisation.
``grid``: linearised GD to 1e6 steps for the cpu grid's GD cells (seed 0), beside real GD
for the grid's 300 steps.  ``deep``: a deep vanilla CNN against its closed-form kernel.
"""
import sys
import time

import torch

from ntkutils import (
    build_autoencoder,
    build_vanilla_cnn,
    fit,
    landmark_pixels,
    linearised_gd,
    ntk_empirical,
    ntk_filter,
    psnr,
)
from ntkutils.empirical import frozen_running_stats
from ntkutils.reproduce.run import _Centred, _draw
from ntkutils.reproduce.settings import grid_settings

torch.set_num_threads(1)
S = grid_settings("cpu", seed=0)
X, Y, NOISE = _draw(S)  # float64: clean, noisy (C, 64, 64), iid input (32, 64, 64)
C = X.shape[0]
INPUTS = {"noisy image": (Y, Y), "iid noise": (NOISE[:C], NOISE)}  # (vanilla, autoencoder)


def grid_network(method: str, row: int, u_small, u_ae):
    """The grid's network of a GD cell, with the grid's generator (reproduce.run._cell)."""
    col = 0 if method == "GD + autoencoder" else 1
    g = torch.Generator().manual_seed(S.seed + 100 + 10 * row + col)
    torch.set_default_dtype(torch.float64)
    if col == 0:
        net, u = build_autoencoder(u_ae.shape[0], C, S.ae_channels, levels=S.ae_levels,
                                   skip_channels=S.ae_skip_channels, generator=g), u_ae
    else:
        net, u = build_vanilla_cnn(C, S.vanilla_channels, S.vanilla_depth, S.patch_size,
                                   generator=g), u_small
    return net, u


def part_cross() -> None:
    rows = landmark_pixels((64, 64), 48, generator=torch.Generator().manual_seed(0))
    for row, (name, (u_small, u_ae)) in enumerate(INPUTS.items()):
        for method in ("GD + vanilla CNN", "GD + autoencoder"):
            net, u = grid_network(method, row, u_small, u_ae)
            with frozen_running_stats(net):  # batch norm: the image's statistics
                K = ntk_empirical(net, u, output_channel=None, rows=(rows[None] + 4096 *
                                  torch.arange(C)[:, None]).reshape(-1))  # (C m, C n)
            K = K.reshape(C, len(rows), C, 4096)
            diag = sum(K[o, :, o].norm() ** 2 for o in range(C)) ** 0.5
            off = sum(K[o, :, p].norm() ** 2 for o in range(C) for p in range(C)
                      if o != p) ** 0.5
            spread = max(float((K[o, :, o] - K[0, :, 0]).norm() / K[0, :, 0].norm())
                         for o in range(C))
            print(f"{name:12s} {method:17s} |off-diagonal blocks| / |diagonal blocks| "
                  f"= {float(off / diag):.3f}; max_o |Theta_oo - Theta_00| / |Theta_00| "
                  f"= {spread:.3f}")


def curve_line(label, run, res=None) -> str:
    best = float(run.psnr.max())
    line = (f"{label}: lr {run.lr:.3g}, oracle {best:.2f} dB at t = {run.step}, "
            f"discrepancy {run.psnr_discrepancy:.2f} dB at t = {run.step_discrepancy}, "
            f"t=300: {float(run.psnr[list(run.steps).index(300)]):.2f} dB, "
            f"t=1e6: {float(run.psnr[-1]):.2f} dB")
    if res is not None:
        k = list(run.steps).index(300)
        gap = float((res.snapshots[300] - run.estimates[k]).norm() / Y.norm())
        line += (f"; real GD 300 steps: best {res.best_psnr:.2f} dB at {res.best_step}, "
                 f"at 300 {float(res.psnr[-1]):.2f} dB, |z_real - z_lin| / |y| at 300 = "
                 f"{gap:.3f}")
    return line


def part_grid(n_landmarks: int = 512) -> None:
    steps = torch.unique(torch.cat([torch.arange(0, 301, 10),
                                    torch.logspace(0, 6, 150).round().long()]))
    for row, (name, (u_small, u_ae)) in enumerate(INPUTS.items()):
        for method in ("GD + vanilla CNN", "GD + autoencoder"):
            net, u = grid_network(method, row, u_small, u_ae)
            start = time.perf_counter()
            run = linearised_gd(net, u, Y, steps=steps, n_landmarks=n_landmarks, centred=True,
                                x=X, sigma=S.sigma, generator=torch.Generator().manual_seed(1))
            lin_s = time.perf_counter() - start
            each = None
            if method == "GD + autoencoder":  # without the cross-channel blocks
                each = linearised_gd(net, u, Y, steps=steps, n_landmarks=n_landmarks,
                                     centred=True, channels="each", lr=run.lr, x=X,
                                     sigma=S.sigma, generator=torch.Generator().manual_seed(1))
            res = fit(_Centred(net, u), u, Y, n_steps=300, lr=run.lr, x=X, record_every=10,
                      snapshot_steps=[300], progress=False)  # trains net in place
            print(curve_line(f"{name:12s} {method:17s} m={n_landmarks} ({lin_s:.0f} s)",
                             run, res), flush=True)
            if each is not None:
                print(curve_line(f"{name:12s} {method:17s} channels='each'", each, res),
                      flush=True)


def part_deep(depth: int = 3, channels: int = 64, n_landmarks: int = 512) -> None:
    g = torch.Generator().manual_seed(7)
    torch.set_default_dtype(torch.float64)
    net = build_vanilla_cnn(C, channels, depth, 3, generator=g)
    n_weights = sum(p.numel() for p in net.parameters())
    steps = torch.unique(torch.cat([torch.tensor([300]), torch.logspace(0, 6, 150).round()
                                    .long(), torch.tensor([0])]))
    start = time.perf_counter()
    run = linearised_gd(net, Y, Y, steps=steps, n_landmarks=n_landmarks, centred=True,
                        channels=0, x=X, sigma=S.sigma,
                        generator=torch.Generator().manual_seed(1))
    lin_s = time.perf_counter() - start
    res = fit(_Centred(net, Y), Y, Y, n_steps=300, lr=run.lr, x=X, record_every=10,
              snapshot_steps=[300], progress=False)
    print(curve_line(f"deep vanilla depth {depth} width {channels} ({n_weights} weights, "
                     f"{lin_s:.0f} s)", run, res))
    kf = ntk_filter(Y, Y, depth=depth, method="nystrom", n_landmarks=n_landmarks, x=X,
                    sigma=S.sigma, estimates=True, generator=torch.Generator().manual_seed(1))
    disc = int(torch.nonzero(kf.residual <= Y.numel() * S.sigma**2)[0])
    print(f"ntk_closed_form depth {depth} (Nystrom {n_landmarks}): oracle "
          f"{float(kf.psnr.max()):.2f} dB at t = {kf.step}, discrepancy "
          f"{float(kf.psnr[disc]):.2f} dB at t = {int(kf.steps[disc])}")
    print(f"noisy image: {psnr(Y, X):.2f} dB")


if __name__ == "__main__":
    {"cross": part_cross, "grid": part_grid, "deep": part_deep}[sys.argv[1]]()

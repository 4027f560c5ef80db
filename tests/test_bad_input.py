"""Bad input, across the public API and the command lines: a clear error, never nonsense.

One table, one row per kind of mistake a reader makes (wrong shape, dtype, scale, range,
NaN, a size that cannot fit in memory, a device that is not there, a path that cannot be
written).  Each row calls the package and says what must come back: a ``TypeError`` or
``ValueError`` whose message names the argument (a regular expression), or, for the few
inputs that have a sensible answer, that answer.  Every message is also checked for what
must never be in it: a third-party library's advice (``pip install``) or a traceback.

Sizes that cannot fit are chosen absurd (terabytes), so that a missing refusal fails at
once in the allocator instead of slowing the machine.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

import ntkutils as nu
from ntkutils import classroom, cli, plotting, widgets
from ntkutils.reproduce import GridSettings

F64 = torch.float64
TB_WORDS = r"GiB|memory"  # a memory refusal gives its estimate in GiB and says "memory"


def img(c=1, h=8, w=8, *, value=None, seed=0, dtype=F64):
    """A small test image in [0, 1], ``(c, h, w)``."""
    if value is not None:
        return torch.full((c, h, w), float(value), dtype=dtype)
    return torch.rand(c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def eig(n=64):
    """Eigenpairs of a small PSD kernel on ``n`` pixels."""
    u = img(h=8, w=n // 8)
    return nu.eigh_psd(nu.ntk_closed_form(u, 3))


def cnn(in_channels=1, **kw):
    return nu.build_single_layer_cnn(in_channels, 8, 3,
                                     generator=torch.Generator().manual_seed(0), **kw).double()


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], Any]
    error: type[BaseException] | tuple[type[BaseException], ...] = ValueError
    match: str = ""  # a regex the message must match (the argument's name, what was wrong)


def C(id, call, error=ValueError, match=""):
    return Case(id, call, error, match)


# ------------------------------------------------------------------ images and noise
IMAGES = [
    C("load_image name not str", lambda: nu.load_image(3), TypeError, r"name"),
    C("load_image unknown name", lambda: nu.load_image("lenna"), ValueError, r"name.*camera"),
    C("load_image size 0", lambda: nu.load_image("camera", size=0), ValueError, r"size"),
    C("load_image size float", lambda: nu.load_image("camera", size=2.5), TypeError, r"size"),
    C("load_image size huge", lambda: nu.load_image("camera", size=100_000), ValueError,
      r"size.*(GiB|memory)"),
    C("load_image crop too big", lambda: nu.load_image("camera", crop=1000), ValueError, r"crop"),
    C("load_image colour of a gray image", lambda: nu.load_image("camera", gray=False),
      ValueError, r"gray"),
    C("load_image gray not bool", lambda: nu.load_image("astronaut", gray="no"), TypeError,
      r"gray"),
    C("load_image dtype int", lambda: nu.load_image("camera", dtype=torch.int32), TypeError,
      r"dtype"),
    C("add_noise 0..255 image", lambda: nu.add_noise(img() * 255, 25 / 255), ValueError,
      r"x.*\[0, 1\].*255"),
    C("add_noise sigma on 0..255", lambda: nu.add_noise(img(), 25), ValueError,
      r"sigma.*25 ?/ ?255"),
    C("add_noise sigma negative", lambda: nu.add_noise(img(), -0.1), ValueError, r"sigma"),
    C("add_noise sigma nan", lambda: nu.add_noise(img(), float("nan")), ValueError, r"sigma"),
    C("add_noise sigma str", lambda: nu.add_noise(img(), "25"), TypeError, r"sigma"),
    C("add_noise channels-last", lambda: nu.add_noise(img().expand(3, 8, 8).permute(1, 2, 0),
                                                      0.1), ValueError, r"x.*channels.last|x.*permute"),
    C("add_noise numpy", lambda: nu.add_noise(img().numpy(), 0.1), TypeError, r"x.*Tensor"),
    C("add_noise uint8", lambda: nu.add_noise(torch.zeros(1, 4, 4, dtype=torch.uint8), 0.1),
      TypeError, r"x.*float"),
    C("add_noise 2-D", lambda: nu.add_noise(torch.zeros(4, 4), 0.1), ValueError, r"x.*\(C, H, W\)|x.*dimensions"),
    C("add_noise empty", lambda: nu.add_noise(torch.zeros(1, 0, 4), 0.1), ValueError, r"x.*empty"),
    C("add_noise nan image", lambda: nu.add_noise(img() * float("nan"), 0.1), ValueError,
      r"x.*NaN"),
    C("add_noise generator int", lambda: nu.add_noise(img(), 0.1, generator=0), TypeError,
      r"generator"),
    C("add_noise clip not bool", lambda: nu.add_noise(img(), 0.1, clip="yes"), TypeError, r"clip"),
    C("psnr nan estimate", lambda: nu.psnr(img() * float("nan"), img()), ValueError,
      r"x_hat.*NaN"),
    C("psnr shape mismatch", lambda: nu.psnr(img(h=4), img()), ValueError, r"x_hat and x.*shape"),
    C("psnr 0..255 reference", lambda: nu.psnr(img(), img() * 255), ValueError,
      r"x.*\[0, 1\].*255"),
    C("psnr 0..255 estimate", lambda: nu.psnr(img() * 255, img()), ValueError,
      r"x_hat.*255"),
    C("psnr list", lambda: nu.psnr([0.5], img()), TypeError, r"x_hat"),
    C("psnr empty", lambda: nu.psnr(torch.zeros(0), torch.zeros(0)), ValueError, r"empty"),
    C("estimate_sigma channels-last",
      lambda: nu.estimate_sigma(img(3).permute(1, 2, 0)), ValueError, r"y.*channels.last|y.*permute"),
    C("estimate_sigma 0..255", lambda: nu.estimate_sigma(img() * 255), ValueError,
      r"y.*255"),
]

# ------------------------------------------------------------------ networks
NETWORKS = [
    C("single-layer in_channels 0", lambda: nu.build_single_layer_cnn(0), ValueError,
      r"in_channels"),
    C("single-layer channels negative", lambda: nu.build_single_layer_cnn(1, -1), ValueError,
      r"channels"),
    C("single-layer channels float", lambda: nu.build_single_layer_cnn(1, 8.0), TypeError,
      r"channels"),
    C("single-layer channels huge", lambda: nu.build_single_layer_cnn(1, 10**12), ValueError,
      r"channels.*(GiB|memory)"),
    C("single-layer patch even", lambda: nu.build_single_layer_cnn(1, 8, 4), ValueError,
      r"patch_size"),
    C("single-layer parameterization", lambda: nu.build_single_layer_cnn(parameterization="ntks"),
      ValueError, r"parameterization"),
    C("single-layer generator", lambda: nu.build_single_layer_cnn(generator=1), TypeError,
      r"generator"),
    C("vanilla depth 0", lambda: nu.build_vanilla_cnn(depth=0), ValueError, r"depth"),
    C("vanilla channels huge", lambda: nu.build_vanilla_cnn(channels=10**9), ValueError,
      r"channels.*(GiB|memory)"),
    C("vanilla in_channels str", lambda: nu.build_vanilla_cnn("3"), TypeError, r"in_channels"),
    C("autoencoder levels 0", lambda: nu.build_autoencoder(levels=0), ValueError, r"levels"),
    C("autoencoder channels huge", lambda: nu.build_autoencoder(channels=10**9), ValueError,
      r"channels.*(GiB|memory)"),
    C("autoencoder skip negative", lambda: nu.build_autoencoder(skip_channels=-1), ValueError,
      r"skip_channels"),
    C("count_parameters of a tensor", lambda: nu.count_parameters(torch.zeros(3)), TypeError,
      r"model"),
]

# ------------------------------------------------------------------ kernels
KERNELS = [
    C("extract_patches 2-D", lambda: nu.extract_patches(torch.zeros(8, 8), 3), ValueError, r"u"),
    C("extract_patches even", lambda: nu.extract_patches(img(), 4), ValueError, r"patch_size"),
    C("extract_patches larger than image", lambda: nu.extract_patches(img(), 9), ValueError,
      r"patch_size.*larger"),
    C("arccos columns differ", lambda: nu.arccos_kernel(torch.ones(3, 2), torch.ones(3, 4), 0),
      ValueError, r"X and Y.*columns"),
    C("arccos degree 2", lambda: nu.arccos_kernel(torch.ones(3, 2), torch.ones(3, 2), 2),
      ValueError, r"degree"),
    C("arccos dtype mismatch",
      lambda: nu.arccos_kernel(torch.ones(3, 2), torch.ones(3, 2, dtype=F64), 0),
      TypeError, r"X and Y.*dtype"),
    C("arccos huge", lambda: nu.arccos_kernel(torch.ones(2_000_000, 1), torch.ones(2_000_000, 1), 1),
      ValueError, r"X.*Y.*(GiB|memory)"),
    C("ntk_closed_form patch even", lambda: nu.ntk_closed_form(img(), 2), ValueError,
      r"patch_size"),
    C("ntk_closed_form 4-D", lambda: nu.ntk_closed_form(img()[None], 3), ValueError, r"u"),
    C("ntk_closed_form depth 0", lambda: nu.ntk_closed_form(img(), 3, 0), ValueError, r"depth"),
    C("ntk_closed_form 512x512", lambda: nu.ntk_closed_form(img(h=512, w=512), 3), ValueError,
      r"GiB"),
    C("ntk_closed_form columns out of range",
      lambda: nu.ntk_closed_form(img(), 3, columns=torch.tensor([10**6])), ValueError,
      r"columns"),
    C("ntk_closed_form columns float",
      lambda: nu.ntk_closed_form(img(), 3, columns=torch.tensor([1.0])), TypeError, r"columns"),
    C("ntk_closed_form dtype int", lambda: nu.ntk_closed_form(img(), 3, dtype=torch.int64),
      TypeError, r"dtype"),
    C("ntk_closed_form nan", lambda: nu.ntk_closed_form(img() * float("nan"), 3), ValueError,
      r"u.*NaN"),
    C("ntk_closed_form channels-last", lambda: nu.ntk_closed_form(img(3, 16, 16).permute(1, 2, 0), 3),
      ValueError, r"u.*channels.last|u.*permute"),
    C("ntk_empirical model not a module", lambda: nu.ntk_empirical("cnn", img()), TypeError,
      r"model"),
    C("ntk_empirical u int", lambda: nu.ntk_empirical(cnn(), torch.ones(1, 8, 8, dtype=torch.long)),
      TypeError, r"u.*float"),
    C("ntk_empirical channels mismatch", lambda: nu.ntk_empirical(cnn(1), img(3)), ValueError,
      r"u.*channels"),
    C("ntk_empirical full 512x512",
      lambda: nu.ntk_empirical(cnn(), img(h=512, w=512)), ValueError, r"(GiB|memory).*rows"),
    C("ntk_empirical rows out of range",
      lambda: nu.ntk_empirical(cnn(), img(), rows=torch.tensor([64])), ValueError, r"rows"),
    C("ntk_empirical output_channel", lambda: nu.ntk_empirical(cnn(), img(), output_channel=3),
      ValueError, r"output_channel"),
    C("ntk_empirical method", lambda: nu.ntk_empirical(cnn(), img(), method="fast"), ValueError,
      r"method"),
    C("ntk_empirical chunk_size 0", lambda: nu.ntk_empirical(cnn(), img(), chunk_size=0),
      ValueError, r"chunk_size"),
]

# ------------------------------------------------------------------ filters


def _asym():
    K = torch.eye(4, dtype=F64)
    K[0, 1] = 0.5
    return K


def _non_orthonormal():
    lam, V = eig()
    return lam, 2 * V


FILTERS = [
    C("eigh_psd not square", lambda: nu.eigh_psd(torch.ones(3, 4)), ValueError, r"K.*square"),
    C("eigh_psd asymmetric", lambda: nu.eigh_psd(_asym()), ValueError, r"K.*symmetric"),
    C("eigh_psd not PSD", lambda: nu.eigh_psd(-torch.eye(4)), ValueError,
      r"K.*positive semi-definite"),
    C("eigh_psd float16", lambda: nu.eigh_psd(torch.eye(4), dtype=torch.float16), TypeError,
      r"dtype.*float16"),
    C("eigh_psd dtype int", lambda: nu.eigh_psd(torch.eye(4), dtype=torch.int64), TypeError,
      r"dtype"),
    C("eigh_psd nan", lambda: nu.eigh_psd(torch.eye(4) * float("nan")), ValueError, r"K.*NaN"),
    C("gd_filter eigvecs rows", lambda: nu.gd_filter(img(), *eig(32), [1]), ValueError,
      r"eigvecs.*rows"),
    C("gd_filter non-orthonormal", lambda: nu.gd_filter(img(), *_non_orthonormal(), [1]),
      ValueError, r"eigvecs.*orthonormal"),
    C("gd_filter lr unstable", lambda: nu.gd_filter(img(), *eig(), [1], lr=3 / float(eig()[0][0])),
      ValueError, r"lr.*2/lambda_max"),
    C("gd_filter negative step", lambda: nu.gd_filter(img(), *eig(), [-1]), ValueError, r"steps"),
    C("gd_filter float steps", lambda: nu.gd_filter(img(), *eig(), [1.5]), TypeError, r"steps"),
    C("gd_filter negative eigvals", lambda: nu.gd_filter(img(), -eig()[0], eig()[1], [1]),
      ValueError, r"eigvals"),
    C("gd_filter many steps of a big image", lambda: nu.gd_filter(
        img(h=64, w=64), torch.ones(1, dtype=F64), torch.eye(4096, 1, dtype=F64),
        torch.arange(10**7)), ValueError, r"steps.*(GiB|memory)"),
    C("gd_filter_iterative million steps",
      lambda: nu.gd_filter_iterative(img(h=64, w=64), torch.eye(4096, dtype=F64), 10**8, lr=0.5),
      ValueError, r"n_steps.*(GiB|memory)"),
    C("gd_filter_iterative asymmetric", lambda: nu.gd_filter_iterative(
        img(h=2, w=2), _asym(), 3, lr=0.1), ValueError, r"K.*symmetric"),
    C("gd_filter_iterative lr unstable", lambda: nu.gd_filter_iterative(
        img(h=2, w=2), torch.eye(4, dtype=F64), 3, lr=5.0), ValueError, r"lr.*2/lambda_max"),
    C("landmark_pixels too many", lambda: nu.landmark_pixels((4, 4), 17), ValueError,
      r"n_landmarks"),
    C("landmark_pixels method", lambda: nu.landmark_pixels((4, 4), 4, method="sobol"),
      ValueError, r"method"),
    C("landmark_pixels shape", lambda: nu.landmark_pixels((0, 4), 1), ValueError, r"shape"),
    C("nystrom mismatch", lambda: nu.nystrom_eigenpairs(torch.ones(9, 3, dtype=F64),
                                                        torch.tensor([0, 1])),
      ValueError, r"columns.*landmarks|landmarks.*columns"),
    C("nystrom rcond", lambda: nu.nystrom_eigenpairs(torch.eye(3, dtype=F64), torch.arange(3),
                                                     rcond=-1.0), ValueError, r"rcond"),
    C("nystrom landmarks repeated", lambda: nu.nystrom_eigenpairs(
        torch.eye(3, 2, dtype=F64), torch.tensor([0, 0])), ValueError, r"landmarks.*distinct"),
    C("nlm pixel outside", lambda: nu.nlm_weights(img(), (8, 0), sigma=0.1), ValueError,
      r"pixel"),
    C("nlm patch even", lambda: nu.nlm_weights(img(), (0, 0), patch_size=4, sigma=0.1),
      ValueError, r"patch_size"),
    C("nlm h negative", lambda: nu.nlm_weights(img(), (0, 0), patch_size=3, h=-1.0), ValueError,
      r"\bh\b"),
    C("nlm sigma 0..255", lambda: nu.nlm_weights(img(), (0, 0), patch_size=3, sigma=25),
      ValueError, r"sigma.*255"),
    C("degrees_of_freedom lr unstable",
      lambda: nu.degrees_of_freedom(torch.tensor([1.0, 0.5], dtype=F64), [1], lr=2.5),
      ValueError, r"lr.*2/lambda_max"),
    C("degrees_of_freedom eigvals 2-D", lambda: nu.degrees_of_freedom(torch.eye(2), [1]),
      ValueError, r"eigvals"),
    C("degrees_of_freedom_mc not callable", lambda: nu.degrees_of_freedom_mc(3, img()),
      TypeError, r"denoiser"),
    C("degrees_of_freedom_mc eps", lambda: nu.degrees_of_freedom_mc(lambda y: y, img(), eps=0.0),
      ValueError, r"eps"),
    C("degrees_of_freedom_mc n_probes", lambda: nu.degrees_of_freedom_mc(
        lambda y: y, img(), n_probes=0), ValueError, r"n_probes"),
    C("degrees_of_freedom_mc wrong output", lambda: nu.degrees_of_freedom_mc(
        lambda y: y[0], img()), ValueError, r"denoiser"),
    C("sure sigma 0..255", lambda: nu.sure(img(), img()[None], torch.ones(1), 25), ValueError,
      r"sigma.*255"),
    C("sure shapes", lambda: nu.sure(img(), img(h=4)[None], torch.ones(1), 0.1), ValueError,
      r"z"),
    C("sure df length", lambda: nu.sure(img(), img()[None], torch.ones(2), 0.1), ValueError,
      r"df"),
    C("sure_step steps length", lambda: nu.sure_step(img(), img()[None], torch.ones(1), 0.1,
                                                    [1, 2]), ValueError, r"steps"),
    C("discrepancy tau", lambda: nu.discrepancy_step(img(), img()[None], 0.1, [1], tau=0),
      ValueError, r"tau"),
    C("discrepancy decreasing steps", lambda: nu.discrepancy_step(
        img(), torch.stack([img(), img()]), 0.1, [5, 1]), ValueError, r"steps.*increasing"),
    C("oracle_step 0..255", lambda: nu.oracle_step(img()[None], img() * 255, [1]), ValueError,
      r"x.*255"),
    C("bias_variance sigma 0..255", lambda: nu.bias_variance(img(), *eig(), [1], None, 25),
      ValueError, r"sigma.*255"),
]

# ------------------------------------------------------------------ the denoiser
DENOISE = [
    C("ntk_denoise sigma 0..255", lambda: nu.ntk_denoise(img(), 25), ValueError,
      r"sigma.*25 ?/ ?255"),
    C("ntk_denoise y 0..255", lambda: nu.ntk_denoise(img() * 255, 0.1), ValueError, r"y.*255"),
    C("ntk_denoise channels-last", lambda: nu.ntk_denoise(img(3).permute(1, 2, 0), 0.1),
      ValueError, r"y.*channels.last|y.*permute"),
    C("ntk_denoise method", lambda: nu.ntk_denoise(img(), 0.1, recipe="poster", method="fast"),
      ValueError, r"method must be"),
    C("ntk_denoise rule", lambda: nu.ntk_denoise(img(), 0.1, rule="oracle"), ValueError, r"rule"),
    C("ntk_denoise landmarks > pixels", lambda: nu.ntk_denoise(
        img(), 0.1, recipe="poster", method="nystrom", n_landmarks=65), ValueError,
      r"n_landmarks"),
    C("ntk_denoise x shape", lambda: nu.ntk_denoise(img(), 0.1, x=img(h=4)), ValueError, r"x"),
    C("ntk_denoise negative steps", lambda: nu.ntk_denoise(img(), 0.1, steps=[-3]), ValueError,
      r"steps"),
    C("ntk_denoise exact too big", lambda: nu.ntk_denoise(img(h=256, w=256), 0.1,
                                                          recipe="poster", method="exact"),
      ValueError, r"nystrom"),
    C("ntk_denoise depth 0", lambda: nu.ntk_denoise(img(), 0.1, recipe="poster", depth=0),
      ValueError, r"depth"),
    C("ntk_denoise black without sigma", lambda: nu.ntk_denoise(img(value=0)), ValueError,
      r"sigma"),
    C("ntk_denoise recipe", lambda: nu.ntk_denoise(img(), 0.1, recipe="bm3d"), ValueError,
      r"recipe must be 'windowed' or 'poster'"),
    C("ntk_denoise poster option, windowed recipe", lambda: nu.ntk_denoise(
        img(), 0.1, method="exact"), ValueError, r"method only apply to recipe='poster'"),
    C("ntk_denoise windowed stride", lambda: nu.ntk_denoise(img(), 0.1, stride=20), ValueError,
      r"stride must be <= window"),
    C("ntk_denoise return_info", lambda: nu.ntk_denoise(img(), 0.1, return_info=1), TypeError,
      r"return_info"),
]

# ------------------------------------------------------------------ training


def _fit(**kw):
    model = cnn()
    args = dict(n_steps=2, lr=0.01, progress=False)
    args.update(kw)
    net_input = args.pop("net_input", img())
    y = args.pop("y", img(seed=1))
    return nu.fit(model, net_input, y, **args)


TRAINING = [
    C("fit optimizer", lambda: _fit(optimizer="sgd"), ValueError, r"optimizer"),
    C("fit n_steps negative", lambda: _fit(n_steps=-1), ValueError, r"n_steps"),
    C("fit lr negative", lambda: _fit(lr=-1.0), ValueError, r"lr"),
    C("fit y shape", lambda: _fit(y=img(h=4)), ValueError, r"y.*shape"),
    C("fit y 0..255", lambda: _fit(y=img() * 255), ValueError, r"y.*255"),
    C("fit dtype mismatch", lambda: _fit(net_input=img().float(), y=img().float()), TypeError,
      r"net_input.*dtype|dtype.*model"),
    C("fit x shape", lambda: _fit(x=img(h=4)), ValueError, r"\bx\b"),
    C("fit snapshot beyond", lambda: _fit(snapshot_steps=[5]), ValueError, r"snapshot_steps"),
    C("fit input noise negative", lambda: _fit(input_noise_std=-0.1), ValueError,
      r"input_noise_std"),
    C("fit record_every 0", lambda: _fit(record_every=0), ValueError, r"record_every"),
    C("fit records too many", lambda: _fit(n_steps=10**12, snapshot_steps=range(0, 10**12, 10**3)),
      ValueError, r"snapshot_steps.*(GiB|memory)"),
    C("fit GD diverges", lambda: _fit(optimizer="gd", lr=1e6, n_steps=50), nu.TrainingDiverged,
      r"lr.*diverge"),
    C("fit net_input channels", lambda: _fit(net_input=img(3)), ValueError,
      r"net_input.*channels"),
    C("make_noise_input shape", lambda: nu.make_noise_input((3, 8)), ValueError, r"shape"),
    C("make_noise_input scale", lambda: nu.make_noise_input((3, 8, 8), scale=-1.0), ValueError,
      r"scale"),
    C("make_noise_input huge", lambda: nu.make_noise_input((32, 10**6, 10**6)), ValueError,
      r"shape.*(GiB|memory)"),
    C("ntk_largest_eigenvalue n_iter", lambda: nu.ntk_largest_eigenvalue(cnn(), img(), 0),
      ValueError, r"n_iter"),
    C("ntk_largest_eigenvalue tol", lambda: nu.ntk_largest_eigenvalue(cnn(), img(), tol=-1.0),
      ValueError, r"tol"),
]

# ------------------------------------------------------------------ the poster's grid
_TEST = None


def _settings(**kw):
    return dataclasses.replace(nu.grid_settings("cpu"), **kw)


def _test_grid():
    global _TEST
    if _TEST is None:
        _TEST = nu.reproduce_grid("test", progress=False)
    return _TEST


GRID = [
    C("grid_settings scale", lambda: nu.grid_settings("gpu"), ValueError, r"scale"),
    C("grid_settings image", lambda: nu.grid_settings(image="lenna"), ValueError, r"image"),
    C("grid_settings seed", lambda: nu.grid_settings(seed=-1), ValueError, r"seed"),
    C("GridSettings gd_steps", lambda: _settings(gd_steps=-1), ValueError, r"gd_steps"),
    C("GridSettings adam_steps", lambda: _settings(adam_steps=0), ValueError, r"adam_steps"),
    C("GridSettings adam_steps_noise", lambda: _settings(adam_steps_noise=1.5), TypeError,
      r"adam_steps_noise"),
    C("GridSettings gd_lanczos", lambda: _settings(gd_lanczos=0), ValueError,
      r"gd_lanczos must be"),
    C("GridSettings gd_lanczos too many", lambda: _settings(gd_lanczos=10**6), ValueError,
      r"gd_lanczos must be <= the"),
    C("GridSettings adam_steps_for", lambda: _settings().adam_steps_for("noise"),
      ValueError, r"network_input.*iid noise"),
    C("GridSettings sigma 0..255", lambda: _settings(sigma=25), ValueError, r"sigma.*255"),
    C("GridSettings patch even", lambda: _settings(patch_size=4), ValueError, r"patch_size"),
    C("GridSettings landmarks", lambda: _settings(n_landmarks=10**6), ValueError,
      r"n_landmarks"),
    C("GridSettings image", lambda: _settings(image="lenna"), ValueError, r"image"),
    C("GridSettings adam_lr", lambda: _settings(adam_lr=0.0), ValueError, r"adam_lr"),
    C("reproduce_grid device gpu", lambda: nu.reproduce_grid("test", device="gpu"), ValueError,
      r"device.*cuda"),
    C("reproduce_grid device mps", lambda: nu.reproduce_grid("test", device="mps"), ValueError,
      r"device"),
    C("reproduce_grid settings type", lambda: nu.reproduce_grid(settings={"size": 8}), TypeError,
      r"settings"),
    C("reproduce_grid dtype", lambda: nu.reproduce_grid("test", dtype=torch.int32), TypeError,
      r"dtype"),
    C("format_table result", lambda: nu.format_table({"a": 1}), TypeError, r"result"),
    C("plot_grid result", lambda: nu.plot_grid(None), TypeError, r"result"),
    C("GridSettings adam_average", lambda: _settings(adam_average=1.0), ValueError,
      r"adam_average"),
    C("format_readings result", lambda: nu.format_readings([]), TypeError, r"result"),
    C("poster_readings table", lambda: nu.poster_readings({"noisy image": {}}), TypeError,
      r"result must be a GridResult or a table"),
    C("poster_readings rule", lambda: nu.poster_readings(_test_grid(), rule="best"),
      ValueError, r"rule"),
    C("save_runs runs", lambda: nu.save_runs([], "g.json", seconds=1.0), TypeError,
      r"runs must be a GridResult"),
    C("load_runs missing", lambda: nu.load_runs("no/such/grid.json"), FileNotFoundError,
      r"path"),
    C("merge_runs paths", lambda: nu.reproduce.merge_runs("grid.json", "out.json"),
      ValueError, r"paths must be a list of two or more grid data files"),
    C("check_table gd_lanczos", lambda: nu.reproduce.store.check_table(gd_lanczos=-1),
      ValueError, r"gd_lanczos must be an int >= 1 or None"),
    C("grid_cell settings", lambda: nu.reproduce.grid_cell("test", "iid noise",
                                                           "NTK + Nyström"), TypeError,
      r"settings must be a GridSettings"),
    C("grid_cell network_input", lambda: nu.reproduce.grid_cell(
        nu.grid_settings("test"), "noise", "NTK + Nyström"), ValueError, r"network_input"),
    C("grid_cell method", lambda: nu.reproduce.grid_cell(
        nu.grid_settings("test"), "iid noise", "NTK"), ValueError, r"method must be one"),
    C("stored_grid name", lambda: nu.stored_grid("huge"), ValueError,
      r"name must be one of the stored grids"),
    C("save_runs commit", lambda: nu.save_runs([_test_grid()], "g.json", seconds=1.0,
                                               commit=5), TypeError, r"commit"),    C("width_study widths", lambda: nu.reproduce.width_study("test", widths=[0]),
      ValueError, r"widths must be a non-empty list of positive ints"),
    C("width_study jobs", lambda: nu.reproduce.width_study("test", widths=[4], jobs=0),
      ValueError, r"jobs must be an int >= 1"),
    C("stored_width_study scale", lambda: nu.reproduce.stored_width_study("huge"),
      ValueError, r"scale must be one of the stored width studies"),
]
if not torch.cuda.is_available():
    GRID.append(C("reproduce_grid cuda without a GPU",
                  lambda: nu.reproduce_grid("test", device="cuda"), ValueError, r"device.*CUDA"))

# ------------------------------------------------------------------ figures and widgets
FIGURES = [
    C("show_images empty", lambda: plotting.show_images([]), ValueError, r"images"),
    C("show_images titles", lambda: plotting.show_images([img()], ["a", "b"]), ValueError,
      r"titles"),
    C("show_images 4-D", lambda: plotting.show_images([img()[None]]), ValueError, r"images"),
    C("to_numpy_image 2 channels", lambda: plotting.to_numpy_image(torch.zeros(2, 4, 4)),
      ValueError, r"img"),
    C("plot_filter_weights shape", lambda: plotting.plot_filter_weights(torch.ones(3), (0, 0)),
      ValueError, r"weights"),
    C("plot_filter_weights pixel", lambda: plotting.plot_filter_weights(torch.ones(4, 4), (9, 9)),
      ValueError, r"pixel"),
    C("plot_psnr_curves lengths", lambda: plotting.plot_psnr_curves([1, 2], {"a": [1.0]}),
      ValueError, r"curves"),
    C("fit_loglog_slope negative", lambda: plotting.fit_loglog_slope([1, 2], [1, -1]),
      ValueError, r"\by\b"),
    C("fit_loglog_slope one point", lambda: plotting.fit_loglog_slope([1], [1]), ValueError,
      r"\bx\b"),
    C("plot_loglog lengths", lambda: plotting.plot_loglog([1, 2], {"a": [1.0]}), ValueError,
      r"series"),
    C("explore render", lambda: widgets.explore(3, [1, 2]), TypeError, r"render"),
    C("explore values empty", lambda: widgets.explore(print, []), ValueError, r"values"),
    C("explore start", lambda: widgets.explore(print, [1, 2], start=5), ValueError, r"start"),
]

# ------------------------------------------------------------------ classroom


def _empty_folder(tmp):
    d = tmp / "empty"
    d.mkdir()
    return d


CLASSROOM = [
    C("make_student_copy str", lambda: classroom.make_student_copy("ch1.ipynb"), TypeError,
      r"nb"),
]

API_CASES = IMAGES + NETWORKS + KERNELS + FILTERS + DENOISE + TRAINING + GRID + FIGURES + CLASSROOM

FORBIDDEN = re.compile(r"pip install|Traceback|conda install", re.IGNORECASE)


@pytest.fixture(autouse=True)
def _quiet_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_bad_input_gets_a_clear_error(case):
    with pytest.raises(case.error) as info:
        case.call()
    message = str(info.value)
    assert re.search(case.match, message, re.IGNORECASE | re.DOTALL), message
    assert not FORBIDDEN.search(message), message
    assert len(message) < 600, f"a message should be a sentence or two, got {len(message)} chars"


# ------------------------------------------------------------------ sensible answers
def test_black_image_is_returned_black_when_sigma_is_given():
    """An all-zero image: its kernel is zero, nothing is fitted; documented, not an error."""
    x_hat, info = nu.ntk_denoise(img(value=0), 0.1, recipe="poster", return_info=True)
    assert torch.equal(x_hat, torch.zeros_like(x_hat))
    assert info.step == 0
    assert torch.equal(nu.ntk_denoise(img(value=0), 0.1), torch.zeros_like(x_hat))


def test_constant_image_gets_a_finite_answer_near_itself():
    """A flat image (all patches parallel) is legal input: no error, no NaN, nothing wild.

    It is not returned exactly: SURE expects noise of level sigma and stops early, and the
    zero padding makes the border patches differ from the rest.
    """
    y = img(value=0.5)
    x_hat = nu.ntk_denoise(y, 0.1)
    assert bool(torch.isfinite(x_hat).all())
    assert float((x_hat - y).abs().mean()) < 0.1


def test_noisy_image_may_leave_the_unit_range():
    """Noise takes ``y`` outside [0, 1]; that is not the 0..255 scale and is accepted."""
    x = nu.load_image("camera", size=16, dtype=F64)
    y = nu.add_noise(x, 0.3, generator=torch.Generator().manual_seed(0))
    assert float(y.max()) > 1 and float(y.min()) < 0
    assert nu.psnr(y, x) < nu.psnr(nu.ntk_denoise(y, 0.3), x)


def test_empirical_ntk_computes_in_the_dtype_of_u():
    """A float32 network and a float64 input: documented, the weights are cast to u's dtype."""
    theta = nu.ntk_empirical(cnn().float(), img(), rows=torch.tensor([0]))
    assert theta.dtype == F64


def test_sigma_zero_estimate_of_a_clean_image():
    assert nu.estimate_sigma(img(value=0.0)) == 0.0


# ------------------------------------------------------------------ the command lines
def _png(tmp, name="in.png", x=None):
    path = tmp / name
    cli.write_png(img(h=16, w=16) if x is None else x, path)
    return path


CLI_CASES = [
    ("input missing", lambda t: ["denoise", str(t / "none.png"), str(t / "o.png")], r"input.*not found"),
    ("input not an image", lambda t: ["denoise", str(_text(t)), str(t / "o.png")],
     r"cannot read.*image"),
    ("input a folder", lambda t: ["denoise", str(t), str(t / "o.png")], r"input"),
    ("output folder missing", lambda t: ["denoise", str(_png(t)), str(t / "no" / "o.png")],
     r"output folder"),
    ("output is a folder", lambda t: ["denoise", str(_png(t)), str(t)], r"output.*folder"),
    ("output extension", lambda t: ["denoise", str(_png(t)), str(t / "o.xyz")], r"output.*\.png"),
    ("output unwritable", lambda t: ["denoise", str(_png(t)), "/proc/o.png"], r"output|write"),
    ("sigma on [0, 1]", lambda t: _den(t, "--sigma", "0.1"), r"--sigma.*0-255"),
    ("sigma negative", lambda t: _den(t, "--sigma", "-5"), r"--sigma"),
    ("sigma nan", lambda t: _den(t, "--sigma", "nan"), r"--sigma"),
    ("sigma word", lambda t: _den(t, "--sigma", "high"), r"--sigma"),
    ("patch even", lambda t: _den(t, "--patch-size", "4"), r"--patch-size"),
    ("landmarks 0", lambda t: _den(t, "--landmarks", "0"), r"--landmarks"),
    ("seed negative", lambda t: _den(t, "--seed", "-1"), r"--seed"),
    ("clean shape", lambda t: _den(t, "--clean",
                                  str(_png(t, "c.png", img(h=8, w=8)))), r"--clean"),
    ("black without sigma", lambda t: ["denoise", str(_png(t, x=img(value=0, h=16, w=16))),
                                       str(t / "o.png")], r"--sigma"),
    ("unknown option", lambda t: _den(t, "--sgima", "25"), r"--sgima"),
    ("no command", lambda t: [], r"command"),
    ("unknown command", lambda t: ["denoize"], r"denoize"),
    ("method unknown", lambda t: _den(t, "--method", "fast"), r"--method"),
    ("reproduce scale", lambda t: ["reproduce", "--scale", "huge"], r"--scale"),
    ("reproduce device gpu", lambda t: ["reproduce", "--scale", "test", "--device", "gpu",
                                        "--out", str(t / "g")], r"--device"),
    ("reproduce out is a file", lambda t: ["reproduce", "--scale", "test", "--out", str(_png(t))],
     r"--out"),
    ("reproduce image", lambda t: ["reproduce", "--image", "lenna"], r"--image"),
    ("reproduce seed", lambda t: ["reproduce", "--seed", "-2"], r"--seed"),
]


def _den(tmp, *options):
    """``denoise in.png o.png OPTIONS``: a good image and output, one bad option."""
    return ["denoise", str(_png(tmp)), str(tmp / "o.png"), *options]


def _text(tmp):
    path = tmp / "notes.png"
    path.write_text("not an image")
    return path


@pytest.mark.parametrize("args", [c[1] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_error_is_one_line_and_status_2(args, tmp_path, capsys):
    case = next(c for c in CLI_CASES if c[1] is args)
    rc = cli.main(args(tmp_path))
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert re.search(case[2], lines[0], re.IGNORECASE), lines[0]
    assert not FORBIDDEN.search(err), err
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.xyz").exists()


def test_cli_black_image_with_sigma_writes_it_back(tmp_path, capsys):
    src = _png(tmp_path, x=img(value=0, h=16, w=16))
    assert cli.main(["denoise", str(src), str(tmp_path / "o.png"), "--sigma", "25"]) == 0
    assert float(cli.read_png(tmp_path / "o.png").max()) == 0.0


@pytest.mark.parametrize("make", [_empty_folder, lambda t: t / "missing"],
                         ids=["empty folder", "missing folder"])
def test_classroom_folder_without_chapters(make, tmp_path, capsys):
    rc = classroom.main(["--book", str(make(tmp_path)), "--out", str(tmp_path / "s")])
    _, err = capsys.readouterr()
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert re.search(r"no chapter|not found|does not exist", err), err


def test_the_table_is_large_enough():
    """The issue asks for at least 100 cases across the API and the command lines."""
    assert len(API_CASES) + len(CLI_CASES) >= 100


def test_ntkutils_error_is_exported_and_a_value_error():
    assert issubclass(nu.NTKUtilsError, ValueError)
    with pytest.raises(nu.NTKUtilsError):
        nu.add_noise(img(), 25)

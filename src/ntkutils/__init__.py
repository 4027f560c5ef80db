"""ntkutils: the helper package of the course *Why a CNN trained on one noisy image denoises it*.

The course follows Tachella, Tang & Davies, "The Neural Tangent Link Between CNN Denoisers and
Non-Local Filters" (CVPR 2021).  One module per concept:

- :mod:`ntkutils.images`   load the shipped test images, add noise, PSNR, to_hwc / to_chw
- :mod:`ntkutils.networks` the single-hidden-layer CNN, a vanilla CNN, an encoder-decoder
- :mod:`ntkutils.kernels`  the neural tangent kernel in closed form (the ReLU duals)
- :mod:`ntkutils.empirical` the empirical NTK of a network, and its largest eigenvalue
- :mod:`ntkutils.spectral` the gradient-descent (twicing) filter of a kernel's eigenpairs
- :mod:`ntkutils.stationary` a kernel's mean value at each pixel offset, its frequency response
- :mod:`ntkutils.nystrom`  approximate eigenpairs from a few kernel columns
- :mod:`ntkutils.stopping` when to stop: oracle, discrepancy principle, SURE
- :mod:`ntkutils.baselines` non-local means, to compare with
- :mod:`ntkutils.pipeline` the kernel filter in one call: NTK, eigenpairs, GD, stopping
- :mod:`ntkutils.windows`  the NTK filter of centred patches in local windows
- :mod:`ntkutils.denoise`  the closed-form NTK denoiser (the paper's filter and the windowed one)
- :mod:`ntkutils.training` fitting a network to one image with GD or Adam
- :mod:`ntkutils.linearised` gradient descent to convergence by the linearised dynamics
- :mod:`ntkutils.recorders` what a fit records: loss and PSNR, weights, snapshots, kernels
- :mod:`ntkutils.reproduce` the poster's grid: settings, run, report
- :mod:`ntkutils.course`   numbers glued into the chapters' text, the run-time clock
- :mod:`ntkutils.plotting`, :mod:`ntkutils.widgets`, :mod:`ntkutils.exercises` (one module
  a chapter), :mod:`ntkutils.classroom`, :mod:`ntkutils.cli`

Nothing runs at import.
"""
# The public API, re-exported explicitly so a reader sees where each name lives.
from . import course, exercises, plotting, widgets
from ._checks import NTKUtilsError, TrainingDiverged
from .baselines import nlm_weights
from .denoise import NTKDenoiseInfo, WindowedDenoiseInfo, ntk_denoise
from .images import add_noise, estimate_sigma, list_images, load_image, psnr, to_chw, to_hwc
from .kernels import arccos_kernel, extract_patches, ntk_closed_form, ntk_empirical
from .linearised import LinearisedGD, linearised_gd
from .networks import (
    build_autoencoder,
    build_single_layer_cnn,
    build_vanilla_cnn,
    count_parameters,
)
from .nystrom import landmark_pixels, nystrom_eigenpairs
from .pipeline import KernelFilter, ntk_filter
from .reproduce import (
    POSTER_PSNR,
    GridResult,
    format_readings,
    format_table,
    grid_settings,
    load_runs,
    plot_grid,
    poster_readings,
    reproduce_grid,
    save_runs,
    stored_grid,
)
from .spectral import (
    bias_variance,
    degrees_of_freedom,
    eigh_psd,
    gd_filter,
    gd_filter_iterative,
)
from .stationary import radial_response, stationary_profile
from .stopping import (
    degrees_of_freedom_mc,
    discrepancy_step,
    log_step_grid,
    oracle_step,
    sure,
    sure_step,
)
from .training import (
    FitResult,
    WeightChange,
    fit,
    make_noise_input,
    ntk_largest_eigenvalue,
)

__version__ = "0.1.0"

__all__ = [
    # the error every bad argument raises (a ValueError), also the command lines'
    "NTKUtilsError",
    # gradient descent whose learning rate is too large (an NTKUtilsError)
    "TrainingDiverged",
    # images and noise
    "list_images", "load_image", "add_noise", "psnr", "estimate_sigma", "to_hwc", "to_chw",
    # networks
    "build_single_layer_cnn", "build_vanilla_cnn", "build_autoencoder",
    "count_parameters",
    # the neural tangent kernel
    "extract_patches", "arccos_kernel", "ntk_closed_form", "ntk_empirical",
    # filters
    "eigh_psd", "gd_filter", "gd_filter_iterative", "landmark_pixels",
    "nystrom_eigenpairs", "nlm_weights", "degrees_of_freedom",
    "degrees_of_freedom_mc", "sure", "sure_step", "discrepancy_step", "oracle_step",
    "bias_variance", "log_step_grid",
    # the stationary part of a kernel: profile over pixel offsets, frequency response
    "stationary_profile", "radial_response",
    # the kernel-filter pipeline and the closed-form denoiser
    "ntk_filter", "KernelFilter", "ntk_denoise", "NTKDenoiseInfo", "WindowedDenoiseInfo",
    # training
    "fit", "FitResult", "WeightChange", "make_noise_input", "ntk_largest_eigenvalue",
    "linearised_gd", "LinearisedGD",
    # the poster's grid (chapter 7, python -m ntkutils reproduce)
    "reproduce_grid", "GridResult", "grid_settings", "format_table", "plot_grid",
    "POSTER_PSNR", "poster_readings", "format_readings", "save_runs", "load_runs",
    "stored_grid",
    # submodules
    "course", "plotting", "widgets", "exercises",
]

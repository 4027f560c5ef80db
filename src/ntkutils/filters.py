"""The filter functions under their former address, re-exported for the chapters.

This module used to hold the whole spectral toolbox.  Each function now lives with its
concept, and is re-exported here unchanged so that ``from ntkutils.filters import ...``
in the chapters keeps working until they import from the new homes:

- :mod:`ntkutils.spectral`: :func:`eigh_psd`, :func:`gd_filter`, :func:`gd_filter_iterative`,
  :func:`degrees_of_freedom`, :func:`bias_variance`;
- :mod:`ntkutils.nystrom`: :func:`landmark_pixels`, :func:`nystrom_eigenpairs`;
- :mod:`ntkutils.stopping`: :func:`oracle_step`, :func:`discrepancy_step`, :func:`sure`,
  :func:`sure_step`, :func:`degrees_of_freedom_mc`;
- :mod:`ntkutils.baselines`: :func:`nlm_weights`.

``_check_steps`` is re-exported too: :mod:`ntkutils.exercises` imports it from here.
"""
from __future__ import annotations

from .baselines import nlm_weights
from .nystrom import landmark_pixels, nystrom_eigenpairs
from .spectral import (
    _check_steps,  # noqa: F401  (for ntkutils.exercises)
    bias_variance,
    degrees_of_freedom,
    eigh_psd,
    gd_filter,
    gd_filter_iterative,
)
from .stopping import (
    degrees_of_freedom_mc,
    discrepancy_step,
    oracle_step,
    sure,
    sure_step,
)

__all__ = [
    "eigh_psd",
    "gd_filter",
    "gd_filter_iterative",
    "landmark_pixels",
    "nystrom_eigenpairs",
    "nlm_weights",
    "degrees_of_freedom",
    "degrees_of_freedom_mc",
    "sure",
    "sure_step",
    "discrepancy_step",
    "oracle_step",
    "bias_variance",
]

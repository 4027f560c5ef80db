"""Each filter function lives in the module of its concept and is exported from the package.

(``ntkutils.filters``, which once held all of them and then re-exported them, is gone:
the chapters import from the new homes.)
"""
import importlib

import pytest

import ntkutils
from ntkutils import baselines, nystrom, spectral, stopping

HOMES = {
    spectral: ["eigh_psd", "gd_filter", "gd_filter_iterative", "degrees_of_freedom",
               "bias_variance"],
    nystrom: ["landmark_pixels", "nystrom_eigenpairs"],
    stopping: ["oracle_step", "discrepancy_step", "sure", "sure_step",
               "degrees_of_freedom_mc"],
    baselines: ["nlm_weights"],
}


def test_every_filter_function_is_exported_from_its_home():
    for module, names in HOMES.items():
        assert set(names) <= set(module.__all__), module.__name__
        for name in names:
            assert getattr(ntkutils, name) is getattr(module, name), name
            assert name in ntkutils.__all__, name


def test_the_old_filters_module_is_gone():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("ntkutils.filters")

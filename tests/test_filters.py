"""ntkutils.filters is a re-export: the chapters' imports resolve to the new homes."""
import ntkutils
from ntkutils import baselines, filters, nystrom, spectral, stopping

HOMES = {
    spectral: ["eigh_psd", "gd_filter", "gd_filter_iterative", "degrees_of_freedom",
               "bias_variance"],
    nystrom: ["landmark_pixels", "nystrom_eigenpairs"],
    stopping: ["oracle_step", "discrepancy_step", "sure", "sure_step",
               "degrees_of_freedom_mc"],
    baselines: ["nlm_weights"],
}


def test_every_former_name_is_the_function_of_its_new_home():
    moved = [name for names in HOMES.values() for name in names]
    assert sorted(filters.__all__) == sorted(moved)
    for module, names in HOMES.items():
        for name in names:
            assert getattr(filters, name) is getattr(module, name), name
            assert getattr(ntkutils, name) is getattr(module, name), name
    # exercises.py imports the steps check from here
    assert filters._check_steps is spectral._check_steps

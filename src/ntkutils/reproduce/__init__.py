"""The poster's grid of denoising results, reproduced by one call.

Tachella, Tang & Davies report, for one noisy image, the PSNR of five denoisers (columns)
with two network inputs (rows): the noisy image itself, or iid noise as in the deep image
prior.  :func:`reproduce_grid` computes the same ten cells with the course's networks,
kernels and training loop; :func:`format_table` prints them beside the poster's numbers
(:data:`POSTER_PSNR`) and :func:`plot_grid` shows the ten estimates in the same grid.
``python -m ntkutils reproduce`` runs the same code from the command line.

Three modules, in the order the data flows: :mod:`~ntkutils.reproduce.settings` (the rows,
the columns, the poster's numbers and the settings), :mod:`~ntkutils.reproduce.run` (the
ten cells) and :mod:`~ntkutils.reproduce.report` (the table, the settings list, the
figure); :mod:`~ntkutils.reproduce.width` reruns reading R1's two cells at several widths.  Every public name is re-exported here.

Every setting (:class:`GridSettings`) is the course's own choice (the poster states none
of them): the image
("house" is not shipped), its size, the noise level, the widths, depths, steps and learning
rates, and the stopping rule.  The main table stops every cell at its best step by PSNR
against the clean image, an ORACLE that a real denoiser does not have; the discrepancy
principle, which needs only the noise level, is reported beside it.
"""
from .readings import READINGS, Reading, poster_readings
from .report import (format_readings, format_settings, format_table, plot_curves,
                     plot_grid)
from .run import GridCell, GridResult, grid_cell, reproduce_grid
from .store import (StoredGrid, load_runs, merge_runs, save_runs, stored_grid,
                    stored_grids)
from .settings import INPUTS, METHODS, POSTER_PSNR, GridSettings, grid_settings
from .width import (WidthStudy, load_width_study, save_width_study, stored_width_study,
                    width_study)

__all__ = [
    "INPUTS",
    "METHODS",
    "POSTER_PSNR",
    "READINGS",
    "Reading",
    "StoredGrid",
    "WidthStudy",
    "GridCell",
    "GridResult",
    "GridSettings",
    "format_readings",
    "format_settings",
    "format_table",
    "grid_cell",
    "grid_settings",
    "load_runs",
    "merge_runs",
    "load_width_study",
    "poster_readings",
    "plot_curves",
    "plot_grid",
    "reproduce_grid",
    "save_runs",
    "save_width_study",
    "stored_grid",
    "stored_grids",
    "stored_width_study",
    "width_study",
]

"""The poster's readings of its grid, checked on a grid run.

The poster reads its table as six comparisons between cells (R1-R6 below, the course's
wording, with tolerances of our choosing: the poster states none).  :func:`poster_readings`
checks each on one :class:`~ntkutils.reproduce.run.GridResult`, and on the poster's own
numbers when given :data:`~ntkutils.reproduce.settings.POSTER_PSNR`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .run import GridResult
from .settings import INPUTS, METHODS, POSTER_PSNR

__all__ = ["Reading", "READINGS", "poster_readings"]

IMG, NOISE = INPUTS
GD_AE, GD_VAN, NTK, ADAM_AE, ADAM_VAN = METHODS

#: The six readings: code and statement.
READINGS: dict[str, str] = {
    "R1": "NTK + Nyström and GD + vanilla CNN within 1 dB, image input",
    "R2": "GD + autoencoder, GD + vanilla CNN and the kernel each >= 3 dB worse from iid noise",
    "R3": "Adam + autoencoder: within 1.5 dB across inputs, best of the iid-noise row, "
          "within 0.5 dB of the best of the image row",
    "R4": "GD + autoencoder below GD + vanilla CNN, image input",
    "R5": "Adam + vanilla CNN >= 3 dB worse from iid noise",
    "R6": "every image-input cell >= 3 dB above the noisy image",
}


@dataclass(frozen=True)
class Reading:
    """One reading checked on one table.

    Attributes
    ----------
    code, statement : str
        ``"R1"`` ... ``"R6"`` and what it says (:data:`READINGS`).
    holds : bool
        Whether the table shows it.
    margin : float
        By how many dB it holds (negative: by how many it fails); the smallest margin of
        its comparisons.
    """

    code: str
    statement: str
    holds: bool
    margin: float


def poster_readings(result: GridResult | dict, *, rule: str = "oracle",
                    noisy_psnr: float | None = None) -> list[Reading]:
    """Check the poster's six readings (R1-R6) on a grid.

    Parameters
    ----------
    result : GridResult or dict
        A grid run (:func:`~ntkutils.reproduce.reproduce_grid`), or a table
        ``psnr[input][method]`` in dB such as :data:`POSTER_PSNR`.
    rule : {"oracle", "discrepancy"}
        Which of a run's tables (ignored for a dict).
    noisy_psnr : float, optional
        The noisy image's PSNR (a run's own by default); R6 is skipped (``margin``
        nan, ``holds`` False) for a table without one, as for the poster's.

    Returns
    -------
    list of Reading
        R1 to R6 in order.

    Examples
    --------
    >>> [r.code for r in poster_readings(POSTER_PSNR) if r.holds]
    ['R1', 'R2', 'R3', 'R4', 'R5']
    """
    if isinstance(result, GridResult):
        table = result.table(rule)
        noisy = result.noisy_psnr if noisy_psnr is None else noisy_psnr
    elif isinstance(result, dict) and set(result) == set(INPUTS) \
            and all(set(row) == set(METHODS) for row in result.values()):
        table, noisy = result, noisy_psnr
    else:
        raise TypeError("result must be a GridResult or a table psnr[input][method] with "
                        f"inputs {INPUTS} and methods {METHODS}, got "
                        f"{type(result).__name__}")
    p, q = table[IMG], table[NOISE]
    margins = {
        "R1": 1.0 - abs(p[NTK] - p[GD_VAN]),
        "R2": min(p[m] - q[m] - 3.0 for m in (GD_AE, GD_VAN, NTK)),
        "R3": min(1.5 - abs(p[ADAM_AE] - q[ADAM_AE]),
                  q[ADAM_AE] - max(q[m] for m in METHODS if m != ADAM_AE),
                  p[ADAM_AE] - max(p.values()) + 0.5),
        "R4": p[GD_VAN] - p[GD_AE],
        "R5": p[ADAM_VAN] - q[ADAM_VAN] - 3.0,
        "R6": (float("nan") if noisy is None
               else min(p.values()) - noisy - 3.0),
    }
    out = []
    for code, statement in READINGS.items():
        m = float(margins[code])
        holds = m > 0 if code in ("R3", "R4") else m >= 0
        out.append(Reading(code, statement, bool(holds and m == m), m))
    return out

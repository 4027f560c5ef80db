"""Progress bars that the test run can switch off (internal).

``tqdm.auto`` gives a notebook widget inside Jupyter, and that widget ignores the
``TQDM_DISABLE`` environment variable that plain tqdm honours; the stored outputs of the
book must hold no bars, so every long loop in the package goes through :func:`progress_bar`.
"""
from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm


def bars_disabled(progress: bool = True) -> bool:
    """True when ``progress`` is False or ``TQDM_DISABLE`` is set to a true value."""
    env = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return (not progress) or env not in ("", "0", "false", "no")


def progress_bar(iterable: Any = None, *, progress: bool = True, **kwargs: Any) -> tqdm:
    """A ``tqdm.auto`` bar, disabled by ``progress=False`` or ``TQDM_DISABLE=1``."""
    return tqdm(iterable, disable=bars_disabled(progress), **kwargs)

"""Work-arounds for PyTorch itself, in one place.

``torch.func.jvp`` imports ``torch._decomp.decompositions_for_jvp`` on its first call, and
that module calls the deprecated ``torch.jit.script`` at import time (a
``DeprecationWarning`` in torch 2.13, a ``FutureWarning`` from 2.14 on).  The call is
PyTorch's, not ours, and no argument avoids it, so :func:`prepare_jvp` imports that module
once with those two categories silenced; every later ``jvp`` finds it imported and warns
nothing.  Nothing else is filtered, anywhere in the package.
"""
from __future__ import annotations

import importlib
import warnings

_JVP_READY = False


def prepare_jvp() -> None:
    """Import PyTorch's jvp decompositions once, silencing its own deprecated call."""
    global _JVP_READY
    if _JVP_READY:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            importlib.import_module("torch._decomp.decompositions_for_jvp")
        except ImportError:  # a PyTorch without that module has nothing to silence
            pass
    _JVP_READY = True

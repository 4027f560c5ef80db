"""``python -m ntkutils``: see :mod:`ntkutils.cli`."""
import sys

from ntkutils.cli import main

if __name__ == "__main__":
    sys.exit(main())

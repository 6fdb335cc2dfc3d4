"""``python -m evads_generate``: see :mod:`evads_generate.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

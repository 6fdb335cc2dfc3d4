"""``python -m evads_tasks.qa_generator``: see :mod:`evads_tasks.qa_generator.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

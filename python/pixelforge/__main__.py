"""``python -m pixelforge``: the same as the ``pixelforge`` command."""
import sys

from .cli import main

sys.exit(main())

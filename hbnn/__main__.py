"""``python -m hbnn``: the same as the ``hbnn`` command."""
import sys

from hbnn.cli import main

sys.exit(main())

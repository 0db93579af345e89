"""``python -m bids_fixedfx``: the same as the ``bids-fixedfx`` command."""

import sys

from .cli import main

sys.exit(main())

"""``python -m bids_fixedfx``: the same as the ``bids-fixedfx`` command."""

from .command import run

run()

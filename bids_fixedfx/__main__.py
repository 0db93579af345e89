"""``python -m bids_fixedfx``: the same as the ``bids-fixedfx`` command."""

from .cli import run

run()

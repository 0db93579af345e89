"""``python -m bids_fixedfx.example_data``: the ``bids-fixedfx-example`` command."""

from .cli import main

raise SystemExit(main())

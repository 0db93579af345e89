"""bids-fixedfx: fixed-effects fMRI statistics for BIDS datasets, as a BIDS App."""

__version__ = "0.1.0"

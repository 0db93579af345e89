"""The app's errors, each carrying the exit code of SPEC §1."""

EX_OK = 0
EX_FAILURE = 1
EX_INVALID_BIDS = 16
EX_USAGE = 64
EX_NO_INPUT = 66


class FixedFxError(Exception):
    """An error reported to the user as one sentence, with an exit code."""

    exit_code = EX_FAILURE


class UsageError(FixedFxError):
    """An option or argument is wrong (exit 64)."""

    exit_code = EX_USAGE


class NoDataError(FixedFxError):
    """The selection matched no data, or a required file is missing (exit 66)."""

    exit_code = EX_NO_INPUT


class InvalidBIDSError(FixedFxError):
    """The input dataset failed BIDS validation (exit 16)."""

    exit_code = EX_INVALID_BIDS

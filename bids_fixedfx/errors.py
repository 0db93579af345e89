"""The app's errors: one table from each kind of problem to its class and exit code (SPEC §1).

========================  ===================  ====  =============================================
kind of problem           class                code  examples
========================  ===================  ====  =============================================
processing failed         ``FixedFxError``     1     an image that turns out corrupt while fitting
input fails validation    ``InvalidBIDSError`` 16    the BIDS validator reports an error
bad usage                 ``UsageError``       64    a bad option value, a contrast that names no
                                                     column, an option of the other level, an
                                                     OUTPUT_DIR inside an input dataset
no data / missing file    ``NoDataError``      66    no run matches, an events file is missing
unusable input file       ``InputFileError``   66    an image, table or sidecar that cannot be read
                                                     or holds values BIDS does not allow
========================  ===================  ====  =============================================

Every message is one sentence that names the file or option at fault.
"""

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


class InputFileError(NoDataError):
    """An input file cannot be read or holds values it must not (exit 66): a truncated or
    corrupt image, an empty mask, a malformed table or sidecar."""

    exit_code = EX_NO_INPUT


class InvalidBIDSError(FixedFxError):
    """The input dataset failed BIDS validation (exit 16)."""

    exit_code = EX_INVALID_BIDS


def few(names, most: int = 10, longest: int = 40) -> str:
    """Names for a message, joined by commas: at most ``most`` of them (then how many more),
    each cut to ``longest`` characters (a label of 100,000 characters, from a web form, made
    a message of as many)."""
    names = [name if len(name) <= longest else name[:longest - 1] + "…" for name in map(str, names)]
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def check_regular_file(path, named: str, error=InputFileError) -> None:
    """Refuse a path that exists but is no regular file (a device such as ``/dev/zero``, a
    named pipe, a folder), which the readers of input files would read for ever or hang on;
    a missing file is left to the reader's own message. A link to a regular file is one.

    Parameters
    ----------
    path : str or pathlib.Path
    named : str
        The file as the message names it (``"The events file /data/x.tsv"``).
    error : type
        The :class:`FixedFxError` raised.
    """
    from pathlib import Path

    path = Path(path)
    try:
        if _unfetched(path):
            raise error(f"{named} is a DataLad (git-annex) file whose content was not fetched; run `datalad get "
                        f"{path}` (or `git annex get`) in its dataset first.")
        if path.exists() and not path.is_file():
            raise error(f"{named} is not a regular file (a folder, a device or a pipe); give a file.")
    except PermissionError:  # a folder above it this user may not enter: an input unusable (66), as one missing
        denied = error if issubclass(error, NoDataError) else InputFileError
        raise denied(f"{named} cannot be read: permission denied (a folder above it is closed to this job's "
                    "user); give that user access, or give another path.") from None


def _unfetched(path) -> bool:
    """Whether a path is a git-annex file without its content: a link into ``.git/annex/objects``
    that leads nowhere, or the small pointer file (``/annex/objects/...``) an unlocked one is."""
    import os

    try:
        if path.is_symlink():
            return not path.exists() and "annex/objects/" in os.readlink(path).replace(os.sep, "/")
        if path.is_file() and path.stat().st_size < 1024:
            with open(path, "rb") as stream:
                return stream.read(1024).startswith(b"/annex/objects/")
    except OSError:
        return False
    return False


#: Each kind of problem, its class and exit code, as documented above and in the README.
EXIT_CODES = {
    cls.__name__: cls.exit_code
    for cls in (FixedFxError, InvalidBIDSError, UsageError, NoDataError, InputFileError)
}

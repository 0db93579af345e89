"""Reading a JSON object from a file that a user gave (a sidecar, a filter file, a map's
sidecar at the group level): every way it can fail is one sentence naming the file, raised
as the caller's kind of error (an input file's, 66, or an option's, 64)."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputFileError, NoDataError, check_regular_file
from .expression import rounds_to_zero

class _EveryKey:
    """``once`` for a file in which no key may be given twice, at any depth."""

    def __contains__(self, key):
        return True

    def __bool__(self):
        return True


#: Every key, at every depth (:func:`read_object`'s ``once``).
EVERY_KEY = _EveryKey()

_TYPES = {list: "an array", str: "a string", bool: "true or false", int: "a number", float: "a number",
          type(None): "null"}


#: The largest JSON file read: sidecars and model files are kilobytes (a model of a thousand
#: contrasts, a few megabytes).
MAX_BYTES = 64 << 20


class RoundedNumber(Exception):
    """A JSON number that is not 0 but reads as 0.0 (``1e-400``): :func:`exact_float` raises it."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text

    def said(self, named) -> str:
        return (f"{named} holds the number {self.text[:20]}, too small to be told from 0 (below 1e-308), which "
                "would be read as 0; write 0 if 0 is meant.")


def exact_float(text) -> float:
    """``json.loads``' hook for numbers with a fraction or an exponent: refuses one that reads as
    0.0 without being 0 (a weight of ``1e-400`` was taken as 0 without a word)."""
    if rounds_to_zero(text):
        raise RoundedNumber(text)
    return float(text)


def read_object(path, what: str = "", error=InputFileError, missing: str = "", once=()) -> dict:
    """Read a JSON object (a byte-order mark allowed), naming the file in any error.

    Parameters
    ----------
    path : str or pathlib.Path
    what : str
        How the message names the file before its path (``"The sidecar"``,
        ``"--bids-filter-file"``); empty: the path alone.
    error : type
        The :class:`~bids_fixedfx.errors.FixedFxError` raised.
    missing : str
        What to do about a file that does not exist, added to its message.
    once : collection of str
        Keys that may not be given twice with two values in an object of the file (JSON
        keeps the last one without a word); :data:`EVERY_KEY`: none may.

    Returns
    -------
    data : dict

    Raises
    ------
    FixedFxError
        Of type ``error`` (:class:`~bids_fixedfx.errors.InputFileError` for a missing file
        when ``error`` is not a kind of ``NoDataError``): the file is missing or unreadable, not UTF-8, not JSON, nested too
        deeply (or holds a number of thousands of digits), or holds no JSON object.
    """
    named = f"{what} {path}" if what else str(path)
    check_regular_file(path, named, error)
    twice = []

    def pairs(items):
        data = {}
        for key, value in items:
            if key in once and key in data and data[key] != value:
                twice.append((key, data[key], value))
            data[key] = value
        return data

    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:  # read whole, a file of gigabytes took several times its size in memory
            raise error(f"{named} holds {size / 2 ** 20:,.0f} MB, more than any JSON file the app reads "
                        f"({MAX_BYTES // 2 ** 20} MB at most); check the file.")
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"), object_pairs_hook=pairs if once else None,
                          parse_float=exact_float)
    except FileNotFoundError:  # a file missing is the input's fault (66), whatever names it
        missed = error if issubclass(error, NoDataError) else InputFileError
        raise missed(f"{named} does not exist{'; ' + missing if missing else ''}.") from None
    except PermissionError:  # closed to this user: an input unusable (66), whatever names it
        denied = error if issubclass(error, NoDataError) else InputFileError
        raise denied(f"{named} cannot be read: permission denied; give this job's user access, or give another "
                     "path.") from None
    except OSError as failure:
        raise error(f"{named} cannot be read: {failure.strerror}.") from None
    except RoundedNumber as rounded:
        raise error(rounded.said(named)) from None
    except UnicodeDecodeError:
        raise error(f"{named} is not UTF-8 text, as JSON files are.") from None
    except json.JSONDecodeError as failure:
        raise error(f"{named} is not valid JSON: {failure.msg} (line {failure.lineno}).") from None
    except (RecursionError, ValueError):  # nested too deeply; an integer of thousands of digits
        raise error(f"{named} is not valid JSON: it is nested too deeply or holds too long a number.") from None
    if not isinstance(data, dict):
        raise error(f"{named} must hold a JSON object, not {_TYPES.get(type(data), 'a value')}.")
    if twice:
        key, first, last = twice[0]
        raise error(f"{named} gives {key} twice, {json.dumps(first)[:40]} and {json.dumps(last)[:40]}; "
                    "keep the right one (JSON readers keep the last without a word).")
    return data

"""The references of the methods text: ``references.bib`` read, cited, and formatted.

Software cited by its archive (``@software`` entries, a Zenodo concept DOI) has no single
year; such an entry is cited with the version that was used (``Nilearn contributors,
version 0.11.1``), never with "n.d.".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CITATION = re.compile(r"\[([^\[\]]*@[^\[\]]*)\]")
_KEY = re.compile(r"@([A-Za-z0-9_:-]+)")


@dataclass(frozen=True)
class Reference:
    """One entry of the bibliography.

    Attributes
    ----------
    key : str
    fields : dict
        Lower-case field names (``author``, ``title``, ``year``, ``type`` ...).
    raw : str
        The entry's BibTeX.
    """

    key: str
    fields: dict
    raw: str

    def get(self, name, default=None):
        """A field's value (``default`` when the entry has none)."""
        return self.fields.get(name, default)

    def with_version(self, version: str | None) -> Reference:
        """This entry with the ``version`` of the software used (BibTeX included)."""
        if not version or self.get("year") or self.get("type") != "software":
            return self
        raw = self.raw.rstrip()
        raw = raw[:-1].rstrip().rstrip(",") + f",\n  version = {{{version}}},\n}}"
        return Reference(self.key, {**self.fields, "version": version}, raw)


def read_references() -> dict[str, Reference]:
    """The entries of ``bids_fixedfx/data/boilerplate/references.bib``, by key."""
    from importlib.resources import files

    text = (files("bids_fixedfx") / "data" / "boilerplate" / "references.bib").read_text(encoding="utf-8")
    return parse_bibtex(text)


def parse_bibtex(text: str) -> dict[str, Reference]:
    """Parse simple BibTeX (``field = {value}`` entries).

    Parameters
    ----------
    text : str

    Returns
    -------
    references : dict
        Key -> :class:`Reference`.
    """
    entries = {}
    for match in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        start, position, depth = match.start(), match.end(), 1
        fields = {"type": match.group(1).lower()}
        while depth and position < len(text):
            depth += {"{": 1, "}": -1}.get(text[position], 0)
            position += 1
        body = text[match.end():position - 1]
        for field in re.finditer(r"(\w+)\s*=\s*\{", body):
            begin = end = field.end()
            level = 1
            while level:
                level += {"{": 1, "}": -1}.get(body[end], 0)
                end += 1
            fields[field.group(1).lower()] = " ".join(body[begin:end - 1].split())
        entries[match.group(2)] = Reference(match.group(2), fields, text[start:position])
    return entries


def cited_keys(text: str) -> list[str]:
    """The keys cited in a text (pandoc's ``[@key]``), in order of first citation."""
    keys = []
    for group in _CITATION.findall(text):
        keys += [k for k in _KEY.findall(group) if k not in keys]
    return keys


def _plain(value: str) -> str:
    return value.replace("{", "").replace("}", "").replace("--", "–")


def _authors(entry) -> list[str]:
    return [a.strip() for a in _plain(entry.get("author", "")).split(" and ") if a.strip()]


def _when(entry) -> str:
    """The year, or for archived software without one the version used."""
    if entry.get("year"):
        return entry.get("year")
    if entry.get("version"):
        return f"version {entry.get('version')}"
    return "n.d."


def author_year(entry) -> str:
    """An in-text citation: ``Glover, 1999``, ``Friston and Holmes, 1998``, ``Abraham et al., 2014``."""
    authors = [a for a in _authors(entry) if a != "others"]
    last = [a.split(",")[0].strip() for a in authors]
    others = "others" in _authors(entry)
    if len(last) == 1 and not others:
        names = last[0]
    elif len(last) == 2 and not others:
        names = f"{last[0]} and {last[1]}"
    else:
        names = f"{last[0]} et al."
    return f"{names}, {_when(entry)}"


def reference(entry) -> str:
    """One entry of the reference list, as plain text."""
    names = []
    for author in _authors(entry):
        if author == "others":
            names.append("et al.")
            continue
        last, _, first = author.partition(",")
        initials = " ".join(f"{p[0]}." for p in re.split(r"[\s]+", first.strip()) if p)
        names.append(f"{last.strip()}, {initials}" if initials else last.strip())
    title = _plain(entry.get("title", ""))
    if entry.get("type") == "software":
        title += " [Computer software]"
    parts = [", ".join(names), f"({_when(entry)}).", title + "."]
    if entry.get("journal"):
        detail = _plain(entry.get("journal"))
        if entry.get("volume"):
            detail += f", {entry.get('volume')}" + (f"({entry.get('number')})" if entry.get("number") else "")
        if entry.get("pages"):
            detail += f", {_plain(entry.get('pages'))}"
        parts.append(detail + ".")
    elif entry.get("publisher"):
        parts.append(_plain(entry.get("publisher")) + ".")
    if entry.get("doi"):
        parts.append(f"https://doi.org/{entry.get('doi')}")
    return " ".join(p for p in parts if p.strip("."))

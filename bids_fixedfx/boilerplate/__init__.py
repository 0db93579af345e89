"""Methods boilerplate: a methods section that states what a run of the app did, with references.

:func:`write` renders ``OUTPUT_DIR/logs/CITATION.md``, ``CITATION.bib``, ``CITATION.html``
(and ``CITATION.tex`` when pandoc is installed) from the template
``bids_fixedfx/data/boilerplate/methods.md.jinja`` and the entries of ``references.bib``
beside it (the repository's ``boilerplate/`` folder links there).

- :mod:`.facts`: the records the text states, filled from the participant level's plan;
- :mod:`.readback`: the same facts read back from the sidecars at the group level;
- :mod:`.text`: the facts in words (the template);
- :mod:`.bibtex`, :mod:`.markdown`, :mod:`.pandoc`: references and output formats.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .. import outputs
from .bibtex import author_year, cited_keys, parse_bibtex, read_references, reference
from .facts import format_weights, methods_from_plan, software_versions
from .markdown import to_html, to_markdown
from .pandoc import to_latex
from .text import render

__all__ = [
    "author_year", "cited_keys", "format_weights", "parse_bibtex", "read_references", "reference",
    "compose", "group_methods", "render", "software_versions", "to_html", "to_latex", "to_markdown", "write",
]


def group_methods(settings, group_plan):
    """The group level's methods facts, its first level read back from the sidecars of every
    subject map it tests: each sidecar the text needs is read (and checked) here, so call it
    while planning, before anything is written.

    Parameters
    ----------
    settings : Settings
    group_plan : plan.GroupPlan

    Returns
    -------
    methods : facts.Methods

    Raises
    ------
    InputFileError
        A sidecar the facts come from cannot be read.
    """
    from .readback import methods_from_group

    return methods_from_group(settings, group_plan)


def compose(settings, plan=None, group_plan=None, notes=(), methods=None, undescribed=()) -> tuple[str, dict]:
    """The methods text and the references it cites: what :func:`write` writes.

    Parameters
    ----------
    settings : Settings
    plan : plan.Plan or None
        The participant level's plan.
    group_plan : plan.GroupPlan or None
        The group level's plan (its first level is read back from the sidecars).
    notes : sequence of Note
        The participant level's notes (runs left out are stated).
    methods : facts.Methods, optional
        The group level's facts, when read beforehand (:func:`group_methods`).
    undescribed : sequence of str
        The participant level: the subjects of OUTPUT_DIR that other jobs made (said, as not
        described).

    Returns
    -------
    keyed : str
        Markdown with pandoc citations (``[@key]``).
    cited : dict
        Key -> :class:`.bibtex.Reference`, in the order of citation.

    Raises
    ------
    InputFileError
        At the group level, a sidecar the text needs cannot be read.
    """
    if methods is None:
        methods = group_methods(settings, group_plan) if group_plan is not None else methods_from_plan(settings, plan, notes)
    keyed = render(replace(methods, undescribed=tuple(undescribed)) if undescribed else methods)
    references = read_references()
    keys = cited_keys(keyed)
    unknown = [k for k in keys if k not in references]
    if unknown:
        raise ValueError(f"The methods template cites {unknown[0]}, which references.bib does not have.")
    return keyed, {k: references[k].with_version(methods.versions.get(k)) for k in keys}


def write(settings, plan=None, group_plan=None, notes=(), composed=None, methods=None, undescribed=()) -> list[Path]:
    """Write ``logs/CITATION.md``, ``.bib``, ``.html`` (and ``.tex`` with pandoc) in OUTPUT_DIR.

    Parameters
    ----------
    settings, plan, group_plan, notes, methods, undescribed
        See :func:`compose`.
    composed : tuple, optional
        What :func:`compose` returned for them, when it was called beforehand (elsewhere).

    Returns
    -------
    paths : list of Path
        The files written.
    """
    keyed, cited = composed if composed is not None else compose(settings, plan, group_plan, notes, methods,
                                                                 undescribed)
    logs = Path(settings.output_dir) / "logs"
    written = [
        outputs.write_text(to_markdown(keyed, cited), logs / "CITATION.md"),
        outputs.write_text("\n".join(reference.raw for reference in cited.values()) + "\n", logs / "CITATION.bib"),
        outputs.write_text(to_html(keyed, cited), logs / "CITATION.html"),
    ]
    tex = to_latex(keyed, logs)
    if tex is not None:
        written.append(outputs.write_text(tex, logs / "CITATION.tex"))
    else:
        (logs / "CITATION.tex").unlink(missing_ok=True)  # never leave one that describes another run
    return written

"""Writing pages and their files: Jinja templates, figure and table files, relative links.

Every file a page refers to is named by :mod:`bids_fixedfx.naming` and linked relative to
the page (OUTPUT_DIR), so the folder can be moved or zipped; pages request nothing from
the network.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from .. import naming, outputs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figure:
    """A figure file as a page shows it.

    Attributes
    ----------
    src : str
        Relative to the page.
    alt : str
    caption : str
    """

    src: str
    alt: str
    caption: str = ""


class Files:
    """Writes pages, their figures and tables under OUTPUT_DIR, linked relative to the pages.

    Parameters
    ----------
    output_dir : Path
        Where the pages are; every link is relative to it.
    """

    def __init__(self, output_dir):
        self.output_dir = Path(output_dir)
        self._environment = None

    def link(self, relative) -> str:
        """A link from a page in OUTPUT_DIR to a path relative to OUTPUT_DIR."""
        return Path(relative).as_posix()

    def figure(self, relative, png: bytes, alt: str, caption: str = "") -> Figure:
        """Write a PNG at ``relative`` (a name from :func:`naming.build`) and describe it."""
        outputs.write_bytes(png, self.output_dir / relative)
        return Figure(self.link(relative), alt, caption)

    def table(self, relative, tsv: str) -> str:
        """Write a TSV at ``relative`` and return its link."""
        outputs.write_text(tsv, self.output_dir / relative)
        return self.link(relative)

    def page_link(self, relative) -> str | None:
        """A link to another page or file of OUTPUT_DIR if it exists, else None."""
        return self.link(relative) if (self.output_dir / relative).is_file() else None

    def render(self, template: str, **context) -> str:
        """Render one of the report templates (``bids_fixedfx/data/report``); undefined
        variables are errors. The templates are compiled once for all the pages."""
        if self._environment is None:
            self._environment = _environment()
        return self._environment.get_template(template).render(**context)

    def write_page(self, relative, html: str) -> Path:
        """Write a page at ``relative`` (``naming.build("subject_report", ...)``)."""
        return outputs.write_text(html, self.output_dir / relative)


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=PackageLoader("bids_fixedfx", "data/report"),
        autoescape=select_autoescape(["html", "jinja"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=without_bidi_controls,
    )
    environment.filters["number"] = _number
    return environment


#: Unicode's bidirectional controls (embeddings, overrides, isolates, marks): in a name they
#: reorder the page's own text after it (a contrast named "\u202eab" showed the navigation's
#: "Provenance" as "ecnanevorP").
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def without_bidi_controls(value):
    """A value for a page (the templates' ``finalize``): text without bidirectional controls,
    anything else as it is (escaping follows)."""
    if isinstance(value, str) and BIDI_CONTROLS.search(value):
        return type(value)(BIDI_CONTROLS.sub("", value))  # markup (already escaped) stays markup
    return value


def _number(value, digits: int = 3) -> str:
    """A number for a table cell: ``3``, ``0.142``, ``inf``, ``–`` for none."""
    if value is None:
        return "–"
    value = float(value)
    if value != value:
        return "–"
    if value in (float("inf"), float("-inf")):
        return "inf"
    return f"{value:.{digits}g}"


def provenance(settings, commands=None) -> dict:
    """What made the report: the command lines of the levels and the software versions.

    Parameters
    ----------
    settings : Settings
    commands : dict or None
        ``level -> command line``; default: this level's command.
    """
    from ..boilerplate import software_versions

    if commands is None:
        commands = {settings.analysis_level: settings.command or "(not recorded)"}
    return {"commands": commands, "versions": software_versions()}


def citation_link(files: Files) -> str | None:
    """The link to the methods text (``logs/CITATION.html``) if it was written."""
    return files.page_link(Path("logs") / "CITATION.html")


#: How a page marks each task and space's section (a ``set`` comment before and after it),
#: so that a later job over other tasks or spaces keeps it.
MARKED = re.compile(r"<!--set (task-([A-Za-z0-9]+)(?:-space-([A-Za-z0-9]+))?) section-->(.*?)<!--/set \1 section-->",
                    re.S)
LINKED = re.compile(r'(?:src|href)="([^"#:]+)"')


@dataclass(frozen=True)
class EarlierSet:
    """A task and space an earlier job showed on a page, as that page had it.

    Attributes
    ----------
    anchor : str
        ``task-<task>[-space-<space>]``, the section's id.
    task, space : str, str or None
    section : str
        The section's HTML.
    """

    anchor: str
    task: str
    space: str | None
    section: str


def earlier_sections(output_dir, text: str, anchors, still_written) -> list[EarlierSet]:
    """The marked sections of a page of OUTPUT_DIR (its HTML, ``text``) for other tasks or
    spaces than this job's (``anchors``) whose maps are still written (``still_written(task,
    space)``) and whose every linked file (figures, tables, pages) is still there."""
    earlier = {}
    for match in MARKED.finditer(text):
        anchor, task, space, section = match.groups()
        if anchor in anchors or anchor in earlier:
            continue
        if not still_written(task, space):
            continue
        active = active_markup(section)  # before its files are looked for: they may lie anywhere
        if active is not None:  # a page of a shared OUTPUT_DIR edited: not carried into the new one
            logger.warning("The section of task %s, space %s in a page of %s holds markup the app never writes (%s), "
                           "so it was left out of the page; rerun the job of that task and space to write it again.",
                           task, space or "none", output_dir, active)
            continue
        if not all((Path(output_dir) / path).is_file() for path in linked_files(section)):
            continue
        earlier[anchor] = EarlierSet(anchor, task, space, section)
    return list(earlier.values())


#: Elements the report's sections never hold that run or load anything.
ACTIVE_ELEMENTS = frozenset({"script", "iframe", "frame", "object", "embed", "applet", "base", "form", "meta", "link",
                             "style", "svg", "math", "template", "portal"})


#: Attributes that load or lead somewhere, which the report's sections never hold (their
#: ``href`` and ``src`` lead to OUTPUT_DIR's own files, or to an anchor of the page).
LOADING_ATTRIBUTES = frozenset({"srcdoc", "formaction", "xlink:href", "srcset", "style", "ping", "poster",
                                "background", "action", "data", "cite", "longdesc", "usemap", "imagesrcset"})


def active_markup(section: str) -> str | None:
    """What in a page's section could run a script, load something or lead out of OUTPUT_DIR
    (an element such as ``script``, an ``on*`` or ``style`` attribute, an address with a scheme
    (``https:``, ``file:``, ``javascript:``) other than a PNG image's ``data:``, an absolute
    one or one that climbs out with ``..``), said in a few words; None when there is nothing
    of the kind."""
    from html.parser import HTMLParser

    found = []

    class Elements(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ACTIVE_ELEMENTS:
                found.append(f"a {tag} element")
            for name, value in attrs:
                address = re.sub(r"[\s\x00-\x1f]", "", value or "").lower()
                if name.startswith("on") or name in LOADING_ATTRIBUTES:
                    found.append(f"a {name} attribute")
                elif name in ("href", "src") and not _own_address(address):
                    found.append(f"a {name} leading out of OUTPUT_DIR")

    parser = Elements()
    parser.feed(section)
    parser.close()
    return found[0] if found else None


def _own_address(address: str) -> bool:
    """Whether an ``href`` or ``src`` (blanks and controls removed) is an anchor, a PNG
    image's ``data:``, or a relative path that stays in OUTPUT_DIR."""
    from pathlib import PurePosixPath

    if address.startswith("#") or address.startswith("data:image/png"):
        return True
    path = re.split(r"[?#]", address, maxsplit=1)[0].replace("\\", "/")
    if ":" in path.split("/")[0] or path.startswith("/"):  # a scheme (https:, file:...), //host, /root
        return False
    return ".." not in PurePosixPath(path).parts


def linked_files(section: str) -> set[Path]:
    """The files of OUTPUT_DIR that a page's HTML (a section of it) shows or links to, relative
    to OUTPUT_DIR (where the pages are)."""
    return {Path(html.unescape(link)) for link in LINKED.findall(section)}


def subject_page(subject: str) -> Path:
    """Where a subject's page is, relative to OUTPUT_DIR."""
    return naming.build("subject_report", subject=subject)

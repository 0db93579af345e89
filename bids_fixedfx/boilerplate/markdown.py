"""The methods text in the formats users paste: Markdown with a reference list, and HTML.

The text is written in a small subset of Markdown (headings, paragraphs, code spans,
emphasis, links) with pandoc citations (``[@key]``); these functions turn the citations
into author-year references.
"""

from __future__ import annotations

import re
from html import escape

from .bibtex import _CITATION, _KEY, author_year, cited_keys, reference
from .text import ESCAPED


def _cite(text: str, references: dict, link: bool) -> str:
    def replace(match):
        inner = _KEY.sub(
            lambda m: (f'<a href="#ref-{m.group(1)}">{escape(author_year(references[m.group(1)]))}</a>'
                       if link else author_year(references[m.group(1)])),
            match.group(1),
        )
        return f"({inner})"

    return _CITATION.sub(replace, text)


def to_markdown(keyed: str, references: dict) -> str:
    """The methods text with author-year citations and its reference list.

    Parameters
    ----------
    keyed : str
        Markdown with pandoc citations.
    references : dict
        Key -> :class:`~.bibtex.Reference` for every cited key.
    """
    listed = "\n\n".join(f"- {reference(references[k])}" for k in cited_keys(keyed))
    return _cite(keyed, references, link=False).rstrip() + "\n\n## References\n\n" + listed + "\n"


def to_html(keyed: str, references: dict) -> str:
    """A standalone HTML page of the methods text (no script, no external request)."""
    body = []
    for block in keyed.strip().split("\n\n"):
        heading = re.match(r"(#+)\s+(.*)", block)
        if heading:
            level = min(len(heading.group(1)), 4)
            body.append(f"<h{level}>{_inline(heading.group(2), references)}</h{level}>")
        else:
            body.append(f"<p>{_inline(block, references)}</p>")
    body.append("<h2>References</h2>\n<ol class=\"references\">")
    for key in cited_keys(keyed):
        text = escape(reference(references[key]))
        text = re.sub(r"(https://doi\.org/\S+)", r'<a href="\1">\1</a>', text)
        body.append(f'<li id="ref-{key}">{text}</li>')
    body.append("</ol>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<link rel=\"icon\" href=\"data:,\">\n<title>Methods: bids-fixedfx</title>\n<style>\n"
        "body { font-family: Georgia, 'Times New Roman', serif; max-width: 46em; margin: 2em auto;"
        " padding: 0 1em; line-height: 1.55; color: #1d1d1f; }\n"
        "code { font-size: 0.9em; } .references li { margin-bottom: 0.4em; }\n"
        "</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


#: The characters :func:`~.text.plain` escapes with a backslash (CommonMark's escapes among them).
_ESCAPABLE = frozenset(ESCAPED)


def _inline(text: str, references: dict) -> str:
    """Markdown inline markup to HTML: backslash escapes, code spans (fenced by any number of
    backticks, as :func:`~.text.code` writes them), then citations, emphasis and links in the
    rest, every character of the text escaped (quotes too: a link's address stays inside its
    attribute)."""
    html, prose, i = [], [], 0

    def flush():
        part = _cite("".join(prose), references, link=True)
        part = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", part)
        html.append(re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r'<a href="\2">\1</a>', part))
        prose.clear()

    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            prose.append(f"&#{ord(text[i + 1])};")  # a character reference: no markup reads it
            i += 2
            continue
        if text[i] == "`":
            fence = len(text) - i - len(text[i:].lstrip("`"))
            closing = re.compile(f"(?<!`){'`' * fence}(?!`)").search(text, i + fence)
            if closing is not None:
                inner = text[i + fence:closing.start()]
                if len(inner) > 1 and inner[0] == inner[-1] == " " and inner.strip(" "):
                    inner = inner[1:-1]  # the space that code() puts beside a backtick
                flush()
                html.append(f"<code>{escape(inner)}</code>")
                i = closing.end()
                continue
            prose.append("&#96;" * fence)
            i += fence
            continue
        prose.append(escape(text[i]))
        i += 1
    flush()
    return "".join(html)

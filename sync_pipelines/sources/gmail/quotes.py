"""Quoted-reply trimming: each message of a thread keeps only what it added.

A reply carries the whole thread below it; indexed as is, a thread of N messages would be
indexed about N times over. Plain text loses its ">" lines, the attribution line that opens
a quote ("On Tue, 3 Dec 2026 at 10:00, Ana <ana@acme.test> wrote:", wrapped over two lines
or not, and its French, German and Spanish forms) and everything from an Outlook-style
"-----Original Message-----" separator on. HTML loses Gmail's `gmail_quote` blocks, Apple
Mail's and Thunderbird's `<blockquote type="cite">` and Outlook's reply header divs before it
is turned into text. A message that is nothing but a quote (a bare forward) is kept whole.
"""

from __future__ import annotations

import re

import lxml.html
from lxml import etree

ATTRIBUTION = re.compile(
    r"^(?:On|Le|Am|El)\s[^\n]{4,300}?(?:\n[^\n]{0,200}?)?"
    r"(?:wrote|a écrit|schrieb|escribió)\s?:[ \t]*$",
    re.MULTILINE,
)
SEPARATORS = re.compile(
    r"^(?:-{2,}\s*Original Message\s*-{2,}|-{2,}\s*Forwarded message\s*-{2,}"
    r"|_{20,}\s*$\n^From:)",
    re.MULTILINE | re.IGNORECASE,
)
QUOTE_XPATH = (
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]"
    " | //blockquote[@type='cite']"
    " | //*[@id='divRplyFwdMsg'] | //*[@id='appendonsend']"
)


def trim_plain(text: str) -> tuple[str, bool]:
    """The text without quoted replies, and whether anything was trimmed."""
    original = text
    separator = SEPARATORS.search(text)
    if separator and text[: separator.start()].strip():
        text = text[: separator.start()]
    lines = text.splitlines()
    kept = [line for line in lines if not line.lstrip().startswith(">")]
    if len(kept) != len(lines):
        text = "\n".join(kept)
        text = _drop_attributions(text)
    text = text.rstrip()
    if not text.strip():
        return original.strip(), False
    return text, text != original.rstrip()


def _drop_attributions(text: str) -> str:
    """Attribution lines left behind by removed quotes (the last one, and any line of one
    that wraps), judged by what follows them: nothing, or another attribution."""
    for found in reversed(list(ATTRIBUTION.finditer(text))):
        if not text[found.end() :].strip() or ATTRIBUTION.match(text[found.end() :].lstrip()):
            text = text[: found.start()] + text[found.end() :]
    return text


def trim_html(html: str) -> tuple[str, bool]:
    """The HTML without quoted replies, and whether anything was trimmed."""
    if not html.strip():
        return html, False
    try:
        root = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return html, False
    quotes = root.xpath(QUOTE_XPATH)
    if not quotes:
        return html, False
    for element in quotes:
        parent = element.getparent()
        if parent is None:  # the whole document is a quote: keep it
            return html, False
        _remove_keeping_tail(element)
    return lxml.html.tostring(root, encoding="unicode"), True


def _remove_keeping_tail(element) -> None:
    parent = element.getparent()
    tail = element.tail
    if tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)

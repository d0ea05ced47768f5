"""A Gmail message's MIME tree (messages.get format=full) into text and attachments.

The tree is walked part by part: in a multipart/alternative the text/plain child wins, else
the HTML one (turned into text by inscriptis, which keeps lists, tables and paragraphs
readable), else the richest nested multipart; other multiparts (mixed, related) join their
inline parts. Gmail sends `body.data` base64url with the Content-Transfer-Encoding already
undone, in the charset the part's Content-Type names: ISO-8859-1 and US-ASCII are read as
windows-1252 (their superset, as mail clients do), unknown charsets as UTF-8, undecodable
bytes replaced. A large inline body may come as an `attachmentId` instead of `data`: it is
fetched. Quoted replies are trimmed (quotes.py).

Attachments: text/* and PDF files up to `max_bytes` are extracted (PDF with pypdf); every other
attachment, and those over the limit or unreadable, is listed by name.
"""

from __future__ import annotations

import email.message
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from email.header import decode_header, make_header

from inscriptis import get_text
from pypdf import PdfReader

from sync_pipelines.sources.gmail.client import decode_data
from sync_pipelines.sources.gmail.quotes import trim_html, trim_plain

MAX_ATTACHMENT_CHARS = 200_000
CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252",
                   "us-ascii": "cp1252", "ascii": "cp1252"}  # fmt: skip
EXTRACTED_TYPES = ("text/plain", "text/csv", "text/markdown", "text/x-markdown", "text/html")
PDF = "application/pdf"

# (message id, attachment id) -> the attachment's bytes
Fetch = Callable[[str], bytes]


@dataclass
class Attachment:
    filename: str
    mime_type: str
    size: int
    text: str = ""
    note: str = ""  # why it was not extracted


@dataclass
class Parsed:
    """The message's headers (lower-case names, first value), body text and attachments."""

    headers: dict[str, str]
    text: str = ""
    body_type: str = ""  # text/plain or text/html: where the text came from
    trimmed: bool = False
    attachments: list[Attachment] = field(default_factory=list)


def header_value(value: str) -> str:
    """A header with RFC 2047 encoded words decoded (Gmail usually sends them decoded)."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, ValueError, UnicodeDecodeError):
        return value


def _headers(part: dict) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in part.get("headers") or []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            found.setdefault(item["name"].lower(), header_value(str(item.get("value") or "")))
    return found


def _content(part: dict) -> email.message.Message:
    """The part's Content-Type/Disposition, parsed by the standard library."""
    msg = email.message.Message()
    headers = _headers(part)
    msg["Content-Type"] = headers.get("content-type") or part.get("mimeType") or "text/plain"
    if "content-disposition" in headers:
        msg["Content-Disposition"] = headers["content-disposition"]
    return msg


def decode_text(data: bytes, charset: str | None) -> str:
    name = (charset or "utf-8").strip().strip('"').lower()
    name = CHARSET_ALIASES.get(name, name)
    try:
        return data.decode(name, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def html_to_text(html: str) -> str:
    return get_text(html).strip() if html.strip() else ""


class MessageParser:
    """Parses one message; `fetch(attachment_id)` gets a body Gmail sent by reference."""

    def __init__(self, fetch: Fetch, max_bytes: int):
        self.fetch = fetch
        self.max_bytes = max_bytes

    def parse(self, payload: dict) -> Parsed:
        parsed = Parsed(headers=_headers(payload))
        text, body_type = self._body(payload, parsed)
        parsed.text, parsed.body_type = text.strip(), body_type
        return parsed

    def _is_attachment(self, part: dict) -> bool:
        disposition = _content(part).get_content_disposition()
        return bool(part.get("filename")) or disposition == "attachment"

    def _body(self, part: dict, parsed: Parsed) -> tuple[str, str]:
        mime_type = str(part.get("mimeType") or "text/plain").lower()
        children = [p for p in part.get("parts") or [] if isinstance(p, dict)]
        if self._is_attachment(part):
            parsed.attachments.append(self._attachment(part))
            return "", ""
        if mime_type == "multipart/alternative":
            return self._alternative(children, parsed)
        if mime_type.startswith("multipart/"):
            found = [self._body(child, parsed) for child in children]
            texts = [text for text, _ in found if text.strip()]
            kinds = [kind for text, kind in found if text.strip()]
            return "\n\n".join(texts), kinds[0] if kinds else ""
        if mime_type == "text/plain":
            text, trimmed = trim_plain(self._text(part))
            parsed.trimmed |= trimmed
            return text, "text/plain"
        if mime_type == "text/html":
            html, trimmed = trim_html(self._text(part))
            parsed.trimmed |= trimmed
            return html_to_text(html), "text/html"
        return "", ""  # calendar parts, delivery reports, ...: nothing to read inline

    def _alternative(self, children: list[dict], parsed: Parsed) -> tuple[str, str]:
        """The plain child, else the HTML one, else a nested multipart (attachments inside
        any child are still collected)."""
        by_type = {str(c.get("mimeType") or "").lower(): c for c in reversed(children)}
        for preferred in ("text/plain", "text/html"):
            if preferred in by_type:
                text, kind = self._body(by_type[preferred], parsed)
                if text.strip():
                    return text, kind
        for child in children:
            if str(child.get("mimeType") or "").lower().startswith("multipart/"):
                text, kind = self._body(child, parsed)
                if text.strip():
                    return text, kind
        return "", ""

    def _bytes(self, part: dict) -> bytes:
        body = part.get("body") or {}
        if body.get("data"):
            return decode_data(body["data"])
        if body.get("attachmentId"):
            return self.fetch(str(body["attachmentId"]))
        return b""

    def _text(self, part: dict) -> str:
        return decode_text(self._bytes(part), _content(part).get_content_charset())

    def _attachment(self, part: dict) -> Attachment:
        content = _content(part)
        mime_type = str(part.get("mimeType") or content.get_content_type()).lower()
        filename = str(part.get("filename") or content.get_filename() or "unnamed")
        size = int((part.get("body") or {}).get("size") or 0)
        found = Attachment(filename=filename, mime_type=mime_type, size=size)
        extractable = mime_type in EXTRACTED_TYPES or mime_type == PDF
        if not extractable:
            return found
        if size > self.max_bytes:
            found.note = f"not extracted: {size} bytes, over the {self.max_bytes}-byte limit"
            return found
        data = self._bytes(part)
        if len(data) > self.max_bytes:
            found.note = f"not extracted: {len(data)} bytes, over the {self.max_bytes}-byte limit"
            return found
        if mime_type == PDF:
            found.text, found.note = pdf_text(data)
        elif mime_type == "text/html":
            found.text = html_to_text(decode_text(data, content.get_content_charset()))
        else:
            found.text = decode_text(data, content.get_content_charset()).strip()
        found.text = found.text[:MAX_ATTACHMENT_CHARS]
        return found


def pdf_text(data: bytes) -> tuple[str, str]:
    """(text, note): a PDF's text, or a note saying why there is none."""
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed files warn per object
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return "", "not extracted: the PDF is encrypted"
        text = "\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on damaged files; the mail still counts
        return "", f"not extracted: unreadable PDF ({type(exc).__name__})"
    return text.strip(), "" if text.strip() else "no text in the PDF (scanned?)"

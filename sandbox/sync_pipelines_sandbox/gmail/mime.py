"""MIME trees as Gmail's messages.get (format=full) shows them: a `payload` MessagePart with
`partId`, `mimeType`, `filename`, `headers` and `body` ({size, data} in base64url with the
Content-Transfer-Encoding already undone, in the part's own charset; or {size, attachmentId}
for an attachment, fetched with messages.attachments.get), and `parts` for multiparts."""

from __future__ import annotations

import email.utils
import html
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from sync_pipelines_sandbox.gmail.pdf import make_pdf

LATIN1_TEXT = (
    "Bonjour {n},\n\nLa réunion de vendredi est déplacée à 14h ; pourriez-vous vérifier le "
    "devis d'ici là ? Grüße aus Zürich, señor Muñoz.\n\nÀ bientôt,\n{s}"
)
CP1252_TEXT = (
    "Hi {n},\n\nThe \u201cfinal\u201d quote is 1\u00a0200 \u20ac \u2013 valid until Friday\u2026"
    "\n\nCheers,\n{s}"
)
KINDS = (
    ("plain", 45), ("alternative", 25), ("html", 10), ("latin1", 5), ("cp1252", 4),
    ("textfile", 4), ("pdf", 4), ("image", 3),
)  # fmt: skip


@dataclass(frozen=True)
class Quoted:
    """The message a reply quotes: who sent it, when, and its full plain and HTML text."""

    sender: str
    at_ms: int
    plain: str
    html: str


@dataclass(frozen=True)
class Built:
    payload: dict
    attachments: dict[str, bytes]
    kind: str
    plain: str
    html: str


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode()


def rfc2822(ms: int) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(ms / 1000, UTC))


def headers(sender, to, cc, subject, at_ms, mail_id, previous) -> list[dict]:
    found = [
        ("From", sender),
        ("To", ", ".join(to)),
        *([("Cc", ", ".join(cc))] if cc else []),
        ("Subject", subject),
        ("Date", rfc2822(at_ms)),
        ("Message-ID", f"<{mail_id}@mail.acme.test>"),
        ("MIME-Version", "1.0"),
    ]
    return [{"name": name, "value": value} for name, value in found]


def leaf(mime_type: str, data: bytes, charset: str | None = "UTF-8", part_id: str = "") -> dict:
    content_type = mime_type + (f'; charset="{charset}"' if charset else "")
    return {
        "partId": part_id,
        "mimeType": mime_type,
        "filename": "",
        "headers": [
            {"name": "Content-Type", "value": content_type},
            {"name": "Content-Transfer-Encoding", "value": "quoted-printable"},
        ],
        "body": {"size": len(data), "data": _b64(data)},
    }


def multipart(subtype: str, parts: list[dict], part_id: str = "") -> dict:
    for n, part in enumerate(parts):
        _renumber(part, f"{part_id}.{n}" if part_id else str(n))
    boundary = f"{subtype}-{abs(hash(part_id)) % 10**8:08d}"
    return {
        "partId": part_id,
        "mimeType": f"multipart/{subtype}",
        "filename": "",
        "headers": [
            {"name": "Content-Type", "value": f'multipart/{subtype}; boundary="{boundary}"'}
        ],
        "body": {"size": 0},
        "parts": parts,
    }


def _renumber(part: dict, part_id: str) -> None:
    part["partId"] = part_id
    for n, child in enumerate(part.get("parts") or []):
        _renumber(child, f"{part_id}.{n}")


def text_part(text: str, message_headers: list[dict]) -> dict:
    part = leaf("text/plain", text.encode())
    part["headers"] = message_headers + part["headers"]
    return part


def attachment(mime_type: str, filename: str, attachment_id: str, size: int) -> dict:
    return {
        "partId": "",
        "mimeType": mime_type,
        "filename": filename,
        "headers": [
            {"name": "Content-Type", "value": f'{mime_type}; name="{filename}"'},
            {"name": "Content-Disposition", "value": f'attachment; filename="{filename}"'},
            {"name": "Content-Transfer-Encoding", "value": "base64"},
        ],
        "body": {"attachmentId": attachment_id, "size": size},
    }


def quote_plain(previous: Quoted | None) -> str:
    if previous is None:
        return ""
    lines = "\n".join(f"> {line}" if line else ">" for line in previous.plain.splitlines())
    return f"\n\nOn {rfc2822(previous.at_ms)}, {previous.sender} wrote:\n{lines}\n"


def quote_html(previous: Quoted | None) -> str:
    if previous is None:
        return ""
    return (
        '<br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On '
        f"{html.escape(rfc2822(previous.at_ms))}, {html.escape(previous.sender)} wrote:<br></div>"
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid '
        f'rgb(204,204,204);padding-left:1ex">{previous.html}</blockquote></div>'
    )


def to_html(text: str) -> str:
    paragraphs = "".join(
        f"<div>{html.escape(line)}</div>" if line else "<div><br></div>"
        for line in text.splitlines()
    )
    return f'<div dir="ltr">{paragraphs}</div>'


def build(rng: random.Random, body: str, message_headers, previous, box) -> Built:
    """One message's payload in a randomly chosen shape (KINDS), replies quoting `previous`."""
    kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
    sender = next(h["value"] for h in message_headers if h["name"] == "From")
    to = next(h["value"] for h in message_headers if h["name"] == "To")
    first, recipient = sender.split()[0], to.split()[0]
    if kind in ("latin1", "cp1252"):
        body = (LATIN1_TEXT if kind == "latin1" else CP1252_TEXT).format(n=recipient, s=first)
    plain = body + quote_plain(previous)
    rich = to_html(body) + quote_html(previous)
    attachments: dict[str, bytes] = {}
    if kind == "latin1":
        top = leaf("text/plain", plain.encode("iso-8859-1", "replace"), "ISO-8859-1")
    elif kind == "cp1252":
        top = leaf("text/plain", plain.encode("windows-1252", "replace"), "windows-1252")
    elif kind == "html":
        top = leaf("text/html", rich.encode())
    elif kind == "plain":
        top = leaf("text/plain", plain.encode())
    else:
        top = multipart(
            "alternative",
            [leaf("text/plain", plain.encode()), leaf("text/html", rich.encode())],
        )
    if kind in ("textfile", "pdf", "image"):
        name, mime_type, data = _attached(kind, rng, first)
        attachment_id = f"ANGjdJ{box.next_attachment:010d}"
        box.next_attachment += 1
        attachments[attachment_id] = data
        top = multipart("mixed", [top, attachment(mime_type, name, attachment_id, len(data))])
    top["headers"] = message_headers + top["headers"]
    return Built(top, attachments, kind, plain, rich)


def _attached(kind: str, rng: random.Random, author: str) -> tuple[str, str, bytes]:
    number = rng.randint(10, 99)
    if kind == "textfile":
        text = f"Meeting notes by {author}\n- agreed on milestone {number}\n- next review Friday\n"
        return "notes.txt", "text/plain", text.encode()
    if kind == "pdf":
        lines = [f"Quarterly report {number}", f"Prepared by {author}", "Revenue grew in Q3."]
        return f"report-{number}.pdf", "application/pdf", make_pdf(lines)
    png = b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(64))
    return f"diagram-{number}.png", "image/png", png

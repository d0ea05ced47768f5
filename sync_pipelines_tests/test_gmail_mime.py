"""Gmail MIME trees into text: part walking, charsets, HTML to text, attachments within a size
limit, and quoted replies trimmed so a thread is not indexed once per message."""

import base64

from sync_pipelines_sandbox.gmail.pdf import make_pdf

from sync_pipelines.sources.gmail.mime import MessageParser, decode_text
from sync_pipelines.sources.gmail.quotes import trim_html, trim_plain


def b64(data: bytes, padded: bool = False) -> str:
    encoded = base64.urlsafe_b64encode(data).decode()
    return encoded if padded else encoded.rstrip("=")


def leaf(mime_type: str, data: bytes, charset: str | None = "UTF-8") -> dict:
    value = mime_type + (f'; charset="{charset}"' if charset else "")
    return {
        "mimeType": mime_type,
        "filename": "",
        "headers": [{"name": "Content-Type", "value": value}],
        "body": {"size": len(data), "data": b64(data)},
    }


def multipart(subtype: str, *parts: dict, headers=()) -> dict:
    return {"mimeType": f"multipart/{subtype}", "filename": "", "headers": list(headers),
            "body": {"size": 0}, "parts": list(parts)}  # fmt: skip


def attached(mime_type: str, name: str, size: int, attachment_id: str) -> dict:
    return {
        "mimeType": mime_type,
        "filename": name,
        "headers": [{"name": "Content-Disposition", "value": f'attachment; filename="{name}"'}],
        "body": {"attachmentId": attachment_id, "size": size},
    }


def parser(files: dict[str, bytes] | None = None, max_bytes: int = 1_000_000):
    fetched = []

    def fetch(attachment_id: str) -> bytes:
        fetched.append(attachment_id)
        return (files or {})[attachment_id]

    return MessageParser(fetch, max_bytes), fetched


def test_plain_is_preferred_in_an_alternative_and_headers_are_read():
    payload = multipart(
        "alternative",
        leaf("text/plain", b"Plain body"),
        leaf("text/html", b"<p>HTML body</p>"),
        headers=[{"name": "Subject", "value": "=?UTF-8?Q?Caf=C3=A9_plans?="},
                 {"name": "From", "value": "Ana <ana@acme.test>"}],
    )  # fmt: skip
    parsed = parser()[0].parse(payload)
    assert parsed.text == "Plain body" and parsed.body_type == "text/plain"
    assert parsed.headers["subject"] == "Café plans"  # RFC 2047 decoded
    assert parsed.headers["from"] == "Ana <ana@acme.test>"


def test_html_only_becomes_readable_text():
    html = b"<html><body><h1>Launch</h1><ul><li>one</li><li>two</li></ul><p>Bye&nbsp;now</p>"
    parsed = parser()[0].parse(leaf("text/html", html + b"</body></html>"))
    assert parsed.body_type == "text/html"
    assert "Launch" in parsed.text and "one" in parsed.text and "Bye" in parsed.text
    assert "<" not in parsed.text


def test_charsets_latin1_windows1252_and_padded_base64url():
    latin = "Réunion déplacée à Zürich".encode("iso-8859-1")
    assert parser()[0].parse(leaf("text/plain", latin, "ISO-8859-1")).text == (
        "Réunion déplacée à Zürich"
    )
    cp = "\u201cfinal\u201d price 1 200 \u20ac \u2013 ok".encode("windows-1252")
    assert parser()[0].parse(leaf("text/plain", cp, "windows-1252")).text == (
        "\u201cfinal\u201d price 1 200 \u20ac \u2013 ok"
    )
    part = leaf("text/plain", "naïve ✓".encode())
    part["body"]["data"] = b64("naïve ✓".encode(), padded=True)
    assert parser()[0].parse(part).text == "naïve ✓"
    assert decode_text(b"caf\xe9", "x-unknown-charset") == "caf\ufffd"


def test_text_and_pdf_attachments_are_extracted_others_listed_by_name():
    pdf = make_pdf(["Quarterly report 42", "Revenue grew in Q3."])
    files = {"A1": b"Meeting notes\n- ship it\n", "A2": pdf, "A3": b"\x89PNG...."}
    payload = multipart(
        "mixed",
        leaf("text/plain", b"See attached."),
        attached("text/plain", "notes.txt", len(files["A1"]), "A1"),
        attached("application/pdf", "report.pdf", len(pdf), "A2"),
        attached("image/png", "diagram.png", 9, "A3"),
    )
    parse, fetched = parser(files)
    parsed = parse.parse(payload)
    assert parsed.text == "See attached."
    by_name = {a.filename: a for a in parsed.attachments}
    assert "ship it" in by_name["notes.txt"].text
    assert "Quarterly report 42" in by_name["report.pdf"].text
    assert by_name["diagram.png"].text == "" and by_name["diagram.png"].mime_type == "image/png"
    assert fetched == ["A1", "A2"]  # the image is never downloaded


def test_attachments_over_the_size_limit_are_listed_not_fetched():
    pdf = make_pdf(["big"])
    payload = multipart("mixed", leaf("text/plain", b"Body"),
                        attached("application/pdf", "big.pdf", len(pdf), "A1"))  # fmt: skip
    parse, fetched = parser({"A1": pdf}, max_bytes=len(pdf) - 1)
    (found,) = parse.parse(payload).attachments
    assert found.text == "" and "over the" in found.note and fetched == []


def test_a_body_sent_by_attachment_id_is_fetched_and_a_broken_pdf_is_noted():
    body = {"mimeType": "text/plain", "filename": "", "headers": [],
            "body": {"attachmentId": "BIG", "size": 5}}  # fmt: skip
    payload = multipart("mixed", body, attached("application/pdf", "x.pdf", 4, "BAD"))
    parsed = parser({"BIG": b"large", "BAD": b"%PDF"})[0].parse(payload)
    assert parsed.text == "large"
    assert "unreadable PDF" in parsed.attachments[0].note


def test_plain_quoted_replies_are_trimmed():
    text = (
        "Sounds good, shipping Friday.\n\nBest,\nAna\n\n"
        "On Mon, 30 Nov 2026 03:53:13 +0000, Bo Chen <bo@acme.test>\nwrote:\n"
        "> Can we ship Friday?\n>\n> On Sun, 29 Nov 2026, Ana <ana@acme.test> wrote:\n>> Draft\n"
    )
    trimmed, changed = trim_plain(text)
    assert changed and trimmed == "Sounds good, shipping Friday.\n\nBest,\nAna"
    outlook = "Yes.\n\n-----Original Message-----\nFrom: Bo\nSent: Monday\n\nQuestion?"
    assert trim_plain(outlook) == ("Yes.", True)
    forward_only = "> only a quote\n> nothing else"
    assert trim_plain(forward_only) == (forward_only, False)
    on_friday = "On Friday we ship.\nThe release wrote: nothing\nOk"
    assert trim_plain(on_friday) == (on_friday, False)


def test_gmail_quote_divs_and_cite_blockquotes_are_trimmed_from_html():
    html = (
        '<div dir="ltr"><div>New answer</div></div><br><div class="gmail_quote">'
        '<div class="gmail_attr">On Mon, Bo wrote:<br></div><blockquote class="gmail_quote">'
        "<div>Old question</div></blockquote></div>"
    )
    trimmed, changed = trim_html(html)
    assert changed and "New answer" in trimmed and "Old question" not in trimmed
    apple = "<p>Reply</p><blockquote type='cite'>Earlier</blockquote><p>tail</p>"
    trimmed, changed = trim_html(apple)
    assert changed and "Earlier" not in trimmed and "tail" in trimmed
    parsed = parser()[0].parse(leaf("text/html", html.encode()))
    assert parsed.text == "New answer" and parsed.trimmed

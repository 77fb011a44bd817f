"""The contact form's pages: self-contained HTML (one inline stylesheet, no scripts, no external assets).

Every customer-supplied value is escaped. The stylesheet is allowed by its hash in the
Content-Security-Policy, so the pages need nothing else: ``default-src 'none'`` blocks every other
load, and ``form-action 'self'`` keeps the form posting only back to us.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from html import escape

LANGUAGES = ("en", "id")
FIELDS = ("name", "email", "subject", "message")

TEXT: Mapping[str, Mapping[str, str]] = {
    "en": {
        "title": "Contact us",
        "intro": "Write to us and we will answer you by email.",
        "required_note": "All fields are required.",
        "name": "Your name",
        "email": "Email address",
        "email_hint": "We send our answer here.",
        "subject": "Subject",
        "message": "Message",
        "message_hint": "At most {limit} characters.",
        "submit": "Send message",
        "privacy": "We use your email address only to answer this message.",
        "honeypot": "Leave this field empty",
        "other_language": "Bahasa Indonesia",
        "error_prefix": "Error:",
        "error_summary": "There is a problem",
        "error.name": "Enter your name.",
        "error.email": "Enter an email address like name@example.com.",
        "error.subject": "Enter a subject.",
        "error.message": "Enter your message.",
        "error.too_long": "This is too long: at most {limit} characters.",
        "thanks_title": "Thank you",
        "thanks_received": "We received your message.",
        "thanks_reference": "Your reference number is #{reference}.",
        "thanks_reply": "We will answer you at {email}.",
        "thanks_reply_plain": "We will answer you by email.",
        "thanks_keep": "Please mention the reference number if you write to us again.",
        "again": "Send another message",
        "too_large_title": "Your message is too large",
        "too_large": "The message is longer than we can accept. Please shorten it and send it again.",
        "too_many_title": "Too many messages",
        "too_many": "You have sent several messages in a short time. Please try again in {minutes} min.",
        "back": "Back to the form",
        "email.footer": "Reference number: #{reference}. When you answer, please keep [#{reference}] in "
        "the subject.",
        "email.default_subject": "Your message",
    },
    "id": {
        "title": "Hubungi kami",
        "intro": "Tulis pesan Anda dan kami akan membalas lewat email.",
        "required_note": "Semua kolom wajib diisi.",
        "name": "Nama Anda",
        "email": "Alamat email",
        "email_hint": "Balasan kami dikirim ke alamat ini.",
        "subject": "Subjek",
        "message": "Pesan",
        "message_hint": "Paling banyak {limit} karakter.",
        "submit": "Kirim pesan",
        "privacy": "Alamat email Anda hanya kami pakai untuk membalas pesan ini.",
        "honeypot": "Biarkan kolom ini kosong",
        "other_language": "English",
        "error_prefix": "Kesalahan:",
        "error_summary": "Ada yang perlu diperbaiki",
        "error.name": "Isi nama Anda.",
        "error.email": "Isi alamat email seperti nama@contoh.com.",
        "error.subject": "Isi subjek pesan.",
        "error.message": "Tulis pesan Anda.",
        "error.too_long": "Terlalu panjang: paling banyak {limit} karakter.",
        "thanks_title": "Terima kasih",
        "thanks_received": "Pesan Anda sudah kami terima.",
        "thanks_reference": "Nomor referensi Anda adalah #{reference}.",
        "thanks_reply": "Kami akan membalas ke {email}.",
        "thanks_reply_plain": "Kami akan membalas lewat email.",
        "thanks_keep": "Sebutkan nomor referensi ini jika Anda menghubungi kami lagi.",
        "again": "Kirim pesan lain",
        "too_large_title": "Pesan Anda terlalu besar",
        "too_large": "Pesan ini melebihi batas yang bisa kami terima. Persingkat lalu kirim lagi.",
        "too_many_title": "Terlalu banyak pesan",
        "too_many": "Anda sudah mengirim beberapa pesan dalam waktu singkat. Silakan coba lagi dalam "
        "{minutes} menit.",
        "back": "Kembali ke formulir",
        "email.footer": "Nomor referensi: #{reference}. Jika membalas, biarkan [#{reference}] tetap ada "
        "di subjek.",
        "email.default_subject": "Pesan Anda",
    },
}

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:1.0625rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
background:#fff}
main{max-width:40rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.75rem;margin:0 0 .5rem}
p{margin:.5rem 0}
.field{margin:1.25rem 0}
label{display:block;font-weight:600}
.hint{color:#4a4a4a;margin:.125rem 0 .25rem;font-size:.95rem}
input,textarea{width:100%;font:inherit;padding:.5rem;border:2px solid #1b1b1b;border-radius:0;
background:#fff;color:#1b1b1b}
textarea{min-height:10rem;resize:vertical}
input:focus,textarea:focus,button:focus,a:focus{outline:3px solid #fd0;outline-offset:0;
box-shadow:inset 0 0 0 2px #1b1b1b}
.error{color:#b00020;font-weight:600;margin:.25rem 0}
.invalid input,.invalid textarea{border-color:#b00020;border-width:3px}
.summary{border:4px solid #b00020;padding:1rem;margin:1rem 0}
.summary h2{margin:0 0 .5rem;font-size:1.25rem}
.summary a{color:#b00020;font-weight:600}
.panel{border:4px solid #00703c;padding:1rem;margin:1rem 0}
.reference{font-size:1.5rem;font-weight:700}
button{font:inherit;font-weight:600;padding:.625rem 1.25rem;border:0;background:#00703c;color:#fff;
cursor:pointer}
button:hover{background:#005a30}
a{color:#1d4ed8}
.lang{text-align:right;margin:0}
.hp{position:absolute;left:-10000px;top:auto;width:1px;height:1px;overflow:hidden}
""".strip()

STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode("utf-8")).digest()).decode("ascii")
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def text(lang: str, key: str, **params: object) -> str:
    """The page text ``key`` in ``lang`` (English when missing), with ``params`` filled in."""
    template = TEXT.get(lang, TEXT["en"]).get(key) or TEXT["en"][key]
    return template.format(**params) if params else template


def pick_language(requested: str | None, accept_language: str | None, default: str) -> str:
    """``?lang=`` if supported, else the best supported language of Accept-Language, else ``default``."""
    if requested:
        code = _primary(requested)
        if code in LANGUAGES:
            return code
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        pieces = part.strip().split(";")
        code = _primary(pieces[0])
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if code in LANGUAGES and quality > 0:
            candidate = (quality, -position, code)  # higher q wins, then the earlier entry
            if best is None or candidate > best:
                best = candidate
    if best is not None:
        return best[2]
    return default if default in LANGUAGES else "en"


def _primary(tag: str) -> str:
    code = tag.strip().lower().replace("_", "-").split("-", 1)[0]
    return "id" if code == "in" else code  # "in" is the withdrawn ISO code for Indonesian


def _page(lang: str, title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        f'<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _field(
    lang: str, name: str, value: str, error: str | None, *, hint: str | None = None, multiline: bool = False,
    maxlength: int, attrs: str = "",
) -> str:
    field_id = f"field-{name}"
    described = []
    parts = [
        f'<div class="field{" invalid" if error else ""}">',
        f'<label for="{field_id}">{text(lang, name)}</label>',
    ]
    if hint:
        parts.append(f'<p class="hint" id="{field_id}-hint">{escape(hint)}</p>')
        described.append(f"{field_id}-hint")
    if error:
        parts.append(
            f'<p class="error" id="{field_id}-error">'
            f'<span class="prefix">{text(lang, "error_prefix")}</span> {escape(error)}</p>'
        )
        described.append(f"{field_id}-error")
    aria = f' aria-describedby="{" ".join(described)}"' if described else ""
    aria += ' aria-invalid="true"' if error else ""
    common = f'id="{field_id}" name="{name}" required maxlength="{maxlength}"{aria}{attrs}'
    if multiline:
        parts.append(f'<textarea {common} rows="8">{escape(value)}</textarea>')
    else:
        parts.append(f'<input {common} value="{escape(value)}">')
    parts.append("</div>")
    return "\n".join(parts)


def form_page(
    *,
    lang: str,
    action: str,
    title: str | None,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    honeypot: str,
    token: str,
    limits: Mapping[str, int],
) -> str:
    """The form, empty or re-shown with the visitor's values and a message next to each wrong field."""
    heading = title or text(lang, "title")
    other = "id" if lang == "en" else "en"
    out = [
        f'<p class="lang"><a href="?lang={other}" hreflang="{other}" lang="{other}">'
        f"{text(lang, 'other_language')}</a></p>",
        f"<h1>{escape(heading)}</h1>",
        f"<p>{text(lang, 'intro')}</p>",
    ]
    if errors:
        items = "\n".join(
            f'<li><a href="#field-{name}">{escape(errors[name])}</a></li>'
            for name in FIELDS
            if name in errors
        )
        out.append(
            '<div class="summary" role="alert" aria-labelledby="error-summary-title" tabindex="-1">\n'
            f'<h2 id="error-summary-title">{text(lang, "error_summary")}</h2>\n<ul>\n{items}\n</ul>\n</div>'
        )
    out.append(f'<form method="post" action="{escape(action)}" accept-charset="utf-8">')
    out.append(f"<p>{text(lang, 'required_note')}</p>")
    out.append(f'<input type="hidden" name="lang" value="{lang}">')
    out.append(f'<input type="hidden" name="submission" value="{escape(token)}">')
    out.append(_field(lang, "name", values.get("name", ""), errors.get("name"), maxlength=limits["name"],
                      attrs=' type="text" autocomplete="name"'))
    out.append(_field(lang, "email", values.get("email", ""), errors.get("email"), maxlength=limits["email"],
                      hint=text(lang, "email_hint"),
                      attrs=' type="email" autocomplete="email" inputmode="email" spellcheck="false"'))
    out.append(_field(lang, "subject", values.get("subject", ""), errors.get("subject"),
                      maxlength=limits["subject"], attrs=' type="text"'))
    out.append(_field(lang, "message", values.get("message", ""), errors.get("message"), multiline=True,
                      maxlength=limits["message"], hint=text(lang, "message_hint", limit=limits["message"])))
    # The honeypot: hidden from sight, from screen readers and from the tab order; only bots fill it in.
    out.append(
        f'<div class="hp" aria-hidden="true"><label for="field-hp">{text(lang, "honeypot")}</label>'
        f'<input id="field-hp" name="{escape(honeypot)}" type="text" tabindex="-1" autocomplete="off" '
        'value=""></div>'
    )
    out.append(f"<p>{text(lang, 'privacy')}</p>")
    out.append(f'<button type="submit">{text(lang, "submit")}</button>')
    out.append("</form>")
    page_title = heading if not errors else f"{text(lang, 'error_prefix')} {heading}"
    return _page(lang, page_title, "\n".join(out))


def confirmation_page(*, lang: str, action: str, reference: int | None, email: str | None) -> str:
    """The thank-you page; without a reference (a dropped honeypot submission) it looks the same."""
    lines = [f"<p>{text(lang, 'thanks_received')}</p>"]
    if reference is not None:
        lines.append(f'<p class="reference">{text(lang, "thanks_reference", reference=reference)}</p>')
    if email:
        lines.append(f"<p>{text(lang, 'thanks_reply', email=escape(email))}</p>")
    else:
        lines.append(f"<p>{text(lang, 'thanks_reply_plain')}</p>")
    if reference is not None:
        lines.append(f"<p>{text(lang, 'thanks_keep')}</p>")
    body = (
        f"<h1>{text(lang, 'thanks_title')}</h1>\n"
        f'<div class="panel" role="status">\n' + "\n".join(lines) + "\n</div>\n"
        f'<p><a href="{escape(action)}?lang={lang}">{text(lang, "again")}</a></p>'
    )
    return _page(lang, text(lang, "thanks_title"), body)


def problem_page(*, lang: str, action: str, title_key: str, body_key: str, **params: object) -> str:
    """A short page for a refused submission (too large, too many)."""
    body = (
        f"<h1>{text(lang, title_key)}</h1>\n<p>{escape(text(lang, body_key, **params))}</p>\n"
        f'<p><a href="{escape(action)}?lang={lang}">{text(lang, "back")}</a></p>'
    )
    return _page(lang, text(lang, title_key), body)

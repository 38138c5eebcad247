"""Credentials never leave the process in clear: one masking path for every message, log line and record.

:func:`mask` replaces the secret part of every credential form fmduck may see — the password of a URL's
userinfo (``postgresql://u:SECRET@host``, also when the password holds ``@``), a ``password=`` (or
``token=``) query parameter or libpq keyword (quoted or not), and ``PGPASSWORD=`` — by ``***``. A
driver's own message may quote a password without its keyword (``invalid percent-encoded token:
"SECRET%zz"``): :func:`remember` notes the passwords of every connection string an engine opens, and
``mask`` removes those wherever they appear — also the pieces of a password that holds an unencoded
``@``, ``/``, ``?`` or ``#``, which the driver splits into a host or a path and may quote
(:func:`url_hint` says how to write such a password). The CLI passes every error and progress line
through ``mask``; engines pass their connection errors through it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<secret>[^\s]*)@(?=[^@\s]*(?:\s|$))")
_KEYWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd|pgpassword|token)\s*=\s*)(?P<secret>\*\*\*(?=[\s&;,):]|$)|"
                      r"'(?:[^'\\]|\\.)*(?:'|$)|\"[^\"]*\"|[^\s&;,)]+)", re.IGNORECASE)
_URL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*://")
MASK = "***"
_KNOWN: set[str] = set()
_SHORT = 4  # a remembered password shorter than this is masked only where it stands alone


def mask(text: object) -> str:
    """``text`` with every credential replaced by ``***`` (idempotent)."""
    out = str(text)
    for secret in sorted(_KNOWN, key=len, reverse=True):
        if len(secret) >= _SHORT:
            out = out.replace(secret, MASK)
        else:
            out = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, out)
    out = _USERINFO.sub(lambda m: m.group("head") + MASK + "@", out)
    return _KEYWORD.sub(lambda m: m.group("head") + MASK, out)


def passwords(conninfo: str) -> list[str]:
    """The passwords written in a connection string, as written and percent-decoded; of a URL's password,
    also its pieces between ``@ / ? #`` and spaces (the driver may quote one as a host or a path)."""
    found = [m.group("secret") for m in _USERINFO.finditer(conninfo)]
    whole = _url_password(conninfo)
    if whole:
        found.append(whole)
    for secret in list(found):
        found += [p for p in re.split(r"[@/?#\s]", secret) if len(p) >= 3]
    for m in _KEYWORD.finditer(conninfo):
        secret = m.group("secret")
        if secret[:1] in ("'", '"'):  # quoted (an unterminated quote runs to the end)
            found.append(secret)
            secret = re.sub(r"\\(.)", r"\1", secret[1:-1] if secret[-1:] == secret[:1] and len(secret) > 1
                            else secret[1:])
        found.append(secret)
    out: list[str] = []
    for secret in found:
        for form in (secret, unquote(secret)):
            if form and form != MASK and form not in out:
                out.append(form)
    return out


def _url_password(conninfo: str) -> str | None:
    """The password of a string that is one URL: from the first ':' of the userinfo to the last '@'."""
    url = _URL.match(conninfo)
    if not url:
        return None
    rest = conninfo[url.end():]
    userinfo = rest[:rest.rfind("@")] if "@" in rest else ""
    return userinfo.split(":", 1)[1] if ":" in userinfo else None


def remember(conninfo: object) -> None:
    """Note the passwords of a connection string (URL or libpq keywords): :func:`mask` removes them from
    every later message, wherever a driver quotes them."""
    if isinstance(conninfo, str):
        _KNOWN.update(passwords(conninfo))


def url_hint(url: str) -> str | None:
    """How to write the password of ``url`` so the driver reads it as written (None: nothing to fix)."""
    bad = sorted({c for c in _url_password(url) or "" if c in "@/?# "})
    if not bad:
        return None
    codes = {"@": "%40", "/": "%2F", "?": "%3F", "#": "%23", " ": "%20"}
    return (f"if the password holds {' or '.join(repr(c) for c in bad)}, percent-encode it in the URL "
            f"({', '.join(f'{c!r} as {codes[c]}' for c in bad)})")

"""Credentials never leave the process in clear: one masking path for every message, log line and record.

:func:`mask` replaces the secret part of every credential form fmduck may see — the password of a URL's
userinfo (``postgresql://u:SECRET@host``, also when the password holds ``@``), a ``password=``
query parameter or libpq keyword (quoted or not), and ``PGPASSWORD=`` — by ``***``. The CLI passes
every error and progress line through it; engines pass their connection errors through it.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<secret>[^\s]*)@(?=[^@\s]*(?:\s|$))")
_KEYWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd|pgpassword)\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|\"[^\"]*\"|"
                      r"[^\s&;,)]+)", re.IGNORECASE)
MASK = "***"


def mask(text: object) -> str:
    """``text`` with every credential replaced by ``***`` (idempotent)."""
    out = _USERINFO.sub(lambda m: m.group("head") + MASK + "@", str(text))
    return _KEYWORD.sub(lambda m: m.group("head") + MASK, out)

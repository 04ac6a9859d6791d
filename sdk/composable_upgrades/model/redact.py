"""Secrets in stack outputs: how to recognise them and keep them out of sight.

A string value is a secret when its key, at any depth, names one: the key
ends with ``password``, ``secret``, ``token`` or ``_key`` (or the variants THT
uses: ``passwd``, ``pwd``, ``authkey``, ``_keys``, ``hash_path_suffix``),
case-insensitive. Matching the end of the key keeps ``keystone_*`` names,
the hiera keys of an authtoken section that are no secret
(``nova::keystone::authtoken::auth_url``) and ``*_secretd`` containers out.
A key that ends so is a secret whatever it holds: every string under a
``keystone_authtoken`` mapping (it ends in ``token``) counts as one. THT puts
secrets in ``config_settings``, ``service_config_settings``,
``keystone_resources`` and ``RoleConfig.global_vars``. Free text (task
messages) is scrubbed of values assigned to keys with the same endings.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "********"

# How a secret key ends: the one definition both checks below use.
_SECRET_ENDINGS = (r"password|passwd|pwd|secret|token|authkey|_keys?"
                   r"|hash_path_suffix|hash_suffix")

_SECRET_KEY = re.compile(f"(?:{_SECRET_ENDINGS})$", re.IGNORECASE)


def is_secret_key(key: object) -> bool:
    """True if a value stored under ``key`` is a secret."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def redact(value: Any, *, under_secret: bool = False) -> Any:
    """A copy of ``value`` with every secret string replaced by ``REDACTED``."""
    if isinstance(value, Mapping):
        return {k: redact(v, under_secret=under_secret or is_secret_key(k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, under_secret=under_secret) for v in value]
    if under_secret and isinstance(value, str) and value:
        return REDACTED
    return value


def secret_values(value: Any, *, under_secret: bool = False) -> set[str]:
    """Every secret string found in ``value`` (to scrub free text with)."""
    found: set[str] = set()
    stack: list[tuple[Any, bool]] = [(value, under_secret)]
    while stack:
        item, secret = stack.pop()
        if isinstance(item, Mapping):
            stack.extend((v, secret or is_secret_key(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, secret) for v in item)
        elif secret and isinstance(item, str) and len(item) >= 4:
            found.add(item)
    return found


# ``password=...``, ``"auth_key": "..."``, ``token: ...`` in free text; not
# ``...::authtoken::auth_url: ...`` (``::`` separates the words of a hiera key).
# A quote may be escaped (a JSON document quoted inside a message). The name
# is matched from the start of a word only and checked by is_secret_key: no
# backtracking over long words, so scrubbing stays linear in the text.
_SEP = r"""\\?["']?\s*(?:=|:(?!:))\s*"""
_QUOTED_SECRET = re.compile(
    r"""(?<![\w.-])(?P<name>[\w.-]+)(?P<sep>""" + _SEP
    + r"""(?P<quote>\\?["']))(?P<value>[^\n]{0,500}?)(?P=quote)""")
_ASSIGNED_SECRET = re.compile(
    r"""(?<![\w.-])(?P<name>[\w.-]+)(?P<sep>""" + _SEP
    + r"""\\?["']?)(?P<value>[^\s"',;}\\]+)""")
# ``--os-password X``, ``--password=X``, ``--os-token X``.
_OPTION_SECRET = re.compile(
    r"""(?<![\w-])(?P<name>--[\w-]+)(?P<sep>(?:\s+|=)["']?)(?P<value>[^\s"']+)""")
# ``scheme://user:PASSWORD@host`` (database and message queue URLs).
_URL_CREDENTIALS = re.compile(
    r"""(?P<sep>\b[a-z][a-z0-9+.-]{0,30}://[^\s:/@'"]{0,200}:)(?P<value>[^\s@/'"]{1,500})(?=@)""",
    re.IGNORECASE)
# ``Authorization: Bearer X`` (and Basic, Token...), ``Proxy-Authorization``.
_AUTHORIZATION = re.compile(
    r"""(?P<sep>authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token|"""
    r"""digest|negotiate)\s+)?)(?P<value>[^\s"',;}]+)""", re.IGNORECASE)
# SQL: ``IDENTIFIED BY 'X'``, ``PASSWORD 'X'``.
_SQL_PASSWORD = re.compile(
    r"""(?P<sep>\b(?:identified\s+by|password)\s+(?P<quote>["']))"""
    r"""(?P<value>[^\n]{0,500}?)(?P=quote)""", re.IGNORECASE)

_FORMS = (_URL_CREDENTIALS, _OPTION_SECRET, _AUTHORIZATION, _SQL_PASSWORD,
          _QUOTED_SECRET, _ASSIGNED_SECRET)


def _mask(match: re.Match[str], depth: int = 0) -> str:
    found = match.groupdict()
    name = found.get("name")
    if name is not None and not is_secret_key(name.strip("\\\"'")):
        # Not a secret's name, but its value may hold one (``denied:
        # password=X``): the match took it, so scrub it here.
        whole, value = match.group(0), match.group("value")
        if depth >= _NESTING:
            return whole
        start = match.start("value") - match.start(0)
        return (whole[:start] + _scrub_forms(value, depth + 1)
                + whole[start + len(value):])
    return ((name or "") + match.group("sep") + REDACTED
            + (found.get("quote") or ""))


def scrub_text(text: str) -> str:
    """``text`` with secrets replaced by ``REDACTED``, found by their form.

    Masked: values assigned to secret-named keys (``key=value``, ``key:
    value``, quoted or not), URL credentials (``mysql://nova:X@db``),
    ``--os-password X``, ``Authorization: Bearer X``, SQL ``IDENTIFIED BY
    'X'``. The outputs' own secret values, wherever they appear, are
    :class:`~.secret_digests.SecretDigests`' to mask.
    """
    if not text:
        return text
    return _scrub_forms(text)


#: How deep ``a: b=c: password=X`` is looked into (each level a rescan of
#: the shorter value; bounded, so scrubbing stays linear).
_NESTING = 4


def _scrub_forms(text: str, depth: int = 0) -> str:
    mask = functools.partial(_mask, depth=depth)
    for form in _FORMS:
        text = form.sub(mask, text)
    return text

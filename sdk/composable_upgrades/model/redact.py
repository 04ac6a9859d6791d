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
_ASSIGNED_SECRET = re.compile(
    r"""(?P<key>[\w.-]*(?:""" + _SECRET_ENDINGS
    + r""")["']?\s*(?:=|:(?!:))\s*["']?)"""
    r"""(?P<value>[^\s"',;}]+)""", re.IGNORECASE)


def scrub_text(text: str) -> str:
    """``text`` with values assigned to secret-named keys replaced."""
    if not text:
        return text
    return _ASSIGNED_SECRET.sub(lambda m: m.group("key") + REDACTED, text)

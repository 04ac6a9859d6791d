"""The outputs' secret values, kept as keyed digests to mask them verbatim.

Pattern scrubbing (:func:`~.redact.scrub_text`) finds a secret by what
surrounds it (``password=X``, ``mysql://nova:X@db``); a task that prints a
bare password (``login failed: X``) gets past it. Prepare knows the values;
a run must not keep them. So prepare keeps a keyed digest of each secret
value, and a run masks every word of a message whose digest is one of them.

What counts: a string stored under a secret-named key
(:func:`~.redact.is_secret_key`), at any depth, that looks like a secret: at least :data:`MIN_LENGTH` characters with at least two of
lower case, upper case, digits and punctuation other than ``_``. That keeps
out ``tripleo_upgrade_key: mysql_node_names_override`` (a name) and short
words, which would mask ordinary text. A multi-line value (a PEM key) gives
each line long enough. Values outside that (an all-lowercase password) are
left to the pattern scrubbing.

The key of the digests is derived from the values themselves, so the same
outputs give the same file, and a reader without the values learns none.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from composable_upgrades.errors import WorkdirError
from composable_upgrades.model.redact import REDACTED, secret_values

#: The file of the plan folder that holds them.
SECRET_DIGESTS_FILE = "secret-digests.json"
#: Shortest value masked verbatim.
MIN_LENGTH = 8
#: The digest, as written in the file.
ALGORITHM = "blake2b-128"

# A word of a message, three ways, so a secret is one whole word in one of
# them: between blanks and quotes; a run of base64 and URL-safe characters
# (``=`` only as trailing padding, so ``key=X`` gives ``X``); letters and
# digits only.
_WORDS = (re.compile(r"""[^\s"'`,;()\[\]{}<>]+"""),
          re.compile(r"[A-Za-z0-9+/_.~-]+={0,2}"),
          re.compile(r"[A-Za-z0-9]+"))
_CLASSES = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"),
            re.compile(r"[^A-Za-z0-9_\s]"))


@dataclass(frozen=True)
class SecretDigests:
    """Keyed digests of secret values, and the lengths they have."""

    key: bytes = b""
    digests: frozenset[bytes] = frozenset()
    lengths: frozenset[int] = frozenset()

    @classmethod
    def of(cls, values: Iterable[str]) -> SecretDigests:
        """The digests of ``values`` (each as :func:`secret_words` splits it)."""
        words = sorted({w for v in values for w in secret_words(v)})
        if not words:
            return cls()
        key = hashlib.blake2b("\0".join(words).encode("utf-8", "surrogatepass"),
                              digest_size=16, person=b"cu-digest-key").digest()
        digests = cls(key=key)
        return cls(key=key, digests=frozenset(digests.digest(w) for w in words),
                   lengths=frozenset(len(w) for w in words))

    @classmethod
    def of_outputs(cls, data: Any) -> SecretDigests:
        """The digests of every secret value in stack outputs' ``data``."""
        return cls.of(secret_values(data))

    def digest(self, word: str) -> bytes:
        """The keyed digest of ``word``."""
        return hashlib.blake2b(word.encode("utf-8", "surrogatepass"),
                               key=self.key, digest_size=16).digest()

    def __bool__(self) -> bool:
        return bool(self.digests)

    def mask(self, text: str) -> str:
        """``text`` with every word that is a known secret replaced by ``REDACTED``."""
        if not self.digests or not text:
            return text
        spans = []
        for words in _WORDS:
            for match in words.finditer(text):
                if len(match.group()) in self.lengths \
                        and self.digest(match.group()) in self.digests:
                    spans.append(match.span())
        if not spans:
            return text
        out, at = [], 0
        for start, end in sorted(spans):
            if end <= at:
                continue
            out.append(text[at:max(start, at)])
            if start >= at:
                out.append(REDACTED)
            at = end
        out.append(text[at:])
        return "".join(out)

    def to_json(self) -> str:
        """The file form: sorted, so the same values give the same bytes."""
        return json.dumps({"algorithm": ALGORITHM, "key": self.key.hex(),
                           "lengths": sorted(self.lengths),
                           "digests": sorted(d.hex() for d in self.digests)},
                          indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SecretDigests:
        """Read :meth:`to_json`'s form (ValueError when it is not that)."""
        data = json.loads(text)
        if not isinstance(data, Mapping) or data.get("algorithm") != ALGORITHM:
            raise ValueError(f"not a {ALGORITHM} digest file")
        return cls(key=bytes.fromhex(data["key"]),
                   digests=frozenset(bytes.fromhex(d) for d in data["digests"]),
                   lengths=frozenset(int(n) for n in data["lengths"]))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SecretDigests:
        """The digests in ``path``; none when there is no such file (a plan
        prepared before they were kept).

        A damaged file raises :class:`~composable_upgrades.errors.WorkdirError`:
        masking nothing would be a silent leak.
        """
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as exc:
            raise WorkdirError(f"cannot read the secret digests: {exc}; prepare "
                               "again", path=os.fspath(path)) from exc
        try:
            return cls.from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            raise WorkdirError(f"damaged secret digests ({exc}); prepare again "
                               "with --force", path=os.fspath(path)) from exc


def secret_words(value: str) -> list[str]:
    """The parts of a secret value masked verbatim (see the module's rules)."""
    parts = value.split()
    least = MIN_LENGTH if len(parts) == 1 else 2 * MIN_LENGTH
    return [p for p in parts if len(p) >= least and _looks_secret(p)]


def _looks_secret(word: str) -> bool:
    if "{{" in word or "%{" in word or "://" in word:
        return False  # a template, a hiera lookup or a URL: not a value
    return sum(1 for c in _CLASSES if c.search(word)) >= 2

"""Secrets: the key check and the free-text scrubber agree on what is secret."""

from __future__ import annotations

import pytest

from composable_upgrades.model.redact import REDACTED, is_secret_key, scrub_text

KEYS = [
    # secret
    "password", "mysql::server::root_password", "hacluster_pwd", "db_passwd",
    "keystone::admin_token", "shared_secret", "remote_authkey", "ssh_key",
    "authorized_keys", "swift_hash_path_suffix", "keystone_authtoken",
    # not secret: the same words, not at the end
    "keystone::token_provider", "nova_virtsecretd", "password_file",
    "cinder::keystone::authtoken::auth_url", "tripleo_keystone_image",
    "secret_backend", "token_expiration",
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("form", ["{key}=value1", "{key}: value1",
                                  '"{key}": "value1"', "'{key}' = 'value1'"])
def test_scrub_text_agrees_with_is_secret_key(key: str, form: str) -> None:
    text = f"before {form.format(key=key)} after"
    scrubbed = scrub_text(text)
    if is_secret_key(key):
        assert "value1" not in scrubbed and REDACTED in scrubbed
        assert scrubbed.startswith(f"before {form.format(key=key)[:len(key)]}")
    else:
        assert scrubbed == text


def test_scrub_text_keeps_the_rest_of_the_line() -> None:
    assert scrub_text("rc=1 password=hunter2, user=admin") \
        == f"rc=1 password={REDACTED}, user=admin"


def test_a_secret_assigned_inside_another_value_is_masked() -> None:
    from composable_upgrades.model.redact import scrub_text
    assert scrub_text("access denied: password=Sup3rSecret for root") == \
        "access denied: password=******** for root"
    assert scrub_text("error: detail: token=abc123 seen") == \
        "error: detail: token=******** seen"
    # A long chain of names stays linear and untouched.
    chain = ":".join(["a"] * 5000)
    assert scrub_text(chain) == chain

"""The pseudonym secrets file (one HMAC secret per partner: whoever reads it can link every
partner's keys back to students) is read only when others cannot read it; group read is
accepted for a Kubernetes Secret mounted 0440 with fsGroup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.processor.app import read_partner_secrets
from streams.security.client_settings import ClientSettingsError

SECRETS = {"learnwell": "ab" * 32, "measurely": "cd" * 32}


def secrets_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "partner-secrets.json"
    path.write_text(json.dumps(SECRETS))
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o440, 0o640])
def test_a_private_or_group_read_secrets_file_is_read(tmp_path: Path, mode: int) -> None:
    found = read_partner_secrets(secrets_file(tmp_path, mode), ["learnwell", "measurely"])
    assert found == {p: bytes.fromhex(s) for p, s in SECRETS.items()}


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660])
def test_a_secrets_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = secrets_file(tmp_path, mode)
    with pytest.raises(ClientSettingsError, match=f"chmod 600 {path}"):
        read_partner_secrets(path, ["learnwell"])

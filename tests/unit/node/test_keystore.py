"""Key files: created 0600 in a 0700 folder, never overwritten, refused when exposed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from petranode.keystore import KEY_FILES, KeystoreError, NodeKeys, keys_dir, load_keys, save_keys


def test_saved_keys_are_private_and_load_back(tmp_path: Path) -> None:
    keys = NodeKeys.generate()
    save_keys(tmp_path, keys)
    assert stat.S_IMODE(keys_dir(tmp_path).stat().st_mode) == 0o700
    for kind in KEY_FILES:
        assert stat.S_IMODE((keys_dir(tmp_path) / f"{kind}.key").stat().st_mode) == 0o600
    loaded = load_keys(tmp_path)
    assert loaded.router().identity == keys.router().identity
    assert loaded.wallet() == keys.wallet()
    assert "secret" not in repr(loaded) and keys.meter_seed().hex() not in repr(loaded)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    save_keys(tmp_path, NodeKeys.generate())
    with pytest.raises(KeystoreError, match="refusing to overwrite"):
        save_keys(tmp_path, NodeKeys.generate())


def test_refuses_group_readable_file(tmp_path: Path) -> None:
    save_keys(tmp_path, NodeKeys.generate())
    os.chmod(keys_dir(tmp_path) / "wallet.key", 0o640)
    with pytest.raises(KeystoreError, match="readable by group or others"):
        load_keys(tmp_path)


@pytest.mark.parametrize("content", [b"", b"{}", b"[1]", b'{"version":1,"kind":"router","secrets":{}}',
                                     b'{"version":1,"kind":"router","secrets":{"signing_seed":"00","static":"00"}}'])
def test_malformed_key_file(tmp_path: Path, content: bytes) -> None:
    save_keys(tmp_path, NodeKeys.generate())
    path = keys_dir(tmp_path) / "router.key"
    path.write_bytes(content)
    with pytest.raises(KeystoreError):
        load_keys(tmp_path)


def test_missing_keys_say_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="petranode init"):
        load_keys(tmp_path)

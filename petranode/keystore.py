"""A node's secret keys on disk (SPEC §4.1: ``petranode init``).

Four key sets, one file each under ``<data_dir>/keys/`` (a 0700 folder), every file 0600:

=============== ======================================== ===================================
file            secrets (32 bytes each, hex)             used by
=============== ======================================== ===================================
router.key      ``signing_seed`` (Ed25519), ``static``   links, netDb, certificates,
                (X25519)                                  validator and authority signatures
destination.key ``signing_seed`` (Ed25519), ``static``   the garlic destination (SPEC §4.4),
                (X25519)                                  unlinkable to the router
wallet.key      ``spend``, ``view`` (ed25519 scalars)     CryptoNote wallet (SPEC §4.5)
meter.key       ``signing_seed`` (Ed25519)                the smart meter's signatures (§4.8)
=============== ======================================== ===================================

Files are written atomically (temporary file, fsync, rename, fsync of the folder) and created
with mode 0600 from the start, so a secret is never on disk with wider permissions, not even
for an instant. Loading refuses a file that group or others can read, as ssh does.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

from petranode.crypto import _sodium as na
from petranode.crypto.group import Scalar
from petranode.errors import PetranodeError
from petranode.net.identity import RouterKeys

KEYSTORE_VERSION: Final = 1
KEY_FILES: Final[Mapping[str, tuple[str, ...]]] = {
    "router": ("signing_seed", "static"),
    "destination": ("signing_seed", "static"),
    "wallet": ("spend", "view"),
    "meter": ("signing_seed",),
}


class KeystoreError(PetranodeError):
    """A key file is missing, malformed or readable by others."""


@final
@dataclass(frozen=True, slots=True, repr=False)
class NodeKeys:
    """All secrets of one node, as raw 32-byte strings keyed by (file, name)."""

    secrets: Mapping[str, Mapping[str, bytes]]

    def __repr__(self) -> str:
        return "NodeKeys(…)"

    @classmethod
    def generate(cls) -> NodeKeys:
        secrets: dict[str, dict[str, bytes]] = {}
        for kind, names in KEY_FILES.items():
            secrets[kind] = {name: _fresh_secret(kind, name) for name in names}
        return cls(secrets)

    def router(self) -> RouterKeys:
        r = self.secrets["router"]
        return RouterKeys.from_secrets(signing_seed=r["signing_seed"], static_secret=r["static"])

    def destination(self) -> RouterKeys:
        """The destination's key pair has the same shape as a router's, and no link to it."""
        d = self.secrets["destination"]
        return RouterKeys.from_secrets(signing_seed=d["signing_seed"], static_secret=d["static"])

    def wallet(self) -> tuple[Scalar, Scalar]:
        """(spend, view) secret scalars."""
        w = self.secrets["wallet"]
        return Scalar.from_bytes(w["spend"]), Scalar.from_bytes(w["view"])

    def meter_seed(self) -> bytes:
        return self.secrets["meter"]["signing_seed"]


def _fresh_secret(kind: str, name: str) -> bytes:
    if kind == "wallet":
        return Scalar.random().raw
    return na.randombytes(32)


def keys_dir(data_dir: Path) -> Path:
    return data_dir / "keys"


def save_keys(data_dir: Path, keys: NodeKeys) -> None:
    """Write every key file; refuses to overwrite an existing key (that would lose an identity)."""
    folder = keys_dir(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    for kind in KEY_FILES:
        path = folder / f"{kind}.key"
        if path.exists():
            raise KeystoreError(f"{path}: already exists; refusing to overwrite a key")
    for kind, secrets in keys.secrets.items():
        document = {
            "version": KEYSTORE_VERSION,
            "kind": kind,
            "secrets": {name: value.hex() for name, value in secrets.items()},
        }
        write_private_file(folder / f"{kind}.key", json.dumps(document, indent=2).encode() + b"\n")


def load_keys(data_dir: Path) -> NodeKeys:
    folder = keys_dir(data_dir)
    secrets: dict[str, dict[str, bytes]] = {}
    for kind, names in KEY_FILES.items():
        secrets[kind] = _load_key_file(folder / f"{kind}.key", kind, names)
    keys = NodeKeys(secrets)
    try:
        keys.wallet()
    except PetranodeError as exc:
        raise KeystoreError(f"{folder / 'wallet.key'}: not canonical scalars") from exc
    return keys


def _load_key_file(path: Path, kind: str, names: tuple[str, ...]) -> dict[str, bytes]:
    try:
        mode = path.stat().st_mode
        raw = path.read_bytes()
    except OSError as exc:
        raise KeystoreError(f"{path}: cannot read ({exc.strerror}); run 'petranode init'") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeystoreError(f"{path}: readable by group or others; chmod 600 it")
    try:
        document = json.loads(raw)
        if document["version"] != KEYSTORE_VERSION or document["kind"] != kind:
            raise KeystoreError(f"{path}: wrong version or kind")
        values = document["secrets"]
        if set(values) != set(names):
            raise KeystoreError(f"{path}: expected secrets {', '.join(names)}")
        secrets = {name: bytes.fromhex(values[name]) for name in names}
    except (ValueError, KeyError, TypeError) as exc:
        raise KeystoreError(f"{path}: malformed key file") from exc
    for name, value in secrets.items():
        if len(value) != 32:
            raise KeystoreError(f"{path}: {name} must be 32 bytes")
    return secrets


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically create ``path`` with mode 0600 holding ``data``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

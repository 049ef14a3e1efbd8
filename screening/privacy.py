"""Personal data: validation of ID numbers, encryption at rest, keyed look-up hashes
and masking for answers.

ID numbers, names, phones and home addresses are stored only as AES-GCM ciphertexts; the ID number
is also kept as an HMAC-SHA256 (keyed, so a dump cannot be brute-forced over the
small space of PRC ID numbers without the key). Both keys derive from one secret:
``SCREENING_SECRET_KEY`` or, when unset, a random key created once in the data folder.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from screening.config import Settings
from screening.residents.identity import (  # the rules live with residents; re-exported
    ID_TYPES,
    InvalidIdNumber,
    normalize_id_number,
    normalize_name,
)

__all__ = [
    "ID_TYPES",
    "InvalidIdNumber",
    "Vault",
    "load_vault",
    "mask_address",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "normalize_id_number",
    "normalize_name",
]

NONCE_BYTES = 12


def mask_name(name: str) -> str:
    """``张三明`` -> ``张*明``, ``张三`` -> ``张*``: the first and last character stay."""
    name = normalize_name(name)
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_id_number(id_number: str) -> str:
    """``440102198001011234`` -> ``4401**********1234``."""
    keep = 4 if len(id_number) >= 12 else 1
    if len(id_number) <= 2 * keep:
        return "*" * len(id_number)
    return id_number[:keep] + "*" * (len(id_number) - 2 * keep) + id_number[-keep:]


def mask_address(address: str) -> str:
    """``中山路1号3栋502`` -> ``中山路1号****``: the street stays, the door does not."""
    keep = min(6, len(address) // 2)
    return address[:keep] + "*" * 4 if address else ""


def mask_phone(phone: str) -> str:
    """``13812345678`` -> ``138****5678``."""
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


@dataclass(frozen=True, slots=True)
class Vault:
    """Encrypts and hashes personal data with keys derived from one secret."""

    hash_key: bytes
    enc_key: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> Vault:
        def derive(label: bytes) -> bytes:
            return hmac.new(secret, label, hashlib.sha256).digest()

        return cls(
            hash_key=derive(b"screening/id-hash/v1"), enc_key=derive(b"screening/aes-gcm/v1")
        )

    def id_hash(self, id_type: str, normalized_id: str) -> bytes:
        # the one-shot C digest: a query without a nationality hashes ~250 candidates
        return hmac.digest(self.hash_key, f"{id_type}:{normalized_id}".encode(), "sha256")

    def passport_number_hash(self, number: str) -> bytes:
        """A passport's number (as ``check_passport_number`` gives it) without its
        nationality: one probe for a query that names none. Not unique: two countries
        may issue the same number, and the name tells their holders apart."""
        return self.id_hash("passport-number", number)

    def encrypt(self, value: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + _aead(self.enc_key).encrypt(nonce, value.encode(), None)

    def decrypt(self, blob: bytes) -> str:
        nonce, ciphertext = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
        return _aead(self.enc_key).decrypt(nonce, ciphertext, None).decode()


@functools.lru_cache(maxsize=4)
def _aead(key: bytes) -> AESGCM:
    """One cipher object per key: building it costs more than sealing a name (a feed page
    or a census batch opens or seals thousands)."""
    return AESGCM(key)


def load_vault(settings: Settings) -> Vault:
    if settings.secret_key:
        return Vault.from_secret(bytes.fromhex(settings.secret_key))
    path: Path = settings.data_dir / "secret.key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return Vault.from_secret(bytes.fromhex(path.read_text().strip()))

"""Make minisign key pairs and signatures, for the admin's side (keygen and sign; never run on a Mac).

A minisign secret key file is two lines, an untrusted comment and

    base64("Ed" || kdf "Sc"|"\\0\\0" || checksum "B2" || salt (32) || opslimit (8, LE) || memlimit (8, LE)
           || key id (8) || Ed25519 secret key: seed (32) || public key (32) || checksum (32))

The checksum is BLAKE2b-256 of "Ed" || key id || secret key. With kdf "Sc" the last 104 bytes are XORed
with scrypt(password, salt) whose cost libsodium derives from opslimit/memlimit; with kdf zero (minisign
-W) they are stored in the clear. Our files open with minisign and minisign's open here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bootstrapper.errors import SignatureError
from bootstrapper.manifest.signature import (
    PREHASHED,
    TRUSTED_PREFIX,
    UNTRUSTED_PREFIX,
    format_expires,
    key_id_text,
)

#: minisign's defaults (libsodium's scryptsalsa208sha256 "sensitive" limits): N=2^20, r=8, p=1, 1 GiB.
OPSLIMIT_SENSITIVE = 33554432
MEMLIMIT_SENSITIVE = 1073741824
#: The cheap "interactive" limits (N=2^14, 16 MiB): for tests, never for a real key.
OPSLIMIT_INTERACTIVE = 524288
MEMLIMIT_INTERACTIVE = 16777216

_SIG_ALG = b"Ed"
_KDF_SCRYPT = b"Sc"
_KDF_NONE = b"\0\0"
_CHK_ALG = b"B2"
_KEYNUM_SK_BYTES = 8 + 64 + 32
_SECRET_KEY_BYTES = 6 + 32 + 8 + 8 + _KEYNUM_SK_BYTES
#: The most scrypt may cost when opening a key file: minisign's default, doubled. Bounds a hostile file.
_MAX_SCRYPT_N_LOG2 = 21
_MAX_SCRYPT_P = 64


@dataclass(frozen=True)
class _SecretKey:
    key_id: bytes
    seed: bytes
    public: bytes


def generate_keypair(
    comment: str = "bootstrapper secret key",
    *,
    password: str | None = None,
    opslimit: int = OPSLIMIT_SENSITIVE,
    memlimit: int = MEMLIMIT_SENSITIVE,
) -> tuple[str, str]:
    """Return (minisign.pub text, secret key text); the secret key is encrypted only given a password."""
    _one_line("comment", comment)
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes_raw()
    key_id = secrets.token_bytes(8)
    pub_text = (
        f"{UNTRUSTED_PREFIX}minisign public key {key_id_text(key_id)}\n"
        + base64.b64encode(_SIG_ALG + key_id + public).decode()
        + "\n"
    )
    keynum_sk = key_id + seed + public + _checksum(key_id, seed + public)
    if password is None:
        body = _SIG_ALG + _KDF_NONE + _CHK_ALG + bytes(32 + 8 + 8) + keynum_sk
    else:
        salt = secrets.token_bytes(32)
        stream = _scrypt(password, salt, opslimit, memlimit)
        body = (
            _SIG_ALG
            + _KDF_SCRYPT
            + _CHK_ALG
            + salt
            + struct.pack("<QQ", opslimit, memlimit)
            + bytes(a ^ b for a, b in zip(keynum_sk, stream, strict=True))
        )
    sec_text = f"{UNTRUSTED_PREFIX}{comment}\n" + base64.b64encode(body).decode() + "\n"
    return pub_text, sec_text


def sign(
    data: bytes,
    sec_text: str,
    *,
    serial: int | None = None,
    expires: datetime | None = None,
    password: str | None = None,
    comment: str = "signature from bootstrapper secret key",
) -> str:
    """Return the .minisig text for `data` (prehashed "ED"), with serial and expiry in the trusted comment."""
    _one_line("comment", comment)
    if serial is not None and serial < 0:
        raise SignatureError(f"--serial {serial}: give a whole number of 0 or more")
    words = []
    if serial is not None:
        words.append(f"serial={serial}")
    if expires is not None:
        words.append(f"expires={format_expires(expires)}")
    trusted_comment = " ".join(words)
    key = read_secret_key(sec_text, password)
    private = Ed25519PrivateKey.from_private_bytes(key.seed)
    signature = private.sign(hashlib.blake2b(data, digest_size=64).digest())
    global_signature = private.sign(signature + trusted_comment.encode())
    return (
        f"{UNTRUSTED_PREFIX}{comment}\n"
        + base64.b64encode(PREHASHED.encode() + key.key_id + signature).decode()
        + f"\n{TRUSTED_PREFIX}{trusted_comment}\n"
        + base64.b64encode(global_signature).decode()
        + "\n"
    )


def public_key_text(sec_text: str, password: str | None = None) -> str:
    """The minisign.pub text for a secret key (minisign -R), to check which key a CI secret holds."""
    key = read_secret_key(sec_text, password)
    return (
        f"{UNTRUSTED_PREFIX}minisign public key {key_id_text(key.key_id)}\n"
        + base64.b64encode(_SIG_ALG + key.key_id + key.public).decode()
        + "\n"
    )


def is_encrypted(sec_text: str) -> bool:
    """Whether a secret key file needs a password (kdf "Sc"); False for minisign -W keys and junk alike."""
    lines = sec_text.strip().split("\n")
    try:
        raw = base64.b64decode(lines[-1].strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return raw[2:4] == _KDF_SCRYPT


def read_secret_key(sec_text: str, password: str | None = None) -> _SecretKey:
    """Open a minisign secret key file, decrypting it with `password` when it is encrypted."""
    lines = [line.strip() for line in sec_text.strip().split("\n")]
    bad = "secret key: malformed, not a minisign secret key file; give the file made by minisign -G or keygen"
    if len(lines) != 2 or not lines[0].startswith(UNTRUSTED_PREFIX.strip()):
        raise SignatureError(bad)
    try:
        raw = base64.b64decode(lines[1], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(bad) from None
    if len(raw) != _SECRET_KEY_BYTES or raw[:2] != _SIG_ALG or raw[4:6] != _CHK_ALG:
        raise SignatureError(bad)
    kdf, salt, keynum_sk = raw[2:4], raw[6:38], raw[54:]
    opslimit, memlimit = struct.unpack("<QQ", raw[38:54])
    if kdf == _KDF_SCRYPT:
        if password is None:
            raise SignatureError("secret key: it is encrypted; give its password")
        stream = _scrypt(password, salt, opslimit, memlimit)
        keynum_sk = bytes(a ^ b for a, b in zip(keynum_sk, stream, strict=True))
    elif kdf != _KDF_NONE:
        raise SignatureError(f"secret key: unknown key derivation {kdf!r} (expected 'Sc' or none)")
    key_id, secret, checksum = keynum_sk[:8], keynum_sk[8:72], keynum_sk[72:]
    # minisign -W leaves the checksum zero; an encrypted key always has one, and it is what tells a
    # wrong password from a right one.
    if (kdf == _KDF_SCRYPT or any(checksum)) and checksum != _checksum(key_id, secret):
        if kdf == _KDF_SCRYPT:
            raise SignatureError("secret key: wrong password (its checksum does not match)")
        raise SignatureError("secret key: corrupted (its checksum does not match); restore it from a backup")
    seed, public = secret[:32], secret[32:]
    if Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw() != public:
        raise SignatureError("secret key: corrupted (its halves do not match); restore it from a backup")
    return _SecretKey(key_id, seed, public)


def scrypt_params(opslimit: int, memlimit: int) -> tuple[int, int, int]:
    """libsodium's mapping of (opslimit, memlimit) to scrypt's (log2 N, r, p), which minisign relies on."""
    opslimit = max(opslimit, 32768)
    r = 8
    if opslimit < memlimit // 32:
        p = 1
        max_n = opslimit // (r * 4)
    else:
        max_n = memlimit // (r * 128)
    n_log2 = 1
    while n_log2 < 63 and (1 << n_log2) <= max_n // 2:
        n_log2 += 1
    if opslimit >= memlimit // 32:
        max_rp = min((opslimit // 4) // (1 << n_log2), 0x3FFFFFFF)
        p = max_rp // r
    return n_log2, r, p


def _scrypt(password: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    n_log2, r, p = scrypt_params(opslimit, memlimit)
    if n_log2 > _MAX_SCRYPT_N_LOG2 or not 1 <= p <= _MAX_SCRYPT_P:
        raise SignatureError(
            f"secret key: its scrypt limits (opslimit {opslimit}, memlimit {memlimit}) are out of range; "
            "re-create it with minisign -G or keygen"
        )
    memory = 128 * r * ((1 << n_log2) + 2 + p)
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=1 << n_log2,
        r=r,
        p=p,
        maxmem=memory + (1 << 20),
        dklen=_KEYNUM_SK_BYTES,
    )


def _checksum(key_id: bytes, secret: bytes) -> bytes:
    return hashlib.blake2b(_SIG_ALG + key_id + secret, digest_size=32).digest()


def _one_line(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise SignatureError(f"{name} {value!r}: must be one line; remove the line break")

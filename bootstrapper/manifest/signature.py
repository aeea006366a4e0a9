"""Verify a manifest's minisign signature: bytes and text in, a verdict or a one-line refusal out.

The format is minisign's own (https://jedisct1.github.io/minisign/), so admins can sign with the real
`minisign` and we can check what it made. A signature file is four lines:

    untrusted comment: <free text, not covered by any signature>
    base64(algorithm "Ed"|"ED" || key id (8 bytes) || Ed25519 signature (64 bytes))
    trusted comment: <text covered by the global signature>
    base64(Ed25519 global signature over signature || trusted comment)

"Ed" signs the file itself (legacy); "ED" signs its BLAKE2b-512 digest (minisign's default). The trusted
comment carries our freshness fields, `serial=N expires=YYYY-MM-DDTHH:MM:SSZ`: both are optional and
unknown words (minisign's default `timestamp:... file:...`) are ignored.

Nothing here reads files, clocks or settings: callers pass the text, `now` and the serials, so every
refusal can be tested without a Mac.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bootstrapper.errors import SignatureError

#: Algorithm tags, as minisign writes them.
LEGACY = "Ed"
PREHASHED = "ED"

KEY_ID_BYTES = 8
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64

UNTRUSTED_PREFIX = "untrusted comment: "
TRUSTED_PREFIX = "trusted comment: "

_EXPIRES = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class PublicKey:
    """A trusted minisign public key; `key_id` as minisign prints it (upper hex, no leading zeros)."""

    key_id: str
    key: bytes


@dataclass(frozen=True)
class Signature:
    """A parsed .minisig file; nothing in it is trusted until `verify` has checked both signatures."""

    algorithm: str
    key_id: str
    signature: bytes
    trusted_comment: str
    global_signature: bytes
    untrusted_comment: str = ""


@dataclass(frozen=True)
class Verified:
    """What a good signature vouches for: who signed, and the freshness fields of its trusted comment."""

    key_id: str
    serial: int | None
    expires: datetime | None
    trusted_comment: str


def key_id_text(raw: bytes) -> str:
    """minisign prints the 8 key-id bytes as a little-endian 64-bit number (`%PRIX64`: bytes reversed,
    and no leading zeros, so an id may have fewer than 16 digits)."""
    return f"{int.from_bytes(raw, 'little'):X}"


def format_expires(when: datetime) -> str:
    """The one spelling of an expiry in a trusted comment: UTC, whole seconds, a trailing Z."""
    if when.tzinfo is None:
        raise SignatureError(f"expires {when.isoformat()}: give a time zone, e.g. 2030-01-01T00:00:00Z")
    return when.astimezone(UTC).strftime(_EXPIRES_FORMAT)


def parse_expires(text: str) -> datetime:
    """Read `YYYY-MM-DDTHH:MM:SSZ` (UTC) only, so the signer and the Mac agree on the instant."""
    if not _EXPIRES.fullmatch(text):
        raise SignatureError(
            f"expires {text!r}: expected YYYY-MM-DDTHH:MM:SSZ in UTC, e.g. 2030-01-01T00:00:00Z"
        )
    try:
        return datetime.strptime(text, _EXPIRES_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(f"expires {text!r}: not a real date and time; check the day and month") from None


def parse_trusted_comment(text: str) -> tuple[int | None, datetime | None]:
    """Pull `serial=` and `expires=` out of a trusted comment; raises ValueError naming the bad word."""
    serial: int | None = None
    expires: datetime | None = None
    seen: set[str] = set()
    for word in text.split():
        name, sep, value = word.partition("=")
        if not sep or name not in {"serial", "expires"}:
            continue
        if name in seen:
            raise ValueError(f"{name} appears twice in the trusted comment")
        seen.add(name)
        if name == "serial":
            if not (value.isascii() and value.isdigit()) or len(value) > 18:
                raise ValueError(f"serial={value!r} is not a whole number below 10^18")
            serial = int(value)
        else:
            try:
                expires = parse_expires(value)
            except SignatureError as err:
                raise ValueError(str(err)) from None
    return serial, expires


def parse_public_key(text: str) -> PublicKey:
    """Read a minisign public key: the base64 line of minisign.pub, or the whole two-line file."""
    lines = [line.strip() for line in text.strip().split("\n") if line.strip()]
    if len(lines) == 2 and lines[0].startswith(UNTRUSTED_PREFIX.strip()):
        lines = lines[1:]
    shown = _shown(text.strip())
    if len(lines) != 1:
        raise SignatureError(
            f"public key {shown}: expected one base64 line (the second line of minisign.pub); "
            "give that line as the key"
        )
    raw = _b64(lines[0])
    if raw is None or len(raw) != 2 + KEY_ID_BYTES + PUBLIC_KEY_BYTES:
        raise SignatureError(
            f"public key {shown}: malformed, not a minisign public key (42 bytes in base64); "
            "copy the second line of minisign.pub"
        )
    if raw[:2] != LEGACY.encode():
        raise SignatureError(
            f"public key {shown}: malformed, unknown algorithm {raw[:2]!r} (expected 'Ed'); "
            "use a key made by minisign -G or bootstrapper keygen"
        )
    return PublicKey(key_id_text(raw[2:10]), raw[10:])


def parse_signature(text: str | bytes, *, source: str = "manifest.minisig") -> Signature:
    """Read the four lines of a .minisig file; `source` names it in the one-line error."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise _malformed(source, "not UTF-8 text") from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    if len(lines) != 4:
        raise _malformed(source, f"{len(lines)} lines, expected 4")
    untrusted, sig_line, trusted, global_line = lines
    if not untrusted.startswith(UNTRUSTED_PREFIX):
        raise _malformed(source, f"line 1 should start with {UNTRUSTED_PREFIX!r}")
    if not trusted.startswith(TRUSTED_PREFIX):
        raise _malformed(source, f"line 3 should start with {TRUSTED_PREFIX!r}")
    raw = _b64(sig_line)
    if raw is None or len(raw) != 2 + KEY_ID_BYTES + SIGNATURE_BYTES:
        raise _malformed(source, "line 2 is not a base64 minisign signature (74 bytes)")
    algorithm = raw[:2].decode("latin-1")
    if algorithm not in {LEGACY, PREHASHED}:
        raise _malformed(source, f"unknown signature algorithm {algorithm!r} (expected 'ED' or 'Ed')")
    global_signature = _b64(global_line)
    if global_signature is None or len(global_signature) != SIGNATURE_BYTES:
        raise _malformed(source, "line 4 is not a base64 Ed25519 signature (64 bytes)")
    return Signature(
        algorithm=algorithm,
        key_id=key_id_text(raw[2:10]),
        signature=raw[10:],
        trusted_comment=trusted.removeprefix(TRUSTED_PREFIX),
        global_signature=global_signature,
        untrusted_comment=untrusted.removeprefix(UNTRUSTED_PREFIX),
    )


def verify(
    data: bytes,
    sig_text: str | bytes | None,
    keys: Sequence[PublicKey],
    *,
    now: datetime,
    min_serial: int = 0,
    last_serial: int | None = None,
    source: str = "manifest",
) -> Verified:
    """Check that one of `keys` signed `data` and that the signature is still fresh; raise SignatureError.

    `sig_text` is the .minisig content (None when there is none). `source` names the manifest in the
    error; its signature is called `<source>.minisig`. Freshness: `now` must be before `expires`, and the
    serial must reach both `min_serial` (the profile's floor) and `last_serial` (the highest one this Mac
    already accepted), which is what stops an old, validly signed manifest from being replayed.
    """
    if now.tzinfo is None:
        raise ValueError("verify() needs an aware `now`, e.g. datetime.now(UTC)")
    sig_source = f"{source}.minisig"
    if sig_text is None or not sig_text.strip():
        raise SignatureError(
            f"{sig_source}: signature missing; sign the manifest (minisign -S or bootstrapper sign) "
            "and publish the .minisig beside it"
        )
    if not keys:
        raise SignatureError(
            f"{source}: no manifest_public_keys are configured, so no signature can be trusted; "
            "add the base64 line of minisign.pub to the profile"
        )
    sig = parse_signature(sig_text, source=sig_source)
    key = next((k for k in keys if k.key_id == sig.key_id), None)
    if key is None:
        trusted = ", ".join(k.key_id for k in keys)
        raise SignatureError(
            f"{source}: signed by key {sig.key_id}, this Mac trusts {trusted}; "
            "sign with a trusted key or add this one to manifest_public_keys"
        )
    public = Ed25519PublicKey.from_public_bytes(key.key)
    message = data if sig.algorithm == LEGACY else hashlib.blake2b(data, digest_size=64).digest()
    try:
        public.verify(sig.signature, message)
    except InvalidSignature:
        raise SignatureError(
            f"{source}: bad signature from key {key.key_id}: the manifest is not the file that was signed "
            "(changed after signing?); re-sign it"
        ) from None
    try:
        public.verify(sig.global_signature, sig.signature + sig.trusted_comment.encode())
    except InvalidSignature:
        raise SignatureError(
            f"{sig_source}: the trusted comment's global signature is bad (the comment was altered); "
            "re-sign the manifest"
        ) from None
    try:
        serial, expires = parse_trusted_comment(sig.trusted_comment)
    except ValueError as err:
        raise _malformed(sig_source, str(err)) from None
    if expires is not None and now >= expires:
        raise SignatureError(
            f"{source}: signature expired at {format_expires(expires)} (now {format_expires(now)}); "
            "re-sign it with a later --expires"
        )
    shown = "no serial" if serial is None else f"serial {serial}"
    if min_serial > 0 and (serial or 0) < min_serial:
        raise SignatureError(
            f"{source}: {shown} is below manifest_min_serial {min_serial}; "
            f"re-sign it with --serial {min_serial} or higher"
        )
    if last_serial is not None and (serial or 0) < last_serial:
        raise SignatureError(
            f"{source}: {shown} is below serial {last_serial}, the highest this Mac already accepted "
            f"(an old manifest replayed?); publish one signed with --serial {last_serial} or higher"
        )
    return Verified(key.key_id, serial, expires, sig.trusted_comment)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _shown(text: str) -> str:
    first = text.rsplit("\n", maxsplit=1)[-1].strip() if text else ""
    return repr(first if len(first) <= 24 else first[:20] + "...")


def _malformed(source: str, why: str) -> SignatureError:
    return SignatureError(f"{source}: malformed signature file ({why}); re-create it with minisign -S")

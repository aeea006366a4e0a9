"""Re-sign a real signed package with our own key: a forgery a team check must refuse.

The RSA `<signature>`'s leaf certificate is replaced by a self-signed one that claims any name and
team, the TOC checksum is recomputed and signed with our key, so the signature really matches the
leaf; only the chain to Apple's root is wrong. The heap layout (checksum at 0, signature at 20,
SHA-1, 2048-bit RSA) is that of tests/data/pkgs/installomator-10.3-signed.pkg.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import struct
import zlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.x509.oid import NameOID

_HEADER = struct.Struct(">4sHHQQI")
_CERT = re.compile(r"<X509Certificate>(.*?)</X509Certificate>", re.S)


def self_signed(common_name: str, team: str) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.DER)


def forge(src: Path, dest: Path, common_name: str, team: str, *, keep_apple_chain: bool) -> Path:
    """Write `dest`: `src` with its RSA signature's leaf replaced and the TOC re-signed by our key.

    `keep_apple_chain` keeps Apple's intermediate and root after our leaf (the leaf then claims
    an issuer that did not sign it); otherwise our leaf is the whole chain.
    """
    data = src.read_bytes()
    magic, size, version, toc_len, _, cksum_alg = _HEADER.unpack(data[: _HEADER.size])
    toc = zlib.decompress(data[size : size + toc_len]).decode()
    heap = bytearray(data[size + toc_len :])
    start = toc.index('<signature style="RSA">')
    end = toc.index("</signature>", start)
    block = toc[start:end]
    key, der = self_signed(common_name, team)
    ours = f"<X509Certificate>{base64.b64encode(der).decode()}</X509Certificate>"
    certs = list(_CERT.finditer(block))
    tail = "".join(m.group(0) for m in certs[1:]) if keep_apple_chain else ""
    block = block[: certs[0].start()] + ours + tail + block[certs[-1].end() :]
    new_toc = (toc[:start] + block + toc[end:]).encode()
    packed = zlib.compress(new_toc)
    digest = hashlib.sha1(packed).digest()  # noqa: S324 - the format xar signs
    heap[0:20] = digest
    heap[20:276] = key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))  # noqa: S303
    header = _HEADER.pack(magic, size, version, len(packed), len(new_toc), cksum_alg)
    dest.write_bytes(header + data[_HEADER.size : size] + packed + bytes(heap))
    return dest

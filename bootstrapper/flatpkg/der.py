"""Just enough DER to name a package's signer and check its RSA signature, with no dependency.

From an X.509 certificate we read the subject and issuer common names and the RSA public key;
with the key, a PKCS#1 v1.5 signature over the TOC checksum can be checked with `pow()`. Trust
in the chain (Developer ID → Apple Root CA) is not evaluated here: that is Gatekeeper's job on
the Mac, and `installer` does it anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

_SEQUENCE = 0x30
_SET = 0x31
_OID = 0x06
_INTEGER = 0x02
_BIT_STRING = 0x03
_CN = bytes.fromhex("550403")  # 2.5.4.3 commonName
_OU = bytes.fromhex("55040b")  # 2.5.4.11 organizationalUnitName (the Developer ID team)
_RSA = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1 rsaEncryption
#: DigestInfo prefixes of PKCS#1 v1.5 signatures, by hash.
DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


#: RSA keys beyond these are not in use; `pow()` with a 16384-bit modulus and exponent takes ~10 s.
MAX_RSA_BITS = 8192
MAX_RSA_EXPONENT_BITS = 64


class DERError(ValueError):
    """The bytes are not the DER structure expected."""


@dataclass(frozen=True)
class Certificate:
    common_name: str
    issuer_common_name: str
    organizational_unit: str
    rsa_modulus: int | None
    rsa_exponent: int | None


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the element at `pos`."""
    if pos + 2 > len(data):
        raise DERError("truncated element")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise DERError("unsupported or truncated length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise DERError("element runs past the end")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    pos = start
    while pos < end:
        tag, vs, ve = _tlv(data, pos)
        if ve > end:
            raise DERError("child runs past its parent")
        yield tag, vs, ve
        pos = ve


def _name(data: bytes, start: int, end: int, oid: bytes) -> str:
    for tag, s, e in _children(data, start, end):
        if tag != _SET:
            continue
        for _, as_, ae in _children(data, s, e):
            parts = list(_children(data, as_, ae))
            if len(parts) == 2 and parts[0][0] == _OID and data[parts[0][1] : parts[0][2]] == oid:
                value = data[parts[1][1] : parts[1][2]]
                if parts[1][0] == 0x1E:  # BMPString
                    return value.decode("utf-16-be", "replace")
                return value.decode("utf-8", "replace")
    return ""


def parse_certificate(der: bytes) -> Certificate:
    """Read subject/issuer names and the RSA key from an X.509 certificate.

    Any shape this reader does not expect is one `DERError`, whatever the bytes: a child list that
    is empty, a name that does not decode, a field that is missing.
    """
    try:
        return _certificate(der)
    except DERError:
        raise
    except (ValueError, IndexError, StopIteration) as exc:
        raise DERError(f"malformed certificate ({type(exc).__name__}: {exc})") from None


def _certificate(der: bytes) -> Certificate:
    tag, s, e = _tlv(der, 0)
    if tag != _SEQUENCE:
        raise DERError("a certificate is a SEQUENCE")
    tbs_tag, ts, te = next(_children(der, s, e))
    if tbs_tag != _SEQUENCE:
        raise DERError("tbsCertificate is a SEQUENCE")
    fields = list(_children(der, ts, te))
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    if len(fields) < 6:
        raise DERError("tbsCertificate is too short")
    _serial, _alg, issuer, _validity, subject, spki = fields[:6]
    modulus = exponent = None
    spki_parts = list(_children(der, spki[1], spki[2]))
    if len(spki_parts) == 2 and spki_parts[1][0] == _BIT_STRING:
        alg_oid = next(_children(der, spki_parts[0][1], spki_parts[0][2]))
        if der[alg_oid[1] : alg_oid[2]] == _RSA:
            key = der[spki_parts[1][1] + 1 : spki_parts[1][2]]  # skip the unused-bits byte
            _, ks, ke = _tlv(key, 0)
            ints = list(_children(key, ks, ke))
            if len(ints) == 2 and all(t == _INTEGER for t, _, _ in ints):
                modulus = int.from_bytes(key[ints[0][1] : ints[0][2]], "big")
                exponent = int.from_bytes(key[ints[1][1] : ints[1][2]], "big")
    return Certificate(
        common_name=_name(der, subject[1], subject[2], _CN),
        issuer_common_name=_name(der, issuer[1], issuer[2], _CN),
        organizational_unit=_name(der, subject[1], subject[2], _OU),
        rsa_modulus=modulus,
        rsa_exponent=exponent,
    )


def rsa_pkcs1_verify(cert: Certificate, signature: bytes, digest: bytes) -> bool:
    """True when `signature` is the PKCS#1 v1.5 signature of `digest` under the certificate's key."""
    n, e = cert.rsa_modulus, cert.rsa_exponent
    if n is None or e is None or n < 3 or e < 1:
        return False
    if n.bit_length() > MAX_RSA_BITS or e.bit_length() > MAX_RSA_EXPONENT_BITS:
        return False
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    em = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    for prefix in DIGEST_INFO.values():
        tail = prefix + digest
        if em == b"\x00\x01" + b"\xff" * (k - 3 - len(tail)) + b"\x00" + tail:
            return True
    return False

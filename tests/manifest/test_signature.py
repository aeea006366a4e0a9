"""Signed manifests: minisign's own files verify here, ours verify in minisign, and every attack is refused."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bootstrapper.errors import ExitCode, ManifestError, SignatureError
from bootstrapper.manifest import signing
from bootstrapper.manifest.signature import (
    PublicKey,
    Verified,
    key_id_text,
    parse_public_key,
    parse_signature,
    verify,
)

DATA = Path(__file__).parent.parent / "data" / "minisign"
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)
MINISIGN = shutil.which("minisign")
needs_minisign = pytest.mark.skipif(MINISIGN is None, reason="the minisign program is not installed")


def text(name: str) -> str:
    return (DATA / name).read_text()


def key(name: str) -> PublicKey:
    return parse_public_key(text(name))


def check(name: str, keys: list[PublicKey], **kwargs: object) -> Verified:
    """Verify DATA/name against DATA/name.minisig."""
    options: dict[str, object] = {"now": NOW, **kwargs}
    data = (DATA / name).read_bytes()
    return verify(data, text(f"{name}.minisig"), keys, source=name, **options)  # type: ignore[arg-type]


def refusal(data: bytes, sig: str | None, keys: list[PublicKey], **kwargs: object) -> str:
    options: dict[str, object] = {"now": NOW, **kwargs}
    with pytest.raises(SignatureError) as info:
        verify(data, sig, keys, source="m.yaml", **options)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def cheap_keypair(comment: str = "test key", password: str | None = None) -> tuple[str, str]:
    """A key pair whose scrypt cost is libsodium's "interactive" one (16 MiB), to keep tests fast."""
    return signing.generate_keypair(
        comment,
        password=password,
        opslimit=signing.OPSLIMIT_INTERACTIVE,
        memlimit=signing.MEMLIMIT_INTERACTIVE,
    )


def sign_with_comment(data: bytes, sec_text: str, trusted_comment: str) -> str:
    """A signature with any trusted comment, as minisign -t would make it (our `sign` only writes good ones)."""
    secret = signing.read_secret_key(sec_text)
    private = Ed25519PrivateKey.from_private_bytes(secret.seed)
    sig = private.sign(hashlib.blake2b(data, digest_size=64).digest())
    return (
        "untrusted comment: test\n"
        + base64.b64encode(b"ED" + secret.key_id + sig).decode()
        + f"\ntrusted comment: {trusted_comment}\n"
        + base64.b64encode(private.sign(sig + trusted_comment.encode())).decode()
        + "\n"
    )


# --- minisign's vectors ---------------------------------------------------------------------------


def test_minisign_prehashed_signature_verifies() -> None:
    result = check("manifest.yaml", [key("minisign.pub")])
    assert result == Verified("AAE13D5597FDBA5C", 3, EXPIRY, "serial=3 expires=2030-01-01T00:00:00Z")


def test_minisign_legacy_signature_verifies() -> None:
    assert parse_signature(text("legacy.yaml.minisig")).algorithm == "Ed"
    assert check("legacy.yaml", [key("minisign.pub")]).serial == 2


def test_signature_from_minisign_encrypted_key_verifies() -> None:
    assert check("encrypted.yaml", [key("encrypted.pub")]).serial == 4


def test_our_signature_vector_verifies() -> None:
    result = check("ours.yaml", [key("ours.pub")])
    assert (result.key_id, result.serial, result.expires) == ("CB505562F96391B0", 5, EXPIRY)


def test_minisign_signs_with_a_key_we_encrypted() -> None:
    assert check("ours-encrypted.yaml", [key("ours-encrypted.pub")]).serial == 6


@pytest.mark.parametrize("name", ["minisign.pub", "encrypted.pub", "ours.pub", "ours-encrypted.pub"])
def test_key_id_reads_as_minisign_prints_it(name: str) -> None:
    header = text(name).splitlines()[0]
    assert header.endswith(" " + key(name).key_id)
    assert len(key(name).key_id) == 16


def test_key_id_is_the_little_endian_number() -> None:
    assert key_id_text(bytes([0x5C, 0xBA, 0xFD, 0x97, 0x55, 0x3D, 0xE1, 0xAA])) == "AAE13D5597FDBA5C"
    # `%PRIX64`, as minisign prints it: no leading zeros (one key in sixteen starts with a 0 digit)
    assert key_id_text(bytes([0x97, 0x16, 0x55, 0x75, 0x1C, 0x3B, 0x5B, 0x0A])) == "A5B3B1C75551697"


def test_public_key_is_read_from_its_base64_line_or_whole_file() -> None:
    line = text("minisign.pub").splitlines()[1]
    assert parse_public_key(line) == parse_public_key(text("minisign.pub")) == parse_public_key(f"  {line}\n")
    assert len(parse_public_key(line).key) == 32


def test_any_configured_key_may_sign() -> None:
    both = [key("ours.pub"), key("minisign.pub")]
    assert check("manifest.yaml", both).key_id == "AAE13D5597FDBA5C"
    assert check("ours.yaml", both).key_id == "CB505562F96391B0"


def test_signature_error_is_a_bad_input_manifest_error() -> None:
    err = SignatureError("m.yaml: signature missing")
    assert isinstance(err, ManifestError)
    assert err.exit_code is ExitCode.USAGE
    assert int(err.exit_code) == 2
    assert err.problems == ["m.yaml: signature missing"]


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [None, "", "\n"])
def test_missing_signature_is_refused(sig: str | None) -> None:
    message = refusal(b"format: 1\n", sig, [key("minisign.pub")])
    assert message.startswith("m.yaml.minisig: signature missing")


def test_no_trusted_keys_is_refused() -> None:
    message = refusal(b"x", text("manifest.yaml.minisig"), [])
    assert "no manifest_public_keys are configured" in message


def _replace_line(sig: str, index: int, new: str) -> str:
    lines = sig.splitlines()
    lines[index] = new
    return "\n".join(lines) + "\n"


SIG = text("manifest.yaml.minisig")
MALFORMED = {
    "three lines": "\n".join(SIG.splitlines()[:3]),
    "no untrusted prefix": _replace_line(SIG, 0, "comment: x"),
    "no trusted prefix": _replace_line(SIG, 2, "trusted: serial=3"),
    "signature not base64": _replace_line(SIG, 1, "RUR***"),
    "signature too short": _replace_line(SIG, 1, SIG.splitlines()[1][:40]),
    "unknown algorithm": _replace_line(
        SIG, 1, base64.b64encode(b"Xx" + base64.b64decode(SIG.splitlines()[1])[2:]).decode()
    ),
    "global signature truncated": _replace_line(SIG, 3, SIG.splitlines()[3][:20]),
    "extra line": SIG + "more\n",
    "serial not a number": sign_with_comment(b"x", text("ours.key"), "serial=three"),
    "serial twice": sign_with_comment(b"x", text("ours.key"), "serial=3 serial=4"),
    "expires not UTC": sign_with_comment(b"x", text("ours.key"), "expires=2030-01-01T00:00:00+01:00"),
    "expires not a date": sign_with_comment(b"x", text("ours.key"), "expires=2030-02-30T00:00:00Z"),
}


@pytest.mark.parametrize("sig", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signature_file_is_refused(sig: str) -> None:
    message = refusal(b"x", sig, [key("minisign.pub"), key("ours.pub")])
    assert message.startswith("m.yaml.minisig: malformed signature file (")


def test_non_utf8_signature_file_is_refused() -> None:
    message = refusal(b"x", b"\xff\xfe" + SIG.encode(), [key("minisign.pub")])  # type: ignore[arg-type]
    assert "malformed signature file (not UTF-8 text)" in message


PUB_LINE = text("minisign.pub").splitlines()[1]
BAD_KEYS = {
    "empty": "",
    "not base64": "RWQ***",
    "too short": PUB_LINE[:30],
    "a signature line": SIG.splitlines()[1],
    "wrong algorithm": base64.b64encode(b"ED" + base64.b64decode(PUB_LINE)[2:]).decode(),
    "three lines": text("minisign.pub") + PUB_LINE,
}


@pytest.mark.parametrize("bad", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_malformed_public_key_is_refused(bad: str) -> None:
    with pytest.raises(SignatureError) as info:
        parse_public_key(bad)
    assert str(info.value).startswith("public key ")
    assert "minisign.pub" in str(info.value) or "minisign -G" in str(info.value)


def test_signature_by_another_key_is_refused_with_both_ids() -> None:
    message = refusal(
        (DATA / "manifest.yaml").read_bytes(), SIG, [key("ours.pub"), key("ours-encrypted.pub")]
    )
    assert message.startswith(
        "m.yaml: signed by key AAE13D5597FDBA5C, this Mac trusts CB505562F96391B0, 886B829D36F5FECF;"
    )


@pytest.mark.parametrize("name", ["manifest.yaml", "legacy.yaml"])
@pytest.mark.parametrize("where", [0, 40, -1])
def test_one_changed_byte_is_refused(name: str, where: int) -> None:
    data = bytearray((DATA / name).read_bytes())
    data[where] ^= 0x01
    message = refusal(bytes(data), text(f"{name}.minisig"), [key("minisign.pub")])
    assert message.startswith("m.yaml: bad signature from key AAE13D5597FDBA5C")


def test_signature_moved_to_another_file_is_refused() -> None:
    message = refusal((DATA / "manifest.yaml").read_bytes() + b"\n", SIG, [key("minisign.pub")])
    assert "bad signature" in message


def test_altered_trusted_comment_is_refused() -> None:
    raised = SIG.replace("serial=3 ", "serial=99 ")
    assert raised != SIG
    message = refusal((DATA / "manifest.yaml").read_bytes(), raised, [key("minisign.pub")])
    assert message.startswith("m.yaml.minisig: the trusted comment's global signature is bad")


def test_expired_signature_is_refused() -> None:
    data = (DATA / "manifest.yaml").read_bytes()
    assert verify(data, SIG, [key("minisign.pub")], now=EXPIRY - timedelta(seconds=1)).serial == 3
    message = refusal(data, SIG, [key("minisign.pub")], now=EXPIRY)
    assert message.startswith("m.yaml: signature expired at 2030-01-01T00:00:00Z (now 2030-01-01T00:00:00Z)")


def test_expiry_compares_instants_across_time_zones() -> None:
    paris = EXPIRY.astimezone(datetime.fromisoformat("2030-01-01T01:00:00+01:00").tzinfo)
    message = refusal((DATA / "manifest.yaml").read_bytes(), SIG, [key("minisign.pub")], now=paris)
    assert "expired" in message


def test_serial_below_min_serial_is_refused() -> None:
    data = (DATA / "manifest.yaml").read_bytes()
    assert verify(data, SIG, [key("minisign.pub")], now=NOW, min_serial=3).serial == 3
    message = refusal(data, SIG, [key("minisign.pub")], min_serial=4)
    assert message.startswith("m.yaml: serial 3 is below manifest_min_serial 4;")


def test_rollback_below_last_accepted_serial_is_refused() -> None:
    data = (DATA / "manifest.yaml").read_bytes()
    assert verify(data, SIG, [key("minisign.pub")], now=NOW, last_serial=3).serial == 3
    message = refusal(data, SIG, [key("minisign.pub")], last_serial=7)
    assert message.startswith("m.yaml: serial 3 is below serial 7, the highest this Mac already accepted")


def test_signature_without_serial_cannot_pass_a_serial_floor() -> None:
    pub, sec = signing.generate_keypair()
    sig = signing.sign(b"format: 1\n", sec)
    keys = [parse_public_key(pub)]
    assert verify(b"format: 1\n", sig, keys, now=NOW) == Verified(keys[0].key_id, None, None, "")
    assert "no serial is below serial 1" in refusal(b"format: 1\n", sig, keys, last_serial=1)
    assert "no serial is below manifest_min_serial 1" in refusal(b"format: 1\n", sig, keys, min_serial=1)


def test_minisign_default_comment_words_are_ignored() -> None:
    data = b"format: 1\n"
    sig = sign_with_comment(data, text("ours.key"), "timestamp:1700000000\tfile:m.yaml\thashed serial=8")
    assert verify(data, sig, [key("ours.pub")], now=NOW).serial == 8


# --- keys and signing -----------------------------------------------------------------------------


def test_round_trip_with_a_password() -> None:
    pub, sec = cheap_keypair("ci key", password="s3cret")
    assert sec.startswith("untrusted comment: ci key\n")
    assert base64.b64decode(sec.splitlines()[1])[2:4] == b"Sc"
    sig = signing.sign(b"data", sec, serial=12, expires=EXPIRY, password="s3cret")
    assert "\ntrusted comment: serial=12 expires=2030-01-01T00:00:00Z\n" in sig
    result = verify(b"data", sig, [parse_public_key(pub)], now=NOW, min_serial=12, last_serial=11)
    assert (result.serial, result.expires) == (12, EXPIRY)
    assert signing.public_key_text(sec, "s3cret") == pub


def test_unencrypted_key_has_no_kdf_like_minisign_w() -> None:
    raw = base64.b64decode(text("ours.key").splitlines()[1])
    assert raw[:6] == b"Ed\0\0B2"
    assert raw[:6] == base64.b64decode(text("minisign.key").splitlines()[1])[:6]


def test_we_read_minisign_unencrypted_secret_key() -> None:
    assert signing.public_key_text(text("minisign.key")) == text("minisign.pub")
    sig = signing.sign(b"x", text("minisign.key"), serial=1)
    assert verify(b"x", sig, [key("minisign.pub")], now=NOW).key_id == "AAE13D5597FDBA5C"


@pytest.mark.slow
def test_we_read_minisign_encrypted_secret_key() -> None:
    """minisign's default scrypt cost: about 1 GiB and several seconds."""
    assert signing.public_key_text(text("encrypted.key"), "correct horse") == text("encrypted.pub")


def test_wrong_password_is_refused() -> None:
    with pytest.raises(SignatureError, match=r"^secret key: wrong password"):
        signing.read_secret_key(text("ours-encrypted.key"), "battery stable")


def test_encrypted_key_without_password_is_refused() -> None:
    with pytest.raises(SignatureError, match=r"^secret key: it is encrypted; give its password$"):
        signing.sign(b"x", text("ours-encrypted.key"))


def test_we_open_the_key_we_encrypted() -> None:
    pub = signing.public_key_text(text("ours-encrypted.key"), "battery staple")
    assert pub == text("ours-encrypted.pub")


@pytest.mark.parametrize(
    "bad",
    ["", "just one line", text("minisign.pub"), "untrusted comment: x\nRWQAAEIy", text("ours.key") + "x\n"],
)
def test_malformed_secret_key_is_refused(bad: str) -> None:
    with pytest.raises(SignatureError, match=r"^secret key: malformed"):
        signing.read_secret_key(bad)


def test_corrupted_secret_key_is_refused() -> None:
    lines = text("ours.key").splitlines()
    raw = bytearray(base64.b64decode(lines[1]))
    raw[54 + 8] ^= 0x01  # first byte of the seed
    with pytest.raises(SignatureError, match=r"^secret key: corrupted"):
        signing.read_secret_key(f"{lines[0]}\n{base64.b64encode(bytes(raw)).decode()}\n")


def test_hostile_scrypt_cost_is_refused_before_deriving() -> None:
    lines = text("ours-encrypted.key").splitlines()
    raw = bytearray(base64.b64decode(lines[1]))
    raw[38:54] = (2**40).to_bytes(8, "little") + (2**40).to_bytes(8, "little")
    with pytest.raises(SignatureError, match=r"scrypt limits .* are out of range"):
        signing.read_secret_key(f"{lines[0]}\n{base64.b64encode(bytes(raw)).decode()}\n", "battery staple")


def test_scrypt_params_match_libsodium() -> None:
    assert signing.scrypt_params(signing.OPSLIMIT_SENSITIVE, signing.MEMLIMIT_SENSITIVE) == (20, 8, 1)
    assert signing.scrypt_params(signing.OPSLIMIT_INTERACTIVE, signing.MEMLIMIT_INTERACTIVE) == (14, 8, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"serial": -1}, r"^--serial -1: give a whole number"),
        ({"expires": datetime(2030, 1, 1)}, r"^expires 2030-01-01T00:00:00: give a time zone"),
        ({"comment": "two\nlines"}, r"^comment 'two\\nlines': must be one line"),
    ],
)
def test_bad_sign_arguments_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SignatureError, match=match):
        signing.sign(b"x", text("ours.key"), **kwargs)  # type: ignore[arg-type]


def test_expiry_is_written_in_utc() -> None:
    later = datetime.fromisoformat("2030-01-01T02:00:00+02:00")
    sig = signing.sign(b"x", text("ours.key"), expires=later)
    assert "trusted comment: expires=2030-01-01T00:00:00Z" in sig


# --- the real minisign, both ways -----------------------------------------------------------------


def minisign(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    assert MINISIGN is not None
    return subprocess.run(
        [MINISIGN, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@needs_minisign
@pytest.mark.parametrize("password", [None, "pw with spaces"])
def test_minisign_verifies_what_we_sign(tmp_path: Path, password: str | None) -> None:
    pub, sec = cheap_keypair(password=password)
    (tmp_path / "minisign.pub").write_text(pub)
    manifest = tmp_path / "m.yaml"
    manifest.write_bytes((DATA / "manifest.yaml").read_bytes())
    sig = signing.sign(manifest.read_bytes(), sec, serial=41, expires=EXPIRY, password=password)
    (tmp_path / "m.yaml.minisig").write_text(sig)
    done = minisign("-V", "-H", "-p", str(tmp_path / "minisign.pub"), "-m", str(manifest))
    assert done.returncode == 0, done.stderr
    assert "Trusted comment: serial=41 expires=2030-01-01T00:00:00Z" in done.stdout
    manifest.write_bytes(manifest.read_bytes() + b"#")
    assert minisign("-V", "-p", str(tmp_path / "minisign.pub"), "-m", str(manifest)).returncode == 1


@needs_minisign
def test_minisign_opens_our_secret_keys(tmp_path: Path) -> None:
    pub, sec = cheap_keypair(password="pw")
    (tmp_path / "k.key").write_text(sec)
    (tmp_path / "f").write_bytes(b"payload")
    done = minisign(
        "-S", "-s", str(tmp_path / "k.key"), "-m", str(tmp_path / "f"), "-t", "serial=2", stdin="pw\n"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = verify(b"payload", (tmp_path / "f.minisig").read_text(), [parse_public_key(pub)], now=NOW)
    assert result.serial == 2
    wrong = minisign("-S", "-s", str(tmp_path / "k.key"), "-m", str(tmp_path / "f"), stdin="nope\n")
    assert wrong.returncode != 0 and "Wrong password" in wrong.stderr + wrong.stdout
    _, plain = signing.generate_keypair()
    (tmp_path / "plain.key").write_text(plain)
    recreated = minisign("-R", "-W", "-s", str(tmp_path / "plain.key"), "-p", str(tmp_path / "r.pub"))
    assert recreated.returncode == 0, recreated.stderr
    assert (tmp_path / "r.pub").read_text() == signing.public_key_text(plain)


@needs_minisign
@pytest.mark.parametrize("legacy", [False, True])
def test_we_verify_what_minisign_signs(tmp_path: Path, legacy: bool) -> None:
    pub, sec = tmp_path / "k.pub", tmp_path / "k.key"
    assert minisign("-G", "-W", "-p", str(pub), "-s", str(sec)).returncode == 0
    manifest = tmp_path / "m.yaml"
    manifest.write_bytes(b"format: 1\n")
    flags = ["-l"] if legacy else []
    trusted = "serial=9 expires=2031-06-30T12:00:00Z"
    done = minisign("-S", *flags, "-W", "-s", str(sec), "-m", str(manifest), "-t", trusted)
    assert done.returncode == 0, done.stderr
    sig = (tmp_path / "m.yaml.minisig").read_text()
    assert parse_signature(sig).algorithm == ("Ed" if legacy else "ED")
    result = verify(b"format: 1\n", sig, [parse_public_key(pub.read_text())], now=NOW, last_serial=9)
    assert (result.serial, result.expires) == (9, datetime(2031, 6, 30, 12, tzinfo=UTC))
    assert result.key_id == pub.read_text().split()[-2]
    with pytest.raises(SignatureError, match="bad signature"):
        verify(b"format: 2\n", sig, [parse_public_key(pub.read_text())], now=NOW)


def test_verify_needs_an_aware_clock() -> None:
    with pytest.raises(ValueError, match="aware"):
        verify(b"x", SIG, [key("minisign.pub")], now=datetime(2026, 1, 1))

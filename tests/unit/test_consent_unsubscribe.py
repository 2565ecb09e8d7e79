"""One-click unsubscribe links (consent/unsubscribe.py): the signed token's exact form, what it reads back, what it
refuses, and the signing secret kept under the data dir."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
from pathlib import Path

import orjson
import pytest

from growthengine.consent.unsubscribe import BadToken, Unsubscribe, UnsubscribeLinks

SECRET = bytes(range(32))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_the_token_is_the_json_triple_and_a_16_byte_hmac_sha256_both_unpadded_base64url() -> None:
    links = UnsubscribeLinks(SECRET, "https://shop.example")
    body = b64(orjson.dumps(["u1", "email", "m-1"]))
    mac = b64(hmac.new(SECRET, body.encode(), hashlib.sha256).digest()[:16])
    assert links.token("u1", "email", "m-1") == f"{body}.{mac}"
    assert len(mac) == 22 and "=" not in body


def test_the_url_is_the_base_url_without_trailing_slashes_then_u_and_the_token() -> None:
    token = UnsubscribeLinks(SECRET, "x").token("u1", "email", "m-1")
    assert UnsubscribeLinks(SECRET, "https://shop.example/").url("u1", "email", "m-1") == \
        f"https://shop.example/u/{token}"
    assert UnsubscribeLinks(SECRET, "https://shop.example/MAX//").url("u1", "email", "m-1") == \
        f"https://shop.example/MAX/u/{token}"


@pytest.mark.parametrize("user_id", ["u" * n for n in range(9)] + ["ผู้ใช้-๑", "a.b", "x" * 70])
def test_a_token_reads_back_as_the_user_channel_and_message_it_names(user_id: str) -> None:
    """Every body length modulo 4 (its base64 padding is dropped and restored), Thai text and dots in the ids."""
    links = UnsubscribeLinks(SECRET, "https://shop.example")
    assert links.read(links.token(user_id, "sms", "m.9")) == Unsubscribe(user_id, "sms", "m.9")


def test_a_token_signed_with_another_secret_is_refused_as_a_bad_signature() -> None:
    token = UnsubscribeLinks(b"another secret", "https://shop.example").token("u1", "email", "m-1")
    with pytest.raises(BadToken) as info:
        UnsubscribeLinks(SECRET, "https://shop.example").read(token)
    assert str(info.value) == "not an unsubscribe link this engine made (the link's signature does not match)"


def test_a_token_whose_body_was_changed_is_refused() -> None:
    links = UnsubscribeLinks(SECRET, "https://shop.example")
    _, mac = links.token("u1", "email", "m-1").split(".")
    forged = b64(orjson.dumps(["u2", "email", "m-1"])) + "." + mac
    with pytest.raises(BadToken, match="signature does not match"):
        links.read(forged)


@pytest.mark.parametrize("token", ["", "no-dot-at-all", "a.b.c", "%%%.%%%"])
def test_a_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(BadToken, match=r"^not an unsubscribe link this engine made \("):
        UnsubscribeLinks(SECRET, "https://shop.example").read(token)


def test_a_validly_signed_body_that_is_not_a_json_triple_is_refused_not_crashed() -> None:
    links = UnsubscribeLinks(SECRET, "https://shop.example")
    for payload in (b"[1, 2]", b"not json", b'{"a": 1}', b"7"):
        body = b64(payload)
        mac = b64(hmac.new(SECRET, body.encode(), hashlib.sha256).digest()[:16])
        with pytest.raises(BadToken, match=r"^not an unsubscribe link this engine made"):
            links.read(f"{body}.{mac}")


def test_non_text_ids_in_a_signed_body_read_back_as_text() -> None:
    links = UnsubscribeLinks(SECRET, "https://shop.example")
    body = b64(orjson.dumps([42, "push", 7]))
    mac = b64(hmac.new(SECRET, body.encode(), hashlib.sha256).digest()[:16])
    assert links.read(f"{body}.{mac}") == Unsubscribe("42", "push", "7")


def test_the_secret_is_made_once_under_the_data_dir_private_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = UnsubscribeLinks.from_data_dir(data_dir, "https://shop.example/")
    path = data_dir / "unsubscribe.secret"
    text = path.read_text(encoding="ascii")
    assert len(bytes.fromhex(text)) == 32 and text == text.strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = first.token("u1", "email", "m-1")
    again = UnsubscribeLinks.from_data_dir(data_dir, "https://shop.example/")
    assert path.read_text(encoding="ascii") == text
    assert again.token("u1", "email", "m-1") == token
    assert token == UnsubscribeLinks(bytes.fromhex(text), "").token("u1", "email", "m-1")
    assert again.url("u1", "email", "m-1") == f"https://shop.example/u/{token}"


def test_an_existing_data_dir_is_tightened_and_a_hand_written_secret_with_a_newline_is_read(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / "unsubscribe.secret").write_text(SECRET.hex() + "\n", encoding="ascii")
    links = UnsubscribeLinks.from_data_dir(data_dir, "https://shop.example")
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert links.token("u1", "email", "m-1") == UnsubscribeLinks(SECRET, "").token("u1", "email", "m-1")


@pytest.mark.parametrize("dots", [1, 2, 3])
def test_a_genuine_token_with_dots_slipped_into_its_signature_is_refused(dots: int) -> None:
    """Base64 decoding skips a dot: were the token split at its first (or last) dot only, a signature with dots in it
    would still be read (three of them make up the padding). A token this engine made has exactly one dot."""
    links = UnsubscribeLinks(SECRET, "https://shop.example")
    body, mac = links.token("u1", "email", "m-1").split(".")
    for tampered in (f"{body}.{mac[:5]}{'.' * dots}{mac[5:]}", f"{body}{'.' * dots}.{mac}"):
        with pytest.raises(BadToken, match=r"^not an unsubscribe link this engine made \("):
            links.read(tampered)

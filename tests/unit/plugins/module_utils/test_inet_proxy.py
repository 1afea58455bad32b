# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_inet_proxy.py (the WinINET proxy blob)."""
from __future__ import annotations

import re
import struct
from dataclasses import FrozenInstanceError

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._inet_proxy import (
    DEFAULT_TRAILING_LENGTH,
    KNOWN_VERSIONS,
    NOTION_BYPASS_HOSTS,
    VERSION_IE6,
    VERSION_IE7,
    VERSION_WINHTTP,
    BlobFormatError,
    ConnectionSettings,
    ProxyFlags,
    build,
    bypass_entries,
    default_settings,
    describe,
    legacy_values,
    parse,
    proxy_applies_to,
    proxy_for_scheme,
    split_bypass_list,
    with_bypass_added,
    with_bypass_removed,
    with_counter_incremented,
    with_flags,
)
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

U32_MAX = 2**32 - 1


def reg_hex(text: str) -> bytes:
    """Bytes from a regedit export ("46,00,\\<newline> 00") or a plain hex string."""
    return bytes.fromhex(re.sub(r"[\s,\\]", "", text))


# ---------------------------------------------------------------------------
# Byte-exact vectors from public sources. Each is (id, blob, expected fields).
# Fields: version, counter, flags, proxy_server, bypass_list, pac_url, trailing.
# ---------------------------------------------------------------------------

# Source: vbfox/proxyconf unit tests (test names kept as ids), hex copied verbatim:
# https://github.com/vbfox/proxyconf/blob/04caecc2c104642b66ac1ced7eef1de707949890/src/proxyconf/internet_settings/modern/serialization.rs
VBFOX = "https://github.com/vbfox/proxyconf/blob/04caecc2c104642b66ac1ced7eef1de707949890/src/proxyconf/internet_settings/modern/serialization.rs"

# Source: regedit export in soapffz's blog post (HKCU ... Internet Settings\Connections, IE11/Win10), copied verbatim:
# https://github.com/soapffz/soapffzblogposts/blob/9068588d4efa7635d02cba8a0d358da5d7979f30/搭建本地ip代理池(完结).md
SOAPFFZ = "https://github.com/soapffz/soapffzblogposts/blob/9068588d4efa7635d02cba8a0d358da5d7979f30/搭建本地ip代理池(完结).md"

VECTORS = [
    pytest.param(
        # VBFOX winhttp_deserialize_no_proxy: the WinHTTP form has no PAC field and no trailing bytes.
        reg_hex("2800000000000000010000000000000000000000"),
        (VERSION_WINHTTP, 0, 0x01, "", "", "", b""),
        id="vbfox-winhttp_deserialize_no_proxy",
    ),
    pytest.param(
        # VBFOX winhttp_deserialize_some_proxy
        reg_hex("28000000000000000300000004000000613A3432040000002A2E3432"),
        (VERSION_WINHTTP, 0, 0x03, "a:42", "*.42", "", b""),
        id="vbfox-winhttp_deserialize_some_proxy",
    ),
    pytest.param(
        # VBFOX ie6_deserialize_no_proxy: IE6 form ends with 28 zero bytes.
        reg_hex(
            "3C0000003A0000000900000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        ),
        (VERSION_IE6, 58, 0x09, "", "", "", bytes(28)),
        id="vbfox-ie6_deserialize_no_proxy",
    ),
    pytest.param(
        # VBFOX ie8_deserialize_no_proxy: IE7+ form ends with 32 zero bytes.
        reg_hex(
            "460000003A000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        ),
        (VERSION_IE7, 58, 0x01, "", "", "", bytes(32)),
        id="vbfox-ie8_deserialize_no_proxy",
    ),
    pytest.param(
        # VBFOX ie8_deserialize_some_proxy
        reg_hex(
            "46000000400000000F0000000D000000676F6F676C652E636F6D3A34320B0000004C6F6C3B3C6C6F63616C3E1100000068747470"
            "3A2F2F676F6F676C652E66722F0000000000000000000000000000000000000000000000000000000000000000"
        ),
        (VERSION_IE7, 64, 0x0F, "google.com:42", "Lol;<local>", "http://google.fr/", bytes(32)),
        id="vbfox-ie8_deserialize_some_proxy",
    ),
    pytest.param(
        # VBFOX ie8_deserialize_some_proxy_not_used: strings kept while every flag but DIRECT is off.
        reg_hex(
            "4600000044000000010000000D000000676F6F676C652E636F6D3A34320B0000004C6F6C3B3C6C6F63616C3E1100000068747470"
            "3A2F2F676F6F676C652E66722F0000000000000000000000000000000000000000000000000000000000000000"
        ),
        (VERSION_IE7, 68, 0x01, "google.com:42", "Lol;<local>", "http://google.fr/", bytes(32)),
        id="vbfox-ie8_deserialize_some_proxy_not_used",
    ),
    pytest.param(
        # SOAPFFZ "DefaultConnectionSettings"
        reg_hex(
            """46,00,00,00,0a,00,00,00,01,00,00,00,00,00,00,\\
  00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,\\
  00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00"""
        ),
        (VERSION_IE7, 0x0A, 0x01, "", "", "", bytes(32)),
        id="soapffz-DefaultConnectionSettings",
    ),
    pytest.param(
        # SOAPFFZ "SavedLegacySettings": manual proxy 127.0.0.1:80 + auto-detect, "Bypass for local addresses".
        reg_hex(
            """46,00,00,00,51,00,00,00,0b,00,00,00,0c,00,00,00,31,\\
  32,37,2e,30,2e,30,2e,31,3a,38,30,07,00,00,00,3c,6c,6f,63,61,6c,3e,00,00,00,\\
  00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,\\
  00,00,00,00,00,00,00,00"""
        ),
        (VERSION_IE7, 0x51, 0x0B, "127.0.0.1:80", "<local>", "", bytes(32)),
        id="soapffz-SavedLegacySettings",
    ),
    pytest.param(
        # SOAPFFZ "Netkeeper": a script wrote the ASCII text "1,00" into the counter; still a valid blob.
        reg_hex(
            """46,00,00,00,31,2c,30,30,0b,00,00,00,0c,00,00,00,31,32,37,2e,30,\\
  2e,30,2e,31,3a,38,30,07,00,00,00,3c,6c,6f,63,61,6c,3e,00,00,00,00,00,00,00,\\
  00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,\\
  00,00,00,00"""
        ),
        (VERSION_IE7, 0x30302C31, 0x0B, "127.0.0.1:80", "<local>", "", bytes(32)),
        id="soapffz-Netkeeper",
    ),
    pytest.param(
        # SOAPFFZ "greenvpn"
        reg_hex(
            """46,00,00,00,02,00,00,00,01,00,00,00,00,00,00,00,00,00,00,00,00,\\
  00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,00,\\
  00,00,00,00,00,00,00,00,00,00"""
        ),
        (VERSION_IE7, 0x02, 0x01, "", "", "", bytes(32)),
        id="soapffz-greenvpn",
    ),
]


Fields = tuple[int, int, int, str, str, str, bytes]


def _fields(s: ConnectionSettings) -> Fields:
    return (s.version, s.counter, int(s.flags), s.proxy_server, s.bypass_list, s.pac_url, s.trailing)


@pytest.mark.parametrize(("blob", "expected"), VECTORS)
def test_public_vector_parses_to_expected_fields(blob: bytes, expected: Fields) -> None:
    assert _fields(parse(blob)) == expected


@pytest.mark.parametrize(("blob", "expected"), VECTORS)
def test_public_vector_builds_back_to_exact_bytes(blob: bytes, expected: Fields) -> None:
    version, counter, flags, proxy, bypass, pac, trailing = expected
    settings = ConnectionSettings(version, counter, ProxyFlags(flags), proxy, bypass, pac, trailing)
    assert build(settings) == blob
    assert build(parse(blob)) == blob


def test_vbfox_defaults_match_default_settings() -> None:
    # vbfox's serializer writes 32 (IE7) / 28 (IE6) / 0 (WinHTTP) zero bytes after the strings (VBFOX, serialize()).
    assert DEFAULT_TRAILING_LENGTH == {VERSION_IE7: 32, VERSION_IE6: 28, VERSION_WINHTTP: 0}
    assert build(default_settings()) == reg_hex("46000000" "00000000" "01000000" + "00000000" * 3) + bytes(32)
    assert build(default_settings(VERSION_WINHTTP)) == reg_hex("2800000000000000010000000000000000000000")
    with pytest.raises(ValueError, match=r"^unsupported version 0x50 "):
        default_settings(0x50)


def test_nonzero_trailing_bytes_are_preserved_verbatim() -> None:
    # Layout after the PAC URL per https://9to5answer.com/what-39-s-the-format-of-the-defaultconnectionsettings-value-in-the-windows-registry
    # (mirror of the Stack Overflow answer): "4 bytes int: 0x00 or 0x01 (whatever that means)" then zero bytes.
    # Constructed from that description (not copied bytes); the WPAD-like tail checks arbitrary data survives.
    for tail in (b"\x01" + bytes(31), b"\x01\x00\x00\x00" + b"\xc0\xa8\x01\x01" + b"http://wpad/wpad.dat" + bytes(7)):
        blob = reg_hex("46000000 05000000 09000000 00000000 00000000 00000000") + tail
        parsed = parse(blob)
        assert parsed.trailing == tail
        assert build(parsed) == blob
        changed = with_counter_incremented(with_bypass_added(with_flags(parsed, set=ProxyFlags.PROXY), ["a.example"]))
        assert changed.trailing == tail
        assert build(changed).endswith(tail)


# ---------------------------------------------------------------------------
# Errors: parse never guesses, and says exactly what is wrong where.
# ---------------------------------------------------------------------------

SOME_PROXY = reg_hex(
    "46000000400000000F0000000D000000676F6F676C652E636F6D3A34320B0000004C6F6C3B3C6C6F63616C3E1100000068747470"
    "3A2F2F676F6F676C652E66722F0000000000000000000000000000000000000000000000000000000000000000"
)  # VBFOX ie8_deserialize_some_proxy

PARSE_ERRORS = [
    pytest.param(b"", "blob too short for the header: need 12 bytes, got 0", id="empty"),
    pytest.param(SOME_PROXY[:11], "blob too short for the header: need 12 bytes, got 11", id="truncated-header"),
    pytest.param(
        reg_hex("50000000 00000000 01000000") + bytes(44),
        "unsupported version 0x50 at offset 0 (known: 0x28 winhttp, 0x3c ie6, 0x46 ie7)",
        id="unknown-version",
    ),
    pytest.param(
        SOME_PROXY[:12],
        "truncated blob: proxy_server length prefix at offset 12 needs 4 bytes, only 0 remain",
        id="header-only",
    ),
    pytest.param(
        SOME_PROXY[:14],
        "truncated blob: proxy_server length prefix at offset 12 needs 4 bytes, only 2 remain",
        id="half-length-prefix",
    ),
    pytest.param(
        reg_hex("46000000 00000000 03000000 64000000") + b"a:421",
        "proxy_server length 100 (prefix at offset 12) runs past the end of the blob: only 5 bytes follow",
        id="proxy-length-beyond-end",
    ),
    pytest.param(
        reg_hex("46000000 00000000 03000000 FFFFFFFF") + bytes(44),
        "proxy_server length 4294967295 (prefix at offset 12) runs past the end of the blob: only 44 bytes follow",
        id="proxy-length-u32-max",
    ),
    pytest.param(
        SOME_PROXY[:35],  # bypass prefix at 29 declares 11 bytes, 2 follow
        "bypass_list length 11 (prefix at offset 29) runs past the end of the blob: only 2 bytes follow",
        id="bypass-length-beyond-end",
    ),
    pytest.param(
        SOME_PROXY[:44],  # strings end at 44: the PAC prefix is missing entirely
        "truncated blob: pac_url length prefix at offset 44 needs 4 bytes, only 0 remain",
        id="missing-pac-prefix",
    ),
    pytest.param(
        # A WinHTTP-shaped body labelled 0x46: vbfox reads EOF as "", this module refuses to guess.
        reg_hex("4600000000000000010000000000000000000000"),
        "truncated blob: pac_url length prefix at offset 20 needs 4 bytes, only 0 remain",
        id="ie7-without-pac-field",
    ),
    pytest.param(
        SOME_PROXY[:60],
        "pac_url length 17 (prefix at offset 44) runs past the end of the blob: only 12 bytes follow",
        id="pac-length-beyond-end",
    ),
    pytest.param(
        reg_hex("46000000 00000000 03000000 06000000") + "caf\u00e9:1".encode("latin-1") + bytes(44),
        "proxy_server is not ASCII: byte 0xe9 at offset 19",
        id="non-ascii-proxy-server",
    ),
    pytest.param(
        reg_hex("46000000 00000000 03000000 00000000 03000000") + b"a\xffb" + bytes(36),
        "bypass_list is not ASCII: byte 0xff at offset 21",
        id="non-ascii-bypass-list",
    ),
    pytest.param(
        reg_hex("46000000 00000000 05000000 00000000 00000000 02000000") + "\u00fc/".encode("latin-1") + bytes(32),
        "pac_url is not ASCII: byte 0xfc at offset 24",
        id="non-ascii-pac-url",
    ),
]


@pytest.mark.parametrize(("blob", "message"), PARSE_ERRORS)
def test_parse_error_messages(blob: bytes, message: str) -> None:
    with pytest.raises(BlobFormatError) as excinfo:
        parse(blob)
    assert str(excinfo.value) == message
    assert isinstance(excinfo.value, ValueError)


def test_parse_rejects_non_bytes() -> None:
    with pytest.raises(TypeError, match="blob must be bytes, got str"):
        parse("46000000")  # type: ignore[arg-type]


def test_parse_accepts_bytearray_and_memoryview() -> None:
    assert parse(bytearray(SOME_PROXY)) == parse(SOME_PROXY) == parse(memoryview(SOME_PROXY))
    assert isinstance(parse(bytearray(SOME_PROXY)).trailing, bytes)


CONSTRUCTOR_ERRORS = [
    pytest.param({"version": 0x50}, ValueError, "unsupported version 0x50 (known: 0x28 winhttp, 0x3c ie6, 0x46 ie7)", id="version"),
    pytest.param({"counter": -1}, ValueError, "counter -1 is outside the unsigned 32-bit range", id="counter-negative"),
    pytest.param({"counter": 2**32}, ValueError, "counter 4294967296 is outside the unsigned 32-bit range", id="counter-too-big"),
    pytest.param({"flags": 2**32}, ValueError, "flags 4294967296 is outside the unsigned 32-bit range", id="flags-too-big"),
    pytest.param({"counter": True}, TypeError, "counter must be an int, got bool", id="counter-bool"),
    pytest.param({"proxy_server": "h\u00e9:1"}, ValueError, "proxy_server is not ASCII: character '\u00e9' at index 1", id="proxy-non-ascii"),
    pytest.param({"bypass_list": b"x"}, TypeError, "bypass_list must be a str, got bytes", id="bypass-bytes"),
    pytest.param(
        {"version": VERSION_WINHTTP, "pac_url": "http://x/p.pac"},
        ValueError,
        "pac_url must be empty for version 0x28, which has no PAC field",
        id="winhttp-pac",
    ),
    pytest.param({"trailing": "00"}, TypeError, "trailing must be bytes, got str", id="trailing-str"),
]


@pytest.mark.parametrize(("overrides", "error", "message"), CONSTRUCTOR_ERRORS)
def test_constructor_validates(overrides: dict[str, object], error: type[Exception], message: str) -> None:
    kwargs: dict[str, object] = {"version": VERSION_IE7, "counter": 0, "flags": ProxyFlags.DIRECT}
    kwargs.update(overrides)
    with pytest.raises(error) as excinfo:
        ConnectionSettings(**kwargs)  # type: ignore[arg-type]
    assert str(excinfo.value) == message


def test_settings_are_frozen_and_flags_coerced() -> None:
    s = ConnectionSettings(version=VERSION_IE7, counter=1, flags=3, trailing=bytearray(b"\x01"))  # type: ignore[arg-type]
    assert isinstance(s.flags, ProxyFlags)
    assert s.flags == ProxyFlags.DIRECT | ProxyFlags.PROXY
    assert isinstance(s.trailing, bytes)
    with pytest.raises(FrozenInstanceError):
        s.counter = 2  # type: ignore[misc]


def test_unknown_flag_bits_survive_a_round_trip() -> None:
    blob = reg_hex("46000000 00000000 03010080 00000000 00000000 00000000")
    s = parse(blob)
    assert int(s.flags) == 0x80000103
    assert build(s) == blob
    assert describe(s)["unknown_flags"] == 0x80000100
    assert describe(s)["modes"] == ["direct", "manual_proxy"]


# ---------------------------------------------------------------------------
# Counter
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("before", "after"), [(0, 1), (0x51, 0x52), (0xFF, 0x100), (U32_MAX - 1, U32_MAX), (U32_MAX, 0)])
def test_counter_increment_table(before: int, after: int) -> None:
    s = ConnectionSettings(version=VERSION_IE7, counter=before, flags=ProxyFlags.DIRECT)
    assert with_counter_incremented(s).counter == after
    assert s.counter == before


# ---------------------------------------------------------------------------
# Flags / modes / legacy values
# ---------------------------------------------------------------------------

# The ninth byte for each checkbox combination, per the IE support team
# (https://blogs.msdn.microsoft.com/askie/2017/06/20/what-is-defaultconnectionsettings-key/) and
# http://atyoung.blogspot.com/2012/06/info-regarding-hkeycurrentusersoftwarem.html
MSDN_FLAG_BYTES = [
    pytest.param(0x01, ["direct"], id="nothing-checked"),
    pytest.param(0x09, ["direct", "auto_detect"], id="auto-detect"),
    pytest.param(0x05, ["direct", "pac"], id="pac"),
    pytest.param(0x03, ["direct", "manual_proxy"], id="manual"),
    pytest.param(0x0F, ["direct", "manual_proxy", "pac", "auto_detect"], id="all"),
    pytest.param(0x0D, ["direct", "pac", "auto_detect"], id="auto-detect+pac"),
    pytest.param(0x0B, ["direct", "manual_proxy", "auto_detect"], id="auto-detect+manual"),
    pytest.param(0x07, ["direct", "manual_proxy", "pac"], id="pac+manual"),
]


@pytest.mark.parametrize(("flag_byte", "modes"), MSDN_FLAG_BYTES)
def test_flag_byte_modes(flag_byte: int, modes: list[str]) -> None:
    blob = bytearray(SOME_PROXY)
    blob[8] = flag_byte
    s = parse(bytes(blob))
    assert describe(s)["modes"] == modes
    assert legacy_values(s)["ProxyEnable"] == (1 if "manual_proxy" in modes else 0)
    assert legacy_values(s)["AutoConfigURL"] == ("http://google.fr/" if "pac" in modes else None)


WITH_FLAGS = [
    pytest.param(0x01, ProxyFlags.PROXY, 0, 0x03, id="enable-manual"),
    pytest.param(0x0B, 0, ProxyFlags.PROXY, 0x09, id="disable-manual-keep-autodetect"),
    pytest.param(0x0F, 0, ProxyFlags.AUTO_DETECT | ProxyFlags.AUTO_PROXY_URL, 0x03, id="clear-two"),
    pytest.param(0x01, ProxyFlags.PROXY | ProxyFlags.AUTO_DETECT, ProxyFlags.DIRECT, 0x0A, id="set-and-clear"),
    pytest.param(0x101, 0, ProxyFlags.DIRECT, 0x100, id="unknown-bit-kept"),
    pytest.param(0x01, 0x80000000, 0, 0x80000001, id="set-high-bit"),
]


@pytest.mark.parametrize(("before", "set_bits", "clear_bits", "after"), WITH_FLAGS)
def test_with_flags_table(before: int, set_bits: int, clear_bits: int, after: int) -> None:
    s = ConnectionSettings(version=VERSION_IE7, counter=7, flags=ProxyFlags(before), trailing=bytes(32))
    result = with_flags(s, set=set_bits, clear=clear_bits)
    assert int(result.flags) == after
    assert isinstance(result.flags, ProxyFlags)
    assert (result.counter, result.trailing) == (7, bytes(32))


def test_with_flags_no_change_returns_same_object() -> None:
    s = ConnectionSettings(version=VERSION_IE7, counter=0, flags=ProxyFlags(0x03))
    assert with_flags(s, set=ProxyFlags.PROXY) is s
    assert with_flags(s, clear=ProxyFlags.AUTO_DETECT) is s


def test_with_flags_rejects_overlap_and_bad_values() -> None:
    s = default_settings()
    with pytest.raises(ValueError) as excinfo:
        with_flags(s, set=ProxyFlags.PROXY | ProxyFlags.AUTO_DETECT, clear=ProxyFlags.PROXY)
    assert str(excinfo.value) == "flags 0x2 are both set and cleared"
    with pytest.raises(ValueError, match=r"^set -1 is outside the unsigned 32-bit range$"):
        with_flags(s, set=-1)
    with pytest.raises(TypeError, match=r"^clear must be an int, got str$"):
        with_flags(s, clear="2")  # type: ignore[arg-type]


LEGACY = [
    pytest.param(
        ConnectionSettings(VERSION_IE7, 1, ProxyFlags(0x03), "proxy.corp:8080", "<local>", "", bytes(32)),
        {"ProxyEnable": 1, "ProxyServer": "proxy.corp:8080", "ProxyOverride": "<local>", "AutoConfigURL": None},
        id="manual-proxy",
    ),
    pytest.param(
        ConnectionSettings(VERSION_IE7, 1, ProxyFlags(0x01), "proxy.corp:8080", "<local>", "http://p/x.pac", bytes(32)),
        {"ProxyEnable": 0, "ProxyServer": "proxy.corp:8080", "ProxyOverride": "<local>", "AutoConfigURL": None},
        id="proxy-switched-off-text-kept",
    ),
    pytest.param(
        ConnectionSettings(VERSION_IE7, 1, ProxyFlags(0x05), "", "", "http://p/x.pac", bytes(32)),
        {"ProxyEnable": 0, "ProxyServer": None, "ProxyOverride": None, "AutoConfigURL": "http://p/x.pac"},
        id="pac-only",
    ),
    pytest.param(
        ConnectionSettings(VERSION_IE7, 1, ProxyFlags(0x05), "", "", "", bytes(32)),
        {"ProxyEnable": 0, "ProxyServer": None, "ProxyOverride": None, "AutoConfigURL": None},
        id="pac-flag-without-url",
    ),
    pytest.param(
        ConnectionSettings(VERSION_IE7, 1, ProxyFlags(0x0F), "h:1", "a;b", "http://p/x.pac", bytes(32)),
        {"ProxyEnable": 1, "ProxyServer": "h:1", "ProxyOverride": "a;b", "AutoConfigURL": "http://p/x.pac"},
        id="everything",
    ),
    pytest.param(
        default_settings(VERSION_WINHTTP),
        {"ProxyEnable": 0, "ProxyServer": None, "ProxyOverride": None, "AutoConfigURL": None},
        id="winhttp-direct",
    ),
]


@pytest.mark.parametrize(("settings", "expected"), LEGACY)
def test_legacy_values(settings: ConnectionSettings, expected: dict[str, object]) -> None:
    assert legacy_values(settings) == expected


def test_describe_is_json_friendly() -> None:
    import json

    s = parse(SOME_PROXY)
    summary = describe(s)
    assert summary == {
        "version": 0x46,
        "version_name": "ie7",
        "counter": 64,
        "flags": 0x0F,
        "modes": ["direct", "manual_proxy", "pac", "auto_detect"],
        "unknown_flags": 0,
        "proxy_server": "google.com:42",
        "bypass_list": ["Lol", "<local>"],
        "pac_url": "http://google.fr/",
        "trailing_length": 32,
    }
    assert json.loads(json.dumps(summary)) == summary
    assert describe(default_settings(VERSION_IE6))["version_name"] == "ie6"


# ---------------------------------------------------------------------------
# Bypass list
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "entries"),
    [
        ("", []),
        ("<local>", ["<local>"]),
        ("Lol;<local>", ["Lol", "<local>"]),
        ("a.com; b.com;;c.com ", ["a.com", "b.com", "c.com"]),
        ("a.com, b.com c.com\t*.d", ["a.com", "b.com", "c.com", "*.d"]),
        ("A.com;a.com", ["A.com", "a.com"]),
    ],
)
def test_split_bypass_list(raw: str, entries: list[str]) -> None:
    assert split_bypass_list(raw) == entries
    assert bypass_entries(ConnectionSettings(VERSION_IE7, 0, ProxyFlags.DIRECT, bypass_list=raw)) == entries


BYPASS_ADD = [
    pytest.param("", ["a.example"], "a.example", id="empty"),
    pytest.param("<local>", ["a.example", "b.example"], "a.example;b.example;<local>", id="local-stays-last"),
    pytest.param("Lol;<local>", ["lol", "x.example"], "Lol;x.example;<local>", id="case-insensitive-dedup"),
    pytest.param("<local>;foo", ["bar"], "foo;bar;<local>", id="local-moved-to-end"),
    pytest.param("a.com", ["x", "X", "x"], "a.com;x", id="dedup-within-hosts"),
    pytest.param("a.com", ["<local>", "b.com"], "a.com;b.com;<local>", id="local-added-goes-last"),
    pytest.param("a.com", ["<LOCAL>"], "a.com;<local>", id="local-canonical-spelling"),
    pytest.param("a.com, b.com c.com", ["d.com"], "a.com;b.com;c.com;d.com", id="other-separators-normalised"),
    pytest.param("*.corp;10.*", ["  padded.example  "], "*.corp;10.*;padded.example", id="stripped"),
    pytest.param("<-loopback>;<local>", ["n.example"], "<-loopback>;n.example;<local>", id="minus-loopback-kept"),
    pytest.param(
        "<local>",
        list(NOTION_BYPASS_HOSTS),
        "*.notion.so;notion.so;*.notion.com;notion.com;*.notion-static.com;notion-static.com;"
        "prod-files-secure.s3.us-west-2.amazonaws.com;<local>",
        id="notion-hosts",
    ),
]


@pytest.mark.parametrize(("raw", "hosts", "expected"), BYPASS_ADD)
def test_with_bypass_added_table(raw: str, hosts: list[str], expected: str) -> None:
    s = ConnectionSettings(VERSION_IE7, 9, ProxyFlags(0x03), "proxy:8080", raw, "", bytes(32))
    result = with_bypass_added(s, hosts)
    assert result.bypass_list == expected
    assert (result.counter, result.flags, result.proxy_server, result.trailing) == (9, 0x03, "proxy:8080", bytes(32))
    assert with_bypass_added(result, hosts) is result


@pytest.mark.parametrize(
    ("raw", "hosts"),
    [("A.COM;<local>", ["a.com"]), ("x", []), ("<local>", ["<Local>"]), ("a, b", ["B"])],
)
def test_with_bypass_added_nothing_missing_returns_same_object(raw: str, hosts: list[str]) -> None:
    s = ConnectionSettings(VERSION_IE7, 0, ProxyFlags.DIRECT, bypass_list=raw)
    assert with_bypass_added(s, hosts) is s


@pytest.mark.parametrize(
    ("host", "error", "message"),
    [
        ("", ValueError, "bypass entry must not be empty"),
        ("   ", ValueError, "bypass entry must not be empty"),
        ("a.com;b.com", ValueError, "bypass entry 'a.com;b.com' contains a list separator (';', ',' or whitespace)"),
        ("a.com b.com", ValueError, "bypass entry 'a.com b.com' contains a list separator (';', ',' or whitespace)"),
        ("a,b", ValueError, "bypass entry 'a,b' contains a list separator (';', ',' or whitespace)"),
        ("b\u00fccher.de", ValueError, "bypass entry is not ASCII: character '\u00fc' at index 1"),
        (42, TypeError, "bypass entry must be a str, got int"),
    ],
)
def test_with_bypass_added_rejects_bad_entries(host: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as excinfo:
        with_bypass_added(default_settings(), [host])  # type: ignore[list-item]
    assert str(excinfo.value) == message


def test_with_bypass_added_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError, match="not a single str"):
        with_bypass_added(default_settings(), "notion.so")


@pytest.mark.parametrize(
    ("raw", "hosts", "expected"),
    [
        ("a;b;<local>", ["A"], "b;<local>"),
        ("<local>;a", ["a"], "<local>"),
        ("a;<local>", ["<local>"], "a"),
        ("a;A;b", ["a"], "b"),
    ],
)
def test_with_bypass_removed(raw: str, hosts: list[str], expected: str) -> None:
    s = ConnectionSettings(VERSION_IE7, 0, ProxyFlags.DIRECT, bypass_list=raw)
    assert with_bypass_removed(s, hosts).bypass_list == expected


def test_with_bypass_removed_absent_returns_same_object() -> None:
    s = ConnectionSettings(VERSION_IE7, 0, ProxyFlags.DIRECT, bypass_list="a; b")
    assert with_bypass_removed(s, ["c"]) is s


def test_bypass_add_then_remove_restores_semantics() -> None:
    s = ConnectionSettings(VERSION_IE7, 0, ProxyFlags(0x03), "proxy:3128", "intranet.corp;<local>")
    added = with_bypass_added(s, NOTION_BYPASS_HOSTS)
    assert with_bypass_removed(added, NOTION_BYPASS_HOSTS).bypass_list == s.bypass_list


# ---------------------------------------------------------------------------
# Notion hosts and proxy_applies_to
# ---------------------------------------------------------------------------

NOTION_HOSTS = [
    "www.notion.so",
    "msgstore.www.notion.so",
    "app.notion.com",
    "notion.com",
    "file.notion.so",
    "exp.notion.so",
    "desktop-release.notion-static.com",
    "api.pgncs.notion.so",
    "prod-files-secure.s3.us-west-2.amazonaws.com",
]

OTHER_HOSTS = [
    "example.com",
    "www.google.com",
    "notion.so.evil.example",
    "evilnotion.so",
    "notion.som",
    "xnotion.com",
    "notion-static.com.example",
    "s3.us-west-2.amazonaws.com",
    "other-bucket.s3.us-west-2.amazonaws.com",
    "prod-files-secure.s3.us-west-2.amazonaws.com.evil.example",
    "10.0.0.5",
]


def _bypass_mode(raw: str = "<local>", proxy: str = "proxy.corp:8080") -> ConnectionSettings:
    base = ConnectionSettings(VERSION_IE7, 100, ProxyFlags(0x03), proxy, raw, "", bytes(32))
    return with_bypass_added(base, NOTION_BYPASS_HOSTS)


def test_notion_bypass_hosts_shape() -> None:
    assert NOTION_BYPASS_HOSTS == (
        "*.notion.so",
        "notion.so",
        "*.notion.com",
        "notion.com",
        "*.notion-static.com",
        "notion-static.com",
        "prod-files-secure.s3.us-west-2.amazonaws.com",
    )
    assert len({h.lower() for h in NOTION_BYPASS_HOSTS}) == len(NOTION_BYPASS_HOSTS)
    # Minimal: no entry is already covered by another one.
    for entry in NOTION_BYPASS_HOSTS:
        others = tuple(e for e in NOTION_BYPASS_HOSTS if e != entry)
        alone = ConnectionSettings(VERSION_IE7, 0, ProxyFlags(0x03), "p:1", ";".join(others))
        assert proxy_applies_to(alone, entry.replace("*", "sub")), entry


@pytest.mark.parametrize("host", NOTION_HOSTS)
def test_bypass_mode_sends_notion_direct(host: str) -> None:
    s = _bypass_mode()
    assert not proxy_applies_to(s, host)
    assert not proxy_applies_to(s, host.upper())
    assert not proxy_applies_to(s, host + ".")


@pytest.mark.parametrize("host", OTHER_HOSTS)
def test_bypass_mode_keeps_proxy_for_other_hosts(host: str) -> None:
    assert proxy_applies_to(_bypass_mode(), host)


def test_before_bypass_mode_notion_went_through_the_proxy() -> None:
    s = ConnectionSettings(VERSION_IE7, 100, ProxyFlags(0x03), "proxy.corp:8080", "<local>", "", bytes(32))
    assert all(proxy_applies_to(s, host) for host in NOTION_HOSTS)


PROXY_APPLIES = [
    pytest.param("<local>", "intranet", False, id="local-dotless"),
    pytest.param("<local>", "intranet.corp", True, id="local-dotted"),
    pytest.param("", "intranet", True, id="dotless-without-local"),
    pytest.param("", "localhost", False, id="implicit-loopback-name"),
    pytest.param("", "127.0.0.1", False, id="implicit-loopback-v4"),
    pytest.param("", "[::1]", False, id="implicit-loopback-v6"),
    pytest.param("<-loopback>", "localhost", True, id="minus-loopback"),
    pytest.param("<-loopback>", "127.0.0.1", True, id="minus-loopback-v4"),
    pytest.param("<local>", "[fe80::1]", True, id="ipv6-literal-not-local"),
    pytest.param("10.*", "10.1.2.3", False, id="ip-wildcard"),
    pytest.param("10.*", "110.1.2.3", True, id="ip-wildcard-anchored"),
    pytest.param("*.corp", "a.b.corp", False, id="wildcard-many-labels"),
    pytest.param("*.corp", "corp", True, id="wildcard-needs-dot"),
    pytest.param("corp.example", "www.corp.example", True, id="bare-name-only-itself"),
    pytest.param("CORP.example", "corp.EXAMPLE", False, id="case-insensitive"),
    pytest.param("*internal*", "my-internal-host.example", False, id="infix-wildcard"),
    pytest.param("a.b+c", "a.b+c", False, id="regex-chars-literal"),
    pytest.param("a.b+c", "a.bbc", True, id="regex-chars-not-special"),
]


@pytest.mark.parametrize(("raw", "host", "proxied"), PROXY_APPLIES)
def test_proxy_applies_to_table(raw: str, host: str, proxied: bool) -> None:
    s = ConnectionSettings(VERSION_IE7, 0, ProxyFlags(0x03), "proxy:8080", raw, "", bytes(32))
    assert proxy_applies_to(s, host) is proxied


@pytest.mark.parametrize(
    ("flags", "proxy", "scheme", "proxied"),
    [
        pytest.param(0x01, "proxy:8080", "https", False, id="manual-off"),
        pytest.param(0x0D, "proxy:8080", "https", False, id="pac-and-autodetect-only"),
        pytest.param(0x03, "", "https", False, id="manual-on-but-empty"),
        pytest.param(0x03, "http=p:80", "https", False, id="per-protocol-missing"),
        pytest.param(0x03, "http=p:80", "http", True, id="per-protocol-http"),
        pytest.param(0x03, "http=p:80;https=p:443", "HTTPS", True, id="per-protocol-https"),
        pytest.param(0x03, "ftp=f:21", "https", False, id="ftp-only"),
        pytest.param(0x03, "socks=s:1080", "https", True, id="socks-fallback"),
        pytest.param(0x03, "https=;http=p:80", "https", False, id="empty-value-ignored"),
    ],
)
def test_proxy_applies_to_flags_and_schemes(flags: int, proxy: str, scheme: str, proxied: bool) -> None:
    s = ConnectionSettings(VERSION_IE7, 0, ProxyFlags(flags), proxy, "", "", bytes(32))
    assert proxy_applies_to(s, "example.com", scheme=scheme) is proxied


@pytest.mark.parametrize(
    ("proxy", "scheme", "expected"),
    [
        ("p:80", "https", "p:80"),
        ("http=h:80;https=s:443;socks=k:1080", "https", "s:443"),
        ("http=h:80;socks=k:1080", "https", "k:1080"),
        ("http=h:80 https=s:443", "https", "s:443"),
        ("g:3128;ftp=f:21", "https", "g:3128"),
        ("", "https", None),
    ],
)
def test_proxy_for_scheme(proxy: str, scheme: str, expected: str | None) -> None:
    assert proxy_for_scheme(proxy, scheme) == expected


def test_proxy_applies_to_rejects_empty_host() -> None:
    with pytest.raises(ValueError, match="host must not be empty"):
        proxy_applies_to(_bypass_mode(), "  ")


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------

ascii_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=40)
u32 = st.integers(min_value=0, max_value=U32_MAX)


@st.composite
def valid_settings(draw: st.DrawFn) -> ConnectionSettings:
    version = draw(st.sampled_from(sorted(KNOWN_VERSIONS)))
    return ConnectionSettings(
        version=version,
        counter=draw(u32),
        flags=ProxyFlags(draw(u32)),
        proxy_server=draw(ascii_text),
        bypass_list=draw(ascii_text),
        pac_url="" if version == VERSION_WINHTTP else draw(ascii_text),
        trailing=draw(st.binary(max_size=64)),
    )


def _lp(raw: bytes) -> bytes:
    return struct.pack("<I", len(raw)) + raw


@st.composite
def valid_blobs(draw: st.DrawFn, with_trailing: bool = True) -> bytes:
    """Blobs assembled independently of build(): header, length-prefixed ASCII, random tail."""
    version = draw(st.sampled_from(sorted(KNOWN_VERSIONS)))
    ascii_bytes = st.binary(max_size=40).map(lambda b: bytes(x & 0x7F for x in b))
    blob = struct.pack("<III", version, draw(u32), draw(u32))
    blob += _lp(draw(ascii_bytes)) + _lp(draw(ascii_bytes))
    if version != VERSION_WINHTTP:
        blob += _lp(draw(ascii_bytes))
    if with_trailing:
        blob += draw(st.binary(max_size=64))
    return blob


@given(valid_settings())
def test_property_parse_build_round_trip(s: ConnectionSettings) -> None:
    assert parse(build(s)) == s


@given(valid_blobs())
def test_property_build_parse_is_byte_exact(blob: bytes) -> None:
    assert build(parse(blob)) == blob


@given(valid_blobs(with_trailing=False), st.data())
def test_property_any_truncation_inside_the_strings_is_an_error(blob: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    with pytest.raises(BlobFormatError):
        parse(blob[:cut])


@given(u32)
def test_property_counter_increment_wraps(counter: int) -> None:
    s = ConnectionSettings(version=VERSION_IE7, counter=counter, flags=ProxyFlags.DIRECT, trailing=bytes(32))
    bumped = with_counter_incremented(s)
    assert bumped.counter == (counter + 1) % 2**32
    assert bumped == ConnectionSettings(VERSION_IE7, (counter + 1) % 2**32, ProxyFlags.DIRECT, trailing=bytes(32))
    assert parse(build(bumped)).counter == bumped.counter


host_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
host_pattern = st.lists(host_label, min_size=1, max_size=4).map(".".join) | st.just("<local>")


@given(valid_settings(), st.lists(host_pattern, max_size=8))
@hsettings(max_examples=200)
def test_property_with_bypass_added(s: ConnectionSettings, hosts: list[str]) -> None:
    result = with_bypass_added(s, hosts)
    entries = bypass_entries(result)
    lowered = [e.lower() for e in entries]
    before = [e for e in bypass_entries(s) if e.lower() != "<local>"]
    # every requested host is present, existing non-<local> entries keep their order at the front
    assert {h.lower() for h in hosts} <= set(lowered)
    if result is not s:
        assert [e for e in entries if e.lower() != "<local>"][: len(before)] == before
        if "<local>" in lowered:
            assert lowered[-1] == "<local>" and lowered.count("<local>") == 1
    # idempotent, other fields untouched, still a valid blob
    assert with_bypass_added(result, hosts) is result
    assert (result.version, result.counter, result.flags, result.proxy_server, result.pac_url, result.trailing) == (
        s.version,
        s.counter,
        s.flags,
        s.proxy_server,
        s.pac_url,
        s.trailing,
    )
    assert parse(build(result)) == result


@given(st.lists(host_label, min_size=1, max_size=4).map(".".join), st.sampled_from(["example", "corp", "net", "io"]))
def test_property_bypass_mode_keeps_proxy_for_non_notion_hosts(name: str, tld: str) -> None:
    host = f"{name}.{tld}"
    s = _bypass_mode()
    assert proxy_applies_to(s, host)
    for notion in NOTION_HOSTS:
        assert not proxy_applies_to(s, notion)

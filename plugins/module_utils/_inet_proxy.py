# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic for the WinINET per-user proxy blob and its legacy mirror values.

Private to this collection. Nothing here touches the registry: callers read
``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\Connections``
``DefaultConnectionSettings`` (and ``SavedLegacySettings``) as bytes, hand them
to :func:`parse`, transform the immutable :class:`ConnectionSettings` with the
``with_*`` helpers, and write :func:`build`'s bytes back together with
:func:`legacy_values` (``ProxyEnable``, ``ProxyServer``, ``ProxyOverride``,
``AutoConfigURL`` under ``...\\Internet Settings``).

Blob layout (all integers unsigned 32-bit little-endian; Microsoft does not
document it, the layout below is the one every public decoder agrees on, e.g.
https://github.com/vbfox/proxyconf src/proxyconf/internet_settings/modern/serialization.rs)::

    offset 0   version      0x46 (IE7+), 0x3C (IE6), 0x28 (WinHTTP form)
    offset 4   counter      bumped by Windows on every change
    offset 8   flags        ProxyFlags bits
    offset 12  u32 length + ASCII  proxy server   ("host:port" or "http=h:p;https=h:p")
               u32 length + ASCII  bypass list    (ProxyOverride syntax, "<local>" token)
               u32 length + ASCII  PAC URL        (absent in the 0x28 WinHTTP form)
               trailing bytes      kept verbatim  (0x46: usually 32 zero bytes,
                                                   0x3C: 28; may hold other data)

Every byte is either interpreted or kept in ``trailing``, so
``build(parse(blob)) == blob`` for every blob :func:`parse` accepts, and
``parse(build(settings)) == settings`` for every valid ``ConnectionSettings``.
:func:`parse` never guesses: an unknown version, a truncated header, a length
prefix reaching past the end or a non-ASCII string raises
:class:`BlobFormatError` naming the field and the offset.
"""
from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace

__all__ = [
    "BlobFormatError",
    "ConnectionSettings",
    "DEFAULT_TRAILING_LENGTH",
    "KNOWN_VERSIONS",
    "NOTION_BYPASS_HOSTS",
    "ProxyFlags",
    "VERSION_IE6",
    "VERSION_IE7",
    "VERSION_WINHTTP",
    "build",
    "bypass_entries",
    "default_settings",
    "describe",
    "legacy_values",
    "parse",
    "proxy_applies_to",
    "proxy_for_scheme",
    "split_bypass_list",
    "with_bypass_added",
    "with_bypass_removed",
    "with_counter_incremented",
    "with_flags",
]

VERSION_WINHTTP = 0x28
VERSION_IE6 = 0x3C
VERSION_IE7 = 0x46

#: Versions :func:`parse` accepts, with the name :func:`describe` reports.
KNOWN_VERSIONS: dict[int, str] = {
    VERSION_WINHTTP: "winhttp",
    VERSION_IE6: "ie6",
    VERSION_IE7: "ie7",
}

#: Zero bytes Windows writes after the last string when it creates a blob from
#: scratch (vbfox/proxyconf writes 32 for IE7, 28 for IE6, none for WinHTTP).
DEFAULT_TRAILING_LENGTH: dict[int, int] = {
    VERSION_WINHTTP: 0,
    VERSION_IE6: 28,
    VERSION_IE7: 32,
}

#: A ProxyOverride list that makes WinINET go direct for every Notion host
#: (www.notion.so, msgstore.www.notion.so, file.notion.so, exp.notion.so,
#: api.pgncs.notion.so, notion.com, app.notion.com,
#: desktop-release.notion-static.com, and Notion's S3 file bucket) while every
#: other host keeps using the proxy. ``*.x`` does not match ``x`` itself, hence
#: the bare apex entries.
NOTION_BYPASS_HOSTS: tuple[str, ...] = (
    "*.notion.so",
    "notion.so",
    "*.notion.com",
    "notion.com",
    "*.notion-static.com",
    "notion-static.com",
    "prod-files-secure.s3.us-west-2.amazonaws.com",
)

_U32_MAX = 0xFFFFFFFF
_HEADER = struct.Struct("<III")
_U32 = struct.Struct("<I")
_LOCAL = "<local>"
_NO_LOOPBACK = "<-loopback>"
# WinINET/WinHTTP accept ';', ',' and whitespace between ProxyOverride entries.
_BYPASS_SEPARATORS = re.compile(r"[;,\s]+")
_PROXY_SEPARATORS = re.compile(r"[;\s]+")


class BlobFormatError(ValueError):
    """The bytes are not a connection-settings blob this module understands."""


class ProxyFlags(enum.IntFlag):
    """The flags dword (``PROXY_TYPE_*`` in wininet.h). Unknown bits are kept."""

    DIRECT = 0x01  # PROXY_TYPE_DIRECT; Windows always sets it
    PROXY = 0x02  # PROXY_TYPE_PROXY: "Use a proxy server for your LAN"
    AUTO_PROXY_URL = 0x04  # PROXY_TYPE_AUTO_PROXY_URL: "Use automatic configuration script"
    AUTO_DETECT = 0x08  # PROXY_TYPE_AUTO_DETECT: "Automatically detect settings"


_MODE_NAMES: tuple[tuple[ProxyFlags, str], ...] = (
    (ProxyFlags.DIRECT, "direct"),
    (ProxyFlags.PROXY, "manual_proxy"),
    (ProxyFlags.AUTO_PROXY_URL, "pac"),
    (ProxyFlags.AUTO_DETECT, "auto_detect"),
)
_KNOWN_FLAG_BITS = 0x0F


def _has_pac_field(version: int) -> bool:
    return version != VERSION_WINHTTP


def _check_u32(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= _U32_MAX:
        raise ValueError(f"{name} {value} is outside the unsigned 32-bit range")


def _check_ascii(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    for index, char in enumerate(value):
        if ord(char) > 0x7F:
            raise ValueError(f"{name} is not ASCII: character {char!r} at index {index}")


@dataclass(frozen=True)
class ConnectionSettings:
    """One decoded ``DefaultConnectionSettings`` / ``SavedLegacySettings`` blob.

    ``trailing`` is everything after the last length-prefixed string, kept
    verbatim. ``pac_url`` must be empty for the WinHTTP form (0x28), which has
    no PAC field. Construction validates every field, so an instance always
    builds to a blob that parses back to an equal instance.
    """

    version: int
    counter: int
    flags: ProxyFlags
    proxy_server: str = ""
    bypass_list: str = ""
    pac_url: str = ""
    trailing: bytes = b""  # a bytearray or memoryview given here is stored as bytes

    def __post_init__(self) -> None:
        _check_u32("version", self.version)
        if self.version not in KNOWN_VERSIONS:
            raise ValueError(f"unsupported version 0x{self.version:x} (known: {_known_versions_text()})")
        _check_u32("counter", self.counter)
        _check_u32("flags", self.flags)
        if not isinstance(self.flags, ProxyFlags):
            object.__setattr__(self, "flags", ProxyFlags(int(self.flags)))
        _check_ascii("proxy_server", self.proxy_server)
        _check_ascii("bypass_list", self.bypass_list)
        _check_ascii("pac_url", self.pac_url)
        if self.pac_url and not _has_pac_field(self.version):
            raise ValueError(f"pac_url must be empty for version 0x{self.version:x}, which has no PAC field")
        if not isinstance(self.trailing, (bytes, bytearray, memoryview)):
            raise TypeError(f"trailing must be bytes, got {type(self.trailing).__name__}")
        if not isinstance(self.trailing, bytes):
            object.__setattr__(self, "trailing", bytes(self.trailing))


def _known_versions_text() -> str:
    return ", ".join(f"0x{version:x} {name}" for version, name in sorted(KNOWN_VERSIONS.items()))


def default_settings(version: int = VERSION_IE7) -> ConnectionSettings:
    """Settings equal to a freshly created "no proxy" blob of ``version``."""
    if version not in KNOWN_VERSIONS:
        raise ValueError(f"unsupported version 0x{version:x} (known: {_known_versions_text()})")
    return ConnectionSettings(
        version=version,
        counter=0,
        flags=ProxyFlags.DIRECT,
        trailing=bytes(DEFAULT_TRAILING_LENGTH[version]),
    )


def _read_string(blob: bytes, offset: int, field: str) -> tuple[str, int]:
    remaining = len(blob) - offset
    if remaining < _U32.size:
        raise BlobFormatError(
            f"truncated blob: {field} length prefix at offset {offset} needs 4 bytes, only {remaining} remain"
        )
    (length,) = _U32.unpack_from(blob, offset)
    start = offset + _U32.size
    available = len(blob) - start
    if length > available:
        raise BlobFormatError(
            f"{field} length {length} (prefix at offset {offset}) runs past the end of the blob: only {available} bytes follow"
        )
    raw = blob[start:start + length]
    for index, byte in enumerate(raw):
        if byte > 0x7F:
            raise BlobFormatError(f"{field} is not ASCII: byte 0x{byte:02x} at offset {start + index}")
    return raw.decode("ascii"), start + length


def parse(blob: bytes | bytearray | memoryview) -> ConnectionSettings:
    """Decode a connection-settings blob; raise :class:`BlobFormatError` if malformed."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise TypeError(f"blob must be bytes, got {type(blob).__name__}")
    data = bytes(blob)
    if len(data) < _HEADER.size:
        raise BlobFormatError(f"blob too short for the header: need 12 bytes, got {len(data)}")
    version, counter, flags = _HEADER.unpack_from(data, 0)
    if version not in KNOWN_VERSIONS:
        raise BlobFormatError(f"unsupported version 0x{version:x} at offset 0 (known: {_known_versions_text()})")
    offset = _HEADER.size
    proxy_server, offset = _read_string(data, offset, "proxy_server")
    bypass_list, offset = _read_string(data, offset, "bypass_list")
    pac_url = ""
    if _has_pac_field(version):
        pac_url, offset = _read_string(data, offset, "pac_url")
    return ConnectionSettings(
        version=version,
        counter=counter,
        flags=ProxyFlags(flags),
        proxy_server=proxy_server,
        bypass_list=bypass_list,
        pac_url=pac_url,
        trailing=data[offset:],
    )


def _pack_string(value: str) -> bytes:
    raw = value.encode("ascii")
    return _U32.pack(len(raw)) + raw


def build(settings: ConnectionSettings) -> bytes:
    """Encode ``settings`` to the exact bytes Windows stores."""
    parts = [
        _HEADER.pack(settings.version, settings.counter, int(settings.flags)),
        _pack_string(settings.proxy_server),
        _pack_string(settings.bypass_list),
    ]
    if _has_pac_field(settings.version):
        parts.append(_pack_string(settings.pac_url))
    elif settings.pac_url:
        raise ValueError(f"pac_url must be empty for version 0x{settings.version:x}, which has no PAC field")
    parts.append(settings.trailing)
    return b"".join(parts)


def with_counter_incremented(settings: ConnectionSettings) -> ConnectionSettings:
    """The same settings with the change counter bumped (wrapping at 2**32)."""
    return replace(settings, counter=(settings.counter + 1) & _U32_MAX)


def split_bypass_list(raw: str) -> list[str]:
    """The entries of a ProxyOverride string, in order, as written (no de-dup)."""
    return [entry for entry in _BYPASS_SEPARATORS.split(raw) if entry]


def bypass_entries(settings: ConnectionSettings) -> list[str]:
    """The entries of the blob's bypass list, in order, as written."""
    return split_bypass_list(settings.bypass_list)


def _clean_host_entry(host: object) -> str:
    if not isinstance(host, str):
        raise TypeError(f"bypass entry must be a str, got {type(host).__name__}")
    entry = host.strip()
    if not entry:
        raise ValueError("bypass entry must not be empty")
    if _BYPASS_SEPARATORS.search(entry):
        raise ValueError(f"bypass entry {host!r} contains a list separator (';', ',' or whitespace)")
    _check_ascii("bypass entry", entry)
    return entry


def _join_with_local_last(entries: list[str], local: bool) -> str:
    body = [entry for entry in entries if entry.lower() != _LOCAL]
    if local:
        body.append(_LOCAL)
    return ";".join(body)


def with_bypass_added(settings: ConnectionSettings, hosts: Iterable[str]) -> ConnectionSettings:
    """Append each of ``hosts`` not already in the bypass list (case-insensitive).

    Existing entries keep their order and spelling; new ones follow them in the
    given order; ``<local>``, if present before or among ``hosts``, ends the
    list. When nothing is missing the very same object is returned, so callers
    can report "changed" with ``result is not settings``. The counter is not
    touched: use :func:`with_counter_incremented` when writing.
    """
    if isinstance(hosts, str):
        raise TypeError("hosts must be an iterable of host patterns, not a single str")
    existing = bypass_entries(settings)
    seen = {entry.lower() for entry in existing}
    added: list[str] = []
    for host in hosts:
        entry = _clean_host_entry(host)
        if entry.lower() not in seen:
            seen.add(entry.lower())
            added.append(entry)
    if not added:
        return settings
    local = _LOCAL in seen
    return replace(settings, bypass_list=_join_with_local_last(existing + added, local))


def with_bypass_removed(settings: ConnectionSettings, hosts: Iterable[str]) -> ConnectionSettings:
    """Drop every bypass entry equal (case-insensitively) to one of ``hosts``.

    Returns the very same object when none of ``hosts`` is present.
    """
    if isinstance(hosts, str):
        raise TypeError("hosts must be an iterable of host patterns, not a single str")
    drop = {_clean_host_entry(host).lower() for host in hosts}
    existing = bypass_entries(settings)
    kept = [entry for entry in existing if entry.lower() not in drop]
    if len(kept) == len(existing):
        return settings
    local = any(entry.lower() == _LOCAL for entry in kept)
    return replace(settings, bypass_list=_join_with_local_last(kept, local))


def with_flags(  # pylint: disable=redefined-builtin
    settings: ConnectionSettings,
    *,
    set: ProxyFlags | int = 0,
    clear: ProxyFlags | int = 0,
) -> ConnectionSettings:
    """Set then clear flag bits; a bit both set and cleared is an error."""
    _check_u32("set", set)
    _check_u32("clear", clear)
    both = int(set) & int(clear)
    if both:
        raise ValueError(f"flags 0x{both:x} are both set and cleared")
    value = (int(settings.flags) | int(set)) & ~int(clear) & _U32_MAX
    if value == int(settings.flags):
        return settings
    return replace(settings, flags=ProxyFlags(value))


def legacy_values(settings: ConnectionSettings) -> dict[str, int | str | None]:
    """The ``Internet Settings`` values that must agree with the blob.

    ``None`` means the value should be deleted. As the Internet Options dialog
    does, ``ProxyServer``/``ProxyOverride`` keep their text while the manual
    proxy is switched off (only ``ProxyEnable`` goes to 0), whereas
    ``AutoConfigURL`` exists only while the PAC flag is set.
    """
    flags = settings.flags
    pac_on = bool(flags & ProxyFlags.AUTO_PROXY_URL) and bool(settings.pac_url)
    return {
        "ProxyEnable": 1 if flags & ProxyFlags.PROXY else 0,
        "ProxyServer": settings.proxy_server or None,
        "ProxyOverride": settings.bypass_list or None,
        "AutoConfigURL": settings.pac_url if pac_on else None,
    }


def describe(settings: ConnectionSettings) -> dict[str, object]:
    """A JSON-friendly summary of ``settings``."""
    flags = int(settings.flags)
    return {
        "version": settings.version,
        "version_name": KNOWN_VERSIONS[settings.version],
        "counter": settings.counter,
        "flags": flags,
        "modes": [name for bit, name in _MODE_NAMES if flags & bit],
        "unknown_flags": flags & ~_KNOWN_FLAG_BITS,
        "proxy_server": settings.proxy_server,
        "bypass_list": bypass_entries(settings),
        "pac_url": settings.pac_url,
        "trailing_length": len(settings.trailing),
    }


def proxy_for_scheme(proxy_server: str, scheme: str) -> str | None:
    """The proxy WinINET uses for ``scheme`` given a ProxyServer string.

    ``"host:port"`` applies to every scheme. In the per-protocol form
    (``"http=h:p;https=h:p;socks=h:p"``) the scheme's own entry wins, then an
    entry without ``scheme=``, then ``socks=``; otherwise there is none.
    """
    wanted = scheme.lower()
    generic: str | None = None
    socks: str | None = None
    for item in _PROXY_SEPARATORS.split(proxy_server):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            if generic is None:
                generic = item
            continue
        key = key.strip().lower()
        if not value:
            continue
        if key == wanted:
            return value
        if key == "socks" and socks is None:
            socks = value
    return generic if generic is not None else socks


def _wildcard_matches(pattern: str, host: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, host, flags=re.IGNORECASE) is not None


def _is_loopback(host: str) -> bool:
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare in ("localhost", "::1"):
        return True
    octets = bare.split(".")
    return len(octets) == 4 and octets[0] == "127" and all(octet.isdigit() for octet in octets)


def _bypassed(entries: list[str], host: str) -> bool:
    lowered = [entry.lower() for entry in entries]
    if _NO_LOOPBACK not in lowered and _is_loopback(host):
        return True  # IE9+ WinINET bypasses loopback unless <-loopback> is listed
    for entry in lowered:
        if entry == _NO_LOOPBACK:
            continue
        if entry == _LOCAL:
            if "." not in host and ":" not in host:
                return True
            continue
        if _wildcard_matches(entry, host):
            return True
    return False


def proxy_applies_to(settings: ConnectionSettings, host: str, scheme: str = "https") -> bool:
    """Whether WinINET sends a ``scheme`` request for ``host`` through the manual proxy.

    Only the manual proxy is modelled: False when the PROXY flag is clear, when
    no proxy is configured for ``scheme``, or when ``host`` matches the bypass
    list (``*`` wildcards matched against the whole host name, case-insensitive;
    ``<local>`` = a name without a dot; loopback unless ``<-loopback>``). A PAC
    script or auto-detection, when enabled, is consulted by WinINET first and
    is not evaluated here.
    """
    if not settings.flags & ProxyFlags.PROXY:
        return False
    if proxy_for_scheme(settings.proxy_server, scheme) is None:
        return False
    name = host.strip().rstrip(".").lower()
    if not name:
        raise ValueError("host must not be empty")
    return not _bypassed(bypass_entries(settings), name)

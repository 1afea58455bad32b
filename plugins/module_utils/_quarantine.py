# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-user quarantine: where moved-aside data lives and how it is described.

Private to this collection. An entry is a directory ``<root>/<id>/`` holding
``manifest.json`` and ``items/<nnn>-<name>`` for every path moved aside. The
manifest is written before anything is moved, so an interrupted run still
leaves a record of what it meant to move; restore and purge read it back.
"""
from __future__ import annotations

import datetime
import json
import re
import typing as t
from dataclasses import asdict, dataclass, field

MANIFEST_NAME = 'manifest.json'
MANIFEST_FORMAT = 1
ENTRY_ID_PATTERN = re.compile(r'\d{8}T\d{6}Z-[0-9a-f]{6}')
_DURATION = re.compile(r'^\s*(\d+)\s*([smhdw])\s*$')
_DURATION_SECONDS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}


class ManifestError(ValueError):
    """A manifest this version cannot read; the entry is reported, never touched."""


@dataclass(frozen=True)
class QuarantinedItem:
    original_path: str
    stored_as: str
    scope: str
    type: str
    bytes: int
    files: int


@dataclass(frozen=True)
class Manifest:
    id: str
    created: str
    module: str
    reason: str
    user: str
    sid: str
    platform: str
    items: tuple[QuarantinedItem, ...]
    restored: str | None = None
    format: int = MANIFEST_FORMAT
    extra: dict[str, t.Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data['items'] = [asdict(item) for item in self.items]
        return json.dumps(data, indent=2, sort_keys=True) + '\n'

    @property
    def bytes(self) -> int:
        return sum(item.bytes for item in self.items)


def new_entry_id(now: datetime.datetime, token: str) -> str:
    """An id that sorts by time: ``20261129T141500Z-1a2b3c``; token is 6 hex digits."""
    if not re.fullmatch(r'[0-9a-f]{6}', token):
        raise ValueError(f'entry token must be 6 lowercase hex digits, got {token!r}')
    return now.astimezone(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ') + '-' + token


def entry_time(entry_id: str) -> datetime.datetime:
    if not ENTRY_ID_PATTERN.fullmatch(entry_id):
        raise ValueError(f'not a quarantine entry id: {entry_id!r}')
    return datetime.datetime.strptime(entry_id[:16], '%Y%m%dT%H%M%SZ').replace(tzinfo=datetime.timezone.utc)


def parse_duration(text: str) -> datetime.timedelta:
    """'30d', '12h', '90m', '2w', '45s' -> timedelta; anything else raises ValueError."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"older_than must look like '7d', '12h', '30m', '2w' or '45s', got {text!r}")
    return datetime.timedelta(seconds=int(match.group(1)) * _DURATION_SECONDS[match.group(2)])


def stored_name(index: int, original_path: str, path_module: t.Any) -> str:
    base = path_module.basename(path_module.normpath(original_path)) or 'item'
    return f'{index:03d}-{base}'


def entry_operations(manifest: Manifest, entry_dir: str, *, group: str, owner_sid: str,
                     path_module: t.Any) -> list[dict[str, t.Any]]:
    """Bridge operations that create a private entry, write its manifest, then move every item in.

    The manifest goes first so that an interrupted run still leaves a record of what it meant to
    move; all operations share ``group``, so nothing is moved into an entry that failed.
    """
    operations: list[dict[str, t.Any]] = [
        {'op': 'ensure_private_dir', 'group': group, 'path': entry_dir, 'owner_sid': owner_sid},
        {'op': 'write_file', 'group': group, 'path': path_module.join(entry_dir, MANIFEST_NAME),
         'content': manifest.to_json()},
    ]
    operations += [{'op': 'move_path', 'group': group, 'source': item.original_path,
                    'destination': path_module.join(entry_dir, item.stored_as)} for item in manifest.items]
    return operations


def parse_manifest(text: str, path: str) -> Manifest:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ManifestError(f'{path}: not JSON ({error})') from None
    if not isinstance(data, dict) or data.get('format') != MANIFEST_FORMAT:
        raise ManifestError(f'{path}: unsupported manifest format {data.get("format") if isinstance(data, dict) else None!r}')
    if 'id' in data and not (isinstance(data['id'], str) and ENTRY_ID_PATTERN.fullmatch(data['id'])):
        raise ManifestError(f'{path}: {data.get("id")!r} is not a quarantine entry id')
    try:
        items = tuple(QuarantinedItem(**item) for item in data['items'])
        return Manifest(id=data['id'], created=data['created'], module=data['module'], reason=data['reason'],
                        user=data['user'], sid=data['sid'], platform=data['platform'], items=items,
                        restored=data.get('restored'), extra=data.get('extra') or {})
    except (KeyError, TypeError) as error:
        raise ManifestError(f'{path}: malformed manifest ({error})') from None

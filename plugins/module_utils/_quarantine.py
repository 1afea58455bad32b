# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-user quarantine: where moved-aside data lives and how it is described.

Private to this collection. An entry is a directory ``<root>/<id>/`` in the
user's profile holding ``items/<nnn>-<name>`` for every path moved aside. What
the entry holds, where each item came from and with which owner and mode, is
its manifest. The manifest that counts is the *trusted record*, kept in the
host's administrator-only store (namespace ``quarantine``) and written before
anything is moved, so an interrupted run still leaves a record; restore and
purge act only on it. The ``manifest.json`` beside the items is the user's
copy, for their information: the user can change it, so it is only compared
with the record and reported, never acted on.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import re
import typing as t
from dataclasses import asdict, dataclass, field

MANIFEST_NAME = 'manifest.json'
MANIFEST_FORMAT = 2
RECORD_NAMESPACE = 'quarantine'
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
    # What restore puts back on the item itself: POSIX {uid, gid, mode}, Windows {owner_sid}.
    attributes: dict[str, t.Any] | None = None


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
    entry_dir: str = ''
    profile_path: str = ''

    def to_json(self) -> str:
        data = asdict(self)
        data['items'] = [asdict(item) for item in self.items]
        return json.dumps(data, indent=2, sort_keys=True) + '\n'

    @property
    def bytes(self) -> int:
        return sum(item.bytes for item in self.items)

    @property
    def record_key(self) -> str:
        return record_key(self.id, self.sid)


def record_key(entry_id: str, sid: str) -> str:
    """The trusted record's name: the entry id and a digest of the owner (POSIX sids hold '/' and ':')."""
    return f'{entry_id}.{hashlib.sha256(sid.encode()).hexdigest()[:16]}'


def item_attributes(stat_entry: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """The owner and mode a probe found on a path, as restore will put them back."""
    if 'uid' in stat_entry:
        return {'uid': stat_entry['uid'], 'gid': stat_entry['gid'], 'mode': stat_entry['mode']}
    if stat_entry.get('owner_sid'):
        return {'owner_sid': stat_entry['owner_sid']}
    return None


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


def entry_operations(manifest: Manifest, *, group: str, owner_sid: str, anchor: t.Callable[..., str],
                     path_module: t.Any) -> list[dict[str, t.Any]]:
    """Bridge operations that create a private entry, record it, then move every item in.

    The trusted record goes first so that an interrupted run still leaves a record of what it meant
    to move; all operations share ``group``, so nothing is moved into an entry that failed.
    ``anchor(*paths)`` gives the ``within`` of an operation (containment.anchor_for for the user).
    """
    entry_dir = manifest.entry_dir
    operations: list[dict[str, t.Any]] = [
        {'op': 'ensure_private_dir', 'group': group, 'path': entry_dir, 'owner_sid': owner_sid,
         'within': anchor(entry_dir)},
        {'op': 'write_record', 'group': group, 'namespace': RECORD_NAMESPACE, 'key': manifest.record_key,
         'content': manifest.to_json()},
        {'op': 'write_file', 'group': group, 'path': path_module.join(entry_dir, MANIFEST_NAME),
         'content': manifest.to_json(), 'within': anchor(entry_dir)},
    ]
    for item in manifest.items:
        destination = path_module.join(entry_dir, item.stored_as)
        operations.append({'op': 'move_path', 'group': group, 'source': item.original_path,
                           'destination': destination, 'within': anchor(item.original_path, destination)})
    return operations


_ITEM_FIELDS: dict[str, type | tuple[type, ...]] = {
    'original_path': str, 'stored_as': str, 'scope': str, 'type': str, 'bytes': int, 'files': int,
    'attributes': (dict, type(None))}
_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    'id': str, 'created': str, 'module': str, 'reason': str, 'user': str, 'sid': str, 'platform': str,
    'restored': (str, type(None)), 'extra': dict, 'entry_dir': str, 'profile_path': str}


_REQUIRED = ('id', 'created', 'module', 'reason', 'user', 'sid', 'platform', 'items')


def _checked(data: t.Any, fields: dict[str, type | tuple[type, ...]], path: str, what: str,
             *, strict: bool) -> dict[str, t.Any]:
    """The known fields of an object, each of its declared type; unknown fields fail when strict."""
    if not isinstance(data, dict):
        raise ManifestError(f'{path}: malformed manifest ({what} is not an object)')
    unknown = sorted(str(name) for name in set(data) - set(fields))
    if strict and unknown:
        raise ManifestError(f'{path}: malformed manifest ({what} has unknown fields {", ".join(unknown)})')
    for name, kind in fields.items():
        value = data.get(name)
        if name in data and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ManifestError(f'{path}: malformed manifest ({what} field {name} has the wrong type)')
    return {name: data[name] for name in fields if name in data}


def parse_manifest(text: str, path: str) -> Manifest:
    """A manifest from its JSON; anything else (wrong format, types, fields) raises ManifestError.

    Unknown top-level fields are ignored (a newer version may add some); an item is read strictly,
    because every field of an item decides what restore does.
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ManifestError(f'{path}: not JSON ({error})') from None
    if not isinstance(data, dict) or data.get('format') != MANIFEST_FORMAT:
        raise ManifestError(f'{path}: unsupported manifest format {data.get("format") if isinstance(data, dict) else None!r}')
    for key in _REQUIRED:
        if key not in data:
            raise ManifestError(f'{path}: malformed manifest ({key!r})')
    fields = _checked(data, _MANIFEST_FIELDS, path, 'the manifest', strict=False)
    if not ENTRY_ID_PATTERN.fullmatch(fields['id']):
        raise ManifestError(f'{path}: {data.get("id")!r} is not a quarantine entry id')
    if not isinstance(data['items'], list):
        raise ManifestError(f'{path}: malformed manifest (items is not a list)')
    try:
        items = tuple(QuarantinedItem(**_checked(item, _ITEM_FIELDS, path, 'an item', strict=True))
                      for item in data['items'])
        return Manifest(**fields, items=items)
    except TypeError as error:
        raise ManifestError(f'{path}: malformed manifest ({error})') from None

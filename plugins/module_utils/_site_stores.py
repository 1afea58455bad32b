# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remove one site's entries from a browser's shared databases, on a private copy.

Private to this collection. Every editor takes the bytes of a store as the host
read them (a file, or every file of a LevelDB directory), writes them into a
fresh private temporary directory of the process running the logic (the
controller for Windows hosts, the module on macOS/Linux), edits that copy with
a maintained library and returns the bytes of the edited store. Nothing here
touches a user's files: the caller quarantines the original and puts the
edited copy in its place through the host's link-safe operations.

* SQLite (Chromium ``Cookies``, Firefox ``cookies.sqlite``,
  ``webappsstore.sqlite`` and ``storage/ls-archive.sqlite``): Python's ``sqlite3``; rows are deleted by host only
  (cookie values stay encrypted and are never read), then ``VACUUM`` so the
  deleted rows leave no trace in free pages.
* Firefox ``storage/ls-archive.sqlite`` (the LocalStorage archive Firefox imports
  an origin's data from when it first opens that origin's ``ls/`` database) has
  webappsstore's table and is edited like it.
* Firefox ``serviceworker.txt`` (ServiceWorkerRegistrar's text file): a version
  line, then one record per registration ending with a ``#`` line; a record's
  second line is its scope (third in version 2). Whole records of the site are
  dropped, every other byte is kept as it was.
* LevelDB (Local Storage, Session Storage, the Service Worker database,
  ``File System/Origins``): ``plyvel`` (a maintained binding of Google's
  LevelDB), keys deleted in one write batch, then a full compaction so old
  values are dropped from the table files. Without plyvel on the host running
  the logic, LevelDB stores are reported ``skipped`` and left untouched.

A store whose format is not the one expected (missing table, failed integrity
check, a LevelDB that does not open) raises StoreError and is left untouched.
"""
from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import tempfile
import typing as t
from dataclasses import dataclass, field

from ansible_collections.loopbreaker.notion.plugins.module_utils import _browser_profiles as bp

try:
    import plyvel
except ImportError:  # pragma: no cover - depends on the host
    plyvel = None

LEVELDB_KINDS = ('local_storage', 'session_storage', 'service_worker_database', 'file_system_origins')
PLYVEL_MISSING = 'LevelDB support (plyvel) is not installed where the module logic runs'


class StoreError(Exception):
    """A store that cannot be edited safely; it is reported and left as it is."""


class StoreUnavailable(StoreError):
    """A store this host cannot edit (a library is missing); reported as skipped."""


@dataclass
class Edit:
    removed: dict[str, int] = field(default_factory=dict)  # site -> entries removed
    files: list[dict[str, t.Any]] | None = None  # the edited store, None when nothing matched
    details: dict[str, t.Any] = field(default_factory=dict)

    @property
    def entries(self) -> int:
        return sum(self.removed.values())


def _count(removed: dict[str, int], site: str) -> None:
    removed[site] = removed.get(site, 0) + 1


def _materialise(directory: str, files: list[dict[str, t.Any]], name: str) -> str:
    """Write a store's files under directory; returns the store's path (a file or a folder)."""
    target = os.path.join(directory, name)
    for entry in files:
        relative = entry['name']
        if relative and (relative.startswith('/') or '..' in relative.split('/')):
            raise StoreError(f'refusing the file name {relative!r}')
        path = os.path.join(target, *relative.split('/')) if relative else target
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'xb') as handle:
            handle.write(base64.b64decode(entry['data']))
    if not files:
        os.makedirs(target, exist_ok=True)
    return target


def _collect(path: str, modes: dict[str, int]) -> list[dict[str, t.Any]]:
    if os.path.isfile(path):
        with open(path, 'rb') as handle:
            return [{'name': '', 'mode': modes.get('', 0o600), 'data': base64.b64encode(handle.read()).decode()}]
    files = []
    for directory, _dirs, names in os.walk(path):
        for name in sorted(names):
            full = os.path.join(directory, name)
            relative = os.path.relpath(full, path).replace(os.sep, '/')
            if relative == 'LOCK':
                continue
            with open(full, 'rb') as handle:
                files.append({'name': relative, 'mode': modes.get(relative, 0o600),
                              'data': base64.b64encode(handle.read()).decode()})
    return files


def edit(kind: str, files: list[dict[str, t.Any]], companions: dict[str, list[dict[str, t.Any]]],
         sites: tuple[str, ...]) -> Edit:
    """Edit one store (``files`` as read_trees returned them); companions are e.g. {'Cookies-journal': files}."""
    if kind in LEVELDB_KINDS and plyvel is None:
        raise StoreUnavailable(PLYVEL_MISSING)
    modes = {entry['name']: int(entry.get('mode', 0o600)) for entry in files}
    work = tempfile.mkdtemp(prefix='loopbreaker-store-')
    try:
        path = _materialise(work, files, 'store')
        for suffix, companion in companions.items():
            _materialise(work, companion, 'store' + suffix)
        result = _EDITORS[kind](path, sites)
        if result.entries:
            result.files = _collect(path, modes)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- SQLite

def _sqlite_edit(path: str, table: str, column: str, host_of: t.Callable[[str], str | None],
                 sites: tuple[str, ...]) -> Edit:
    try:
        connection = sqlite3.connect(f'file:{path}?mode=rw', uri=True, isolation_level=None)
    except sqlite3.Error as error:
        raise StoreError(f'not an SQLite database ({error})') from None
    try:
        try:
            check = connection.execute('PRAGMA quick_check').fetchone()
            if not check or check[0] != 'ok':
                raise StoreError(f'the database failed its integrity check ({check[0] if check else "no answer"})')
            columns = {row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')}
        except sqlite3.DatabaseError as error:
            raise StoreError(f'not a readable SQLite database ({error})') from None
        if column not in columns:
            raise StoreError(f'unknown format: no table {table} with a {column} column')
        result = Edit()
        doomed = []
        for rowid, value in connection.execute(f'SELECT rowid, "{column}" FROM "{table}"'):
            site = bp.host_matches(host_of(value) if isinstance(value, str) else None, sites)
            if site:
                _count(result.removed, site)
                doomed.append((rowid,))
        if doomed:
            connection.execute('BEGIN IMMEDIATE')
            connection.executemany(f'DELETE FROM "{table}" WHERE rowid = ?', doomed)
            connection.execute('COMMIT')
            connection.execute('VACUUM')
            connection.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    finally:
        connection.close()
    for suffix in ('-wal', '-shm', '-journal'):
        if os.path.exists(path + suffix) and os.path.getsize(path + suffix) == 0:
            os.unlink(path + suffix)
    return result


def _chromium_cookies(path: str, sites: tuple[str, ...]) -> Edit:
    return _sqlite_edit(path, 'cookies', 'host_key', lambda host: host, sites)


def _firefox_cookies(path: str, sites: tuple[str, ...]) -> Edit:
    return _sqlite_edit(path, 'moz_cookies', 'host', lambda host: host, sites)


def _firefox_webappsstore(path: str, sites: tuple[str, ...]) -> Edit:
    return _sqlite_edit(path, 'webappsstore2', 'originKey', bp.firefox_origin_key_host, sites)


def _firefox_ls_archive(path: str, sites: tuple[str, ...]) -> Edit:
    return _sqlite_edit(path, 'webappsstore2', 'originKey', bp.firefox_origin_key_host, sites)


# ------------------------------------------------------- serviceworker.txt

SERVICE_WORKER_TERMINATOR = b'#'


def _ends_record(lines: list[bytes], index: int, scope_line: int) -> bool:
    """Whether the ``#`` line at index ends a registration: the file ends, or a record starts after it.

    A page chooses its navigation preload header value, which may be ``#``; Firefox reads a fixed number
    of lines per version, so a ``#`` only ends a record where the next lines are origin attributes
    (empty or ``^...``) and a scope URL.
    """
    rest = lines[index + 1:-1]
    if not rest:
        return True
    return (len(rest) > scope_line and (rest[0] == b'' or rest[0].startswith(b'^'))
            and bp.origin_host(rest[scope_line].decode('utf-8', 'replace')) is not None)


def _firefox_service_workers(path: str, sites: tuple[str, ...]) -> Edit:
    """Drop the site's registrations from ServiceWorkerRegistrar's file, keeping every other byte."""
    with open(path, 'rb') as handle:
        data = handle.read()
    version, newline, body = data.partition(b'\n')
    if not newline:
        raise StoreError('unknown format: no registrar version line')
    if not version.isdigit() or int(version) < 2:
        raise StoreError(f'unknown format: registrar version {version[:20]!r}')
    # Version 2 wrote the principal's spec between the origin attributes and the scope.
    scope_line = 2 if int(version) == 2 else 1
    lines = body.split(b'\n')
    if lines[-1] != b'':
        raise StoreError('unknown format: the last registration is not terminated')
    kept, record, result = [version + b'\n'], [], Edit()
    for index, line in enumerate(lines[:-1]):
        record.append(line + b'\n')
        if line != SERVICE_WORKER_TERMINATOR or not _ends_record(lines, index, scope_line):
            continue
        if len(record) <= scope_line + 1:
            raise StoreError('unknown format: a registration record is too short')
        scope = record[scope_line][:-1].decode('utf-8', 'replace')
        if bp.origin_host(scope) is None:
            raise StoreError(f'unknown format: a registration scope is not a URL ({scope[:80]!r})')
        site = bp.host_matches(bp.origin_host(scope), sites)
        if site:
            _count(result.removed, site)
        else:
            kept += record
        record = []
    if record:
        raise StoreError('unknown format: the last registration is not terminated')
    if result.removed:
        with open(path, 'wb') as handle:
            handle.write(b''.join(kept))
    return result


# ---------------------------------------------------------------- LevelDB

def _open_leveldb(path: str) -> t.Any:
    if not os.path.exists(os.path.join(path, 'CURRENT')):
        raise StoreError('unknown format: not a LevelDB directory (no CURRENT file)')
    try:
        return plyvel.DB(path, create_if_missing=False, paranoid_checks=True)
    except (plyvel.Error, OSError) as error:
        raise StoreError(f'the LevelDB store does not open ({error})') from None


def _leveldb_edit(path: str, choose: t.Callable[[t.Any], tuple[list[bytes], dict[str, int], dict[str, t.Any]]],
                  extra_puts: t.Callable[[dict[str, t.Any]], dict[bytes, bytes]] | None = None) -> Edit:
    database = _open_leveldb(path)
    try:
        try:
            doomed, removed, details = choose(database)
        except plyvel.Error as error:
            raise StoreError(f'the LevelDB store could not be read ({error})') from None
        if doomed:
            with database.write_batch(sync=True) as batch:
                for key in doomed:
                    batch.delete(key)
                for key, value in (extra_puts(details) if extra_puts else {}).items():
                    batch.put(key, value)
            database.compact_range()
    finally:
        database.close()
    return Edit(removed=removed, details=details)


def _text(key: bytes) -> str:
    return key.decode('latin-1')


def _local_storage(path: str, sites: tuple[str, ...]) -> Edit:
    def choose(database: t.Any) -> tuple[list[bytes], dict[str, int], dict[str, t.Any]]:
        doomed, removed = [], {}
        for key in database.iterator(include_value=False):
            text = _text(key)
            if text.startswith('_'):
                storage_key = text[1:].split('\x00', 1)[0]
                counted = True
            elif text.startswith(('META:', 'METAACCESS:')):
                storage_key, counted = text.split(':', 1)[1], False
            else:
                continue
            site = bp.host_matches(bp.origin_host(storage_key), sites)
            if site:
                doomed.append(key)
                if counted:
                    _count(removed, site)
        # An origin with metadata only still counts once, so a re-run finds it clean.
        for key in doomed:
            site = bp.host_matches(bp.origin_host(_text(key).split(':', 1)[-1]), sites)
            if site and site not in removed:
                removed[site] = 0
        return doomed, {s: max(n, 1) for s, n in removed.items()}, {}
    return _leveldb_edit(path, choose)


def _session_storage(path: str, sites: tuple[str, ...]) -> Edit:
    def choose(database: t.Any) -> tuple[list[bytes], dict[str, int], dict[str, t.Any]]:
        doomed, removed, maps_of, kept_maps = [], {}, {}, set()
        for key, value in database:
            text = _text(key)
            if not text.startswith('namespace-'):
                continue
            rest = text[len('namespace-'):]
            # namespace-<36-character guid>-<storage key>
            storage_key = rest[37:] if len(rest) > 37 else ''
            site = bp.host_matches(bp.origin_host(storage_key), sites)
            if site:
                doomed.append(key)
                _count(removed, site)
                maps_of.setdefault(_text(value), site)
            else:
                kept_maps.add(_text(value))
        for key in database.iterator(include_value=False, prefix=b'map-'):
            map_id = _text(key)[4:].split('-', 1)[0]
            if map_id in maps_of and map_id not in kept_maps:
                doomed.append(key)
        return doomed, removed, {}
    return _leveldb_edit(path, choose)


def _protobuf_fields(data: bytes) -> list[tuple[int, int, t.Any]]:
    """Top-level (field number, wire type, value) of a protocol buffer message; raises ValueError."""
    fields, index = [], 0

    def varint() -> int:
        nonlocal index
        shift = result = 0
        while True:
            if index >= len(data) or shift > 63:
                raise ValueError('truncated varint')
            byte = data[index]
            index += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result
    while index < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            fields.append((number, wire, varint()))
        elif wire == 2:
            length = varint()
            if index + length > len(data):
                raise ValueError('truncated field')
            fields.append((number, wire, data[index:index + length]))
            index += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            fields.append((number, wire, data[index:index + size]))
            index += size
        else:
            raise ValueError(f'unsupported wire type {wire}')
    return fields


def _service_worker_database(path: str, sites: tuple[str, ...]) -> Edit:
    def choose(database: t.Any) -> tuple[list[bytes], dict[str, int], dict[str, t.Any]]:
        doomed, removed, registrations, resources = [], {}, set(), []
        entries = list(database)
        for key, value in entries:
            text = _text(key)
            if text.startswith('REGID_TO_ORIGIN:'):
                site = bp.host_matches(bp.origin_host(_text(value)), sites)
                if site:
                    registrations.add(text.split(':', 1)[1])
                    doomed.append(key)
            elif text.startswith(('REG:', 'INITDATA_UNIQUE_ORIGIN:', 'INITDATA_FOREIGN_FETCH_ORIGIN:')):
                origin = text.split(':', 1)[1].split('\x00', 1)[0]
                site = bp.host_matches(bp.origin_host(origin), sites)
                if site:
                    doomed.append(key)
                    if text.startswith('REG:'):
                        _count(removed, site)
            elif text.startswith('RES:'):
                try:
                    fields = {number: value for number, _wire, value in _protobuf_fields(value)}
                except ValueError:
                    raise StoreError(f'unknown format of the resource record {text!r}') from None
                url = fields.get(2)
                if isinstance(url, bytes) and bp.host_matches(bp.origin_host(url.decode('utf-8', 'replace')), sites):
                    doomed.append(key)
                    resources.append(text.split('\x00', 1)[1] if '\x00' in text else str(fields.get(1, '')))
        for key, _value in entries:
            text = _text(key)
            if text.startswith('REG_USER_DATA:') and text[len('REG_USER_DATA:'):].split('\x00', 1)[0] in registrations:
                doomed.append(key)
            elif text.startswith('REG_HAS_USER_DATA:') and text.rsplit('\x00', 1)[-1] in registrations:
                doomed.append(key)
            elif text.startswith('URES:') and text[5:] in resources:
                doomed.append(key)
        return doomed, removed, {'purgeable': resources}

    def purge(details: dict[str, t.Any]) -> dict[bytes, bytes]:
        # Chromium deletes the scripts of purgeable resources from its ScriptCache at the next start,
        # as it does when a registration is deleted from the browser.
        return {f'PRES:{resource}'.encode(): b'' for resource in details['purgeable'] if resource.isdigit()}
    return _leveldb_edit(path, choose, purge)


def _file_system_origins(path: str, sites: tuple[str, ...]) -> Edit:
    def choose(database: t.Any) -> tuple[list[bytes], dict[str, int], dict[str, t.Any]]:
        doomed, removed, folders = [], {}, {}
        for key, value in database.iterator(prefix=b'ORIGIN:'):
            site = bp.host_matches(bp.chromium_identifier_host(_text(key)[len('ORIGIN:'):]), sites)
            if site:
                doomed.append(key)
                _count(removed, site)
                folders[_text(value)] = site
        return doomed, removed, {'folders': folders}
    return _leveldb_edit(path, choose)


_EDITORS: dict[str, t.Callable[[str, tuple[str, ...]], Edit]] = {
    'chromium_cookies': _chromium_cookies,
    'firefox_cookies': _firefox_cookies,
    'firefox_webappsstore': _firefox_webappsstore,
    'firefox_ls_archive': _firefox_ls_archive,
    'firefox_service_workers': _firefox_service_workers,
    'local_storage': _local_storage,
    'session_storage': _session_storage,
    'service_worker_database': _service_worker_database,
    'file_system_origins': _file_system_origins,
}


# ------------------------------------------------------------- read-only maps

def file_system_folders(files: list[dict[str, t.Any]], sites: tuple[str, ...]) -> dict[str, str]:
    """{folder under File System: site} from ``File System/Origins`` (read on a copy, not edited)."""
    if plyvel is None:
        raise StoreUnavailable(PLYVEL_MISSING)
    work = tempfile.mkdtemp(prefix='loopbreaker-store-')
    try:
        path = _materialise(work, files, 'store')
        return t.cast(dict, _file_system_origins(path, sites).details['folders'])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def quota_buckets(files: list[dict[str, t.Any]], sites: tuple[str, ...]) -> dict[str, str]:
    """{bucket id: site} from ``WebStorage/QuotaManager``."""
    work = tempfile.mkdtemp(prefix='loopbreaker-store-')
    try:
        path = _materialise(work, files, 'store')
        try:
            connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
            try:
                rows = connection.execute('SELECT id, storage_key FROM buckets').fetchall()
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise StoreError(f'QuotaManager is not readable ({error})') from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = {}
    for bucket_id, storage_key in rows:
        site = bp.host_matches(bp.origin_host(str(storage_key)), sites)
        if site:
            found[str(bucket_id)] = site
    return found


def cache_storage_host(files: list[dict[str, t.Any]]) -> str | None:
    """The origin host named by a Cache Storage ``index.txt`` (a protocol buffer), or None."""
    if len(files) != 1:
        return None
    try:
        fields = _protobuf_fields(base64.b64decode(files[0]['data']))
    except ValueError:
        return None
    for number, wire, value in fields:
        if number in (2, 3) and wire == 2:
            host = bp.origin_host(value.decode('utf-8', 'replace'))
            if host:
                return host
    return None

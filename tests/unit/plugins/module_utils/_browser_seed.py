# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helpers: browser profiles laid out as Chromium and Firefox lay them out, with real stores.

The stores are real databases built with the libraries the browsers' formats need (sqlite3, plyvel),
holding entries for Notion's origins, for ``evilnotion.so`` and for an unrelated site, with the key
and folder spellings Chromium 156 and Firefox use (checked against a profile Chromium wrote).
Imported as ``ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._browser_seed``.
"""
from __future__ import annotations

import configparser
import io
import os
import shutil
import sqlite3
import tempfile
import typing as t
from pathlib import Path

import plyvel

NOTION = ('https://www.notion.so', 'https://app.notion.com', 'https://msgstore.www.notion.so')
OTHERS = ('https://evilnotion.so', 'https://example.org')
SESSION_GUID = '0c5e2a10-3f1d-4c8e-9d7a-6b2f1e0a9c44'


def identifier(origin: str) -> str:
    scheme, host = origin.split('://')
    return f'{scheme}_{host}_0'


def _leveldb(path: Path, entries: dict[bytes, bytes]) -> None:
    database = plyvel.DB(str(path), create_if_missing=True)
    with database.write_batch() as batch:
        for key, value in entries.items():
            batch.put(key, value)
    database.close()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string_field(number: int, text: str) -> bytes:
    data = text.encode()
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def chromium_profile(root: Path, origins: t.Sequence[str] = NOTION + OTHERS) -> None:
    """A Chromium profile directory ``root`` with every store browser_data reads."""
    root.mkdir(parents=True, exist_ok=True)
    cookies = sqlite3.connect(root / 'Cookies')
    cookies.execute('CREATE TABLE meta(key LONGVARCHAR NOT NULL UNIQUE PRIMARY KEY, value LONGVARCHAR)')
    cookies.execute('CREATE TABLE cookies(creation_utc INTEGER NOT NULL, host_key TEXT NOT NULL, '
                    'top_frame_site_key TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, '
                    'encrypted_value BLOB NOT NULL, path TEXT NOT NULL)')
    for number, origin in enumerate(origins):
        host = origin.split('://')[1]
        for cookie_host in (host, '.' + host):
            cookies.execute('INSERT INTO cookies VALUES (?, ?, "", ?, "", ?, "/")',
                            (number, cookie_host, f'c{number}', b'v20' + os.urandom(16)))
    cookies.commit()
    cookies.close()
    local = {b'VERSION': b'1'}
    session = {b'version': b'1', b'next-map-id': str(len(origins)).encode()}
    workers = {b'INITDATA_DB_VERSION': b'2'}
    fs_origins = {b'LAST_PATH': f'{len(origins) - 1:03d}'.encode()}
    for number, origin in enumerate(origins):
        local[f'_{origin}\x00\x01key'.encode()] = b'\x01' + origin.encode()
        local[f'META:{origin}'.encode()] = b'\x08\x01'
        session[f'namespace-{SESSION_GUID}-{origin}/'.encode()] = str(number).encode()
        session[f'map-{number}-key'.encode()] = origin.encode()
        workers[f'INITDATA_UNIQUE_ORIGIN:{origin}/'.encode()] = b''
        workers[f'REG:{origin}/\x00{number}'.encode()] = b'\x08' + _varint(number)
        workers[f'REGID_TO_ORIGIN:{number}'.encode()] = f'{origin}/'.encode()
        resource = b'\x08' + _varint(number + 100) + _string_field(2, f'{origin}/sw.js')
        workers[f'RES:{number}\x00{number + 100}'.encode()] = resource
        fs_origins[f'ORIGIN:{identifier(origin)}'.encode()] = f'{number:03d}'.encode()
        (root / 'IndexedDB' / f'{identifier(origin)}.indexeddb.leveldb').mkdir(parents=True)
        (root / 'IndexedDB' / f'{identifier(origin)}.indexeddb.leveldb' / 'CURRENT').write_bytes(b'MANIFEST-1\n')
        (root / 'File System' / f'{number:03d}' / 't' / '00').mkdir(parents=True)
        (root / 'File System' / f'{number:03d}' / 't' / '00' / '00000001').write_bytes(b'opfs ' + origin.encode())
        cache = root / 'Service Worker' / 'CacheStorage' / f'{number:040x}'
        cache.mkdir(parents=True)
        (cache / 'index.txt').write_bytes(_string_field(2, f'{origin}/') + _string_field(3, f'{origin}/'))
        (cache / 'data').write_bytes(b'cached ' + origin.encode())
    (root / 'Local Storage').mkdir()
    _leveldb(root / 'Local Storage' / 'leveldb', local)
    _leveldb(root / 'Session Storage', session)
    _leveldb(root / 'Service Worker' / 'Database', workers)
    _leveldb(root / 'File System' / 'Origins', fs_origins)
    (root / 'Preferences').write_text('{}')


def local_state(profiles: t.Sequence[str] = ('Default',)) -> str:
    import json
    return json.dumps({'profile': {'info_cache': {name: {'name': f'Person {n}'} for n, name in enumerate(profiles)}}})


def firefox_profile(root: Path, origins: t.Sequence[str] = NOTION + OTHERS) -> None:
    root.mkdir(parents=True, exist_ok=True)
    cookies = sqlite3.connect(root / 'cookies.sqlite')
    cookies.execute('PRAGMA journal_mode=WAL')
    cookies.execute('CREATE TABLE moz_cookies (id INTEGER PRIMARY KEY, originAttributes TEXT NOT NULL DEFAULT "", '
                    'name TEXT, value TEXT, host TEXT, path TEXT)')
    (root / 'storage').mkdir()
    stores = [sqlite3.connect(root / 'webappsstore.sqlite'), sqlite3.connect(root / 'storage' / 'ls-archive.sqlite')]
    for store in stores:
        store.execute('CREATE TABLE webappsstore2 (originAttributes TEXT, originKey TEXT, scope TEXT, key TEXT, '
                      'value TEXT)')
    for origin in origins:
        scheme, host = origin.split('://')
        cookies.execute('INSERT INTO moz_cookies (name, value, host, path) VALUES ("c", "secret", ?, "/")', ('.' + host,))
        for store in stores:
            store.execute('INSERT INTO webappsstore2 VALUES ("", ?, "", "k", "v")', (f'{host[::-1]}.:{scheme}:443',))
        folder = root / 'storage' / 'default' / f'{scheme}+++{host}'
        (folder / 'idb').mkdir(parents=True)
        (folder / 'idb' / 'data.sqlite').write_bytes(b'idb ' + origin.encode())
    cookies.commit()
    cookies.close()
    for store in stores:
        store.commit()
        store.close()
    (root / 'serviceworker.txt').write_bytes(service_worker_registrations(origins))
    (root / 'prefs.js').write_text('// prefs\n')


def service_worker_registration(scope: str, suffix: str = '') -> str:
    """One record of Firefox's ``serviceworker.txt`` as ServiceWorkerRegistrar::WriteData writes it (version 9)."""
    return (f'{suffix}\n{scope}\n{scope}sw.js\ntrue\n{{6d1a0b7e-35c4-4f1c-9e0b-2a4d8c6f1e33}}\n0\n'
            f'1764590000000\n1764590000100\n1764590000200\n0\ntrue\n#\n')


def service_worker_registrations(origins: t.Sequence[str], version: str = '9') -> bytes:
    # Registrations in a container tab carry the container in their origin attributes.
    return (version + '\n' + ''.join(service_worker_registration(f'{o}/', '^userContextId=1' if 'app.' in o else '')
                                     for o in origins)).encode()


def profiles_ini(paths: t.Sequence[str]) -> str:
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser['General'] = {'StartWithLastProfile': '1', 'Version': '2'}
    for number, path in enumerate(paths):
        parser[f'Profile{number}'] = {'Name': f'p{number}', 'IsRelative': '1', 'Path': path}
    text = io.StringIO()
    parser.write(text)
    return text.getvalue()


def files_of(root: Path) -> dict[str, bytes]:
    """Relative path (/-separated) -> bytes of every file under root."""
    found = {}
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def built(make: t.Callable[[Path], None]) -> dict[str, bytes]:
    """The files a builder makes, as bytes (for seeding the simulated Windows host)."""
    work = Path(tempfile.mkdtemp(prefix='lb-browser-seed-'))
    try:
        make(work / 'p')
        return files_of(work / 'p')
    finally:
        shutil.rmtree(work)


def leveldb_keys(path: Path) -> list[bytes]:
    work = Path(tempfile.mkdtemp(prefix='lb-browser-keys-'))
    try:
        shutil.copytree(path, work / 'db')
        database = plyvel.DB(str(work / 'db'))
        try:
            return list(database.iterator(include_value=False))
        finally:
            database.close()
    finally:
        shutil.rmtree(work)


def sqlite_column(path: Path, query: str) -> list[t.Any]:
    connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    try:
        return [row[0] for row in connection.execute(query)]
    finally:
        connection.close()

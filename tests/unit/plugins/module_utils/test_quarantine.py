# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_quarantine.py: entry ids, durations, stored names, manifests."""
from __future__ import annotations

import datetime
import json
import ntpath
import posixpath
import re

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._quarantine import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    QuarantinedItem,
    entry_time,
    new_entry_id,
    parse_duration,
    parse_manifest,
    stored_name,
)
from hypothesis import given
from hypothesis import strategies as st

UTC = datetime.UTC


def test_constants() -> None:
    assert (MANIFEST_NAME, MANIFEST_FORMAT) == ('manifest.json', 2)


# ------------------------------------------------------------------- entry ids


@pytest.mark.parametrize(
    ('now', 'token', 'expected'),
    [
        pytest.param(datetime.datetime(2026, 11, 29, 14, 15, 0, tzinfo=UTC), '1a2b3c', '20261129T141500Z-1a2b3c',
                     id='utc'),
        pytest.param(datetime.datetime(2026, 11, 29, 15, 15, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
                     '000000', '20261129T141500Z-000000', id='converted-to-utc'),
        pytest.param(datetime.datetime(2027, 1, 1, 0, 30, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=5))),
                     'ffffff', '20261231T193000Z-ffffff', id='crosses-year-backwards'),
        pytest.param(datetime.datetime(2026, 2, 3, 4, 5, 6, 999999, tzinfo=UTC), 'abcdef', '20260203T040506Z-abcdef',
                     id='microseconds-dropped'),
    ],
)
def test_new_entry_id(now: datetime.datetime, token: str, expected: str) -> None:
    assert new_entry_id(now, token) == expected


@pytest.mark.parametrize('token', ['1A2B3C', '12345', '1234567', 'ghijkl', '', '1a2b3c\n', ' 1a2b3', '1a-2b3'])
def test_new_entry_id_rejects_bad_tokens(token: str) -> None:
    with pytest.raises(ValueError, match=f'^{re.escape(f"entry token must be 6 lowercase hex digits, got {token!r}")}$'):
        new_entry_id(datetime.datetime(2026, 1, 1, tzinfo=UTC), token)


@pytest.mark.parametrize(
    ('entry_id', 'expected'),
    [
        ('20261129T141500Z-1a2b3c', datetime.datetime(2026, 11, 29, 14, 15, 0, tzinfo=UTC)),
        ('20000101T000000Z-000000', datetime.datetime(2000, 1, 1, tzinfo=UTC)),
        ('20281231T235959Z-ffffff', datetime.datetime(2028, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_entry_time(entry_id: str, expected: datetime.datetime) -> None:
    assert entry_time(entry_id) == expected
    assert entry_time(entry_id).tzinfo == UTC


@given(
    moment=st.datetimes(min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(9998, 12, 31),
                        timezones=st.just(UTC)),
    token=st.text('0123456789abcdef', min_size=6, max_size=6),
)
def test_entry_id_round_trip(moment: datetime.datetime, token: str) -> None:
    entry_id = new_entry_id(moment, token)
    assert entry_time(entry_id) == moment.replace(microsecond=0)
    assert entry_id.endswith('-' + token)


def test_entry_ids_sort_by_time() -> None:
    earlier = new_entry_id(datetime.datetime(2026, 1, 9, 23, 0, tzinfo=UTC), 'ffffff')
    later = new_entry_id(datetime.datetime(2026, 1, 10, 1, 0, tzinfo=UTC), '000000')
    assert sorted([later, earlier]) == [earlier, later]


@pytest.mark.parametrize(
    'entry_id',
    [
        '',
        '20261129T141500Z-1a2b3',          # token too short
        '20261129T141500Z-1a2b3c4',        # token too long
        '20261129T141500Z-1A2B3C',         # upper-case token
        '20261129-141500Z-1a2b3c',         # wrong separator
        '20261129T141500-1a2b3c',          # no Z
        '2026-11-29T14:15:00Z-1a2b3c',     # ISO punctuation
        'x20261129T141500Z-1a2b3c',
        '../20261129T141500Z-1a2b3c',
    ],
)
def test_entry_time_rejects_non_ids(entry_id: str) -> None:
    with pytest.raises(ValueError, match=f'^{re.escape(f"not a quarantine entry id: {entry_id!r}")}$'):
        entry_time(entry_id)


def test_entry_time_rejects_trailing_newline() -> None:
    with pytest.raises(ValueError, match='not a quarantine entry id'):
        entry_time('20261129T141500Z-1a2b3c\n')


# --------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        ('30d', datetime.timedelta(days=30)),
        ('12h', datetime.timedelta(hours=12)),
        ('90m', datetime.timedelta(minutes=90)),
        ('2w', datetime.timedelta(weeks=2)),
        ('45s', datetime.timedelta(seconds=45)),
        ('0s', datetime.timedelta(0)),
        ('1w', datetime.timedelta(days=7)),
        (' 7 d ', datetime.timedelta(days=7)),
        ('7d\n', datetime.timedelta(days=7)),
        ('007h', datetime.timedelta(hours=7)),
        ('100000d', datetime.timedelta(days=100000)),
    ],
)
def test_parse_duration(text: str, expected: datetime.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize('text', ['', ' ', 'd', '7', '7x', '-1d', '+1d', '1.5h', '7D', '1d2h', '7 days', 'seven d',
                                  '7dd', 'd7'])
def test_parse_duration_rejects(text: str) -> None:
    message = f"older_than must look like '7d', '12h', '30m', '2w' or '45s', got {text!r}"
    with pytest.raises(ValueError, match=f'^{re.escape(message)}$'):
        parse_duration(text)


# ------------------------------------------------------------------ stored names


@pytest.mark.parametrize(
    ('index', 'original', 'module', 'expected'),
    [
        (0, 'C:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache', ntpath, '000-Cache'),
        (7, 'C:\\Users\\alice\\AppData\\Roaming\\Notion\\Code Cache\\', ntpath, '007-Code Cache'),
        (12, 'C:\\Users\\a\\AppData\\Roaming\\Notion\\Partitions\\notion\\IndexedDB', ntpath, '012-IndexedDB'),
        (3, 'C:/Users/a/AppData/Roaming/Notion/Network/Cookies', ntpath, '003-Cookies'),
        (3, '/home/alice/.config/Notion/Network/Cookies', posixpath, '003-Cookies'),
        (4, '/home/alice/.config/Notion/notion.db-wal/', posixpath, '004-notion.db-wal'),
        (999, '/Users/bob/Library/Caches/notion.id', posixpath, '999-notion.id'),
        (1000, '/a/b', posixpath, '1000-b'),
        (0, 'C:\\', ntpath, '000-item'),
        (0, '/', posixpath, '000-item'),
    ],
)
def test_stored_name(index: int, original: str, module, expected: str) -> None:
    assert stored_name(index, original, module) == expected


# --------------------------------------------------------------------- manifests

ITEMS = (
    QuarantinedItem(original_path='C:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache', stored_as='items\\000-Cache',
                    scope='cache', type='directory', bytes=2112, files=2),
    QuarantinedItem(original_path='C:\\Users\\alice\\AppData\\Roaming\\Notion\\notion.db',
                    stored_as='items\\001-notion.db', scope='storage', type='file', bytes=4016, files=1),
)


def manifest(**changes) -> Manifest:
    fields = dict(id='20261129T141500Z-1a2b3c', created='2026-11-29T14:15:00Z', module='app_data',
                  reason='clear desktop app site data', user='alice', sid='S-1-5-21-1-2-3-1001', platform='windows',
                  items=ITEMS)
    fields.update(changes)
    return Manifest(**fields)


def manifest_dict(**changes) -> dict:
    data = json.loads(manifest().to_json())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    'value',
    [
        pytest.param(manifest(), id='plain'),
        pytest.param(manifest(restored='2026-12-01T00:00:00Z'), id='restored'),
        pytest.param(manifest(items=()), id='no-items'),
        pytest.param(manifest(extra={'displaced_by': '20261201T000000Z-000000', 'n': [1, 2]}), id='extra'),
        pytest.param(manifest(user='zoë', reason='ünïcode "quoted"\nline'), id='unicode'),
    ],
)
def test_manifest_round_trip(value: Manifest) -> None:
    text = value.to_json()
    assert parse_manifest(text, 'x/manifest.json') == value
    assert parse_manifest(text, 'x/manifest.json').items == value.items


def test_manifest_json_layout() -> None:
    text = manifest().to_json()
    assert text.endswith('}\n')
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data == {
        'created': '2026-11-29T14:15:00Z', 'entry_dir': '', 'extra': {}, 'format': 2, 'id': '20261129T141500Z-1a2b3c',
        'module': 'app_data', 'platform': 'windows', 'reason': 'clear desktop app site data', 'restored': None,
        'sid': 'S-1-5-21-1-2-3-1001', 'user': 'alice', 'profile_path': '',
        'items': [
            {'attributes': None, 'bytes': 2112, 'files': 2,
             'original_path': 'C:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache',
             'scope': 'cache', 'stored_as': 'items\\000-Cache', 'type': 'directory'},
            {'attributes': None, 'bytes': 4016, 'files': 1,
             'original_path': 'C:\\Users\\alice\\AppData\\Roaming\\Notion\\notion.db',
             'scope': 'storage', 'stored_as': 'items\\001-notion.db', 'type': 'file'},
        ],
    }


@pytest.mark.parametrize(('items', 'total'), [(ITEMS, 6128), ((), 0), (ITEMS[:1], 2112)])
def test_manifest_bytes(items, total: int) -> None:
    assert manifest(items=items).bytes == total


def test_parse_manifest_defaults_for_optional_keys() -> None:
    data = manifest_dict()
    del data['restored'], data['extra']
    parsed = parse_manifest(json.dumps(data), 'p')
    assert (parsed.restored, parsed.extra) == (None, {})
    assert parsed == manifest()


def test_parse_manifest_ignores_unknown_top_level_keys() -> None:
    assert parse_manifest(json.dumps(manifest_dict(written_by='a newer version')), 'p') == manifest()


@pytest.mark.parametrize(
    ('text', 'pattern'),
    [
        pytest.param('', r'^C:\\q\\manifest\.json: not JSON \(Expecting value: line 1 column 1 \(char 0\)\)$',
                     id='empty'),
        pytest.param('{"format": 1,', r'^C:\\q\\manifest\.json: not JSON \(.+\)$', id='truncated'),
        pytest.param('hive', r'^C:\\q\\manifest\.json: not JSON \(Expecting value: line 1 column 1 \(char 0\)\)$',
                     id='garbage'),
        pytest.param('[]', r'^C:\\q\\manifest\.json: unsupported manifest format None$', id='list'),
        pytest.param('"text"', r'^C:\\q\\manifest\.json: unsupported manifest format None$', id='string'),
        pytest.param('{}', r'^C:\\q\\manifest\.json: unsupported manifest format None$', id='no-format'),
        pytest.param(json.dumps(manifest_dict(format=1)), r'^C:\\q\\manifest\.json: unsupported manifest format 1$',
                     id='format-1-untrusted-era'),
        pytest.param(json.dumps(manifest_dict(format='1')),
                     r"^C:\\q\\manifest\.json: unsupported manifest format '1'$", id='format-string'),
    ],
)
def test_parse_manifest_rejects_unreadable(text: str, pattern: str) -> None:
    with pytest.raises(ManifestError, match=pattern):
        parse_manifest(text, 'C:\\q\\manifest.json')


@pytest.mark.parametrize('key', ['id', 'created', 'module', 'reason', 'user', 'sid', 'platform', 'items'])
def test_parse_manifest_missing_key(key: str) -> None:
    data = manifest_dict()
    del data[key]
    with pytest.raises(ManifestError, match=f"^{re.escape(f'/q/m.json: malformed manifest ({key!r})')}$"):
        parse_manifest(json.dumps(data), '/q/m.json')


@pytest.mark.parametrize(
    ('items', 'pattern'),
    [
        pytest.param([{'original_path': '/a'}], r'malformed manifest \(.*missing 5 required positional arguments',
                     id='item-missing-keys'),
        pytest.param([dict(json.loads(manifest().to_json())['items'][0], colour='red')],
                     r'malformed manifest \(an item has unknown fields colour\)', id='item-unknown-key'),
        pytest.param(['items/000-Cache'], r'malformed manifest \(an item is not an object\)', id='item-not-object'),
        pytest.param(None, r'malformed manifest \(items is not a list\)', id='items-null'),
        pytest.param([dict(json.loads(manifest().to_json())['items'][0], bytes='2112')],
                     r'malformed manifest \(an item field bytes has the wrong type\)', id='item-wrong-type'),
        pytest.param([dict(json.loads(manifest().to_json())['items'][0], attributes=[0, 0])],
                     r'malformed manifest \(an item field attributes has the wrong type\)', id='attributes-list'),
    ],
)
def test_parse_manifest_malformed_items(items, pattern: str) -> None:
    with pytest.raises(ManifestError, match=r'^/q/m\.json: ' + pattern):
        parse_manifest(json.dumps(manifest_dict(items=items)), '/q/m.json')


def test_manifest_error_is_a_value_error() -> None:
    assert issubclass(ManifestError, ValueError)

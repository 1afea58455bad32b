# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_layout.py: which on-disk entries each app_data scope covers.

The expected tables below are written out by hand on purpose: they are the
contract (docs/scopes.md renders the same table), so a change to the layout
must change this file too.
"""
from __future__ import annotations

import re

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import (
    DARWIN,
    LAYOUTS,
    LINUX,
    SCOPE_CHOICES,
    SCOPE_NAMES,
    WINDOWS,
    expand_scopes,
    scope_patterns,
    scope_table,
)

# The MSIX's virtualised AppData (Windows 10 1903+ writes new AppData files of a packaged app there).
MSIX_ROOT = '{Local AppData}\\Packages\\com.notion.app.desktop.notion_87smfmv0eebam\\LocalCache\\Roaming\\Notion'

ALL = ('cache', 'service_workers', 'storage', 'cookies')

# ------------------------------------------------------------------ expand_scopes


@pytest.mark.parametrize(
    ('given', 'expected'),
    [
        pytest.param([], ALL, id='empty-list-means-all'),
        pytest.param(['all'], ALL, id='all'),
        pytest.param(['cache'], ('cache',), id='one'),
        pytest.param(['cookies', 'cache'], ('cache', 'cookies'), id='table-order-not-input-order'),
        pytest.param(['storage', 'service_workers', 'cookies', 'cache'], ALL, id='every-scope-listed'),
        pytest.param(['cache', 'cache'], ('cache',), id='duplicates-collapse'),
        pytest.param(['cache', 'all'], ALL, id='all-mixed-with-one'),
        pytest.param(['all', 'cookies', 'all'], ALL, id='all-mixed-and-repeated'),
        pytest.param(['service_workers', 'storage'], ('service_workers', 'storage'), id='two-middle'),
    ],
)
def test_expand_scopes(given: list[str], expected: tuple[str, ...]) -> None:
    assert expand_scopes(given) == expected


@pytest.mark.parametrize(
    ('given', 'message'),
    [
        pytest.param(['bogus'], 'unknown scope(s) bogus; choose from all, cache, service_workers, storage, cookies',
                     id='one-unknown'),
        pytest.param(['zeta', 'cache', 'alpha'],
                     'unknown scope(s) alpha, zeta; choose from all, cache, service_workers, storage, cookies',
                     id='unknown-sorted-known-ignored'),
        pytest.param(['all', 'Cache'], 'unknown scope(s) Cache; choose from all, cache, service_workers, storage, cookies',
                     id='case-sensitive-even-with-all'),
        pytest.param(['cookie'], 'unknown scope(s) cookie; choose from all, cache, service_workers, storage, cookies',
                     id='near-miss'),
        pytest.param([''], 'unknown scope(s) ; choose from all, cache, service_workers, storage, cookies',
                     id='empty-name'),
    ],
)
def test_expand_scopes_rejects_unknown(given: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=f'^{re.escape(message)}$'):
        expand_scopes(given)


def test_scope_names_and_choices() -> None:
    assert SCOPE_NAMES == ALL
    assert SCOPE_CHOICES == ('all',) + ALL


# -------------------------------------------------------------------- scope_table

CHROMIUM_CACHE = ('Cache', 'Code Cache', 'GPUCache', 'DawnCache', 'DawnGraphiteCache', 'DawnWebGPUCache',
                  'GrShaderCache', 'ShaderCache')
CHROMIUM_STORAGE = ('Local Storage', 'IndexedDB', 'Session Storage', 'File System', 'WebStorage', 'blob_storage',
                    'shared_proto_db')
EXPECTED_TABLE: dict[str, tuple[str, ...]] = {
    'cache': ('notionAssetCache-v2',) + CHROMIUM_CACHE + tuple('Partitions/*/' + e for e in CHROMIUM_CACHE),
    'service_workers': ('Service Worker', 'Partitions/*/Service Worker'),
    'storage': ('notion.db', 'notion.db-wal', 'notion.db-shm', 'notion.db-journal') + CHROMIUM_STORAGE
    + tuple('Partitions/*/' + e for e in CHROMIUM_STORAGE),
    'cookies': ('Cookies', 'Cookies-journal', 'Network/Cookies', 'Network/Cookies-journal',
                'Partitions/*/Cookies', 'Partitions/*/Cookies-journal', 'Partitions/*/Network/Cookies',
                'Partitions/*/Network/Cookies-journal'),
}


def test_scope_table_is_exactly_the_documented_table() -> None:
    table = scope_table()
    assert list(table) == list(ALL)
    for scope, expected in EXPECTED_TABLE.items():
        assert table[scope] == expected, scope


@pytest.mark.parametrize(('scope', 'count'), [('cache', 17), ('service_workers', 2), ('storage', 18), ('cookies', 8)])
def test_scope_table_sizes(scope: str, count: int) -> None:
    assert len(scope_table()[scope]) == count


@pytest.mark.parametrize(
    ('scope', 'present', 'absent'),
    [
        pytest.param('cache', 'Partitions/*/GPUCache', 'Partitions/*/notionAssetCache-v2', id='notion-cache-root-only'),
        pytest.param('storage', 'Partitions/*/IndexedDB', 'Partitions/*/notion.db', id='notion-db-root-only'),
        pytest.param('cookies', 'Partitions/*/Network/Cookies', 'Network', id='network-dir-itself-kept'),
        pytest.param('service_workers', 'Partitions/*/Service Worker', 'Service Worker/CacheStorage', id='sw-whole-dir'),
    ],
)
def test_scope_table_partition_variants(scope: str, present: str, absent: str) -> None:
    assert present in scope_table()[scope]
    assert absent not in scope_table()[scope]


def test_no_pattern_in_two_scopes() -> None:
    seen: dict[str, str] = {}
    for scope, patterns in scope_table().items():
        for pattern in patterns:
            assert pattern not in seen, f'{pattern!r} is in {seen.get(pattern)} and {scope}'
            seen[pattern] = scope
    assert len(seen) == 45


def test_no_pattern_lies_inside_another() -> None:
    """Moving one pattern's match must never carry another scope's (or its own) entries along."""
    patterns = [p for entries in scope_table().values() for p in entries]
    for outer in patterns:
        for inner in patterns:
            assert not inner.startswith(outer + '/'), f'{inner!r} lies inside {outer!r}'


def test_kept_entries_are_in_no_scope() -> None:
    everything = {p for entries in scope_table().values() for p in entries}
    for kept in ('Preferences', 'Local State', 'logs', 'Network', 'Partitions', 'Partitions/*', 'Partitions/*/Preferences'):
        assert kept not in everything


# ----------------------------------------------------------------- scope_patterns


def test_windows_patterns_use_backslashes_under_appdata() -> None:
    patterns = scope_patterns(WINDOWS, ('cookies',))
    assert patterns == [
        ('cookies', '{AppData}\\Notion\\Cookies'),
        ('cookies', '{AppData}\\Notion\\Cookies-journal'),
        ('cookies', '{AppData}\\Notion\\Network\\Cookies'),
        ('cookies', '{AppData}\\Notion\\Network\\Cookies-journal'),
        ('cookies', '{AppData}\\Notion\\Partitions\\*\\Cookies'),
        ('cookies', '{AppData}\\Notion\\Partitions\\*\\Cookies-journal'),
        ('cookies', '{AppData}\\Notion\\Partitions\\*\\Network\\Cookies'),
        ('cookies', '{AppData}\\Notion\\Partitions\\*\\Network\\Cookies-journal'),
    ] + [('cookies', MSIX_ROOT + template[len('{AppData}\\Notion'):]) for _scope, template in patterns[:8]]


def test_windows_patterns_never_contain_a_forward_slash() -> None:
    for _scope, template in scope_patterns(WINDOWS, ALL):
        assert '/' not in template
        assert template.startswith(('{AppData}\\Notion\\', MSIX_ROOT + '\\'))


@pytest.mark.parametrize(
    ('layout', 'scopes', 'expected'),
    [
        pytest.param(LINUX, ('service_workers',), [('service_workers', '{AppData}/Notion/Service Worker'),
                                                   ('service_workers', '{AppData}/Notion/Partitions/*/Service Worker')],
                     id='linux-sw'),
        pytest.param(DARWIN, ('service_workers',), [('service_workers', '{AppData}/Notion/Service Worker'),
                                                    ('service_workers', '{AppData}/Notion/Partitions/*/Service Worker')],
                     id='darwin-sw-no-outside'),
        pytest.param(WINDOWS, ('service_workers',), [
            ('service_workers', '{AppData}\\Notion\\Service Worker'),
            ('service_workers', '{AppData}\\Notion\\Partitions\\*\\Service Worker'),
            ('service_workers', MSIX_ROOT + '\\Service Worker'),
            ('service_workers', MSIX_ROOT + '\\Partitions\\*\\Service Worker'),
        ], id='windows-sw'),
        pytest.param(LINUX, (), [], id='no-scopes-no-patterns'),
    ],
)
def test_scope_patterns_table(layout, scopes, expected) -> None:
    assert scope_patterns(layout, scopes) == expected


@pytest.mark.parametrize('layout', [WINDOWS, DARWIN, LINUX], ids=lambda layout: layout.name)
@pytest.mark.parametrize('scope', ALL)
def test_scope_patterns_follow_the_table_for_each_platform(layout, scope) -> None:
    sep = '\\' if layout is WINDOWS else '/'
    inside = [template for s, template in scope_patterns(layout, (scope,)) if template.startswith('{AppData}' + sep + 'Notion' + sep)]
    expected = ['{AppData}' + sep + 'Notion' + sep + relative.replace('/', sep) for relative in EXPECTED_TABLE[scope]]
    assert inside == expected


@pytest.mark.parametrize(
    ('layout', 'scope', 'outside'),
    [
        (DARWIN, 'cache', ['{Caches}/notion.id*']),
        (DARWIN, 'service_workers', []),
        (DARWIN, 'storage', []),
        (DARWIN, 'cookies', []),
        (LINUX, 'cache', []),
        (WINDOWS, 'cache', []),
    ],
)
def test_patterns_outside_the_data_root(layout, scope, outside) -> None:
    patterns = scope_patterns(layout, (scope,))
    assert [t for s, t in patterns if not t.startswith(('{AppData}', MSIX_ROOT))] == outside
    assert {s for s, _t in patterns} == {scope}


def test_darwin_outside_pattern_comes_after_all_data_root_patterns() -> None:
    patterns = scope_patterns(DARWIN, ALL)
    assert patterns[-1] == ('cache', '{Caches}/notion.id*')
    assert len(patterns) == 46


def test_scope_patterns_keeps_scope_order_given() -> None:
    patterns = scope_patterns(LINUX, ('cookies', 'cache'))
    assert [s for s, _t in patterns] == ['cookies'] * 8 + ['cache'] * 17


@pytest.mark.parametrize(
    ('name', 'data_root', 'quarantine_root', 'folders'),
    [
        ('windows', '{AppData}\\Notion', '{Local AppData}\\loopbreaker\\quarantine',
         {'AppData': 'AppData\\Roaming', 'Local AppData': 'AppData\\Local'}),
        ('darwin', '{AppData}/Notion', '{AppData}/loopbreaker/quarantine',
         {'AppData': 'Library/Application Support', 'Caches': 'Library/Caches'}),
        ('linux', '{AppData}/Notion', '{Data}/loopbreaker/quarantine', {'AppData': '.config', 'Data': '.local/share'}),
    ],
)
def test_platform_layouts(name, data_root, quarantine_root, folders) -> None:
    layout = LAYOUTS[name]
    assert (layout.name, layout.data_root, layout.quarantine_root, layout.shell_folders) == (
        name, data_root, quarantine_root, folders)


@pytest.mark.parametrize(
    ('layout', 'relative', 'native'),
    [
        (WINDOWS, 'Partitions/*/Network/Cookies', 'Partitions\\*\\Network\\Cookies'),
        (LINUX, 'Partitions/*/Network/Cookies', 'Partitions/*/Network/Cookies'),
        (DARWIN, 'Cache', 'Cache'),
    ],
)
def test_native(layout, relative, native) -> None:
    assert layout.native(relative) == native

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_app_data.py: probe -> plan -> apply -> result.

Most tests run twice: against the simulated Windows host and against LocalHost
on a tmp directory of Linux homes, seeded with the same Notion tree
(_notion_seed.TREE). Expected selections come from _notion_seed.SELECTED,
written independently of _layout.py.
"""
from __future__ import annotations

import copy
import json
import ntpath
import os
import re
import typing as t
from pathlib import Path

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils import _app_data
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import WINDOWS
from ansible_collections.loopbreaker.notion.plugins.module_utils._quarantine import parse_manifest
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows
from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed import (
    ENTRY_ID,
    IS_ROOT,
    KEPT,
    NOW,
    SELECTED,
    SYSTEM_NOTION,
    TOKEN,
    TREE,
    LocalEnv,
    TwinEnv,
    bytes_under,
    file_tree,
    next_uid,
    notion_exe,
    posix_home,
    sid,
    twin,
    validated,
    windows_user,
)

ALL_SCOPES = ('cache', 'service_workers', 'storage', 'cookies')


def params(**args: t.Any) -> dict[str, t.Any]:
    return validated(_app_data.ARGUMENT_SPEC, args, mutually_exclusive=_app_data.MUTUALLY_EXCLUSIVE)


def items_of(result: dict[str, t.Any], user: str) -> list[dict[str, t.Any]]:
    [entry] = [u for u in result['users'] if u['user'] == user]
    return entry['items']


def user_entry(result: dict[str, t.Any], user: str) -> dict[str, t.Any]:
    [entry] = [u for u in result['users'] if u['user'] == user]
    return entry


# ----------------------------------------------------------- scope selection


@pytest.mark.parametrize('scopes', [['cache'], ['service_workers'], ['storage'], ['cookies'], ['cookies', 'cache'],
                                    ['all']], ids='+'.join)
def test_each_scope_selects_exactly_its_entries(make_env, scopes: list[str]) -> None:
    env = make_env(['alice'])
    before = env.snapshot()
    result = env.app_data(check_mode=True, scopes=scopes)
    chosen = scopes if scopes and 'all' not in scopes else list(ALL_SCOPES)
    expected = {(relative, kind, scope) for scope in chosen for relative, kind in SELECTED[scope]}
    items = items_of(result, 'alice')
    assert {(env.relative('alice', i['path']), i['type'], i['scope']) for i in items} == expected
    for item in items:
        assert (item['bytes'], item['files']) == bytes_under(env.relative('alice', item['path'])), item['path']
        assert item['action'] == 'quarantined'
    assert [i['path'].lower() for i in items] == sorted(i['path'].lower() for i in items)
    assert result['scopes'] == [s for s in ALL_SCOPES if s in chosen]
    assert env.snapshot() == before


def test_partition_and_network_cookies_are_selected(make_env) -> None:
    env = make_env(['alice'])
    paths = {env.relative('alice', i['path']) for i in items_of(env.app_data(check_mode=True, scopes=['cookies']), 'alice')}
    assert {'Network/Cookies', 'Network/Cookies-journal', 'Partitions/notion/Network/Cookies'} <= paths
    assert 'Network' not in paths and 'Network/TransportSecurity' not in paths


def test_real_run_moves_selected_items_into_the_quarantine_intact(make_env) -> None:
    env = make_env(['alice'])
    originals = {relative: env.tree(env.path('alice', relative)) for scope in ALL_SCOPES for relative, _content in SELECTED[scope]}
    result = env.app_data()
    assert result['changed'] is True
    assert result['quarantine_id'] == ENTRY_ID
    alice = user_entry(result, 'alice')
    entry_dir = env.quarantine_root('alice') + env.sep + ENTRY_ID
    assert (alice['status'], alice['quarantine_path'], alice['errors']) == ('cleared', entry_dir, [])
    for index, item in enumerate(alice['items']):
        relative = env.relative('alice', item['path'])
        assert item['action'] == 'quarantined'
        assert item['quarantine_path'] == entry_dir + env.sep + 'items' + env.sep + \
            f'{index:03d}-{relative.rsplit("/", 1)[-1]}'
        assert not env.exists(item['path'])
        assert env.tree(item['quarantine_path']) == originals[relative], relative
    for relative in KEPT:
        assert env.read(env.path('alice', relative)) == TREE[relative].encode()
    total_bytes = sum(bytes_under(r)[0] for r in originals)
    total_files = sum(bytes_under(r)[1] for r in originals)
    assert (alice['bytes'], alice['files']) == (total_bytes, total_files)
    assert result['totals'] == {'users': 1, 'items': 17, 'bytes': total_bytes, 'files': total_files}

    manifest = parse_manifest(env.read(entry_dir + env.sep + 'manifest.json').decode(), 'manifest.json')
    assert (manifest.id, manifest.module, manifest.user, manifest.sid, manifest.platform, manifest.created,
            manifest.restored) == (ENTRY_ID, 'app_data', 'alice', alice['sid'], env.kind, '2026-03-04T05:06:07Z', None)
    assert [(i.original_path, i.scope, i.type, i.bytes, i.files) for i in manifest.items] == [
        (i['path'], i['scope'], i['type'], i['bytes'], i['files']) for i in alice['items']]
    assert [env.quarantine_root('alice') + env.sep + ENTRY_ID + env.sep + i.stored_as for i in manifest.items] == [
        i['quarantine_path'] for i in alice['items']]


def test_manual_actions_only_with_cookies(make_env) -> None:
    env = make_env(['alice'])
    assert env.app_data(check_mode=True, scopes=['cache'])['manual_actions'] == []
    assert env.app_data(check_mode=True, scopes=['cookies'])['manual_actions'] == [_app_data.MANUAL_LOGOUT]
    assert 'Log out of all sessions' in _app_data.MANUAL_LOGOUT


# ------------------------------------------------------------------- users


def test_default_users_are_those_with_notion_data(make_env) -> None:
    env = make_env(['alice', 'bob'])
    result = env.app_data(check_mode=True)
    assert [u['user'] for u in result['users']] == ['alice', 'bob']          # carol (no data) and Shared/SYSTEM not


def test_special_profiles_are_never_touched(make_env) -> None:
    env = make_env(['alice'])
    special = SYSTEM_NOTION if env.kind == 'windows' else str(env.root / 'Shared' / '.config' / 'Notion')
    before = env.tree(special) if env.kind == 'windows' else file_tree(special)
    assert len(before) > len(TREE)
    result = env.app_data()
    assert [u['user'] for u in result['users']] == ['alice']
    assert (env.tree(special) if env.kind == 'windows' else file_tree(special)) == before


def test_user_with_an_empty_notion_folder_is_reported_clean(make_env) -> None:
    env = make_env(['alice'])
    if env.kind == 'windows':
        env.machine.add_profile('dave', sid(4))
        env.machine.mkdir(env.data_root('dave'))
    else:
        os.makedirs(env.data_root('dave'))
    result = env.app_data(check_mode=True)
    assert [u['user'] for u in result['users']] == ['alice', 'dave']
    dave = user_entry(result, 'dave')
    assert (dave['status'], dave['items'], dave['quarantine_path'], dave['bytes'], dave['errors']) == (
        'clean', [], None, 0, [])


@pytest.mark.parametrize('check_mode', [True, False])
def test_named_user_without_data_is_reported_clean(make_env, check_mode: bool) -> None:
    env = make_env(['alice'])
    before = env.snapshot()
    result = env.app_data(check_mode=check_mode, users=['carol'])
    assert [u['user'] for u in result['users']] == ['carol']
    carol = result['users'][0]
    assert (carol['status'], carol['items'], carol['processes_stopped'], carol['quarantine_path'], carol['errors']) == (
        'clean', [], [], None, [])
    assert carol['data_root'] == env.data_root('carol')
    assert (result['changed'], result['quarantine_id']) == (False, None)
    assert result['totals'] == {'users': 0, 'items': 0, 'bytes': 0, 'files': 0}
    assert env.snapshot() == before
    assert env.calls() == [True]                 # nothing to apply: no second call


def test_user_named_twice_in_different_case_is_cleared_once() -> None:
    env = TwinEnv(['alice'])
    result = env.app_data(users=['alice', 'ALICE'], scopes=['cookies'])
    assert [u['user'] for u in result['users']] == ['alice']
    assert {i['action'] for i in result['users'][0]['items']} == {'quarantined'}
    assert result['changed'] is True


def test_exclude_users(make_env) -> None:
    env = make_env(['alice', 'bob'])
    result = env.app_data(exclude_users=['alice', 'nobody-here'])
    assert [u['user'] for u in result['users']] == ['bob']
    assert env.exists(env.path('alice', 'Cache'))
    assert not env.exists(env.path('bob', 'Cache'))


def test_unknown_user_is_refused_before_anything_changes(make_env) -> None:
    env = make_env(['alice', 'bob'])
    before = env.snapshot()
    with pytest.raises(RequestError, match=re.escape('users lists unknown user(s): zed; profiles on this host: alice, bob, carol')
                       + '$'):
        env.app_data(users=['alice', 'zed'])
    assert env.snapshot() == before
    assert env.calls() == [True]


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        ({'stop_timeout': 0}, 'stop_timeout must be at least 1 second, got 0'),
        ({'stop_timeout': -5}, 'stop_timeout must be at least 1 second, got -5'),
        ({'users': ['alice', ' ']}, 'users must not contain empty names'),
        ({'exclude_users': ['']}, 'exclude_users must not contain empty names'),
    ],
)
def test_bad_requests_are_refused_before_the_host_is_called(make_env, args, message: str) -> None:
    env = make_env(['alice'])
    before = env.snapshot()
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        env.app_data(**args)
    assert env.snapshot() == before
    assert env.calls() == []


def test_unknown_scope_is_refused_before_the_host_is_called() -> None:
    machine = twin(['alice'])
    raw = dict(params(), scopes=['cache', 'bogus'])
    with pytest.raises(RequestError, match=r'^unknown scope\(s\) bogus; choose from '):
        _app_data.run(machine, WINDOWS, raw, check_mode=False, now=NOW, entry_token=TOKEN)
    assert machine.state['calls'] == []


# ----------------------------------------------------------------- processes


def test_stop_app_false_with_notion_running_changes_nothing(make_env) -> None:
    env = make_env(['alice', 'bob'])
    pid = env.add_notion_process('alice')
    before = env.snapshot()
    message = (f'Notion is running for alice (pid {pid}): nothing was changed. Let the module stop it '
               '(stop_app: true) or close Notion first.')
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        env.app_data(stop_app=False)
    assert env.snapshot() == before
    assert env.running(pid)
    assert env.calls() == [True]


def test_stop_app_false_lists_every_running_user_and_pid() -> None:
    env = TwinEnv(['alice', 'bob'])
    a1, a2, b1 = env.add_notion_process('alice'), env.add_notion_process('alice'), env.add_notion_process('bob')
    before = env.snapshot()
    message = (f'Notion is running for alice (pid {a1}, {a2}); bob (pid {b1}): nothing was changed. Let the module '
               'stop it (stop_app: true) or close Notion first.')
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        env.app_data(stop_app=False)
    assert env.snapshot() == before


def test_stop_app_false_ignores_notion_of_users_with_nothing_to_clear() -> None:
    env = TwinEnv(['alice'])
    carol_pid = env.machine.add_process('Notion.exe', notion_exe('carol'), sid(99))
    result = env.app_data(stop_app=False)
    assert result['changed'] is True
    assert env.running(carol_pid)
    assert [u['user'] for u in result['users']] == ['alice']


def test_stop_app_stops_only_the_affected_users_notion(make_env) -> None:
    env = make_env(['alice', 'bob'])
    pid = env.add_notion_process('alice')
    result = env.app_data(users=['alice'], scopes=['cache'])
    alice = user_entry(result, 'alice')
    assert alice['processes_stopped'] == [{'pid': pid, 'name': 'Notion.exe' if env.kind == 'windows' else 'notion'}]
    assert alice['status'] == 'cleared'
    assert not env.running(pid)


def test_no_process_is_stopped_for_a_user_with_nothing_to_clear(make_env) -> None:
    env = make_env(['alice'])
    env.app_data()
    pid = env.add_notion_process('alice')
    result = env.app_data()
    assert (result['changed'], user_entry(result, 'alice')['processes_stopped']) == (False, [])
    assert env.running(pid)


def test_unkillable_notion_fails_the_user_and_skips_its_items() -> None:
    env = TwinEnv(['alice', 'bob'])
    pid = env.machine.add_process('Notion.exe', notion_exe('alice'), sid(1), unkillable=True)
    before_alice = env.tree(env.data_root('alice'))
    result = env.app_data(stop_timeout=7)
    alice = user_entry(result, 'alice')
    assert alice['status'] == 'failed'
    assert alice['errors'] == [f'stop_processes: Processes still running after 7 s: {pid}']
    assert {i['action'] for i in alice['items']} == {'skipped'}
    assert (alice['processes_stopped'], alice['bytes'], alice['quarantine_path']) == ([], 0, None)
    assert env.tree(env.data_root('alice')) == before_alice
    assert not env.exists(env.quarantine_root('alice'))
    assert user_entry(result, 'bob')['status'] == 'cleared'
    assert result['failed'] is True
    assert result['msg'] == ('Some Notion data could not be cleared; what was done is listed per user: alice: '
                             f'stop_processes: Processes still running after 7 s: {pid}')
    assert result['totals']['users'] == 1


# ------------------------------------------------------- check mode, idempotence


def test_check_mode_reports_exactly_what_a_real_run_does_and_changes_nothing(make_env) -> None:
    env = make_env(['alice', 'bob'])
    env.add_notion_process('bob')
    if env.kind == 'windows':
        real_env = copy.deepcopy(env.machine.state)
    before = env.snapshot()
    checked = env.app_data(check_mode=True)
    assert env.snapshot() == before
    assert env.calls() == [True]
    if env.kind == 'windows':
        real_machine = SimulatedWindows(real_env)
        real = _app_data.run(real_machine, WINDOWS, params(), check_mode=False, now=NOW, entry_token=TOKEN)
    else:
        real = env.app_data()
    assert real['changed'] is True
    assert checked == real
    assert [bool(u['processes_stopped']) for u in checked['users']] == [False, True]


def test_second_run_changes_nothing(make_env) -> None:
    env = make_env(['alice', 'bob'])
    first = env.app_data()
    assert first['changed'] is True
    after_first = env.snapshot()
    second = env.app_data()
    assert env.snapshot() == after_first
    assert second['changed'] is False
    assert second['quarantine_id'] is None
    assert [(u['user'], u['status'], u['items']) for u in second['users']] == [('alice', 'clean', []),
                                                                               ('bob', 'clean', [])]
    assert second['totals'] == {'users': 0, 'items': 0, 'bytes': 0, 'files': 0}
    assert second['diff']['before'] == second['diff']['after'] == ''
    assert env.calls() == [True, False, True]


def test_quarantine_false_deletes(make_env) -> None:
    env = make_env(['alice'])
    result = env.app_data(quarantine=False, scopes=['storage', 'cookies'])
    alice = user_entry(result, 'alice')
    assert {i['action'] for i in alice['items']} == {'removed'}
    assert {i['quarantine_path'] for i in alice['items']} == {None}
    assert (alice['status'], alice['quarantine_path'], result['quarantine_id']) == ('cleared', None, None)
    for item in alice['items']:
        assert not env.exists(item['path'])
    assert not env.exists(env.quarantine_root('alice'))
    assert env.exists(env.path('alice', 'Cache/Cache_Data/data_0'))
    for relative in KEPT:
        assert env.read(env.path('alice', relative)) == TREE[relative].encode()
    assert result['diff']['after'] == ''
    assert len(result['diff']['before'].splitlines()) == 10


def test_diff_lists_each_item_before_and_where_it_went(make_env) -> None:
    env = make_env(['alice'])
    result = env.app_data(scopes=['service_workers'])
    items = items_of(result, 'alice')
    assert result['diff'] == {
        'before_header': 'Notion site data', 'after_header': 'Notion site data',
        'before': ''.join(f"alice: {i['path']} [service_workers, {i['files']} files, {i['bytes']} bytes]\n" for i in items),
        'after': ''.join(f"alice: {i['path']} -> {i['quarantine_path']}\n" for i in items),
    }


# ----------------------------------------------------------------- failures


def test_locked_file_fails_the_user_with_exact_item_actions() -> None:
    env = TwinEnv(['alice', 'bob'])
    locker = env.machine.add_process('SearchProtocolHost.exe', 'C:\\Windows\\System32\\SearchProtocolHost.exe',
                                     'S-1-5-18')
    locked = env.path('alice', 'Local Storage/leveldb/000003.log')
    env.machine.write(locked, TREE['Local Storage/leveldb/000003.log'], locked_by=locker)
    result = env.app_data()
    alice = user_entry(result, 'alice')
    message = f"The process cannot access the file '{locked}' because it is being used by another process."
    assert [(env.relative('alice', i['path']), i['action'], i['error']) for i in alice['items']] == [
        ('Cache', 'quarantined', None),
        ('Code Cache', 'quarantined', None),
        ('Cookies', 'quarantined', None),
        ('GPUCache', 'quarantined', None),
        ('IndexedDB', 'quarantined', None),
        ('Local Storage', 'failed', message),
        ('Network/Cookies', 'skipped', None),
        ('Network/Cookies-journal', 'skipped', None),
        ('notion.db', 'skipped', None),
        ('notion.db-wal', 'skipped', None),
        ('notionAssetCache-v2', 'skipped', None),
        ('Partitions/notion/Cache', 'skipped', None),
        ('Partitions/notion/IndexedDB', 'skipped', None),
        ('Partitions/notion/Local Storage', 'skipped', None),
        ('Partitions/notion/Network/Cookies', 'skipped', None),
        ('Partitions/notion/Service Worker', 'skipped', None),
        ('Service Worker', 'skipped', None),
    ]
    assert alice['status'] == 'failed'
    assert alice['errors'] == [f"{env.path('alice', 'Local Storage')}: {message}"]
    moved = ('Cache', 'Code Cache', 'Cookies', 'GPUCache', 'IndexedDB')
    assert (alice['bytes'], alice['files']) == (sum(bytes_under(r)[0] for r in moved), sum(bytes_under(r)[1] for r in moved))
    assert alice['quarantine_path'] == env.quarantine_root('alice') + '\\' + ENTRY_ID
    for item in alice['items']:
        assert env.exists(item['path']) is (item['action'] != 'quarantined'), item['path']
    assert user_entry(result, 'bob')['status'] == 'cleared'
    assert result['failed'] is True
    assert result['msg'] == ('Some Notion data could not be cleared; what was done is listed per user: alice: '
                             f"{env.path('alice', 'Local Storage')}: {message}")
    assert result['changed'] is True
    assert result['totals']['users'] == 1


def test_path_vanishing_between_probe_and_apply(make_env) -> None:
    env = make_env(['alice'])
    gone = env.path('alice', 'GPUCache')
    env.vanish_before_call(2, gone)
    result = env.app_data(scopes=['cache'])
    alice = user_entry(result, 'alice')
    vanished = [i for i in alice['items'] if i['path'] == gone]
    assert vanished == [{'path': gone, 'scope': 'cache', 'type': 'directory', 'bytes': 0, 'files': 0,
                         'quarantine_path': None, 'action': 'vanished', 'error': None}]
    others = [i for i in alice['items'] if i['path'] != gone]
    assert len(others) == 4 and {i['action'] for i in others} == {'quarantined'}
    assert (alice['status'], alice['errors']) == ('cleared', [])
    assert (alice['bytes'], alice['files']) == (
        sum(bytes_under(env.relative('alice', i['path']))[0] for i in others),
        sum(bytes_under(env.relative('alice', i['path']))[1] for i in others))
    assert result['totals']['items'] == 4
    assert 'failed' not in result
    assert f'alice: {gone} ->' not in result['diff']['after']


# ----------------------------------------------------------- redirected AppData


def test_redirected_appdata_on_another_volume_is_honoured() -> None:
    env = TwinEnv(['bob'])
    root = windows_user(env.machine, 'alice', 1, app_data='D:\\Redirected\\alice\\AppData')
    decoy = 'C:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache\\data'
    env.machine.write(decoy, 'not the real userData')
    result = env.app_data(users=['alice'], scopes=['cache'])
    alice = user_entry(result, 'alice')
    entry_dir = 'D:\\Redirected\\alice\\AppData\\loopbreaker-quarantine\\' + ENTRY_ID   # same volume as the data
    assert (alice['data_root'], alice['quarantine_path'], alice['status']) == (root, entry_dir, 'cleared')
    assert alice['data_root_source'] == 'registry'
    assert {i['path'] for i in alice['items']} == {ntpath.join(root, r.replace('/', '\\')) for r, _content in SELECTED['cache']}
    assert {i['action'] for i in alice['items']} == {'quarantined'}
    assert all(i['quarantine_path'].startswith(entry_dir + '\\items\\') for i in alice['items'])
    assert env.read(decoy) == b'not the real userData'
    assert env.exists(entry_dir + '\\manifest.json')
    assert env.machine.state['files'][entry_dir.lower()]['acl']['owner'] == sid(1)


def test_appdata_redirected_with_userprofile_uses_the_users_own_profile() -> None:
    env = TwinEnv([])
    root = windows_user(env.machine, 'alice', 1, app_data='%USERPROFILE%\\Roaming2')
    assert root == 'C:\\Users\\alice\\Roaming2\\Notion'
    result = env.app_data(scopes=['cookies'])
    alice = user_entry(result, 'alice')
    assert (alice['data_root'], alice['data_root_source']) == (root, 'registry')
    assert alice['quarantine_path'] == 'C:\\Users\\alice\\AppData\\Local\\loopbreaker\\quarantine\\' + ENTRY_ID
    assert len(alice['items']) == 4
    assert not env.exists(root + '\\Cookies')


def test_default_appdata_source() -> None:
    result = TwinEnv(['alice']).app_data(check_mode=True)
    assert user_entry(result, 'alice')['data_root_source'] == 'default'


def test_hive_load_error_is_reported_not_silently_ignored() -> None:
    env = TwinEnv(['bob'])
    env.machine.add_profile('dave', sid(7), hive_error='The process cannot access the file.',
                            shell_folders={'AppData': 'D:\\R\\dave'})
    for relative, content in TREE.items():
        env.machine.write('D:\\R\\dave\\Notion\\' + relative.replace('/', '\\'), content)
    result = env.app_data(check_mode=True)
    assert [u['user'] for u in result['users']] == ['bob', 'dave']
    dave = user_entry(result, 'dave')
    assert dave['status'] == 'failed'
    assert "Cannot load hive of 'dave': The process cannot access the file." in ' '.join(dave['errors'])


# -------------------------------------------------------------- bridge calls


@pytest.mark.parametrize('count', [1, 5])
def test_one_call_in_check_mode_and_two_in_a_real_run(make_env, count: int) -> None:
    names = ['alice', 'bob', 'dan', 'erin', 'fay'][:count]
    env = make_env(names)
    checked = env.app_data(check_mode=True)
    assert env.calls() == [True]
    real = env.app_data()
    assert env.calls() == [True, True, False]
    assert [u['user'] for u in checked['users']] == [u['user'] for u in real['users']] == names
    assert real['totals']['users'] == count


def test_calls_on_the_twin_log_operations() -> None:
    env = TwinEnv(['alice'])
    env.app_data()
    calls = env.machine.state['calls']
    assert calls[0] == {'operations': ['get_profiles', 'stat_paths', 'list_processes'], 'check_mode': True}
    assert calls[1]['check_mode'] is False
    assert calls[1]['operations'] == ['ensure_private_dir', 'write_record', 'write_file'] + ['move_path'] * 17


# ----------------------------------------------------------------- same shape


def shape(value: t.Any) -> t.Any:
    """Keys, recursively; list elements merged; folder-name maps and scalars reduced to their kind."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        merged: dict[str, t.Any] = {}
        for item in value:
            item_shape = shape(item)
            merged[json.dumps(item_shape, sort_keys=True)] = item_shape
        return [merged[k] for k in sorted(merged)]
    return None


@pytest.mark.skipif(not IS_ROOT, reason='LocalHost side needs root for distinct home owners')
@pytest.mark.parametrize('check_mode', [True, False])
@pytest.mark.parametrize('args', [{}, {'quarantine': False, 'scopes': ['cookies']}, {'users': ['alice', 'carol']}],
                         ids=['default', 'delete-cookies', 'named'])
def test_result_shape_is_the_same_on_windows_and_linux(tmp_path: Path, check_mode: bool, args) -> None:
    windows = TwinEnv(['alice', 'bob']).app_data(check_mode=check_mode, **args)
    linux = LocalEnv(tmp_path, ['alice', 'bob']).app_data(check_mode=check_mode, **args)
    assert shape(windows) == shape(linux)
    assert [u['user'] for u in windows['users']] == [u['user'] for u in linux['users']]
    assert [[(i['scope'], i['type'], i['bytes'], i['files'], i['action']) for i in u['items']] for u in windows['users']] \
        == [[(i['scope'], i['type'], i['bytes'], i['files'], i['action']) for i in u['items']] for u in linux['users']]
    assert (windows['changed'], windows['totals']) == (linux['changed'], linux['totals'])


# -------------------------------------------------------------- known bugs


@pytest.mark.skipif(not IS_ROOT, reason='needs root: the module runs as root over other users\' homes')
@pytest.mark.parametrize('link', ['.config/Notion/Partitions', '.config'])
def test_a_users_symlink_cannot_make_the_module_move_another_users_data(tmp_path: Path, link: str) -> None:
    env = LocalEnv(tmp_path, ['bob'])
    env.uids['alice'] = next_uid()
    home = posix_home(env.root, 'alice', notion=False, uid=env.uids['alice']).parent.parent
    target = env.root / 'bob' / link
    (home / link).parent.mkdir(parents=True, exist_ok=True)
    (home / link).symlink_to(target, target_is_directory=True)
    bob_before = file_tree(env.root / 'bob')
    env.app_data(users=['alice'])
    assert file_tree(env.root / 'bob') == bob_before


@pytest.mark.skipif(not IS_ROOT, reason='needs root: the module runs as root over other users\' homes')
def test_directories_created_in_a_home_belong_to_its_owner(tmp_path: Path) -> None:
    env = LocalEnv(tmp_path, ['alice'])
    assert not (env.root / 'alice' / '.local').exists()
    env.app_data(scopes=['cache'])
    created = ['.local', '.local/share', '.local/share/loopbreaker', '.local/share/loopbreaker/quarantine',
               f'.local/share/loopbreaker/quarantine/{ENTRY_ID}']
    owners = {relative: os.stat(env.root / 'alice' / relative).st_uid for relative in created}
    assert owners == {relative: env.uids['alice'] for relative in created}


VIRTUAL = ('C:\\Users\\{user}\\AppData\\Local\\Packages\\com.notion.app.desktop.notion_87smfmv0eebam\\LocalCache'
           '\\Roaming\\Notion')


def test_msix_data_virtualised_into_the_package_folder_is_cleared_with_the_classic_data() -> None:
    """MSIX file-system virtualisation puts new AppData files in Packages\\<family>\\LocalCache: both are Notion's."""
    env = TwinEnv(['alice', 'bob'])
    virtual = VIRTUAL.format(user='bob')
    env.machine.write(virtual + '\\Cookies', 'virtual cookies')
    env.machine.write(virtual + '\\Network\\Cookies', 'virtual network cookies')
    env.machine.write(virtual + '\\Cache\\Cache_Data\\data_0', 'virtual cache')
    result = env.app_data(scopes=['cookies'])
    paths = [i['path'] for i in items_of(result, 'bob')]
    assert virtual + '\\Cookies' in paths and virtual + '\\Network\\Cookies' in paths
    assert env.data_root('bob') + '\\Cookies' in paths, 'the classic folder too'
    assert not env.machine.exists(virtual + '\\Cookies') and env.machine.exists(virtual + '\\Cache\\Cache_Data\\data_0')
    assert user_entry(result, 'bob')['data_roots'] == [env.data_root('bob'), virtual]
    assert user_entry(result, 'alice')['data_roots'] == [env.data_root('alice')]
    restored = env.quarantine(state='restored', id=result['quarantine_id'], users=['bob'])
    assert not restored.get('failed'), restored.get('msg')
    assert env.machine.read(virtual + '\\Cookies') == b'virtual cookies', 'and it is restored to where it was'

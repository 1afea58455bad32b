# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/plugin_utils/_simulated_windows.py, the Python twin of win_bridge.ps1.

Every error path checks the exact message and that the machine state did not
change (the ``calls`` log aside, which records every bridge call by design).
"""
from __future__ import annotations

import copy
import hashlib
import re
import typing as t

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import VocabularyError
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import HostError
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import (
    ADMIN_DIR_ACL,
    ADMINISTRATORS_SID,
    PROGRAM_DATA_ACL,
    SHELL_FOLDERS_KEY,
    SYSTEM_SID,
    SimulatedWindows,
    empty_state,
)

ALICE = 'S-1-5-21-100-200-300-1001'
BOB = 'S-1-5-21-100-200-300-1002'
CAROL = 'S-1-5-21-100-200-300-1003'
FOLDERS = {'AppData': 'AppData\\Roaming', 'Local AppData': 'AppData\\Local'}
NOTION = 'C:\\Users\\alice\\AppData\\Roaming\\Notion'


@pytest.fixture
def twin() -> SimulatedWindows:
    machine = SimulatedWindows(empty_state('WS01'))
    machine.add_profile('alice', ALICE, loaded=True)
    machine.add_profile('bob', BOB)                                    # logged off
    machine.add_profile('systemprofile', SYSTEM_SID, loaded=True,
                        profile_path='C:\\Windows\\System32\\config\\systemprofile')
    machine.write(NOTION + '\\Cache\\Cache_Data\\data_0', 'c' * 100)
    machine.write(NOTION + '\\Cache\\Cache_Data\\index', 'i' * 20)
    machine.write(NOTION + '\\Cache\\empty.bin', b'')
    machine.write(NOTION + '\\Partitions\\notion\\Cache\\Cache_Data\\data_1', 'p' * 7)
    machine.write(NOTION + '\\Partitions\\notion\\Network\\Cookies', 'cookie')
    machine.write(NOTION + '\\Preferences', '{}')
    machine.mkdir(NOTION + '\\Partitions\\other')
    return machine


def machine_state(machine: SimulatedWindows) -> dict[str, t.Any]:
    """Everything but the call log."""
    state = copy.deepcopy(machine.state)
    state.pop('calls')
    return state


def one(machine: SimulatedWindows, operation: dict[str, t.Any], *, check_mode: bool = False) -> dict[str, t.Any]:
    envelope = machine.run_batch([operation], check_mode=check_mode)
    return envelope['results'][0]


def assert_error(machine: SimulatedWindows, operation: dict[str, t.Any], message: str) -> None:
    before = machine_state(machine)
    result = one(machine, operation)
    assert (result['status'], result['data'], result['error']) == ('error', None, message)
    assert machine_state(machine) == before


# ------------------------------------------------------------------ seeding


def test_add_profile_creates_profile_list_entry_directory_and_hive() -> None:
    machine = SimulatedWindows(empty_state('HOST9'))
    added = machine.add_profile('dave', CAROL, shell_folders={'AppData': 'E:\\Roam\\dave'})
    assert added == {'sid': CAROL, 'key': CAROL, 'username': 'dave', 'account': 'HOST9\\dave',
                     'profile_path': 'C:\\Users\\dave', 'loaded': False, 'hive_error': None, 'state': 0}
    assert machine.read('c:\\users\\DAVE\\ntuser.dat') == b'hive'
    assert machine.state['hives']['HKLM'] == {
        'software\\microsoft\\windows nt\\currentversion\\profilelist\\' + CAROL.lower(): {
            'path': 'SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList\\' + CAROL,
            'values': {'ProfileImagePath': {'type': 'REG_EXPAND_SZ', 'data': 'C:\\Users\\dave'}}}}
    assert machine.state['hives'][CAROL] == {SHELL_FOLDERS_KEY.lower(): {
        'path': SHELL_FOLDERS_KEY, 'values': {'AppData': {'type': 'REG_EXPAND_SZ', 'data': 'E:\\Roam\\dave'}}}}


def test_write_over_a_file_parent_is_refused(twin: SimulatedWindows) -> None:
    from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError

    before = machine_state(twin)
    with pytest.raises(BridgeOperationError, match=re.escape(f"Cannot create '{NOTION}\\Preferences': a file of that name exists.")):
        twin.write(NOTION + '\\Preferences\\x', 'y')
    assert machine_state(twin) == before


def test_read_missing_file(twin: SimulatedWindows) -> None:
    from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError

    with pytest.raises(BridgeOperationError, match=re.escape("Could not find file 'C:\\nope'.")):
        twin.read('C:\\nope')
    with pytest.raises(BridgeOperationError, match=re.escape(f"Could not find file '{NOTION}'.")):
        twin.read(NOTION)


# ---------------------------------------------------------------------- hives


def test_logged_off_hive_is_loaded_for_each_operation_and_unloaded_right_after(twin: SimulatedWindows) -> None:
    envelope = twin.run_batch([
        {'op': 'read_registry', 'key': SHELL_FOLDERS_KEY, 'sid': BOB},
        {'op': 'read_registry', 'key': SHELL_FOLDERS_KEY, 'sid': BOB},      # unloaded after the first: again
        {'op': 'read_registry', 'key': SHELL_FOLDERS_KEY, 'sid': ALICE},    # logged on: not loaded
    ])
    assert [r['status'] for r in envelope['results']] == ['ok', 'ok', 'ok']
    assert (envelope['hives_loaded'], envelope['hives_unloaded']) == ([BOB, BOB], [BOB, BOB])
    assert twin.state['mounted_hives'] == []


def test_get_profiles_loads_every_logged_off_hive(twin: SimulatedWindows) -> None:
    twin.add_profile('carol', CAROL)
    envelope = twin.run_batch([{'op': 'get_profiles', 'shell_folders': FOLDERS}])
    assert envelope['hives_loaded'] == [BOB, CAROL]
    assert twin.state['mounted_hives'] == []


def test_hive_unloaded_even_when_a_later_operation_fails(twin: SimulatedWindows) -> None:
    twin.state['faults'].append({'during_op': 'stat_paths', 'raise': 'The device is not ready.'})
    envelope = twin.run_batch([
        {'op': 'read_registry', 'key': 'Software\\Notion', 'sid': BOB, 'group': 'g'},
        {'op': 'stat_paths', 'patterns': [NOTION], 'group': 'g'},
        {'op': 'read_registry', 'key': 'Software\\Notion', 'sid': BOB, 'group': 'g'},
    ])
    assert [(r['status'], r['error']) for r in envelope['results']] == [
        ('ok', None), ('error', 'The device is not ready.'), ('skipped', None)]
    assert envelope['hives_loaded'] == [BOB]
    assert twin.state['mounted_hives'] == []


def test_hive_unloaded_even_when_the_operation_after_the_load_fails(twin: SimulatedWindows) -> None:
    twin.state['faults'].append({'during_op': 'read_registry', 'raise': 'Access is denied.'})
    envelope = twin.run_batch([
        {'op': 'get_profiles', 'shell_folders': FOLDERS},                   # loads bob's hive
        {'op': 'read_registry', 'key': 'Software\\Notion', 'sid': BOB},
    ])
    assert [(r['status'], r['error']) for r in envelope['results']] == [('ok', None), ('error', 'Access is denied.')]
    assert envelope['hives_loaded'] == [BOB]
    assert twin.state['mounted_hives'] == []


def test_hive_unloaded_when_the_host_crashes_mid_batch(twin: SimulatedWindows, monkeypatch) -> None:
    def crash(**_params):
        raise RuntimeError('simulated crash')

    monkeypatch.setattr(twin, 'op_stat_paths', crash)
    with pytest.raises(RuntimeError, match='^simulated crash$'):
        twin.run_batch([{'op': 'read_registry', 'key': 'Software', 'sid': BOB},
                        {'op': 'stat_paths', 'patterns': []}])
    assert twin.state['mounted_hives'] == []


def test_a_hive_mounted_before_the_batch_stays_mounted(twin: SimulatedWindows) -> None:
    twin.state['mounted_hives'] = [BOB]
    envelope = twin.run_batch([{'op': 'read_registry', 'key': 'Software', 'sid': BOB}])
    assert envelope['hives_loaded'] == []
    assert twin.state['mounted_hives'] == [BOB]


def test_hive_load_error(twin: SimulatedWindows) -> None:
    twin.add_profile('carol', CAROL, hive_error='The process cannot access the file because it is being used by '
                                                'another process.')
    message = ("Cannot load hive of 'carol': The process cannot access the file because it is being used by "
               'another process.')
    assert_error(twin, {'op': 'read_registry', 'key': 'Software', 'sid': CAROL}, message)
    assert_error(twin, {'op': 'write_registry', 'key': 'Software\\X', 'sid': CAROL,
                        'values': {'A': {'type': 'REG_SZ', 'data': 'b'}}}, message)

    envelope = twin.run_batch([{'op': 'get_profiles', 'shell_folders': FOLDERS}])
    carol = envelope['results'][0]['data']['profiles'][-1]
    assert carol == {'sid': CAROL, 'username': 'carol', 'account': 'WS01\\carol', 'profile_path': 'C:\\Users\\carol',
                     'loaded': False, 'special': False, 'selected': True, 'environment': {},
                     'folders': {'AppData': 'C:\\Users\\carol\\AppData\\Roaming',
                                 'Local AppData': 'C:\\Users\\carol\\AppData\\Local'},
                     'folder_source': {'AppData': 'default', 'Local AppData': 'default'}, 'error': message}
    assert envelope['hives_loaded'] == [BOB]
    assert twin.state['mounted_hives'] == []


def test_unknown_sid(twin: SimulatedWindows) -> None:
    assert_error(twin, {'op': 'read_registry', 'key': 'Software', 'sid': 'S-1-5-21-9-9'},
                 "No profile for SID 'S-1-5-21-9-9' in ProfileList.")


# ------------------------------------------------------------------- profiles


def test_get_profiles(twin: SimulatedWindows) -> None:
    result = one(twin, {'op': 'get_profiles', 'shell_folders': FOLDERS})
    assert result['status'] == 'ok'
    environments = [p.pop('environment') for p in result['data']['profiles']]
    assert [e.get('USERPROFILE') for e in environments] == ['C:\\Users\\alice', 'C:\\Users\\bob', None]
    assert result['data']['skipped'] == []
    assert result['data']['profiles'] == [
        {'sid': ALICE, 'username': 'alice', 'account': 'WS01\\alice', 'profile_path': 'C:\\Users\\alice', 'loaded': True,
         'special': False, 'selected': True, 'folders': {'AppData': 'C:\\Users\\alice\\AppData\\Roaming',
                                                         'Local AppData': 'C:\\Users\\alice\\AppData\\Local'},
         'folder_source': {'AppData': 'default', 'Local AppData': 'default'}, 'error': None},
        {'sid': BOB, 'username': 'bob', 'account': 'WS01\\bob', 'profile_path': 'C:\\Users\\bob', 'loaded': False,
         'special': False, 'selected': True, 'folders': {'AppData': 'C:\\Users\\bob\\AppData\\Roaming',
                                                         'Local AppData': 'C:\\Users\\bob\\AppData\\Local'},
         'folder_source': {'AppData': 'default', 'Local AppData': 'default'}, 'error': None},
        {'sid': SYSTEM_SID, 'username': 'systemprofile', 'account': 'WS01\\systemprofile',
         'profile_path': 'C:\\Windows\\System32\\config\\systemprofile', 'loaded': True, 'special': True,
         'selected': False,
         'folders': {'AppData': 'C:\\Windows\\System32\\config\\systemprofile\\AppData\\Roaming',
                     'Local AppData': 'C:\\Windows\\System32\\config\\systemprofile\\AppData\\Local'},
         'folder_source': {'AppData': 'not_read', 'Local AppData': 'not_read'}, 'error': None},
    ]


@pytest.mark.parametrize(
    ('value', 'expected'),
    [
        pytest.param('%USERPROFILE%\\Roaming2', 'C:\\Users\\carol\\Roaming2', id='userprofile'),
        pytest.param('%UserProfile%\\AppData\\..\\Moved', 'C:\\Users\\carol\\Moved', id='mixed-case-normalised'),
        pytest.param('D:\\Redirected\\carol\\AppData', 'D:\\Redirected\\carol\\AppData', id='absolute'),
        pytest.param('\\\\fs01\\home$\\carol\\AppData', '\\\\fs01\\home$\\carol\\AppData', id='unc'),
    ],
)
def test_shell_folder_from_the_users_own_hive(twin: SimulatedWindows, value: str, expected: str) -> None:
    twin.add_profile('carol', CAROL, shell_folders={'AppData': value})
    profiles = one(twin, {'op': 'get_profiles', 'shell_folders': FOLDERS})['data']['profiles']
    carol = next(p for p in profiles if p['username'] == 'carol')
    assert carol['folders'] == {'AppData': expected, 'Local AppData': 'C:\\Users\\carol\\AppData\\Local'}
    assert carol['folder_source'] == {'AppData': 'registry', 'Local AppData': 'default'}


def test_userprofile_expands_against_each_profile_not_the_caller(twin: SimulatedWindows) -> None:
    """The same %USERPROFILE% value in two hives names two different places."""
    twin.add_profile('carol', CAROL, shell_folders={'AppData': '%USERPROFILE%\\Roam'},
                     profile_path='E:\\Profiles\\carol')
    twin.add_profile('dave', 'S-1-5-21-100-200-300-1004', shell_folders={'AppData': '%USERPROFILE%\\Roam'})
    profiles = one(twin, {'op': 'get_profiles', 'shell_folders': FOLDERS})['data']['profiles']
    folders = {p['username']: p['folders']['AppData'] for p in profiles}
    assert folders == {'alice': 'C:\\Users\\alice\\AppData\\Roaming', 'bob': 'C:\\Users\\bob\\AppData\\Roaming',
                       'systemprofile': 'C:\\Windows\\System32\\config\\systemprofile\\AppData\\Roaming',
                       'carol': 'E:\\Profiles\\carol\\Roam', 'dave': 'C:\\Users\\dave\\Roam'}


def test_each_profile_substitutes_resolved_shell_folders(twin: SimulatedWindows) -> None:
    twin.add_profile('carol', CAROL, shell_folders={'AppData': 'D:\\R\\carol'})
    twin.write('D:\\R\\carol\\Notion\\Cookies', 'x' * 3)
    envelope = twin.run_batch([{'op': 'get_profiles', 'shell_folders': FOLDERS},
                               {'op': 'stat_paths', 'each_profile': True, 'patterns': ['{AppData}\\Notion\\Cookies']}])
    by_sid = envelope['results'][1]['data']['by_sid']
    assert set(by_sid) == {ALICE, BOB, CAROL}, 'the special SYSTEM profile is not selected'
    assert by_sid[CAROL]['data']['entries'] == [{'pattern': 'D:\\R\\carol\\Notion\\Cookies', 'path': 'D:\\R\\carol\\Notion\\Cookies',
                                                 'type': 'file', 'bytes': 3, 'files': 1, 'modified': '2026-01-01T00:00:00Z',
                                                 'owner_sid': None, 'links': 1}]
    assert by_sid[ALICE]['data']['entries'] == []


# -------------------------------------------------------------------- stat_paths


def stat(machine: SimulatedWindows, *patterns: str) -> list[tuple[str, str, int, int]]:
    result = one(machine, {'op': 'stat_paths', 'patterns': list(patterns)})
    assert result['status'] == 'ok'
    return [(e['path'], e['type'], e['bytes'], e['files']) for e in result['data']['entries']]


@pytest.mark.parametrize(
    ('patterns', 'expected'),
    [
        pytest.param([NOTION + '\\Cache'], [(NOTION + '\\Cache', 'directory', 120, 3)], id='dir-recursive'),
        pytest.param([NOTION + '\\Cache\\Cache_Data\\data_0'], [(NOTION + '\\Cache\\Cache_Data\\data_0', 'file', 100, 1)],
                     id='file'),
        pytest.param([NOTION + '\\Cache\\empty.bin'], [(NOTION + '\\Cache\\empty.bin', 'file', 0, 1)], id='empty-file'),
        pytest.param([NOTION + '\\Partitions\\other'], [(NOTION + '\\Partitions\\other', 'directory', 0, 0)],
                     id='empty-dir'),
        pytest.param([NOTION + '\\Partitions\\*\\Cache'],
                     [(NOTION + '\\Partitions\\notion\\Cache', 'directory', 7, 1)], id='wildcard-segment'),
        pytest.param([NOTION + '\\Partitions\\*'],
                     [(NOTION + '\\Partitions\\notion', 'directory', 13, 2),
                      (NOTION + '\\Partitions\\other', 'directory', 0, 0)], id='wildcard-last-sorted'),
        pytest.param(['c:\\USERS\\Alice\\appdata\\roaming\\notion\\partitions\\NOTION\\network\\cookies'],
                     [(NOTION + '\\Partitions\\notion\\Network\\Cookies', 'file', 6, 1)], id='case-insensitive'),
        pytest.param(['C:\\Users\\*\\AppData\\Roaming\\Notion\\Pref*'], [(NOTION + '\\Preferences', 'file', 2, 1)],
                     id='wildcard-in-two-segments'),
        pytest.param([NOTION + '\\*\\Cache_Data'], [(NOTION + '\\Cache\\Cache_Data', 'directory', 120, 2)],
                     id='star-does-not-cross-separators'),
        pytest.param([NOTION + '\\Nothing', NOTION + '\\Partitions\\*\\Nothing'], [], id='no-match'),
        pytest.param([NOTION + '\\Preferences', NOTION + '\\Preferences'],
                     [(NOTION + '\\Preferences', 'file', 2, 1)] * 2, id='each-pattern-reported'),
        pytest.param([NOTION + '\\Cache\\'], [(NOTION + '\\Cache', 'directory', 120, 3)], id='trailing-separator'),
    ],
)
def test_stat_paths(twin: SimulatedWindows, patterns: list[str], expected) -> None:
    assert stat(twin, *patterns) == expected


def test_stat_paths_reports_the_pattern_and_time(twin: SimulatedWindows) -> None:
    entries = one(twin, {'op': 'stat_paths', 'patterns': [NOTION + '\\P*']})['data']['entries']
    assert entries == [
        {'pattern': NOTION + '\\P*', 'path': NOTION + '\\Partitions', 'type': 'directory', 'bytes': 13, 'files': 2,
         'modified': '2026-01-01T00:00:00Z', 'owner_sid': None, 'links': 1},
        {'pattern': NOTION + '\\P*', 'path': NOTION + '\\Preferences', 'type': 'file', 'bytes': 2, 'files': 1,
         'modified': '2026-01-01T00:00:00Z', 'owner_sid': None, 'links': 1},
    ]


def test_read_files(twin: SimulatedWindows) -> None:
    twin.write('C:\\q\\20260101T000000Z-000000\\manifest.json', '{"a": "é"}')
    twin.write('C:\\q\\20260102T000000Z-000000\\manifest.json', '{}')
    twin.mkdir('C:\\q\\20260103T000000Z-000000\\manifest.json')          # a directory is not a file
    result = one(twin, {'op': 'read_files', 'patterns': ['C:\\Q\\*\\MANIFEST.json', 'C:\\q\\none\\*']})
    assert result['data'] == {'files': [
        {'path': 'C:\\q\\20260101T000000Z-000000\\manifest.json', 'content': '{"a": "é"}', 'error': None},
        {'path': 'C:\\q\\20260102T000000Z-000000\\manifest.json', 'content': '{}', 'error': None},
    ]}


# ------------------------------------------------------------------- write_file


def test_write_file_creates_parents_and_counts_utf8_bytes(twin: SimulatedWindows) -> None:
    result = one(twin, {'op': 'write_file', 'path': 'C:\\new\\deep\\m.json', 'content': 'zoë'})
    assert result['data'] == {'bytes': 4}
    assert twin.read('C:\\NEW\\deep\\m.json') == 'zoë'.encode()
    assert twin.state['files']['c:\\new\\deep']['type'] == 'directory'


def test_write_file_refused_on_a_locked_file(twin: SimulatedWindows) -> None:
    pid = twin.add_process('SearchProtocolHost.exe', 'C:\\Windows\\System32\\SearchProtocolHost.exe', SYSTEM_SID)
    twin.write('C:\\q\\m.json', 'old', locked_by=pid)
    assert_error(twin, {'op': 'write_file', 'path': 'C:\\q\\m.json', 'content': 'new'},
                 "The process cannot access the file 'C:\\q\\m.json' because it is being used by another process.")


# -------------------------------------------------------------------- move_path

MOVE_TO = 'C:\\Users\\alice\\AppData\\Local\\loopbreaker\\quarantine\\e1\\items\\000-Cache'


def test_move_path_moves_a_tree(twin: SimulatedWindows) -> None:
    before = twin.tree_snapshot(NOTION + '\\Cache')
    result = one(twin, {'op': 'move_path', 'source': NOTION + '\\cache', 'destination': MOVE_TO})
    assert (result['status'], result['data']) == ('ok', {'moved': True, 'missing': False})
    assert not twin.exists(NOTION + '\\Cache')
    assert not twin.exists(NOTION + '\\Cache\\Cache_Data\\data_0')
    assert twin.tree_snapshot(MOVE_TO) == before
    assert twin.read(MOVE_TO + '\\Cache_Data\\data_0') == b'c' * 100
    assert twin.exists(NOTION + '\\Preferences')
    assert twin.state['files'][MOVE_TO.lower()]['path'] == MOVE_TO


def test_move_path_missing_source_is_reported(twin: SimulatedWindows) -> None:
    before = machine_state(twin)
    result = one(twin, {'op': 'move_path', 'source': NOTION + '\\GPUCache', 'destination': MOVE_TO})
    assert (result['status'], result['data']) == ('ok', {'moved': False, 'missing': True})
    assert machine_state(twin) == before


def test_move_path_existing_destination(twin: SimulatedWindows) -> None:
    twin.write(MOVE_TO, 'already here')
    assert_error(twin, {'op': 'move_path', 'source': NOTION + '\\Cache', 'destination': MOVE_TO.upper()},
                 f"Cannot create '{MOVE_TO.upper()}' because a file or directory with the same name already exists.")


def test_move_path_across_volumes(twin: SimulatedWindows) -> None:
    assert_error(twin, {'op': 'move_path', 'source': NOTION + '\\Cache', 'destination': 'D:\\q\\items\\000-Cache'},
                 'Source and destination path must have identical roots. Move will not work across volumes.')


def test_move_path_locked_file_then_success_after_stopping_the_process(twin: SimulatedWindows) -> None:
    pid = twin.add_process('Notion.exe', 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe', ALICE)
    twin.write(NOTION + '\\Cache\\Cache_Data\\data_2', 'locked', locked_by=pid)
    assert_error(twin, {'op': 'move_path', 'source': NOTION + '\\Cache', 'destination': MOVE_TO},
                 f"The process cannot access the file '{NOTION}\\Cache\\Cache_Data\\data_2' because it is being used "
                 'by another process.')
    stopped = one(twin, {'op': 'stop_processes', 'processes': as_listed(twin, pid)})
    assert stopped['data'] == {'stopped': [pid], 'already_gone': [], 'not_stopped': []}
    moved = one(twin, {'op': 'move_path', 'source': NOTION + '\\Cache', 'destination': MOVE_TO})
    assert moved['data'] == {'moved': True, 'missing': False}
    assert twin.read(MOVE_TO + '\\Cache_Data\\data_2') == b'locked'


def test_a_lock_by_a_process_that_is_gone_does_not_block(twin: SimulatedWindows) -> None:
    twin.write(NOTION + '\\Cache\\stale', 'x', locked_by=4242)
    assert one(twin, {'op': 'move_path', 'source': NOTION + '\\Cache', 'destination': MOVE_TO})['data'] == {
        'moved': True, 'missing': False}


# ------------------------------------------------------------------ remove_path


@pytest.mark.parametrize(
    ('path', 'gone', 'kept'),
    [
        (NOTION + '\\Cache', [NOTION + '\\Cache', NOTION + '\\Cache\\Cache_Data\\index'], [NOTION + '\\Preferences']),
        (NOTION + '\\PREFERENCES', [NOTION + '\\Preferences'], [NOTION + '\\Cache']),
        (NOTION + '\\Partitions\\notion\\Network\\Cookies', [NOTION + '\\Partitions\\notion\\Network\\Cookies'],
         [NOTION + '\\Partitions\\notion\\Network']),
    ],
)
def test_remove_path(twin: SimulatedWindows, path: str, gone: list[str], kept: list[str]) -> None:
    result = one(twin, {'op': 'remove_path', 'path': path})
    assert result['data'] == {'removed': True, 'missing': False}
    assert [twin.exists(p) for p in gone] == [False] * len(gone)
    assert [twin.exists(p) for p in kept] == [True] * len(kept)


def test_remove_path_does_not_touch_siblings_sharing_a_prefix(twin: SimulatedWindows) -> None:
    twin.write(NOTION + '\\Cache-journal', 'j')
    one(twin, {'op': 'remove_path', 'path': NOTION + '\\Cache'})
    assert twin.exists(NOTION + '\\Cache-journal')


def test_remove_path_missing(twin: SimulatedWindows) -> None:
    before = machine_state(twin)
    assert one(twin, {'op': 'remove_path', 'path': NOTION + '\\GPUCache'})['data'] == {'removed': False, 'missing': True}
    assert machine_state(twin) == before


def test_remove_path_locked(twin: SimulatedWindows) -> None:
    pid = twin.add_process('MsMpEng.exe', 'C:\\ProgramData\\Microsoft\\Windows Defender\\MsMpEng.exe', SYSTEM_SID)
    twin.write(NOTION + '\\Cache\\scan', 'x', locked_by=pid)
    assert_error(twin, {'op': 'remove_path', 'path': NOTION + '\\Cache'},
                 f"The process cannot access the file '{NOTION}\\Cache\\scan' because it is being used by another "
                 'process.')


# ----------------------------------------------------------- ensure_private_dir

QDIR = 'C:\\Users\\bob\\AppData\\Local\\loopbreaker\\quarantine\\20260101T000000Z-abcdef'
PRIVATE = {'owner': BOB, 'allow': sorted({BOB, ADMINISTRATORS_SID, SYSTEM_SID}), 'protected': True}


def test_ensure_private_dir_creates_with_acl_and_is_idempotent(twin: SimulatedWindows) -> None:
    first = one(twin, {'op': 'ensure_private_dir', 'path': QDIR, 'owner_sid': BOB})
    assert first['data'] == {'created': True, 'acl_corrected': False}
    assert twin.state['files'][QDIR.lower()]['acl'] == PRIVATE
    assert PRIVATE['allow'] == ['S-1-5-18', 'S-1-5-21-100-200-300-1002', 'S-1-5-32-544']
    assert twin.state['files']['c:\\users\\bob\\appdata\\local\\loopbreaker\\quarantine']['acl'] is None

    before = machine_state(twin)
    again = twin.run_batch([{'op': 'ensure_private_dir', 'path': QDIR.upper(), 'owner_sid': BOB}])
    assert again['results'][0]['data'] == {'created': False, 'acl_corrected': False}
    assert again['changed'] is False
    assert machine_state(twin) == before


@pytest.mark.parametrize('acl', [None, {'owner': ALICE, 'allow': [ALICE], 'protected': True},
                                 dict(PRIVATE, protected=False)])
def test_ensure_private_dir_corrects_an_existing_acl(twin: SimulatedWindows, acl) -> None:
    twin.mkdir(QDIR)
    twin.state['files'][QDIR.lower()]['acl'] = acl
    result = one(twin, {'op': 'ensure_private_dir', 'path': QDIR, 'owner_sid': BOB})
    assert result['data'] == {'created': False, 'acl_corrected': True}
    assert twin.state['files'][QDIR.lower()]['acl'] == PRIVATE


def test_ensure_private_dir_over_a_file(twin: SimulatedWindows) -> None:
    assert_error(twin, {'op': 'ensure_private_dir', 'path': NOTION + '\\Preferences\\q', 'owner_sid': ALICE},
                 f"Cannot create '{NOTION}\\Preferences': a file of that name exists.")


# ------------------------------------------------------------------- processes


@pytest.fixture
def running(twin: SimulatedWindows) -> dict[str, int]:
    exe = 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe'
    return {
        'main': twin.add_process('Notion.exe', exe, ALICE),
        'helper': twin.add_process('notion.EXE', exe, ALICE, session_id=2),
        'stuck': twin.add_process('Notion.exe', exe, BOB, unkillable=True),
        'other': twin.add_process('explorer.exe', 'C:\\Windows\\SysWOW64\\explorer.exe', ALICE),
    }


# add_profile gives a logged-on user the explorer.exe of their session; these tests add their own.
EXPLORER_OF_ALICE_SESSION = 'C:\\Windows\\explorer.exe'


def as_listed(machine: SimulatedWindows, *pids: int) -> list[dict[str, t.Any]]:
    """The processes as list_processes reports them (stop_processes is given them so)."""
    by_pid = {p['pid']: p for p in machine.state['processes']}
    return [{'pid': pid, 'name': by_pid[pid]['name'] if pid in by_pid else 'Notion.exe',
             'owner_sid': by_pid[pid]['owner_sid'] if pid in by_pid else ALICE,
             'started': by_pid[pid]['started'] if pid in by_pid else '2026-01-01T00:00:00.0000000Z'} for pid in pids]


def test_add_process_gives_distinct_pids(running: dict[str, int]) -> None:
    assert len(set(running.values())) == 4
    assert all(pid % 4 == 0 for pid in running.values())


def test_list_processes(twin: SimulatedWindows, running: dict[str, int]) -> None:
    result = one(twin, {'op': 'list_processes', 'names': ['NOTION.exe']})
    exe = 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe'
    started = {p['pid']: p['started'] for p in twin.state['processes']}
    assert result['data'] == {'processes': [
        {'pid': running['main'], 'name': 'Notion.exe', 'path': exe, 'owner_sid': ALICE, 'session_id': 1,
         'started': started[running['main']]},
        {'pid': running['helper'], 'name': 'notion.EXE', 'path': exe, 'owner_sid': ALICE, 'session_id': 2,
         'started': started[running['helper']]},
        {'pid': running['stuck'], 'name': 'Notion.exe', 'path': exe, 'owner_sid': BOB, 'session_id': 1,
         'started': started[running['stuck']]},
    ]}
    assert one(twin, {'op': 'list_processes', 'names': []})['data'] == {'processes': []}


def test_stop_processes(twin: SimulatedWindows, running: dict[str, int]) -> None:
    listed = as_listed(twin, running['main'], 99999, running['helper'])
    result = one(twin, {'op': 'stop_processes', 'processes': listed})
    assert result['data'] == {'stopped': [running['main'], running['helper']], 'already_gone': [99999],
                              'not_stopped': []}
    assert [p['pid'] for p in twin.state['processes'] if p['path'] != EXPLORER_OF_ALICE_SESSION] == [
        running['stuck'], running['other']]


def test_stop_processes_all_gone_is_no_change(twin: SimulatedWindows) -> None:
    envelope = twin.run_batch([{'op': 'stop_processes', 'processes': as_listed(twin, 8, 12)}])
    assert envelope['results'][0]['data'] == {'stopped': [], 'already_gone': [8, 12], 'not_stopped': []}
    assert envelope['changed'] is False


def test_stop_processes_unkillable(twin: SimulatedWindows, running: dict[str, int]) -> None:
    result = one(twin, {'op': 'stop_processes', 'processes': as_listed(twin, running['main'], running['stuck']),
                        'timeout_seconds': 5})
    assert (result['status'], result['error']) == ('error', f"Processes still running after 5 s: {running['stuck']}")
    # the killable one was terminated all the same, as Stop-Process does
    remaining = [p['pid'] for p in twin.state['processes'] if p['path'] != EXPLORER_OF_ALICE_SESSION]
    assert remaining == [running['helper'], running['stuck'], running['other']]


def test_stop_processes_default_timeout_in_message(twin: SimulatedWindows, running: dict[str, int]) -> None:
    assert_error(twin, {'op': 'stop_processes', 'processes': as_listed(twin, running['stuck'])},
                 f"Processes still running after 30 s: {running['stuck']}")


# -------------------------------------------------------------------- registry

KEY = 'Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings'


def test_registry_write_read_delete(twin: SimulatedWindows) -> None:
    values = {'ProxyEnable': {'type': 'REG_DWORD', 'data': 1}, 'ProxyServer': {'type': 'REG_SZ', 'data': 'p:8080'},
              'Blob': {'type': 'REG_BINARY', 'data': 'RgAAAA=='}}
    created = twin.run_batch([{'op': 'write_registry', 'key': KEY, 'values': values, 'sid': BOB}])
    assert created['results'][0]['data'] == {'created_key': True}
    assert created['changed'] is True
    assert created['hives_loaded'] == [BOB]

    again = one(twin, {'op': 'write_registry', 'key': '\\' + KEY.upper() + '\\', 'sid': BOB,
                       'values': {'ProxyEnable': {'type': 'REG_DWORD', 'data': 0}}})
    assert again['data'] == {'created_key': False}

    read = one(twin, {'op': 'read_registry', 'key': KEY.lower(), 'sid': BOB})
    assert read['data'] == {'exists': True, 'values': {
        'ProxyEnable': {'type': 'REG_DWORD', 'data': 0}, 'ProxyServer': {'type': 'REG_SZ', 'data': 'p:8080'},
        'Blob': {'type': 'REG_BINARY', 'data': 'RgAAAA=='}}}
    named = one(twin, {'op': 'read_registry', 'key': KEY, 'sid': BOB, 'names': ['ProxyServer', 'Absent']})
    assert named['data'] == {'exists': True, 'values': {'ProxyServer': {'type': 'REG_SZ', 'data': 'p:8080'}}}

    deleted = one(twin, {'op': 'delete_registry_values', 'key': KEY, 'sid': BOB, 'names': ['ProxyServer', 'Absent']})
    assert deleted['data'] == {'deleted': ['ProxyServer'], 'missing': ['Absent']}
    assert set(one(twin, {'op': 'read_registry', 'key': KEY, 'sid': BOB})['data']['values']) == {'ProxyEnable', 'Blob'}
    # the hive of the logged-on user and HKLM are untouched
    assert one(twin, {'op': 'read_registry', 'key': KEY, 'sid': ALICE})['data'] == {'exists': False, 'values': {}}
    assert one(twin, {'op': 'read_registry', 'key': KEY})['data'] == {'exists': False, 'values': {}}
    assert twin.state['mounted_hives'] == []


def test_read_registry_returns_a_copy(twin: SimulatedWindows) -> None:
    twin.set_registry(BOB, 'Software\\X', {'A': {'type': 'REG_MULTI_SZ', 'data': ['1']}})
    data = one(twin, {'op': 'read_registry', 'key': 'Software\\X', 'sid': BOB})['data']
    data['values']['A']['data'].append('2')
    assert twin.state['hives'][BOB]['software\\x']['values']['A']['data'] == ['1']


def test_hklm_profile_list(twin: SimulatedWindows) -> None:
    key = 'SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList\\' + BOB
    assert one(twin, {'op': 'read_registry', 'key': key})['data'] == {
        'exists': True, 'values': {'ProfileImagePath': {'type': 'REG_EXPAND_SZ', 'data': 'C:\\Users\\bob'}}}


def test_delete_registry_values_missing_key(twin: SimulatedWindows) -> None:
    envelope = twin.run_batch([{'op': 'delete_registry_values', 'key': 'Software\\None', 'names': ['A']}])
    assert envelope['results'][0]['data'] == {'deleted': [], 'missing': ['A']}
    assert envelope['changed'] is False


# -------------------------------------------------------------------- firewall

RULE = {'name': 'loopbreaker-notion-out', 'display_name': 'Notion (loopbreaker)', 'direction': 'out',
        'action': 'allow', 'profiles': ['Public', 'Domain', 'Private'],
        'program': 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe', 'enabled': True}


def test_firewall_rule_create_update_in_place_remove(twin: SimulatedWindows) -> None:
    twin.state['firewall_rules'].append({'name': 'first', 'display_name': 'First', 'direction': 'in', 'action': 'block',
                                         'profiles': ['Public'], 'program': None, 'enabled': True, 'description': ''})
    twin.state['firewall_rules'].append({'name': 'last', 'display_name': 'Last', 'direction': 'in', 'action': 'block',
                                         'profiles': ['Public'], 'program': 'C:\\x.exe', 'enabled': True,
                                         'description': ''})
    created = twin.run_batch([{'op': 'set_firewall_rule', **RULE}])
    assert created['results'][0]['data'] == {'created': True, 'updated': False}
    stored = dict(RULE, profiles=['Domain', 'Private', 'Public'], description='')
    assert twin.state['firewall_rules'][2] == stored

    same = twin.run_batch([{'op': 'set_firewall_rule', **RULE, 'profiles': ['Private', 'Public', 'Domain']}])
    assert same['results'][0]['data'] == {'created': False, 'updated': False}
    assert same['changed'] is False

    updated = twin.run_batch([{'op': 'set_firewall_rule', **RULE, 'enabled': False, 'description': 'off'}])
    assert updated['results'][0]['data'] == {'created': False, 'updated': True}
    assert [r['name'] for r in twin.state['firewall_rules']] == ['first', 'last', 'loopbreaker-notion-out']
    assert twin.state['firewall_rules'][2] == dict(stored, enabled=False, description='off')

    listed = one(twin, {'op': 'list_firewall_rules', 'programs': ['c:\\users\\*\\notion.exe']})
    assert [r['name'] for r in listed['data']['rules']] == ['loopbreaker-notion-out']
    assert len(one(twin, {'op': 'list_firewall_rules'})['data']['rules']) == 3
    assert one(twin, {'op': 'list_firewall_rules', 'programs': []})['data']['rules'] == []

    removed = one(twin, {'op': 'remove_firewall_rule', 'name': 'loopbreaker-notion-out'})
    assert removed['data'] == {'removed': True, 'missing': False}
    assert [r['name'] for r in twin.state['firewall_rules']] == ['first', 'last']
    before = machine_state(twin)
    assert one(twin, {'op': 'remove_firewall_rule', 'name': 'loopbreaker-notion-out'})['data'] == {
        'removed': False, 'missing': True}
    assert machine_state(twin) == before


# ------------------------------------------------------------------ vocabulary


@pytest.mark.parametrize(
    ('operations', 'message'),
    [
        pytest.param([{'op': 'frobnicate'}], "operation 0: unknown operation 'frobnicate'", id='unknown-op'),
        pytest.param([{'patterns': []}], 'operation 0: unknown operation None', id='no-op'),
        pytest.param([{'op': 'stat_paths', 'patterns': []}, {'op': 'remove_path', 'path': 'C:\\x', 'recurse': True}],
                     'operation 1 (remove_path): unknown parameters recurse', id='unknown-param'),
        pytest.param([{'op': 'move_path', 'source': 'C:\\a', 'dest': 'C:\\b', 'force': True}],
                     'operation 0 (move_path): unknown parameters dest, force', id='unknown-params-sorted'),
        pytest.param([{'op': 'move_path', 'source': 'C:\\a'}], 'operation 0 (move_path): missing parameters destination',
                     id='missing-param'),
        pytest.param([{'op': 'stat_paths', 'each_profile': True, 'patterns': []}],
                     'operation 0 (stat_paths): each_profile needs an earlier get_profiles', id='each-profile-first'),
    ],
)
def test_vocabulary_errors_change_nothing(twin: SimulatedWindows, operations, message: str) -> None:
    operations = [{'op': 'remove_path', 'path': NOTION + '\\Cache'}] + operations
    message = re.sub(r'^operation (\d+)', lambda m: f'operation {int(m.group(1)) + 1}', message)
    before = copy.deepcopy(twin.state)
    with pytest.raises(VocabularyError, match=f'^{re.escape(message)}$'):
        twin.run_batch(operations)
    assert twin.state == before                       # not even a call is logged


# ---------------------------------------------------------------------- faults


def test_fault_before_call_removes_a_path_between_calls(twin: SimulatedWindows) -> None:
    target = NOTION + '\\Partitions\\notion\\Network\\Cookies'
    twin.state['faults'].append({'before_call': 2, 'remove_path': target})
    first = one(twin, {'op': 'stat_paths', 'patterns': [target]})
    assert [e['path'] for e in first['data']['entries']] == [target]
    second = one(twin, {'op': 'remove_path', 'path': target})
    assert second['data'] == {'removed': False, 'missing': True}
    assert not twin.exists(target)
    assert twin.exists(NOTION + '\\Partitions\\notion\\Network')


def test_fault_before_call_raise_fails_the_whole_call(twin: SimulatedWindows) -> None:
    from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError

    twin.state['faults'].append({'before_call': 1, 'raise': 'WinRM: the connection was reset'})
    before = machine_state(twin)
    with pytest.raises(BridgeOperationError, match='^WinRM: the connection was reset$'):
        twin.run_batch([{'op': 'remove_path', 'path': NOTION + '\\Cache'}])
    assert machine_state(twin) == before
    assert twin.state['calls'] == [{'operations': ['remove_path'], 'check_mode': False}]
    # the fault was for call 1 only
    assert one(twin, {'op': 'remove_path', 'path': NOTION + '\\Cache'})['data'] == {'removed': True, 'missing': False}


def test_fault_during_op_fails_that_operation_every_time(twin: SimulatedWindows) -> None:
    twin.state['faults'].append({'during_op': 'remove_path', 'raise': 'Access is denied.'})
    envelope = twin.run_batch([
        {'op': 'remove_path', 'path': NOTION + '\\Cache', 'group': 'a'},
        {'op': 'remove_path', 'path': NOTION + '\\Preferences', 'group': 'b'},
        {'op': 'stat_paths', 'patterns': [NOTION + '\\Cache'], 'group': 'c'},
    ])
    assert [(r['status'], r['error']) for r in envelope['results']] == [
        ('error', 'Access is denied.'), ('error', 'Access is denied.'), ('ok', None)]
    assert twin.exists(NOTION + '\\Cache') and twin.exists(NOTION + '\\Preferences')


# ------------------------------------------------------------------- check mode


def test_check_mode_refuses_mutations_and_changes_nothing(twin: SimulatedWindows) -> None:
    before = machine_state(twin)
    envelope = twin.run_batch([
        {'op': 'stat_paths', 'patterns': [NOTION + '\\Cache']},
        {'op': 'remove_path', 'path': NOTION + '\\Cache'},
        {'op': 'write_registry', 'key': 'Software\\X', 'values': {}, 'sid': BOB},
        {'op': 'set_firewall_rule', **RULE},
    ], check_mode=True)
    assert [(r['status'], r['error']) for r in envelope['results']] == [
        ('ok', None), ('error', 'refused in check mode'), ('error', 'refused in check mode'),
        ('error', 'refused in check mode')]
    assert envelope['changed'] is False
    assert envelope['hives_loaded'] == []
    assert machine_state(twin) == before


# --------------------------------------------------------------------- call log


def test_call_log_records_operations_and_check_mode(twin: SimulatedWindows) -> None:
    assert twin.state['calls'] == []
    twin.run_batch([{'op': 'get_profiles', 'shell_folders': {}},
                    {'op': 'stat_paths', 'each_profile': True, 'patterns': ['{ProfilePath}']}], check_mode=True)
    twin.run_batch([{'op': 'remove_path', 'path': 'C:\\x'}])
    twin.run_batch([])
    assert twin.state['calls'] == [
        {'operations': ['get_profiles', 'stat_paths'], 'check_mode': True},
        {'operations': ['remove_path'], 'check_mode': False},
        {'operations': [], 'check_mode': False},
    ]


def test_envelope_shape(twin: SimulatedWindows) -> None:
    envelope = twin.run_batch([{'op': 'remove_path', 'path': NOTION + '\\Preferences', 'group': 'u1'}])
    assert envelope == {
        'changed': True,
        'results': [{'op': 'remove_path', 'group': 'u1', 'status': 'ok', 'data': {'removed': True, 'missing': False},
                     'error': None}],
        'hives_loaded': [],
        'hives_unloaded': [],
    }


def test_tree_snapshot(twin: SimulatedWindows) -> None:
    snapshot = twin.tree_snapshot(NOTION + '\\Partitions')
    assert snapshot == {
        '\\notion': '<dir>',
        '\\notion\\cache': '<dir>',
        '\\notion\\cache\\cache_data': '<dir>',
        '\\notion\\cache\\cache_data\\data_1': 'cHBwcHBwcA==',
        '\\notion\\network': '<dir>',
        '\\notion\\network\\cookies': 'Y29va2ll',
        '\\other': '<dir>',
    }


# ------------------------------------------------- junctions, WITHIN, owners and the lock

PROFILE = 'C:\\Users\\alice'
BOB_DOCS = 'C:\\Users\\bob\\Documents'


@pytest.fixture
def linked(twin: SimulatedWindows) -> SimulatedWindows:
    """alice's Notion\\Partitions\\other is a junction to bob's Documents, which hold a file."""
    twin.write(BOB_DOCS + '\\tax.pdf', 'bob')
    twin.add_junction(NOTION + '\\Partitions\\other', BOB_DOCS, owner=ALICE)
    return twin


def test_glob_reports_a_junction_as_itself_and_never_walks_through_it(linked: SimulatedWindows) -> None:
    result = one(linked, {'op': 'stat_paths', 'patterns': [NOTION + '\\Partitions\\*', NOTION + '\\Partitions\\*\\*'],
                          'within': PROFILE})
    assert [(e['path'], e['type'], e['bytes'], e['files'], e['owner_sid']) for e in result['data']['entries']] == [
        (NOTION + '\\Partitions\\notion', 'directory', 13, 2, None),
        (NOTION + '\\Partitions\\other', 'junction', 0, 0, ALICE),
        (NOTION + '\\Partitions\\notion\\Cache', 'directory', 7, 1, None),
        (NOTION + '\\Partitions\\notion\\Network', 'directory', 6, 1, None)]


def test_without_within_a_match_reached_through_a_junction_is_dropped(linked: SimulatedWindows) -> None:
    linked.add_junction('C:\\Users\\alice\\AppData\\Roaming\\Link', NOTION)
    result = one(linked, {'op': 'stat_paths', 'patterns': ['C:\\Users\\alice\\AppData\\Roaming\\*\\Preferences']})
    assert [e['path'] for e in result['data']['entries']] == [NOTION + '\\Preferences']


def test_read_files_lists_a_junction_with_an_error(linked: SimulatedWindows) -> None:
    linked.add_junction(NOTION + '\\Local State', BOB_DOCS + '\\tax.pdf')
    result = one(linked, {'op': 'read_files', 'patterns': [NOTION + '\\*'], 'within': PROFILE})
    assert {f['path']: f['error'] for f in result['data']['files']} == {
        NOTION + '\\Local State': 'a junction or symbolic link', NOTION + '\\Preferences': None}


@pytest.mark.parametrize('operation', [
    {'op': 'stat_paths', 'patterns': [NOTION + '\\Partitions\\other\\*']},
    {'op': 'read_files', 'patterns': [NOTION + '\\Partitions\\other\\*']},
])
def test_read_only_operations_find_nothing_below_a_junction(linked: SimulatedWindows, operation: dict[str, t.Any]) -> None:
    result = one(linked, {**operation, 'within': PROFILE})
    assert result['status'] == 'ok' and list(result['data'].values()) == [[]]


@pytest.mark.parametrize('operation', [
    {'op': 'write_file', 'path': NOTION + '\\Partitions\\other\\x', 'content': 'x'},
    {'op': 'ensure_private_dir', 'path': NOTION + '\\Partitions\\other\\q', 'owner_sid': ALICE},
    {'op': 'remove_path', 'path': NOTION + '\\Partitions\\other\\tax.pdf'},
    {'op': 'move_path', 'source': NOTION + '\\Partitions\\other\\tax.pdf', 'destination': NOTION + '\\tax.pdf'},
    {'op': 'move_path', 'source': NOTION + '\\Preferences', 'destination': NOTION + '\\Partitions\\other\\P'},
], ids=['write_file', 'ensure_private_dir', 'remove_path', 'move_path source', 'move_path destination'])
def test_path_operations_refuse_a_junction_below_within(linked: SimulatedWindows, operation: dict[str, t.Any]) -> None:
    path = operation.get('path') or (operation['source'] if 'other' in operation['source'] else operation['destination'])
    assert_error(linked, {**operation, 'within': PROFILE},
                 f"Refusing '{path}': '{NOTION}\\Partitions\\other' is a junction or symbolic link below '{PROFILE}'.")


def test_without_within_a_junction_below_the_profile_folder_is_refused(linked: SimulatedWindows) -> None:
    assert_error(linked, {'op': 'remove_path', 'path': NOTION + '\\Partitions\\other\\tax.pdf'},
                 f"Refusing '{NOTION}\\Partitions\\other\\tax.pdf': '{NOTION}\\Partitions\\other' is a junction or "
                 f"symbolic link below '{PROFILE}'.")


def test_without_within_a_junction_above_any_profile_is_refused(twin: SimulatedWindows) -> None:
    twin.add_junction('C:\\ProgramData\\Notion', 'C:\\Windows')
    assert_error(twin, {'op': 'remove_path', 'path': 'C:\\ProgramData\\Notion\\System32'},
                 "Refusing to follow the junction or symbolic link 'C:\\ProgramData\\Notion' on the way to "
                 "'C:\\ProgramData\\Notion\\System32'.")


def test_a_path_outside_within_is_refused(twin: SimulatedWindows) -> None:
    assert_error(twin, {'op': 'remove_path', 'path': 'C:\\Users\\alicex\\x', 'within': PROFILE},
                 f"Refusing 'C:\\Users\\alicex\\x': it is not inside '{PROFILE}'.")


def test_remove_path_removes_a_junction_not_its_target(linked: SimulatedWindows) -> None:
    assert one(linked, {'op': 'remove_path', 'path': NOTION + '\\Partitions\\other', 'within': PROFILE})['status'] == 'ok'
    assert not linked.exists(NOTION + '\\Partitions\\other')
    assert linked.read(BOB_DOCS + '\\tax.pdf') == b'bob'


def test_write_file_replaces_a_junction_at_the_target_never_writes_through(linked: SimulatedWindows) -> None:
    linked.add_junction(NOTION + '\\Local State', BOB_DOCS + '\\tax.pdf')
    assert one(linked, {'op': 'write_file', 'path': NOTION + '\\Local State', 'content': 'new', 'within': PROFILE})[
        'status'] == 'ok'
    assert linked.state['files'][(NOTION + '\\Local State').lower()]['type'] == 'file'
    assert linked.read(BOB_DOCS + '\\tax.pdf') == b'bob'


def test_ensure_private_dir_refuses_a_junction_as_the_directory(linked: SimulatedWindows) -> None:
    assert_error(linked, {'op': 'ensure_private_dir', 'path': NOTION + '\\Partitions\\other', 'owner_sid': ALICE,
                          'within': PROFILE},
                 f"Refusing '{NOTION}\\Partitions\\other': it is a junction or symbolic link.")


def test_move_path_moves_a_junction_as_a_link_and_expect_type_refuses_it(linked: SimulatedWindows) -> None:
    source, destination = NOTION + '\\Partitions\\other', PROFILE + '\\q\\000-other'
    assert_error(linked, {'op': 'move_path', 'source': source, 'destination': destination, 'within': PROFILE,
                          'expect_type': 'directory'},
                 f"Refusing to move '{source}': it is a junction, expected a directory.")
    assert one(linked, {'op': 'move_path', 'source': source, 'destination': destination, 'within': PROFILE,
                        'attributes': {'owner_sid': ALICE}})['data'] == {'moved': True, 'missing': False}
    moved = linked.state['files'][destination.lower()]
    assert (moved['type'], moved['target'], moved['owner']) == ('junction', BOB_DOCS, ALICE)
    assert linked.read(BOB_DOCS + '\\tax.pdf') == b'bob' and linked.state['files'][BOB_DOCS.lower()].get('owner') is None


def test_move_path_expect_type_file_refuses_a_second_hard_link(twin: SimulatedWindows) -> None:
    twin.write(NOTION + '\\linked', 'x', links=2)
    assert_error(twin, {'op': 'move_path', 'source': NOTION + '\\linked', 'destination': NOTION + '\\moved',
                        'within': PROFILE, 'expect_type': 'file'},
                 f"Refusing to move '{NOTION}\\linked': it has 2 hard links.")


def test_within_may_itself_be_reached_through_a_junction(twin: SimulatedWindows) -> None:
    # A relocated profile: C:\Users\carol is a junction to D:\Profiles\carol. Only what is below within counts.
    twin.write('D:\\Profiles\\carol\\AppData\\Roaming\\Notion\\Preferences', '{}')
    twin.add_junction('C:\\Users\\carol', 'D:\\Profiles\\carol')
    carol = 'C:\\Users\\carol'
    stat = one(twin, {'op': 'stat_paths', 'patterns': [carol + '\\AppData\\Roaming\\Notion\\*'], 'within': carol})
    assert [e['path'] for e in stat['data']['entries']] == [carol + '\\AppData\\Roaming\\Notion\\Preferences']
    moved = one(twin, {'op': 'move_path', 'source': carol + '\\AppData\\Roaming\\Notion',
                       'destination': carol + '\\q\\Notion', 'within': carol, 'expect_type': 'directory'})
    assert moved['data'] == {'moved': True, 'missing': False}
    assert twin.read('D:\\Profiles\\carol\\q\\Notion\\Preferences') == b'{}'


def test_the_junction_fault_fires_once_just_before_the_named_operation(twin: SimulatedWindows) -> None:
    twin.state['faults'].append({'during_op': 'remove_path', 'replace_with_junction': {'path': NOTION + '\\Cache',
                                                                                       'target': BOB_DOCS}})
    envelope = twin.run_batch([
        {'op': 'stat_paths', 'patterns': [NOTION + '\\Cache'], 'within': PROFILE},
        {'op': 'remove_path', 'path': NOTION + '\\Cache\\index', 'within': PROFILE},
        {'op': 'remove_path', 'path': NOTION + '\\Cache\\index', 'within': PROFILE},
    ])
    assert envelope['results'][0]['data']['entries'][0]['type'] == 'directory'
    message = f"Refusing '{NOTION}\\Cache\\index': '{NOTION}\\Cache' is a junction or symbolic link below '{PROFILE}'."
    assert [(r['status'], r['error']) for r in envelope['results'][1:]] == [('error', message), ('error', message)]
    assert twin.state['faults'][0]['fired'] is True


def test_by_name_operations_follow_junctions_as_windows_does(linked: SimulatedWindows) -> None:
    info = one(linked, {'op': 'get_file_info', 'paths': [NOTION + '\\Partitions\\other\\tax.pdf']})
    assert info['data']['files'][0]['path'] == BOB_DOCS + '\\tax.pdf'


def test_a_user_controls_their_profile_not_others_or_programdata_folders_of_administrators(twin: SimulatedWindows) -> None:
    twin.mkdir('C:\\ProgramData', owner=SYSTEM_SID, acl=PROGRAM_DATA_ACL)
    twin.mkdir('C:\\ProgramData\\Vendor', owner=ADMINISTRATORS_SID)
    twin.write('C:\\ProgramData\\Vendor\\app.exe', 'MZ', owner=ADMINISTRATORS_SID)
    assert twin.user_controls(ALICE, NOTION + '\\Preferences')
    assert not twin.user_controls(ALICE, 'C:\\Users\\bob\\NTUSER.DAT')
    assert twin.user_controls(ALICE, 'C:\\ProgramData\\Mine')                # Users may create folders there
    assert twin.user_controls(ALICE, 'C:\\ProgramData\\Vendor\\new.dll')      # ... and files, inherited
    assert not twin.user_controls(ALICE, 'C:\\ProgramData\\Vendor\\app.exe')  # but not replace an admin's
    twin.mkdir('C:\\ProgramData\\Mine', owner=ALICE)
    assert twin.user_controls(ALICE, 'C:\\ProgramData\\Mine\\deep\\x')


STAGE = 'C:\\ProgramData\\loopbreaker\\installers'


def test_ensure_admin_dir_creates_an_administrator_only_folder_and_checks_it_again(twin: SimulatedWindows) -> None:
    twin.mkdir('C:\\ProgramData', owner=SYSTEM_SID, acl=PROGRAM_DATA_ACL)
    assert one(twin, {'op': 'ensure_admin_dir', 'path': STAGE})['data'] == {'created': True, 'acl_corrected': False}
    entry = twin.state['files'][STAGE.lower()]
    assert (entry['owner'], entry['acl']) == (ADMINISTRATORS_SID, ADMIN_DIR_ACL)
    assert not twin.user_controls(ALICE, STAGE + '\\Notion Setup.exe')
    assert one(twin, {'op': 'ensure_admin_dir', 'path': STAGE})['data'] == {'created': False, 'acl_corrected': False}


def test_ensure_admin_dir_corrects_an_administrator_folder_nobody_else_could_write(twin: SimulatedWindows) -> None:
    twin.mkdir(STAGE, owner=ADMINISTRATORS_SID, acl={'owner': ADMINISTRATORS_SID, 'allow': [ADMINISTRATORS_SID],
                                                     'protected': True})
    assert one(twin, {'op': 'ensure_admin_dir', 'path': STAGE})['data'] == {'created': False, 'acl_corrected': True}
    assert twin.state['files'][STAGE.lower()]['acl'] == ADMIN_DIR_ACL


@pytest.mark.parametrize(('seed', 'message'), [
    (lambda m: m.mkdir('C:\\ProgramData\\loopbreaker', owner=ALICE),
     f"Refusing '{STAGE}': 'C:\\ProgramData\\loopbreaker' is owned by {ALICE}, not by Administrators or SYSTEM (a user "
     'created it, and may control what is in it). Remove it and run again.'),
    (lambda m: m.add_junction('C:\\ProgramData\\loopbreaker', 'C:\\Windows\\System32'),
     f"Refusing '{STAGE}': 'C:\\ProgramData\\loopbreaker' is a junction or symbolic link."),
    (lambda m: m.write('C:\\ProgramData\\loopbreaker', 'x'),
     f"Refusing '{STAGE}': 'C:\\ProgramData\\loopbreaker' is a file."),
    (lambda m: m.mkdir('C:\\ProgramData\\loopbreaker',
                       acl={'owner': ADMINISTRATORS_SID, 'protected': True, 'allow': [ADMINISTRATORS_SID, ALICE]}),
     f"Refusing '{STAGE}': {ALICE} may take control of 'C:\\ProgramData\\loopbreaker', which only administrators may "
     'change. Remove it and run again.'),
    (lambda m: m.mkdir(STAGE, owner=ADMINISTRATORS_SID),
     f"Refusing '{STAGE}': S-1-5-32-545 may write to '{STAGE}', which only administrators may change. Remove it and run "
     'again.'),
], ids=['user-owned parent', 'junction parent', 'file parent', 'user full control on parent', 'inherited create rights'])
def test_ensure_admin_dir_refuses_a_folder_a_user_could_have_written(twin: SimulatedWindows, seed: t.Any,
                                                                     message: str) -> None:
    twin.mkdir('C:\\ProgramData', owner=SYSTEM_SID, acl=PROGRAM_DATA_ACL)
    seed(twin)
    assert_error(twin, {'op': 'ensure_admin_dir', 'path': STAGE}, message)


def test_run_as_user_verifies_the_program_in_the_step_that_starts_it(twin: SimulatedWindows) -> None:
    twin.write('C:\\Installers\\setup.exe', 'MZ setup', meta={'kind': 'other', 'signer': 'Notion Labs, Inc'})
    digest = hashlib.sha256(b'MZ setup').hexdigest()
    twin.state['faults'].append({'during_op': 'run_as_user', 'replace_file': {
        'path': 'C:\\Installers\\setup.exe', 'content': 'MZ other', 'meta': {'kind': 'other'}}})
    swapped = one(twin, {'op': 'run_as_user', 'sid': ALICE, 'executable': 'C:\\Installers\\setup.exe', 'arguments': [],
                         'sha256': digest})
    assert (swapped['status'], swapped['error']) == (
        'error', f"'C:\\Installers\\setup.exe' has SHA-256 {hashlib.sha256(b'MZ other').hexdigest()}, expected {digest}.")
    result = one(twin, {'op': 'run_as_user', 'sid': ALICE, 'executable': 'C:\\Installers\\setup.exe', 'arguments': [],
                        'signer': {'organization': 'Notion Labs, Inc.', 'issuers': ['*'], 'ekus': []}})
    assert (result['status'], result['error']) == (
        'error', "'C:\\Installers\\setup.exe' has no valid signature (status NotSigned).")
    assert twin.state['tasks_run'] == []


def test_a_mutating_batch_waits_for_the_host_wide_lock_then_fails_untouched(twin: SimulatedWindows) -> None:
    twin.state['lock'] = {'holder': 'pid 4242 on ctl01'}
    before = machine_state(twin)
    with pytest.raises(HostError, match=r'holds the host-wide lock Global\\loopbreaker\.notion \(pid 4242 on ctl01\); '
                                        r'gave up after 60 s\. Nothing was changed\.$'):
        twin.run_batch([{'op': 'stat_paths', 'patterns': [NOTION]}, {'op': 'remove_path', 'path': NOTION}])
    assert machine_state(twin) == before
    # Read-only batches, and check mode (which refuses every change), do not need the lock.
    assert one(twin, {'op': 'stat_paths', 'patterns': [NOTION]})['status'] == 'ok'
    assert one(twin, {'op': 'remove_path', 'path': NOTION}, check_mode=True)['error'] == 'refused in check mode'


def test_an_abandoned_lock_is_taken_over_with_a_warning(twin: SimulatedWindows) -> None:
    twin.state['lock'] = {'holder': 'pid 4242 on ctl01', 'abandoned': True}
    envelope = twin.run_batch([{'op': 'remove_path', 'path': NOTION + '\\Preferences'}])
    assert envelope['results'][0]['status'] == 'ok'
    assert envelope['warnings'] == ['The host-wide lock Global\\loopbreaker.notion was abandoned by a run that ended '
                                    'without releasing it (pid 4242 on ctl01); this run took it over.']
    assert twin.state['lock'] is None

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_app.py: the app rungs on Windows, run against the simulated host.

Every test drives ``_app.run`` against SimulatedWindows exactly as the action
plugin does (one probe batch, at most one apply batch) and then reads the
machine the twin is left in: files with their version/signer metadata, uninstall
entries, processes, ``tasks_run`` (every program run as a user, with the SID it
ran as) and the ``calls`` log. Expectations are written out here; nothing is
computed with _app's own helpers.
"""
from __future__ import annotations

import copy
import datetime
import json
import ntpath
import typing as t

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _app, _quarantine_state
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import WINDOWS
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import (
    NOTION_SIGNER,
    NOTION_TREE,
    installer_meta,
    seed_installer,
    seed_windows_user,
    serve_installer,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._signature import expectation
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_signatures import trusted_signing
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import (
    NOTION_UNINSTALL_KEY,
    SHELL_FOLDERS_KEY,
    SimulatedWindows,
    empty_state,
)

NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
TOKEN = 'a1b2c3'
ENTRY_ID = '20260304T050607Z-a1b2c3'
INSTALLER = 'C:\\Installers\\Notion Setup 7.40.0.exe'
URL = 'https://desktop-release.notion-static.com/Notion%20Setup%207.40.0.exe'
DOWNLOADED = 'C:\\ProgramData\\loopbreaker\\installers\\Notion Setup 7.40.0.exe'
UNINSTALL = 'software\\microsoft\\windows\\currentversion\\uninstall\\661f0cc6-343a-59cb-a5e8-8f6324cc6998'


def sid(n: int) -> str:
    return f'S-1-5-21-4444-5555-6666-{1000 + n}'


ALICE, BOB, CAROL = sid(1), sid(2), sid(3)


def program_dir(user: str) -> str:
    return f'C:\\Users\\{user}\\AppData\\Local\\Programs\\Notion'


def data_root(user: str) -> str:
    return f'C:\\Users\\{user}\\AppData\\Roaming\\Notion'


def machine(*users: tuple[str, str, bool], running: tuple[str, ...] = ()) -> SimulatedWindows:
    """SYSTEM plus the given (name, sid, logged_on) users, each with Notion 7.35.0 and their data."""
    twin = SimulatedWindows(empty_state('WS01'))
    twin.add_profile('systemprofile', 'S-1-5-18', loaded=True, profile_path='C:\\Windows\\System32\\config\\systemprofile')
    for name, user_sid, logged_on in users:
        seed_windows_user(twin, name, user_sid, loaded=logged_on, running=name in running)
    return twin


def params(**args: t.Any) -> dict[str, t.Any]:
    validated = ArgumentSpecValidator(_app.ARGUMENT_SPEC, mutually_exclusive=_app.MUTUALLY_EXCLUSIVE,
                                      required_if=_app.REQUIRED_IF).validate(args)
    assert not validated.error_messages, validated.error_messages
    return validated.validated_parameters


def run(twin: SimulatedWindows, *, check_mode: bool = False, **args: t.Any) -> dict[str, t.Any]:
    return _app.run(twin, params(**args), check_mode=check_mode, now=NOW, entry_token=TOKEN)


def without_calls(state: dict[str, t.Any]) -> dict[str, t.Any]:
    return {k: copy.deepcopy(v) for k, v in state.items() if k != 'calls'}


def file_meta(twin: SimulatedWindows, path: str) -> dict[str, t.Any] | None:
    entry = twin.state['files'].get(path.lower())
    return entry.get('meta') if entry else None


def entry_values(twin: SimulatedWindows, user_sid: str, key: str = UNINSTALL) -> dict[str, t.Any] | None:
    found = twin.state['hives'].get(user_sid, {}).get(key)
    return {name: value['data'] for name, value in found['values'].items()} if found else None


def notion_pids(twin: SimulatedWindows, user_sid: str) -> list[int]:
    return [p['pid'] for p in twin.state['processes'] if p['owner_sid'] == user_sid and p['name'] == 'Notion.exe']


def statuses(result: dict[str, t.Any]) -> dict[str, tuple[str, str | None]]:
    return {u['user']: (u['status'], u['reason']) for u in result['users']}


def apply_ops(twin: SimulatedWindows) -> list[str]:
    applies = [call for call in twin.state['calls'] if not call['check_mode']]
    assert len(applies) == 1
    return applies[0]['operations']


# ---------------------------------------------------------------- reinstalled


def test_reinstalled_gives_two_logged_on_users_a_fresh_verified_notion_and_keeps_their_data() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, True))
    checksum = seed_installer(twin, INSTALLER, '7.40.0')
    data_before = {user: twin.tree_snapshot(data_root(user)) for user in ('alice', 'bob')}
    result = run(twin, state='reinstalled', installer=INSTALLER, checksum=checksum)
    assert result['changed'] is True and 'failed' not in result
    assert statuses(result) == {'alice': ('reinstalled', None), 'bob': ('reinstalled', None)}
    assert [(u['version_before'], u['version_after']) for u in result['users']] == [('7.35.0', '7.40.0')] * 2
    for user, user_sid in (('alice', ALICE), ('bob', BOB)):
        exe = program_dir(user) + '\\Notion.exe'
        assert twin.read(exe) == b'MZ Notion 7.40.0'
        assert file_meta(twin, exe) == {'kind': 'notion_exe', 'version': '7.40.0', **trusted_signing(NOTION_SIGNER),
                                        'signature': 'Valid'}
        assert twin.op_verify_file(exe, signer=expectation(NOTION_SIGNER))['version'] == '7.40.0'
        assert twin.read(program_dir(user) + '\\resources\\app.asar') == b'asar 7.40.0'
        assert entry_values(twin, user_sid)['DisplayVersion'] == '7.40.0'
        assert entry_values(twin, user_sid)['DisplayName'] == 'Notion 7.40.0'
        assert twin.tree_snapshot(data_root(user)) == data_before[user]
        assert len(data_before[user]) > len(NOTION_TREE), 'files and the directories holding them'
    uninstall = '\\uninstall notion.exe'
    assert [(run_['sid'], run_['executable'].lower().endswith(uninstall), run_['executable'] == INSTALLER)
            for run_ in twin.state['tasks_run']] == [(ALICE, True, False), (ALICE, False, True),
                                                     (BOB, True, False), (BOB, False, True)]
    assert [run_['arguments'] for run_ in twin.state['tasks_run']] == [
        ['/currentuser', '/S', f'_?={program_dir("alice")}'], ['/S'], ['/currentuser', '/S', f'_?={program_dir("bob")}'],
        ['/S']]
    assert all(not r['timed_out'] and r['exit_code'] == 0 for r in twin.state['tasks_run'])
    assert twin.state['mounted_hives'] == []


def test_every_program_runs_as_the_user_whose_install_it_is() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, True), ('carol', CAROL, True))
    seed_installer(twin, INSTALLER, '7.40.0')
    run(twin, state='reinstalled', installer=INSTALLER)
    profiles = {p['sid']: p['profile_path'].lower() for p in twin.state['profiles']}
    assert len(twin.state['tasks_run']) == 6
    for task in twin.state['tasks_run']:
        executable = task['executable'].lower()
        assert executable == INSTALLER.lower() or executable.startswith(profiles[task['sid']] + '\\'), task


def test_a_logged_off_user_is_pending_with_the_reason_and_nothing_is_run_for_them() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, False))
    seed_installer(twin, INSTALLER, '7.40.0')
    bob_files = {k: v for k, v in twin.state['files'].items() if k.startswith('c:\\users\\bob')}
    result = run(twin, state='reinstalled', installer=INSTALLER)
    assert statuses(result) == {'alice': ('reinstalled', None),
                                'bob': ('pending', "not logged on: a per-user installer only runs in the user's own session")}
    bob = result['users'][1]
    assert (bob['version_before'], bob['version_after'], bob['operations']) == ('7.35.0', '7.35.0', [])
    assert [task['sid'] for task in twin.state['tasks_run']] == [ALICE, ALICE]
    assert {k: v for k, v in twin.state['files'].items() if k.startswith('c:\\users\\bob')} == bob_files
    assert 'failed' not in result


def test_running_notion_is_stopped_before_the_uninstaller_runs() -> None:
    twin = machine(('alice', ALICE, True), running=('alice',))
    seed_installer(twin, INSTALLER, '7.40.0')
    pids = notion_pids(twin, ALICE)
    assert len(pids) == 3
    result = run(twin, state='reinstalled', installer=INSTALLER)
    assert statuses(result) == {'alice': ('reinstalled', None)}
    assert result['users'][0]['processes_stopped'] == pids
    assert notion_pids(twin, ALICE) == []
    operations = apply_ops(twin)
    assert operations == ['verify_file', 'stop_processes', 'run_as_user', 'remove_path', 'run_as_user', 'verify_file']
    assert file_meta(twin, program_dir('alice') + '\\Notion.exe')['version'] == '7.40.0'


def test_an_uninstaller_that_times_out_fails_that_user_only() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, True))
    bob = next(p for p in twin.state['profiles'] if p['sid'] == BOB)
    twin.install_notion(bob, installer_meta('7.35.0', uninstaller_hangs=True), ['/S'])
    seed_installer(twin, INSTALLER, '7.40.0')
    result = run(twin, state='reinstalled', installer=INSTALLER)
    hung = f'{program_dir("bob")}\\Uninstall Notion.exe'
    assert statuses(result) == {'alice': ('reinstalled', None),
                                'bob': ('failed', f"run_as_user: '{hung}' did not finish within 600 s; the task was stopped.")}
    assert result['failed'] is True
    assert result['msg'] == f"bob: run_as_user: '{hung}' did not finish within 600 s; the task was stopped."
    bob_tasks = [task for task in twin.state['tasks_run'] if task['sid'] == BOB]
    assert [(task['executable'], task['timed_out']) for task in bob_tasks] == [(hung, True)], 'install not attempted'
    assert file_meta(twin, program_dir('bob') + '\\Notion.exe')['version'] == '7.35.0'
    assert file_meta(twin, program_dir('alice') + '\\Notion.exe')['version'] == '7.40.0'
    assert result['users'][1]['version_after'] == '7.35.0'


# ----------------------------------------------------------- refused installers


@pytest.mark.parametrize('case', ['checksum', 'signer', 'unsigned', 'missing'])
def test_a_bad_or_missing_local_installer_is_refused_with_nothing_changed(case: str) -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, True), running=('alice',))
    args: dict[str, t.Any] = {'state': 'reinstalled', 'installer': INSTALLER}
    if case == 'checksum':
        checksum = seed_installer(twin, INSTALLER, '7.40.0')
        args['checksum'] = 'f' * 64
        message = (f"installer {INSTALLER!r} has SHA-256 {checksum}, expected {'f' * 64}: refused, nothing was changed")
    elif case == 'signer':
        seed_installer(twin, INSTALLER, '7.40.0', signer='Totally Notion Ltd')
        message = (f"installer '{INSTALLER}' is signed by 'Totally Notion Ltd', expected 'Notion Labs, Inc.': refused, "
                   'nothing was changed')
    elif case == 'unsigned':
        seed_installer(twin, INSTALLER, '7.40.0', signer=None)
        message = f"installer {INSTALLER!r} has no valid Authenticode signature (status NotSigned): refused, nothing was changed"
    else:
        message = f"installer {INSTALLER!r} does not exist on the host; nothing was changed"
    before = without_calls(twin.state)
    for check_mode in (True, False):
        with pytest.raises(RequestError) as raised:
            run(twin, check_mode=check_mode, **args)
        assert str(raised.value) == message
    assert without_calls(twin.state) == before
    assert [call['check_mode'] for call in twin.state['calls']] == [True, True], 'one probe per run, nothing applied'


def test_a_failed_download_fails_the_users_and_changes_nothing() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, True))
    before = without_calls(twin.state)
    result = run(twin, state='reinstalled', installer=URL)
    error = f'download_file: The remote server returned an error: (404) Not Found. ({URL})'
    assert {u['user']: u['status'] for u in result['users']} == {'alice': 'failed', 'bob': 'failed'}
    for user in result['users']:
        assert user['reason'].startswith(f"verify_file: Cannot verify '{DOWNLOADED}': the file does not exist.")
        assert user['reason'].endswith(error)
    # The one change: the administrator-only staging folder, created before the download was tried.
    assert result['changed'] is True and result['failed'] is True
    after = without_calls(twin.state)
    staging = {key: after['files'].pop(key) for key in ('c:\\programdata', 'c:\\programdata\\loopbreaker',
                                                        'c:\\programdata\\loopbreaker\\installers')}
    assert staging['c:\\programdata\\loopbreaker\\installers']['acl']['allow'] == ['S-1-5-32-544', 'S-1-5-18']
    assert after == before
    assert apply_ops(twin)[:2] == ['ensure_admin_dir', 'download_file']


def test_a_downloaded_installer_is_verified_then_installed() -> None:
    twin = machine(('alice', ALICE, True))
    checksum = serve_installer(twin, URL, '7.40.0')
    result = run(twin, state='present', installer=URL, checksum=checksum)
    assert result['installer_version'] == '7.40.0'
    assert statuses(result) == {'alice': ('upgraded', None)}
    assert twin.op_get_file_info([DOWNLOADED])['files'][0]['sha256'] == checksum
    assert [task['executable'] for task in twin.state['tasks_run']] == [DOWNLOADED]


def test_a_downloaded_installer_with_the_wrong_signer_changes_no_user() -> None:
    twin = machine(('alice', ALICE, True))
    serve_installer(twin, URL, '7.40.0', signer='Totally Notion Ltd')
    program_before = {k: v for k, v in twin.state['files'].items() if k.startswith(program_dir('alice').lower())}
    files_before = {k: v for k, v in twin.state['files'].items() if v['type'] == 'file'}
    result = run(twin, state='reinstalled', installer=URL)
    assert statuses(result) == {'alice': ('failed', f"verify_file: Cannot verify '{DOWNLOADED}': the file does not exist.; "
                                                    f"download_file: '{URL}' is signed by 'Totally Notion Ltd', "
                                                    "expected 'Notion Labs, Inc.'.")}
    assert result['changed'] is True  # the staging folder was created
    files_after = {k: v for k, v in twin.state['files'].items() if v['type'] == 'file'}
    assert files_after == files_before, 'the refused download left no file behind (its folder may stay)'
    assert twin.state['tasks_run'] == []
    assert {k: v for k, v in twin.state['files'].items() if k.startswith(program_dir('alice').lower())} == program_before


# ---------------------------------------------------------------- present


def test_present_installs_then_changes_nothing_the_second_time() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, True))
    seed_installer(twin, INSTALLER, '7.40.0')
    first = run(twin, state='present', installer=INSTALLER)
    assert first['changed'] is True
    assert statuses(first) == {'alice': ('upgraded', None), 'bob': ('upgraded', None)}
    after_first = without_calls(twin.state)
    for check_mode in (False, True):
        again = run(twin, state='present', installer=INSTALLER, check_mode=check_mode)
        assert again['changed'] is False
        assert statuses(again) == {'alice': ('unchanged', None), 'bob': ('unchanged', None)}
        assert [u['operations'] for u in again['users']] == [[], []]
    assert without_calls(twin.state) == after_first
    assert [call['check_mode'] for call in twin.state['calls']] == [True, False, True, True]


def test_present_installs_for_a_user_without_notion() -> None:
    twin = machine(('alice', ALICE, True))
    seed_windows_user(twin, 'dave', sid(4), loaded=True, with_notion=False)
    seed_installer(twin, INSTALLER, '7.40.0')
    result = run(twin, state='present', installer=INSTALLER, users=['dave'])
    assert statuses(result) == {'dave': ('installed', None)}
    assert result['users'][0]['version_before'] is None and result['users'][0]['version_after'] == '7.40.0'
    assert [task['sid'] for task in twin.state['tasks_run']] == [sid(4)]
    assert file_meta(twin, program_dir('dave') + '\\Notion.exe')['version'] == '7.40.0'


def test_check_mode_reports_the_plan_and_changes_nothing() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, False), running=('alice',))
    seed_installer(twin, INSTALLER, '7.40.0')
    before = without_calls(twin.state)
    result = run(twin, state='reinstalled', installer=INSTALLER, check_mode=True)
    assert result['changed'] is True
    assert [(u['user'], u['status'], u['operations']) for u in result['users']] == [
        ('alice', 'reinstalled', ['verify_file', 'stop_processes', 'run_as_user', 'remove_path', 'run_as_user', 'verify_file']),
        ('bob', 'pending', [])]
    assert result['diff'] == {'before': 'alice: 7.35.0\nbob: 7.35.0\n',
                              'after': 'alice: 7.40.0 (reinstalled)\nbob: 7.35.0 (pending)\n'}
    assert without_calls(twin.state) == before
    assert twin.state['calls'] == [{'operations': [op['op'] for op in _app.probe_operations(params(
        state='reinstalled', installer=INSTALLER))], 'check_mode': True}]


# ---------------------------------------------------------------- absent


def test_absent_uninstalls_as_the_user_and_keeps_their_data() -> None:
    twin = machine(('alice', ALICE, True))
    data_before = twin.tree_snapshot(data_root('alice'))
    result = run(twin, state='absent')
    assert statuses(result) == {'alice': ('removed', None)}
    assert result['users'][0]['version_after'] is None and result['users'][0]['quarantine_id'] is None
    assert not twin.exists(program_dir('alice'))
    assert entry_values(twin, ALICE) is None
    assert twin.tree_snapshot(data_root('alice')) == data_before
    assert [task['sid'] for task in twin.state['tasks_run']] == [ALICE]
    again = run(twin, state='absent')
    assert again['changed'] is False and again['users'] == []


def test_absent_with_remove_user_data_quarantines_it_and_the_quarantine_module_restores_it() -> None:
    twin = machine(('alice', ALICE, True), running=('alice',))
    data_before = twin.tree_snapshot(data_root('alice'))
    result = run(twin, state='absent', remove_user_data=True)
    assert statuses(result) == {'alice': ('removed', None)}
    assert result['users'][0]['quarantine_id'] == ENTRY_ID
    assert not twin.exists(data_root('alice'))
    entry = f'C:\\Users\\alice\\AppData\\Local\\loopbreaker\\quarantine\\{ENTRY_ID}'
    assert twin.tree_snapshot(entry + '\\items\\000-Notion') == data_before
    manifest = json.loads(twin.read(entry + '\\manifest.json'))
    assert manifest['module'] == 'app' and manifest['sid'] == ALICE and manifest['platform'] == 'windows'
    assert manifest['items'] == [{'original_path': data_root('alice'), 'stored_as': 'items\\000-Notion',
                                  'scope': 'user_data', 'type': 'directory', 'attributes': None,
                                  'bytes': sum(len(c.encode()) for c in NOTION_TREE.values()), 'files': len(NOTION_TREE)}]
    assert twin.state['files'][entry.lower()]['acl']['owner'] == ALICE
    restored = _quarantine_state.run(twin, WINDOWS, {'state': 'restored', 'id': ENTRY_ID, 'force': False, 'users': None,
                                                     'exclude_users': None, 'stop_app': True},
                                     check_mode=False, now=NOW, entry_token='d4e5f6')
    assert restored['changed'] is True and 'failed' not in restored
    assert twin.tree_snapshot(data_root('alice')) == data_before


def test_absent_for_a_logged_off_user_is_pending() -> None:
    twin = machine(('bob', BOB, False))
    before = without_calls(twin.state)
    result = run(twin, state='absent', remove_user_data=True)
    assert statuses(result) == {'bob': ('pending', "not logged on: a per-user uninstaller only acts in the user's own session")}
    assert result['changed'] is False
    assert without_calls(twin.state) == before


def test_an_uninstall_entry_pointing_at_the_users_own_documents_never_deletes_them() -> None:
    """InstallLocation is in the user's hive: pointing it at Documents must not make an admin delete Documents."""
    twin = machine(('alice', ALICE, True))
    documents = 'C:\\Users\\alice\\Documents'
    twin.write(documents + '\\thesis.docx', 'years of work')
    twin.write(documents + '\\Uninstall Notion.exe', 'MZ', meta={'kind': 'other', 'exit_code': 0})
    twin.set_registry(ALICE, NOTION_UNINSTALL_KEY, {'InstallLocation': {'type': 'REG_SZ', 'data': documents}})
    result = run(twin, state='absent', users=['alice'])
    assert result['users'][0]['operations'] and 'remove_path' not in result['users'][0]['operations']
    assert twin.read(documents + '\\thesis.docx') == b'years of work'


def test_an_uninstall_entry_pointing_into_another_profile_is_never_run_or_reported_removed() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, True))
    twin._remove_tree(program_dir('alice'))
    twin.set_registry(ALICE, NOTION_UNINSTALL_KEY, {'InstallLocation': {'type': 'REG_SZ', 'data': program_dir('bob')}})
    bob_files = {k: v for k, v in twin.state['files'].items() if k.startswith(program_dir('bob').lower())}
    for state in ('absent', 'reinstalled'):
        args = {'installer': INSTALLER} if state == 'reinstalled' else {}
        if state == 'reinstalled':
            seed_installer(twin, INSTALLER, '7.40.0')
        result = run(twin, state=state, users=['alice'], **args)
        assert statuses(result) == {'alice': ('failed', f"the Notion uninstall entry points to {program_dir('bob')}, outside "
                                                        "alice's profile: its uninstaller would not act for this user, "
                                                        'nothing was run')}
        assert result['users'][0]['operations'] == []
    assert twin.state['tasks_run'] == []
    assert {k: v for k, v in twin.state['files'].items() if k.startswith(program_dir('bob').lower())} == bob_files


def test_a_local_appdata_pointed_into_another_profile_does_not_make_that_profile_the_users_own() -> None:
    """Alice's hive sets her Local AppData to bob's and her uninstall entry to bob's Notion: the check "inside her
    profile or her Local AppData" then passed, bob's uninstaller ran in her session (exit 0, nothing removed, as
    a per-user uninstaller does for anyone but its owner) and the administrator deleted bob's Notion folder."""
    twin = machine(('alice', ALICE, True), ('bob', BOB, True))
    twin._remove_tree(program_dir('alice'))
    twin.set_registry(ALICE, SHELL_FOLDERS_KEY, {'Local AppData': {'type': 'REG_EXPAND_SZ',
                                                                   'data': 'C:\\Users\\bob\\AppData\\Local'}})
    twin.set_registry(ALICE, NOTION_UNINSTALL_KEY, {'InstallLocation': {'type': 'REG_SZ', 'data': program_dir('bob')}})
    bob_files = {k: v for k, v in twin.state['files'].items() if k.startswith(program_dir('bob').lower())}
    for state in ('absent', 'reinstalled'):
        args = {'installer': INSTALLER} if state == 'reinstalled' else {}
        if state == 'reinstalled':
            seed_installer(twin, INSTALLER, '7.40.0')
        result = run(twin, state=state, users=['alice'], **args)
        [alice] = result['users']
        assert alice['status'] == 'failed' and alice['operations'] == [], alice
        assert 'inside the profile of bob' in alice['reason']
    assert twin.state['tasks_run'] == []
    assert {k: v for k, v in twin.state['files'].items() if k.startswith(program_dir('bob').lower())} == bob_files


def test_a_local_appdata_pointed_at_program_files_does_not_make_the_machine_install_the_users() -> None:
    """Local AppData outside every profile is the user's own say too: pointing it (and the uninstall entry) at
    C:\\Program Files made the machine-wide Notion "inside their Local AppData", so its uninstaller ran as them
    (removing nothing) and the administrator deleted C:\\Program Files\\Notion, which app promises to leave alone."""
    twin = machine(('alice', ALICE, True))
    twin._remove_tree(program_dir('alice'))
    machine_dir = 'C:\\Program Files\\Notion'
    twin.write(machine_dir + '\\Notion.exe', 'MZ Notion 7.1.0', meta={'kind': 'notion_exe', 'version': '7.1.0'})
    twin.write(machine_dir + '\\Uninstall Notion.exe', 'MZ Uninstall Notion 7.1.0', meta={'kind': 'notion_uninstaller'})
    twin.set_registry(ALICE, SHELL_FOLDERS_KEY, {'Local AppData': {'type': 'REG_EXPAND_SZ', 'data': 'C:\\Program Files'}})
    twin.set_registry(ALICE, NOTION_UNINSTALL_KEY, {'InstallLocation': {'type': 'REG_SZ', 'data': machine_dir}})
    machine_files = {k: v for k, v in twin.state['files'].items() if k.startswith(machine_dir.lower())}
    result = run(twin, state='absent', users=['alice'])
    [alice] = result['users']
    assert alice['status'] == 'failed' and alice['operations'] == [], alice
    assert twin.state['tasks_run'] == []
    assert {k: v for k, v in twin.state['files'].items() if k.startswith(machine_dir.lower())} == machine_files


# ---------------------------------------------------------- stopped / restarted


def test_stopped_ends_only_that_users_notion() -> None:
    twin = machine(('alice', ALICE, True), ('carol', CAROL, True), running=('alice', 'carol'))
    carol_pids = notion_pids(twin, CAROL)
    result = run(twin, state='stopped', users=['alice'])
    assert statuses(result) == {'alice': ('stopped', None)}
    assert notion_pids(twin, ALICE) == [] and notion_pids(twin, CAROL) == carol_pids
    again = run(twin, state='stopped', users=['alice'])
    assert again['changed'] is False and statuses(again) == {'alice': ('unchanged', None)}


def test_stopped_by_default_acts_on_every_user_running_notion() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, True), ('carol', CAROL, True), running=('alice', 'carol'))
    result = run(twin, state='stopped')
    assert statuses(result) == {'alice': ('stopped', None), 'carol': ('stopped', None)}
    assert [p['name'] for p in twin.state['processes'] if p['name'] == 'Notion.exe'] == []


def test_restarted_starts_notion_owned_by_the_logged_on_user_and_a_logged_off_user_is_pending() -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, False), running=('alice',))
    old = notion_pids(twin, ALICE)
    result = run(twin, state='restarted', users=['alice', 'bob'])
    assert statuses(result) == {'alice': ('restarted', None),
                                'bob': ('pending', 'not logged on: Notion starts with their next session')}
    started = [p for p in twin.state['processes'] if p['name'] == 'Notion.exe']
    assert len(old) == 3 and len(started) == 1, 'the three old processes ended, one new one started'
    assert started[0]['owner_sid'] == ALICE
    assert started[0]['path'] == program_dir('alice') + '\\Notion.exe'
    assert apply_ops(twin) == ['stop_processes', 'start_as_user']


# ------------------------------------------------------------------ discovery


def test_notion_calendar_is_ignored_and_msix_packages_are_reported() -> None:
    twin = machine(('alice', ALICE, True))
    calendar_key = 'Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\1d2b3c4d-notion-calendar'
    calendar_dir = 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion Calendar'
    twin.set_registry(ALICE, calendar_key, {
        'DisplayName': {'type': 'REG_SZ', 'data': 'Notion Calendar 1.127.0'},
        'DisplayVersion': {'type': 'REG_SZ', 'data': '1.127.0'},
        'InstallLocation': {'type': 'REG_SZ', 'data': calendar_dir}})
    twin.write(calendar_dir + '\\Notion Calendar.exe', 'MZ calendar', meta={'kind': 'other', 'version': '1.127.0'})
    package = {'name': 'NotionLabs.Notion', 'package_full_name': 'NotionLabs.Notion_3.1.0.0_x64__8wekyb3d8bbwe',
               'family_name': 'NotionLabs.Notion_8wekyb3d8bbwe', 'version': '3.1.0.0',
               'install_location': 'C:\\Program Files\\WindowsApps\\NotionLabs.Notion_3.1.0.0_x64__8wekyb3d8bbwe',
               'user_sids': [ALICE]}
    calendar_package = {**package, 'name': 'NotionLabs.NotionCalendar', 'package_full_name': 'NotionLabs.NotionCalendar_1'}
    twin.state['packages'] += [package, calendar_package]
    result = run(twin, state='absent', check_mode=True)
    facts = result['facts']
    assert facts['users'][0]['uninstall_entry']['display_name'] == 'Notion 7.35.0'
    assert facts['users'][0]['version'] == '7.35.0' and facts['users'][0]['logged_on'] is True
    assert [{key: p[key] for key in package} for p in facts['packages']] == [package], 'the fields others read'
    assert result['manual_actions'] == [
        'MSIX Notion packages were found (see facts.packages and facts.provisioned); this run acts on the per-user '
        'installs only (package_format: msix provisions the MSIX and migrates them).']
    run(twin, state='absent')
    assert twin.exists(calendar_dir + '\\Notion Calendar.exe')
    assert entry_values(twin, ALICE, calendar_key.lower())['DisplayName'] == 'Notion Calendar 1.127.0'
    assert [task['executable'] for task in twin.state['tasks_run']] == [program_dir('alice') + '\\Uninstall Notion.exe']


def test_a_machine_wide_copy_is_reported_and_left_alone() -> None:
    twin = machine(('alice', ALICE, True))
    twin.write('C:\\Program Files\\Notion\\Notion.exe', 'MZ Notion 7.1.0',
               meta={'kind': 'notion_exe', 'version': '7.1.0', 'signer': NOTION_SIGNER})
    result = run(twin, state='absent')
    assert [m['executable']['path'] for m in result['facts']['machine_installs']] == ['C:\\Program Files\\Notion\\Notion.exe']
    assert result['manual_actions'] == ['A machine-wide Notion install was found (see facts.machine_installs); it is not '
                                        'a per-user install and was left alone.']
    assert twin.exists('C:\\Program Files\\Notion\\Notion.exe')


@pytest.mark.parametrize('state', ['present', 'absent', 'reinstalled', 'restarted', 'stopped'])
def test_facts_are_returned_in_every_state_in_check_mode(state: str) -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, False))
    seed_installer(twin, INSTALLER, '7.40.0')
    args = {'installer': INSTALLER} if state in ('present', 'reinstalled') else {}
    result = run(twin, state=state, check_mode=True, **args)
    assert [(u['user'], u['installed'], u['version'], u['logged_on'], u['install_dir'], u['user_data'])
            for u in result['facts']['users']] == [
        ('alice', True, '7.35.0', True, program_dir('alice'), data_root('alice')),
        ('bob', True, '7.35.0', False, program_dir('bob'), data_root('bob'))]
    assert len(twin.state['calls']) == 1


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(('args', 'message', 'probes'), [
    ({'state': 'present', 'installer': INSTALLER, 'checksum': 'xyz'}, "checksum must be a SHA-256 (64 hex digits), got 'xyz'", 0),
    ({'state': 'present', 'installer': INSTALLER, 'checksum': 'g' * 64},
     f"checksum must be a SHA-256 (64 hex digits), got '{'g' * 64}'", 0),
    ({'state': 'stopped', 'installer': INSTALLER}, 'installer only applies to state present or reinstalled, not stopped', 0),
    ({'state': 'absent', 'installer': INSTALLER, 'version': '7.40.0'},
     'installer, version only apply to state present or reinstalled, not absent', 0),
    ({'state': 'stopped', 'remove_user_data': True}, 'remove_user_data only applies to state absent', 0),
    ({'state': 'present', 'installer': INSTALLER, 'timeout': 0}, 'timeout must be at least 1 second, got 0', 0),
    ({'state': 'stopped', 'stop_timeout': -5}, 'stop_timeout must be at least 1 second, got -5', 0),
    ({'state': 'present', 'installer': INSTALLER, 'signer': ' '},
     'signer must not be empty: every installer is checked against a signer', 0),
    ({'state': 'stopped', 'team_id': 'LBQJ96FQ8D'}, 'team_id applies to macOS hosts only', 0),
    ({'state': 'present', 'use_homebrew': True}, 'use_homebrew applies to macOS hosts only', 0),
    ({'state': 'stopped', 'users': ['alice', 'mallory']}, 'users lists unknown user(s): mallory; profiles on this host: alice, bob', 1),
])
def test_bad_input_fails_with_an_exact_message_and_changes_nothing(args: dict[str, t.Any], message: str, probes: int) -> None:
    twin = machine(('alice', ALICE, True), ('bob', BOB, True), running=('alice',))
    seed_installer(twin, INSTALLER, '7.40.0')
    before = without_calls(twin.state)
    with pytest.raises(RequestError) as raised:
        run(twin, **args)
    assert str(raised.value) == message
    assert without_calls(twin.state) == before
    assert [call['check_mode'] for call in twin.state['calls']] == [True] * probes


# ------------------------------------------------------------------ cost


@pytest.mark.parametrize('count', [1, 5])
def test_one_bridge_call_in_check_mode_and_at_most_two_in_a_real_run(count: int) -> None:
    users = [(f'user{n}', sid(10 + n), True) for n in range(count)]
    twin = machine(*users, running=tuple(user[0] for user in users))
    seed_installer(twin, INSTALLER, '7.40.0')
    run(twin, state='reinstalled', installer=INSTALLER, check_mode=True)
    assert len(twin.state['calls']) == 1
    result = run(twin, state='reinstalled', installer=INSTALLER)
    assert len(twin.state['calls']) == 3, 'check: 1 call; real run: probe + apply'
    assert {u['status'] for u in result['users']} == {'reinstalled'}
    assert len(result['users']) == count
    assert all(file_meta(twin, ntpath.join(program_dir(name), 'Notion.exe'))['version'] == '7.40.0' for name in (user[0] for user in users))

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real fleets' user profiles on the simulated Windows host (issue 9): each test failed before its fix.

Entra ID users, broken ProfileList entries, hives loaded only for the chosen users and unloaded per user,
access denied reported per user, shell folders expanded with the user's own environment, and the reparse
check only below the profile folder (a relocated C:\\Users, FSLogix-style profile folders).
"""
from __future__ import annotations

import ntpath
import typing as t

import pytest

from ansible_collections.loopbreaker.notion.plugins.module_utils import _app_data
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import WINDOWS
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state
from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed import (
    NOW,
    TOKEN,
    TREE,
    sid,
    twin,
    validated,
    windows_user,
)

ENTRA = 'S-1-12-1-1111111111-2222222222-3333333333-4444444444'


def app_data(machine: SimulatedWindows, *, check_mode: bool = False, **args: t.Any) -> dict[str, t.Any]:
    params = validated(_app_data.ARGUMENT_SPEC, args, mutually_exclusive=_app_data.MUTUALLY_EXCLUSIVE)
    return _app_data.run(machine, WINDOWS, params, check_mode=check_mode, now=NOW, entry_token=TOKEN)


def users_of(result: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    return {u['user']: u for u in result['users']}


def seed_notion(machine: SimulatedWindows, app_data_root: str) -> None:
    for relative, content in TREE.items():
        machine.write(ntpath.join(app_data_root, 'Notion', relative.replace('/', '\\')), content)


def get_profiles(machine: SimulatedWindows, **filters: t.Any) -> dict[str, t.Any]:
    envelope = machine.run_batch([{'op': 'get_profiles', 'shell_folders': dict(WINDOWS.shell_folders), **filters}],
                                 check_mode=True)
    [result] = envelope['results']
    assert result['status'] == 'ok', result
    return t.cast(dict[str, t.Any], result['data'])


# ------------------------------------------------------------------ Entra ID


def test_an_entra_id_user_is_a_real_user_named_by_either_name() -> None:
    machine = twin(['alice'])
    machine.add_profile('JaneDoe', ENTRA, account='AzureAD\\JaneDoe')
    seed_notion(machine, 'C:\\Users\\JaneDoe\\AppData\\Roaming')
    assert 'JaneDoe' in users_of(app_data(machine, check_mode=True))
    for name in ('janedoe', 'AzureAD\\JaneDoe'):
        result = app_data(machine, check_mode=True, users=[name])
        assert [u['user'] for u in result['users']] == ['JaneDoe']
    result = app_data(machine, users=['AzureAD\\JaneDoe'])
    assert users_of(result)['JaneDoe']['status'] == 'cleared'


# ----------------------------------------------------------- broken profiles


def broken_machine() -> SimulatedWindows:
    """alice fine; bob's profile broken (the .bak key and the temporary one); three incomplete entries."""
    machine = twin(['alice'])
    bob = sid(2)
    machine.add_broken_profile(bob + '.bak', 'bob', profile_path='C:\\Users\\bob')
    seed_notion(machine, 'C:\\Users\\bob\\AppData\\Roaming')
    machine.add_broken_profile(bob, 'bob', profile_path='C:\\Users\\TEMP', state=0x0804)
    machine.add_broken_profile(sid(3), 'dan')
    machine.add_broken_profile(sid(4), 'erin', profile_path='C:\\Users\\erin', folder=False)
    machine.add_broken_profile(sid(5), 'fay', profile_path='C:\\Users\\fay', hive_file=False)
    return machine


def test_broken_profiles_are_skipped_reported_and_never_a_user() -> None:
    machine = broken_machine()
    data = get_profiles(machine)
    assert [p['username'] for p in data['profiles'] if not p['special']] == ['alice', 'carol']
    reasons = {(s['key'], s['username']): s['reason'] for s in data['skipped']}
    assert sorted(reasons) == sorted([(sid(2) + '.bak', 'bob'), (sid(2), 'bob'), (sid(3), 'dan'),
                                      (sid(4), 'erin'), (sid(5), 'fay')])
    assert '.bak' in reasons[(sid(2) + '.bak', 'bob')]
    assert 'temporary' in reasons[(sid(2), 'bob')]
    assert 'ProfileImagePath' in reasons[(sid(3), 'dan')]
    assert 'does not exist' in reasons[(sid(4), 'erin')]
    assert 'NTUSER.DAT' in reasons[(sid(5), 'fay')]

    result = app_data(machine)
    assert not result.get('failed'), result.get('msg')
    assert list(users_of(result)) == ['alice']
    assert {s['user'] for s in result['skipped_profiles']} == {'bob', 'dan', 'erin', 'fay'}
    assert machine.exists('C:\\Users\\bob\\AppData\\Roaming\\Notion\\Cache'), 'the .bak profile is never touched'


def test_naming_a_user_whose_profile_is_broken_says_why() -> None:
    with pytest.raises(RequestError, match=r"bob.*skipped.*\.bak"):
        app_data(broken_machine(), check_mode=True, users=['bob'])


# ------------------------------------------------------------------- hives


def test_only_the_chosen_users_hives_are_loaded_each_once() -> None:
    machine = twin(['alice', 'bob'])          # alice, bob, carol logged off
    app_data(machine, users=['alice'])
    assert machine.hive_loads() == {sid(1): 1}
    assert machine.state['mounted_hives'] == []


def test_a_failed_unload_is_an_error_for_that_user_and_the_next_logon_is_temporary() -> None:
    machine = twin(['alice', 'bob'])
    machine._profile(sid(2))['unload_error'] = 'The process cannot access the file because it is being used'
    result = app_data(machine)
    users = users_of(result)
    assert users['alice']['status'] == 'cleared'
    assert users['bob']['status'] == 'failed'
    assert any('unload' in error for error in users['bob']['errors'])
    assert result['failed'] is True
    assert machine.exists(ntpath.join('C:\\Users\\bob\\AppData\\Roaming\\Notion', 'Cache')), 'nothing done for bob'
    assert machine.logon(sid(2)) == 'temporary'
    assert machine.logon(sid(1)) == 'normal'


# ------------------------------------------------------------- access denied


def test_access_denied_is_a_failure_of_that_user_never_clean() -> None:
    machine = twin(['alice', 'bob'])
    machine.deny_administrators('C:\\Users\\alice\\AppData\\Roaming\\Notion', sid(1))
    windows_user(machine, 'dora', 7, app_data='\\\\files\\home$\\dora\\AppData', notion=False)
    users = users_of(app_data(machine, check_mode=True, users=['alice', 'bob', 'dora']))
    assert users['bob']['status'] == 'cleared'
    for name in ('alice', 'dora'):
        assert users[name]['status'] == 'failed', users[name]
        assert any('denied' in error for error in users[name]['errors']), users[name]


@pytest.mark.parametrize('op, extra', [('stat_paths', {}), ('read_files', {}), ('read_file_tails', {}),
                                       ('read_trees', {})])
def test_every_read_operation_tells_denied_from_absent(op: str, extra: dict[str, t.Any]) -> None:
    machine = twin(['alice'])
    root = 'C:\\Users\\alice\\AppData\\Roaming\\Notion'
    machine.deny_administrators(root, sid(1))
    for pattern, status in ((root + '\\*', 'error'), ('C:\\Users\\alice\\AppData\\Roaming\\Nope\\*', 'ok')):
        [result] = machine.run_batch([{'op': op, 'patterns': [pattern], **extra}], check_mode=True)['results']
        assert result['status'] == status, (op, pattern, result)
        if status == 'error':
            assert 'denied' in result['error']
    [info] = machine.run_batch([{'op': 'get_file_info', 'paths': [root + '\\Preferences']}],
                               check_mode=True)['results']
    assert info['status'] == 'error' and 'denied' in info['error']


# ----------------------------------------------------------- per-user expansion


def test_shell_folders_expand_with_the_users_own_environment() -> None:
    machine = twin(['bob'])
    profile = machine.add_profile('alice', sid(1), shell_folders={'AppData': '%OneDrive%\\AppData'})
    machine.set_user_environment(profile['sid'], {'OneDrive': '%USERPROFILE%\\OneDrive - Contoso'})
    seed_notion(machine, 'C:\\Users\\alice\\OneDrive - Contoso\\AppData')
    machine.add_profile('gil', sid(8), shell_folders={'AppData': '%HOMESHARE%\\AppData'})
    data = get_profiles(machine)
    by_name = {p['username']: p for p in data['profiles']}
    assert by_name['alice']['folders']['AppData'] == 'C:\\Users\\alice\\OneDrive - Contoso\\AppData'
    assert by_name['alice']['environment']['OneDrive'] == 'C:\\Users\\alice\\OneDrive - Contoso'
    assert by_name['alice']['environment']['USERPROFILE'] == 'C:\\Users\\alice'
    assert 'HOMESHARE' in by_name['gil']['error'] and by_name['gil']['environment']['USERNAME'] == 'gil'
    users = users_of(app_data(machine, check_mode=True, users=['alice', 'gil']))
    assert users['alice']['data_root'] == 'C:\\Users\\alice\\OneDrive - Contoso\\AppData\\Notion'
    assert users['alice']['items'] and users['alice']['status'] == 'cleared'
    assert users['gil']['status'] == 'failed'


# ------------------------------------------------------------- reparse scope


def test_a_relocated_users_folder_is_worked_on() -> None:
    machine = SimulatedWindows(empty_state('WS01'))
    machine.mkdir('D:\\Users')
    machine.add_junction('C:\\Users', 'D:\\Users')
    windows_user(machine, 'alice', 1)
    assert machine.exists('D:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache')
    result = app_data(machine)
    assert users_of(result)['alice']['status'] == 'cleared', result.get('msg')
    assert not machine.exists('D:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache')


def test_a_profile_folder_that_is_a_mounted_volume_is_worked_on() -> None:
    machine = twin([])
    machine.mkdir('V:\\Profile')
    machine.add_junction('C:\\Users\\alice', 'V:\\Profile')   # FSLogix: the profile VHD mounted at the folder
    windows_user(machine, 'alice', 1)
    result = app_data(machine)
    assert users_of(result)['alice']['status'] == 'cleared', result.get('msg')
    assert not machine.exists('V:\\Profile\\AppData\\Roaming\\Notion\\Cache')


def test_a_junction_below_the_profile_is_still_refused_without_within() -> None:
    machine = twin(['alice'])
    machine.add_junction('C:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache', 'C:\\Windows\\System32')
    [result] = machine.run_batch([{'op': 'stat_paths', 'patterns': [
        'C:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache\\*']}], check_mode=True)['results']
    assert result['data']['entries'] == []
    [removed] = machine.run_batch([{'op': 'remove_path', 'path':
                                    'C:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache\\drivers'}])['results']
    assert removed['status'] == 'error' and 'junction' in removed['error']


# ------------------------------------------------- every module: denied and skipped


def denied_and_broken() -> SimulatedWindows:
    """alice's Notion folder without Administrators, dora's AppData on a share, bob's profile broken (.bak)."""
    machine = twin(['alice'])
    windows_user(machine, 'eve', 6)
    machine.deny_administrators('C:\\Users\\alice\\AppData\\Roaming\\Notion', sid(1))
    windows_user(machine, 'dora', 7, app_data='\\\\files\\home$\\dora\\AppData', notion=False)
    machine.add_broken_profile(sid(2) + '.bak', 'bob', profile_path='C:\\Users\\bob')
    return machine


def test_diagnose_reports_an_unreadable_user_unhealthy_and_the_skipped_profiles() -> None:
    from ansible_collections.loopbreaker.notion.plugins.module_utils import _diagnose
    params = validated(_diagnose.ARGUMENT_SPEC, {'network': False})
    result = _diagnose.run(denied_and_broken(), params, platform='windows', now=NOW)
    users = users_of(result)
    assert 'user_unreadable' not in {f['code'] for f in users['eve']['findings']}
    for name in ('alice', 'dora'):
        assert users[name]['verdict'] == 'unhealthy', users[name]
        [finding] = users[name]['findings']
        assert finding['code'] == 'user_unreadable' and 'denied' in ' '.join(finding['evidence'])
    assert result['verdict'] == 'unhealthy'
    assert [s['user'] for s in result['skipped_profiles']] == ['bob']


def test_app_reports_an_unreadable_user_failed_and_the_skipped_profiles() -> None:
    from ansible_collections.loopbreaker.notion.plugins.module_utils import _app
    params = validated(_app.ARGUMENT_SPEC, {'state': 'absent', 'users': ['alice', 'dora', 'eve']},
                       mutually_exclusive=_app.MUTUALLY_EXCLUSIVE)
    result = _app.run(denied_and_broken(), params, check_mode=True, now=NOW, entry_token=TOKEN)
    users = users_of(result)
    assert users['eve']['status'] != 'failed', users['eve']
    for name in ('alice', 'dora'):
        assert users[name]['status'] == 'failed' and 'denied' in users[name]['reason'], users[name]
    assert [s['user'] for s in result['skipped_profiles']] == ['bob']


def test_browser_data_reports_an_unreadable_user_failed_and_the_skipped_profiles() -> None:
    from ansible_collections.loopbreaker.notion.plugins.module_utils import _browser_data
    machine = denied_and_broken()
    machine.deny_administrators('C:\\Users\\alice\\AppData', sid(1))
    params = validated(_browser_data.ARGUMENT_SPEC, {'users': ['alice', 'eve']},
                       mutually_exclusive=_browser_data.MUTUALLY_EXCLUSIVE)
    result = _browser_data.run(machine, WINDOWS, params, check_mode=True, now=NOW, entry_token=TOKEN)
    users = users_of(result)
    assert users['eve']['status'] != 'failed', users['eve']
    assert users['alice']['status'] == 'failed' and 'denied' in ' '.join(users['alice']['errors']), users['alice']
    assert [s['user'] for s in result['skipped_profiles']] == ['bob']


# ------------------------------------------------------------ selection details


def test_get_profiles_reads_only_the_selected_profiles() -> None:
    machine = twin(['alice', 'bob'])
    data = get_profiles(machine, users=['ALICE'])
    by_name = {p['username']: p for p in data['profiles']}
    assert [n for n, p in by_name.items() if p['selected']] == ['alice']
    assert by_name['bob']['folder_source'] == {'AppData': 'not_read', 'Local AppData': 'not_read'}
    assert by_name['bob']['environment'] == {}
    assert machine.hive_loads() == {sid(1): 1}
    excluded = get_profiles(machine, exclude_users=['WS01\\bob'])
    assert [p['username'] for p in excluded['profiles'] if p['selected']] == ['alice', 'carol']


def test_a_bare_name_two_accounts_share_must_be_given_as_the_account() -> None:
    machine = twin(['alice'])
    machine.add_profile('alice.AzureAD', ENTRA, account='AzureAD\\alice')
    machine._profile(ENTRA)['username'] = 'alice'
    with pytest.raises(RequestError, match=r'more than one account.*name the account'):
        app_data(machine, check_mode=True, users=['alice'])
    result = app_data(machine, check_mode=True, users=['WS01\\alice'])
    assert [u['sid'] for u in result['users']] == [sid(1)]


def test_a_failed_unload_fails_the_operation_that_loaded_the_hive() -> None:
    machine = twin(['alice', 'bob'])
    machine._profile(sid(2))['unload_error'] = 'Access is denied.'
    envelope = machine.run_batch([
        {'op': 'read_registry', 'key': 'Software', 'sid': sid(2), 'group': 'bob'},
        {'op': 'read_registry', 'key': 'Software', 'sid': sid(1), 'group': 'alice'},
    ], check_mode=True)
    assert [(r['group'], r['status']) for r in envelope['results']] == [('bob', 'error'), ('alice', 'ok')]
    assert 'Could not unload the hive' in envelope['results'][0]['error']
    assert sid(2) in envelope['hives_loaded'] and sid(2) not in envelope['hives_unloaded']
    assert machine.state['mounted_hives'] == [sid(2)]


# ------------------------------------------------------------- a hive file the user swapped


@pytest.mark.parametrize('swap, problem', [
    (lambda m: m.add_junction('C:\\Users\\alice\\NTUSER.DAT', 'C:\\Users\\bob\\NTUSER.DAT', owner=sid(1)),
     'is a junction or symbolic link'),
    (lambda m: m.write('C:\\Users\\alice\\NTUSER.DAT', 'hive', owner=sid(1), links=2), 'has 2 hard links'),
    (lambda m: m.write('C:\\Users\\alice\\NTUSER.DAT', 'hive', owner=sid(2)), f'is owned by {sid(2)}, not by the user'),
])
def test_a_hive_file_the_user_swapped_is_never_loaded(swap: t.Callable[[SimulatedWindows], None], problem: str) -> None:
    """alice's NTUSER.DAT lies in her own folder: pointed at bob's hive, the administrator would load bob's
    hive as alice's and her rungs would write into it."""
    machine = twin(['alice', 'bob'])
    swap(machine)
    users = users_of(app_data(machine))
    assert users['alice']['status'] == 'failed'
    assert any(f"Refusing to load the hive of '{sid(1)}': 'C:\\Users\\alice\\NTUSER.DAT' {problem}." in error
               for error in users['alice']['errors']), users['alice']
    assert users['bob']['status'] == 'cleared'
    assert machine.hive_loads().get(sid(1), 0) == 0 and sid(1) not in machine.state['mounted_hives']


def test_the_bridge_checks_the_hive_file_the_same_way_before_reg_load() -> None:
    from ansible_collections.loopbreaker.notion.tests.unit import bridge_ps1

    body = bridge_ps1.function_text(bridge_ps1.bridge_text(), 'Get-BridgeUserHive')
    inspect = body.index('[LoopbreakerSafePath]::Inspect($hiveFile, $lease)')
    assert inspect < body.index("Invoke-BridgeReg -Arguments @('load'")
    for check in ('$info.IsLink', '$info.Links -ne 1', '-notcontains $owner', 'is owned by $owner, not by the user'):
        assert check in body

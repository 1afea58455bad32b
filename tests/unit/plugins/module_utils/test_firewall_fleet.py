# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""firewall on Windows as real fleets have it (issue 9): thousands of rules, Group Policy and MDM rules,
"apply local firewall rules: no", complete rule records, per-user variables in rule programs and the
versioned program path of an MSIX Notion. Same machine as test_firewall.py.
"""
from __future__ import annotations

import copy
import typing as t

import pytest
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import (
    SHELL_FOLDERS_KEY,
    SimulatedWindows,
)
from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils.test_firewall import (
    ALICE_EXE,
    ALICE_SID,
    ALL_FOUR,
    BLOCK_ALICE,
    BOB_EXE,
    expected_name,
    machine,
    names,
    ours,
    record_of,
    rules_of,
    run,
    snapshot,
)

POLICY_PROFILE_KEY = 'software\\policies\\microsoft\\windowsfirewall\\{0}profile'
MSIX_FAMILY = 'com.notion.app.desktop.notion_87smfmv0eebam'
WINDOWS_APPS = 'C:\\Program Files\\WindowsApps'


def unrelated_rules(count: int) -> list[dict[str, t.Any]]:
    return [{'name': f'{{rule-{number:05d}}}', 'display_name': f'App {number}', 'direction': 'in', 'action': 'allow',
             'profiles': ['domain'], 'program': f'C:\\Program Files\\App{number}\\app.exe', 'enabled': True,
             'description': '', 'protocol': 'tcp', 'local_ports': [str(1024 + number)]} for number in range(count)]


def local_rules_off(twin: SimulatedWindows, *profiles: str) -> None:
    for profile in profiles:
        twin.set_registry('HKLM', POLICY_PROFILE_KEY.format(profile),
                          {'AllowLocalPolicyMerge': {'type': 'REG_DWORD', 'data': 0}})


# ---------------------------------------------------------------- one pass


def test_rules_are_read_in_one_pass_per_run_whatever_their_number() -> None:
    twin = machine(BLOCK_ALICE)
    twin.state['firewall_rules'] += unrelated_rules(3000)
    total = len(twin.state['firewall_rules'])
    result = run(twin)
    assert names(result['added']) == ALL_FOUR and names(result['disabled']) == [BLOCK_ALICE['name']]
    assert [call.get('firewall_rule_reads', 0) for call in twin.state['calls']] == [total, 0], \
        'every rule is read exactly once, in the probe; changes are made by name without reading any'


# ------------------------------------------------------- group policy / MDM


def test_group_policy_block_rule_is_reported_not_duplicated_and_runs_converge() -> None:
    for store in ('group_policy', 'mdm'):
        for conflicts in ('disable', 'remove'):
            twin = machine({**BLOCK_ALICE, 'store': store})
            first = run(twin, conflicts=conflicts)
            assert 'failed' not in first, first.get('msg')
            [conflict] = first['conflicts']
            assert (conflict['name'], conflict['store'], conflict['handling']) == \
                (BLOCK_ALICE['name'], store, 'not_locally_changeable')
            assert first['disabled'] == [] and first['removed'] == [] and record_of(twin) is None
            assert [r for r in twin.state['firewall_rules'] if r['name'] == BLOCK_ALICE['name']] == \
                [{**BLOCK_ALICE, 'store': store}], 'no local duplicate of the policy rule'
            assert any(BLOCK_ALICE['name'] in action and 'policy' in action for action in first['manual_actions'])
            before = snapshot(twin)
            again = run(twin, conflicts=conflicts)
            assert again['changed'] is False and snapshot(twin) == before
            assert again['manual_actions'] == first['manual_actions']


def test_local_rules_off_in_every_requested_profile_adds_nothing_and_says_so() -> None:
    twin = machine()
    local_rules_off(twin, 'private', 'public')
    result = run(twin)
    assert result['changed'] is False and result['added'] == [] and ours(twin) == {}
    assert result['local_rules_apply'] == {'domain': True, 'private': False, 'public': False}
    assert any('apply local firewall rules' in action for action in result['manual_actions'])
    assert run(twin)['changed'] is False


def test_local_rules_off_in_one_profile_keeps_the_rules_to_the_others() -> None:
    twin = machine()
    local_rules_off(twin, 'public')
    run(twin)
    assert sorted(ours(twin)) == ALL_FOUR
    assert {tuple(rule['profiles']) for rule in ours(twin).values()} == {('private',)}
    assert run(twin)['changed'] is False


# ------------------------------------------------------ complete records

FULL_BLOCK = {
    **BLOCK_ALICE, 'direction': 'in', 'profiles': ['domain', 'public'], 'protocol': 'tcp',
    'local_ports': ['443', '8000-8080'], 'remote_ports': ['1024-65535'], 'local_addresses': ['10.0.0.0/8'],
    'remote_addresses': ['LocalSubnet', '192.0.2.7'], 'service': 'NotionSvc', 'interface_types': ['wireless', 'wired'],
    'interfaces': ['Wi-Fi'], 'edge_traversal': 'defer_to_user', 'grouping': 'IT policy: Notion',
}


def test_a_block_rule_with_every_field_set_is_recorded_and_restored_exactly() -> None:
    for conflicts in ('disable', 'remove'):
        twin = machine(FULL_BLOCK)
        before = copy.deepcopy(rules_of(twin))
        run(twin, conflicts=conflicts)
        [entry] = record_of(twin)['rules']
        assert entry['rule'] == {**FULL_BLOCK, 'interface_types': ['wired', 'wireless']}
        result = run(twin, state='restored')
        assert names(result['restored']) == [FULL_BLOCK['name']]
        restored = {**FULL_BLOCK, 'interface_types': ['wired', 'wireless']}
        assert rules_of(twin) == {**before, FULL_BLOCK['name']: restored}
        assert run(twin, state='restored')['changed'] is False


def test_our_rule_with_a_narrowed_protocol_or_port_is_corrected_to_any() -> None:
    twin = machine()
    run(twin)
    rule = ours(twin)[expected_name(ALICE_EXE, 'out')]
    rule.update({'protocol': 'udp', 'remote_ports': ['53']})
    result = run(twin)
    [corrected] = result['corrected']
    assert sorted(corrected['fields']) == ['protocol', 'remote_ports']
    assert 'protocol' not in ours(twin)[expected_name(ALICE_EXE, 'out')]


# ------------------------------------------------------ per-user programs

PER_USER_BLOCK = {**BLOCK_ALICE, 'program': '%LOCALAPPDATA%\\Programs\\Notion\\Notion.exe'}


def test_a_rule_program_with_per_user_variables_matches_nothing_and_is_reported() -> None:
    twin = machine(PER_USER_BLOCK)
    result = run(twin)
    assert result['conflicts'] == [] and result['disabled'] == []
    assert rules_of(twin)[PER_USER_BLOCK['name']] == PER_USER_BLOCK, 'left as it is'
    [ineffective] = result['ineffective_rules']
    assert ineffective['name'] == PER_USER_BLOCK['name']
    assert ineffective['expanded'] == [{'user': 'alice', 'path': ALICE_EXE}, {'user': 'bob', 'path': BOB_EXE}]
    assert run(twin)['changed'] is False


def test_per_user_variables_come_from_the_users_environment_when_the_profile_has_one() -> None:
    class EnvironmentWindows(SimulatedWindows):
        def op_get_profiles(self, shell_folders: dict[str, str]) -> dict[str, t.Any]:
            listed = super().op_get_profiles(shell_folders)
            for profile in listed['profiles']:
                if profile['username'] == 'alice':
                    profile['environment'] = {'LOCALAPPDATA': 'C:\\Users\\alice\\AppData\\Local'}
                if profile['username'] == 'bob':
                    profile['environment'] = {'LOCALAPPDATA': 'D:\\Elsewhere'}
            return listed

    twin = EnvironmentWindows(machine(PER_USER_BLOCK).state)
    [ineffective] = run(twin)['ineffective_rules']
    assert ineffective['expanded'] == [{'user': 'alice', 'path': ALICE_EXE}]


# ----------------------------------------------------------------- MSIX


def install_msix(twin: SimulatedWindows, version: str, *, exe_folder: str = 'app') -> str:
    full_name = f'com.notion.app.desktop.notion_{version}_x64__87smfmv0eebam'
    location = f'{WINDOWS_APPS}\\{full_name}'
    exe = f'{location}\\{exe_folder}\\Notion.exe' if exe_folder else f'{location}\\Notion.exe'
    twin.write(exe, 'MZ')
    twin.state['packages'] = [p for p in twin.state['packages'] if p['family_name'] != MSIX_FAMILY] + [{
        'name': 'com.notion.app.desktop.notion', 'package_full_name': full_name, 'family_name': MSIX_FAMILY,
        'version': version, 'install_location': location, 'user_sids': ['S-1-5-21-1-2-3-1001']}]
    return exe


def test_msix_notion_gets_rules_on_its_versioned_path_and_stale_versions_lose_theirs() -> None:
    twin = machine()
    old_exe = install_msix(twin, '4.1.0.0')
    first = run(twin, users=['alice'])
    msix = [p for p in first['programs'] if p['source'] == 'msix']
    assert [(p['path'], p['covered']) for p in msix] == [(old_exe, True)]
    assert {r['program'] for r in ours(twin).values()} == {ALICE_EXE, old_exe}

    new_exe = install_msix(twin, '4.2.0.0', exe_folder='')
    second = run(twin, users=['alice'])
    assert sorted(names(second['added'])) == sorted(expected_name(new_exe, d) for d in ('in', 'out'))
    assert sorted((r['program'], r['reason']) for r in second['removed']) == \
        [(old_exe, 'MSIX package version no longer installed')] * 2, 'removed though its folder is still on disk'
    assert {r['program'] for r in ours(twin).values()} == {ALICE_EXE, new_exe}
    assert run(twin, users=['alice'])['changed'] is False


def test_block_rule_on_the_msix_exe_is_a_conflict() -> None:
    twin = machine()
    exe = install_msix(twin, '4.2.0.0')
    twin.state['firewall_rules'].append({**BLOCK_ALICE, 'program': exe})
    result = run(twin)
    assert [(c['name'], c['matched_program']) for c in result['conflicts']] == [(BLOCK_ALICE['name'], exe)]
    assert rules_of(twin)[BLOCK_ALICE['name']]['enabled'] is False


def test_an_msix_of_another_publisher_is_ignored() -> None:
    twin = machine()
    install_msix(twin, '4.2.0.0')
    twin.state['packages'][0]['family_name'] = 'com.notion.app.desktop.notion_0000000000000'
    result = run(twin)
    assert [p for p in result['programs'] if p['source'] == 'msix'] == []
    assert sorted(ours(twin)) == ALL_FOUR


def test_an_msix_registered_from_a_users_folder_gets_no_rule() -> None:
    twin = machine()
    install_msix(twin, '4.2.0.0')
    loose = 'C:\\Users\\alice\\Downloads\\notion'
    twin.write(f'{loose}\\Notion.exe', 'MZ')
    twin.state['packages'][0]['install_location'] = loose
    result = run(twin)
    assert [p for p in result['programs'] if p['source'] == 'msix'] == []
    assert sorted(ours(twin)) == ALL_FOUR
    assert any('developer-mode' in notice for notice in result['notices'])


@pytest.mark.parametrize('parent', ['C:\\Users\\alice\\Downloads\\WindowsApps', 'C:\\WindowsApps', 'D:\\WindowsApps'],
                         ids=['in her profile', 'at the system drive root', 'at a data drive root'])
def test_a_developer_mode_registration_in_a_folder_named_windowsapps_gets_no_rule(parent: str) -> None:
    """Anyone may register loose files under Notion's publisher name (developer mode) from any folder they
    can write, and name that folder WindowsApps\\<full name>; standard users may create folders at a drive
    root. Only Program Files\\WindowsApps, which only deployment writes, holds files a rule may trust."""
    twin = machine()
    install_msix(twin, '4.2.0.0')
    package = twin.state['packages'][0]
    loose = f"{parent}\\{package['package_full_name']}"
    twin.write(f'{loose}\\app\\Notion.exe', 'MZ her own server')
    package['install_location'] = loose
    result = run(twin)
    assert [p for p in result['programs'] if p['source'] == 'msix'] == []
    assert sorted(ours(twin)) == ALL_FOUR, 'no machine-wide allow rule for a program the user wrote'
    assert any('developer-mode' in notice and loose in notice for notice in result['notices'])


def test_local_rules_off_needs_no_manual_action_where_the_policy_already_allows_notion() -> None:
    policy_allows = [{'name': f'gpo-{user}-{direction}', 'display_name': 'Notion (IT)', 'direction': direction,
                      'action': 'allow', 'profiles': ['private', 'public'], 'program': exe, 'enabled': True,
                      'description': '', 'store': 'group_policy'}
                     for user, exe in (('alice', ALICE_EXE), ('bob', BOB_EXE)) for direction in ('in', 'out')]
    twin = machine(*policy_allows[:3])
    local_rules_off(twin, 'private', 'public')
    [action] = run(twin)['manual_actions']
    assert BOB_EXE in action and ALICE_EXE not in action, 'bob lacks the outbound policy rule'
    twin.state['firewall_rules'].append(policy_allows[3])
    result = run(twin)
    assert result['manual_actions'] == [] and result['changed'] is False


def test_a_users_environment_stored_unexpanded_is_expanded_with_that_users_own_variables() -> None:
    class EnvironmentWindows(SimulatedWindows):
        def op_get_profiles(self, shell_folders: dict[str, str]) -> dict[str, t.Any]:
            listed = super().op_get_profiles(shell_folders)
            for profile in listed['profiles']:
                if profile['username'] == 'bob':
                    profile['environment'] = {'USERPROFILE': 'C:\\Users\\bob',
                                              'LOCALAPPDATA': '%USERPROFILE%\\AppData\\Local'}
            return listed

    twin = EnvironmentWindows(machine(PER_USER_BLOCK).state)
    [ineffective] = run(twin)['ineffective_rules']
    assert ineffective['expanded'] == [{'user': 'alice', 'path': ALICE_EXE}, {'user': 'bob', 'path': BOB_EXE}]


# ------------------------------------------------------- shell folders


def test_a_local_appdata_pointed_into_another_profile_decides_nothing_about_that_users_notion() -> None:
    """Alice sets her own Local AppData (her hive) to bob's. The run is for alice only; IT blocks bob's Notion.
    She must not make the administrator disable that block rule, nor allow bob's program, in her name."""
    block_bob = {**BLOCK_ALICE, 'name': '{block-bob}', 'program': BOB_EXE}
    twin = machine(block_bob)
    twin.state['hives'][ALICE_SID][SHELL_FOLDERS_KEY.lower()] = {
        'path': SHELL_FOLDERS_KEY,
        'values': {'Local AppData': {'type': 'REG_EXPAND_SZ', 'data': 'C:\\Users\\bob\\AppData\\Local'}}}
    result = run(twin, users=['alice'])
    assert rules_of(twin)[block_bob['name']] == block_bob, "the block rule on bob's Notion is untouched"
    assert result['conflicts'] == [] and record_of(twin) is None
    assert BOB_EXE not in {r['program'] for r in ours(twin).values()}
    assert 'inside the profile of bob' in result.get('msg', '')

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_firewall.py on Windows: probe -> plan -> apply against the twin.

The machine has alice (logged on) and bob (logged off), each with their own Notion.exe, carol with
none, and SYSTEM. Expected rule names are computed here from the documented scheme
(sha256 of the lower-cased path), independently of the module's helper.
"""
from __future__ import annotations

import copy
import datetime
import hashlib
import json
import re
import typing as t

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _firewall
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import (
    FIREWALL_RULE_DEFAULTS,
    OPERATIONS,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import WINDOWS
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_windows_user
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
ALICE_SID = 'S-1-5-21-1-2-3-1001'
BOB_SID = 'S-1-5-21-1-2-3-1002'
ALICE_EXE = 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe'
BOB_EXE = 'C:\\Users\\bob\\AppData\\Local\\Programs\\Notion\\Notion.exe'
RECORD_KEY = 'software\\loopbreaker\\notion\\firewall'
BLOCK_ALICE = {
    'name': '{6F2C1A0E-5B1D-4C3E-9A7F-0D1E2F3A4B5C}', 'display_name': 'Block Notion (IT policy)', 'direction': 'out',
    'action': 'block', 'profiles': ['domain', 'private', 'public'], 'program': ALICE_EXE, 'enabled': True,
    'description': 'Ticket 4711',
}
UNRELATED = {
    'name': 'ChromeIn', 'display_name': 'Google Chrome', 'direction': 'in', 'action': 'allow', 'profiles': ['private'],
    'program': 'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe', 'enabled': True, 'description': '',
}


def expected_name(path: str, direction: str) -> str:
    return 'loopbreaker.notion-' + hashlib.sha256(path.lower().encode()).hexdigest()[:8] + '-' + direction


def our_rule(path: str, direction: str, **changes: t.Any) -> dict[str, t.Any]:
    user = path.split('\\')[2]
    rule = {'name': expected_name(path, direction), 'display_name': f'Notion (loopbreaker.notion) - {user} - '
            f"{'inbound' if direction == 'in' else 'outbound'}", 'direction': direction, 'action': 'allow',
            'profiles': ['private', 'public'], 'program': path, 'enabled': True,
            'description': f'Lets Notion sync through Windows Defender Firewall ({user}). Managed by '
                           f'loopbreaker.notion.firewall; program: {path}'}
    rule.update(changes)
    return rule


def machine(*rules: dict[str, t.Any]) -> SimulatedWindows:
    twin = SimulatedWindows(empty_state('WS01'))
    twin.add_profile('systemprofile', 'S-1-5-18', loaded=True, profile_path='C:\\Windows\\System32\\config\\systemprofile')
    seed_windows_user(twin, 'alice', ALICE_SID, loaded=True)
    seed_windows_user(twin, 'bob', BOB_SID, loaded=False)
    seed_windows_user(twin, 'carol', 'S-1-5-21-1-2-3-1003', loaded=False, with_notion=False)
    twin.state['firewall_rules'] = [copy.deepcopy(rule) for rule in (UNRELATED,) + rules]
    return twin


def params(**args: t.Any) -> dict[str, t.Any]:
    result = ArgumentSpecValidator(_firewall.ARGUMENT_SPEC, mutually_exclusive=_firewall.MUTUALLY_EXCLUSIVE).validate(args)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def run(twin: SimulatedWindows, *, check_mode: bool = False, **args: t.Any) -> dict[str, t.Any]:
    return _firewall.run(twin, WINDOWS, params(**args), check_mode=check_mode, now=NOW, entry_token='a1b2c3')


def rules_of(twin: SimulatedWindows) -> dict[str, dict[str, t.Any]]:
    return {rule['name']: rule for rule in twin.state['firewall_rules']}


def ours(twin: SimulatedWindows) -> dict[str, dict[str, t.Any]]:
    return {name: rule for name, rule in rules_of(twin).items() if name.lower().startswith('loopbreaker.notion-')}


def record_of(twin: SimulatedWindows) -> dict[str, t.Any] | None:
    value = twin.state['hives']['HKLM'].get(RECORD_KEY, {}).get('values', {}).get('record')
    return None if value is None else json.loads(value['data'])


def snapshot(twin: SimulatedWindows) -> dict[str, t.Any]:
    state = copy.deepcopy(twin.state)
    state.pop('calls')
    return state


def names(entries: list[dict[str, t.Any]]) -> list[str]:
    return sorted(entry['name'] for entry in entries)


ALL_FOUR = sorted(expected_name(path, d) for path in (ALICE_EXE, BOB_EXE) for d in ('in', 'out'))


# ------------------------------------------------------------------- naming


def test_rule_names_follow_the_documented_scheme() -> None:
    assert _firewall.rule_name(ALICE_EXE, 'in') == expected_name(ALICE_EXE, 'in')
    assert _firewall.rule_name(ALICE_EXE.upper(), 'out') == expected_name(ALICE_EXE, 'out')
    assert re.fullmatch(r'loopbreaker\.notion-[0-9a-f]{8}-(in|out)', _firewall.rule_name(BOB_EXE, 'out'))
    assert len({_firewall.rule_name(p, d) for p in (ALICE_EXE, BOB_EXE) for d in ('in', 'out')}) == 4


# ------------------------------------------------------------------ present


def test_present_allows_every_users_notion_in_both_directions() -> None:
    twin = machine()
    mounted = list(twin.state['mounted_hives'])
    result = run(twin)
    assert result['changed'] is True
    assert names(result['added']) == ALL_FOUR
    for path in (ALICE_EXE, BOB_EXE):
        for direction in ('in', 'out'):
            assert ours(twin)[expected_name(path, direction)] == our_rule(path, direction)
    assert [(p['path'], p['user'], p['source'], p['covered']) for p in result['programs']] == \
        [(ALICE_EXE, 'alice', 'profile', True), (BOB_EXE, 'bob', 'profile', True)]
    assert {r['status'] for p in result['programs'] for r in p['rules']} == {'added'}
    assert result['users_without_notion'] == ['carol']
    assert result['conflicts'] == [] and result['disabled'] == [] and result['removed'] == []
    assert rules_of(twin)['ChromeIn'] == UNRELATED
    assert twin.state['mounted_hives'] == mounted, 'every hive the batches loaded was unloaded'


@pytest.mark.parametrize(
    ('args', 'expected'),
    [
        ({'directions': ['outbound']}, [expected_name(p, 'out') for p in (ALICE_EXE, BOB_EXE)]),
        ({'users': ['BOB']}, [expected_name(BOB_EXE, d) for d in ('in', 'out')]),
        ({'exclude_users': ['bob', 'nobody']}, [expected_name(ALICE_EXE, d) for d in ('in', 'out')]),
    ],
    ids=['outbound-only', 'users', 'exclude_users'],
)
def test_present_covers_only_what_was_asked(args: dict[str, t.Any], expected: list[str]) -> None:
    twin = machine()
    result = run(twin, **args)
    assert names(result['added']) == sorted(expected)
    assert sorted(ours(twin)) == sorted(expected)


def test_profiles_option_sets_the_rule_profiles() -> None:
    twin = machine()
    run(twin, profiles=['public', 'domain', 'public'])
    assert {tuple(rule['profiles']) for rule in ours(twin).values()} == {('domain', 'public')}


def test_existing_rule_with_wrong_settings_is_corrected_not_duplicated() -> None:
    wrong = our_rule(BOB_EXE, 'in', profiles=['domain'], display_name='Notion (old)', enabled=False)
    twin = machine(wrong)
    result = run(twin)
    [corrected] = result['corrected']
    assert corrected['name'] == wrong['name'] and corrected['user'] == 'bob'
    assert corrected['fields'] == {'display_name': {'before': 'Notion (old)', 'after': our_rule(BOB_EXE, 'in')['display_name']},
                                   'profiles': {'before': ['domain'], 'after': ['private', 'public']},
                                   'enabled': {'before': False, 'after': True}}
    assert names(result['added']) == sorted(set(ALL_FOUR) - {wrong['name']})
    assert sorted(ours(twin)) == ALL_FOUR
    assert [r['name'] for r in twin.state['firewall_rules']].count(wrong['name']) == 1
    assert ours(twin)[wrong['name']] == our_rule(BOB_EXE, 'in')


def test_rule_names_and_programs_compare_case_insensitively() -> None:
    shouting = our_rule(ALICE_EXE, 'out', name=expected_name(ALICE_EXE, 'out').upper(), program=ALICE_EXE.upper())
    twin = machine(shouting)
    result = run(twin)
    assert result['corrected'] == [] and expected_name(ALICE_EXE, 'out') not in names(result['added'])
    wrong = {**shouting, 'profiles': ['public']}
    twin = machine(wrong)
    result = run(twin)
    assert [(c['name'], list(c['fields'])) for c in result['corrected']] == [(wrong['name'], ['profiles'])]
    assert len(ours(twin)) == 4 and ours(twin)[wrong['name']]['profiles'] == ['private', 'public']


def test_stale_rules_of_ours_are_removed_and_others_kept() -> None:
    gone = our_rule('C:\\Users\\dave\\AppData\\Local\\Programs\\Notion\\Notion.exe', 'in')
    odd_name = our_rule(ALICE_EXE, 'in', name='loopbreaker.notion-legacy-alice')
    twin = machine(gone, odd_name)
    result = run(twin)
    removed = {r['name']: r['reason'] for r in result['removed']}
    assert removed == {gone['name']: 'program not found', odd_name['name']: 'duplicate of the rule named for this program'}
    assert sorted(ours(twin)) == ALL_FOUR


def test_direction_no_longer_requested_is_removed() -> None:
    twin = machine()
    run(twin)
    result = run(twin, directions=['outbound'])
    assert {r['name']: r['reason'] for r in result['removed']} == \
        {expected_name(p, 'in'): 'direction not requested' for p in (ALICE_EXE, BOB_EXE)}
    assert sorted(ours(twin)) == sorted(expected_name(p, 'out') for p in (ALICE_EXE, BOB_EXE))


def test_rules_of_users_left_out_are_kept() -> None:
    twin = machine()
    run(twin)
    before = ours(twin)
    loads = twin.hive_loads().get(BOB_SID, 0)
    result = run(twin, exclude_users=['bob'], directions=['outbound'])
    assert twin.hive_loads().get(BOB_SID, 0) == loads, "bob's hive is not loaded for a run that leaves him out"
    assert names(result['removed']) == [expected_name(ALICE_EXE, 'in')]
    assert ours(twin)[expected_name(BOB_EXE, 'in')] == before[expected_name(BOB_EXE, 'in')]
    # bob is left out: his hive is not loaded and his Notion.exe not searched, so it is not listed
    assert [(p['user'], p['covered']) for p in result['programs']] == [('alice', True)]


# ---------------------------------------------------------------- conflicts


@pytest.mark.parametrize(
    ('conflicts', 'handling', 'after'),
    [
        ('disable', 'disabled', {**BLOCK_ALICE, 'enabled': False}),
        ('remove', 'removed', None),
        ('report', 'reported', BLOCK_ALICE),
    ],
)
def test_block_rule_naming_a_notion_exe(conflicts: str, handling: str, after: dict[str, t.Any] | None) -> None:
    twin = machine(BLOCK_ALICE)
    result = run(twin, conflicts=conflicts)
    [conflict] = result['conflicts']
    assert (conflict['name'], conflict['user'], conflict['matched_program'], conflict['handling']) == \
        (BLOCK_ALICE['name'], 'alice', ALICE_EXE, handling)
    assert rules_of(twin).get(BLOCK_ALICE['name']) == after
    assert [p['conflicts'] for p in result['programs']] == [[BLOCK_ALICE['name']], []]
    if conflicts == 'report':
        assert result['disabled'] == [] and result['removed'] == [] and record_of(twin) is None
        return
    assert [r['name'] for r in result[handling]] == [BLOCK_ALICE['name']]
    record = record_of(twin)
    assert record == {'format': 2, 'rules': [{'rule': {**BLOCK_ALICE, **FIREWALL_RULE_DEFAULTS}, 'handled': handling,
                                              'recorded': '2026-03-04T05:06:07Z (a1b2c3)'}]}
    assert result['record']['rules'] == [BLOCK_ALICE['name']]
    assert sorted(ours(twin)) == ALL_FOUR


def test_the_record_is_written_before_the_block_rule_is_changed() -> None:
    twin = machine(BLOCK_ALICE)
    run(twin)
    apply = twin.state['calls'][-1]['operations']
    assert apply[:2] == ['write_registry', 'set_firewall_rule']


def test_block_rule_is_left_alone_when_the_record_cannot_be_written() -> None:
    twin = machine(BLOCK_ALICE)
    twin.state['faults'].append({'during_op': 'write_registry', 'raise': 'Access to the registry key is denied.'})
    result = run(twin)
    assert result['failed'] is True
    assert 'Access to the registry key is denied.' in result['msg']
    assert f"{BLOCK_ALICE['name']}: skipped after an earlier failure in its group" in result['msg']
    assert rules_of(twin)[BLOCK_ALICE['name']] == BLOCK_ALICE
    assert result['disabled'] == [] and result['conflicts'][0]['handling'] == 'failed'
    assert sorted(ours(twin)) == ALL_FOUR, 'our own rules do not depend on the record'


@pytest.mark.parametrize(
    'rule',
    [
        {**BLOCK_ALICE, 'enabled': False},
        {**BLOCK_ALICE, 'action': 'allow'},
        {**BLOCK_ALICE, 'direction': 'in', 'name': 'inbound-block'},
        {**BLOCK_ALICE, 'profiles': ['domain']},
        {**BLOCK_ALICE, 'program': 'C:\\Users\\dave\\AppData\\Local\\Programs\\Notion\\Notion.exe'},
    ],
    ids=['disabled', 'allow', 'other-direction', 'other-profile', 'other-program'],
)
def test_rules_that_do_not_block_a_covered_notion_are_not_conflicts(rule: dict[str, t.Any]) -> None:
    twin = machine(rule)
    result = run(twin, directions=['outbound'])
    assert result['conflicts'] == []
    assert rules_of(twin)[rule['name']] == rule


def test_first_original_is_kept_when_a_rule_is_recorded_again() -> None:
    twin = machine(BLOCK_ALICE)
    run(twin)
    twin.state['firewall_rules'] = [r for r in twin.state['firewall_rules'] if r['name'] != BLOCK_ALICE['name']]
    twin.state['firewall_rules'].append({**BLOCK_ALICE, 'profiles': ['public'], 'description': 're-pushed'})
    result = run(twin, conflicts='remove')
    assert names(result['removed']) == [BLOCK_ALICE['name']]
    [entry] = record_of(twin)['rules']
    assert (entry['rule'], entry['handled']) == ({**BLOCK_ALICE, **FIREWALL_RULE_DEFAULTS}, 'removed')
    run(twin, state='restored')
    assert rules_of(twin)[BLOCK_ALICE['name']] == BLOCK_ALICE


def test_block_rule_listed_as_local_but_missing_from_the_local_store_is_failed_not_duplicated() -> None:
    class PolicyWindows(SimulatedWindows):
        """A rule listed without its store (an older bridge) that set/remove do not find locally."""

        def op_list_firewall_rules(self, programs: list[str] | None = None) -> dict[str, t.Any]:
            listed = super().op_list_firewall_rules(programs)
            return {'rules': listed['rules'] + [copy.deepcopy(BLOCK_ALICE)]}

    twin = PolicyWindows(machine().state)
    result = run(twin, conflicts='disable')
    assert result['failed'] is True and 'group policy' in result['msg']
    assert result['conflicts'][0]['handling'] == 'failed' and result['disabled'] == []
    twin = PolicyWindows(machine().state)
    result = run(twin, conflicts='remove')
    assert result['failed'] is True and 'group policy' in result['msg']
    assert result['conflicts'][0]['handling'] == 'failed' and result['removed'] == []


# ----------------------------------------------------------- absent/restored


def test_absent_removes_only_our_rules() -> None:
    twin = machine(BLOCK_ALICE)
    run(twin)
    disabled = rules_of(twin)[BLOCK_ALICE['name']]
    result = run(twin, state='absent')
    assert names(result['removed']) == ALL_FOUR
    assert {r['reason'] for r in result['removed']} == {'state absent'}
    assert ours(twin) == {}
    assert rules_of(twin) == {'ChromeIn': UNRELATED, BLOCK_ALICE['name']: disabled}
    assert record_of(twin) is not None, 'the record stays for a later restore'
    assert run(twin, state='absent')['changed'] is False


def test_absent_leaves_conflicts_as_they_are() -> None:
    twin = machine(BLOCK_ALICE, our_rule(ALICE_EXE, 'in'))
    result = run(twin, state='absent')
    assert [(c['name'], c['handling']) for c in result['conflicts']] == [(BLOCK_ALICE['name'], 'left')]
    assert rules_of(twin)[BLOCK_ALICE['name']] == BLOCK_ALICE
    assert names(result['removed']) == [expected_name(ALICE_EXE, 'in')]


@pytest.mark.parametrize('conflicts', ['disable', 'remove'])
def test_restored_puts_the_block_rule_back_byte_for_byte(conflicts: str) -> None:
    twin = machine(BLOCK_ALICE)
    before = copy.deepcopy(rules_of(twin))
    run(twin, conflicts=conflicts)
    result = run(twin, state='restored')
    assert [r['name'] for r in result['restored']] == [BLOCK_ALICE['name']]
    assert names(result['removed']) == ALL_FOUR
    assert rules_of(twin) == before
    assert record_of(twin) is None and result['record']['rules'] == []
    again = run(twin, state='restored')
    assert again['changed'] is False and len(twin.state['calls']) == 5, 'nothing left to restore: probe only'


def test_restored_with_users_keeps_the_others_recorded() -> None:
    block_bob = {**BLOCK_ALICE, 'name': 'block-bob', 'program': BOB_EXE}
    twin = machine(BLOCK_ALICE, block_bob)
    run(twin)
    result = run(twin, state='restored', users=['alice'])
    assert [r['name'] for r in result['restored']] == [BLOCK_ALICE['name']]
    assert names(result['removed']) == sorted(expected_name(ALICE_EXE, d) for d in ('in', 'out'))
    assert [e['rule']['name'] for e in record_of(twin)['rules']] == ['block-bob']
    assert rules_of(twin)['block-bob']['enabled'] is False
    run(twin, state='restored')
    assert rules_of(twin)['block-bob'] == block_bob and record_of(twin) is None


def test_unreadable_record_stops_changes_that_need_it() -> None:
    twin = machine(BLOCK_ALICE)
    twin.set_registry('HKLM', 'SOFTWARE\\loopbreaker\\notion\\firewall', {'record': {'type': 'REG_SZ', 'data': '{oops'}})
    before = snapshot(twin)
    for args in ({}, {'state': 'restored'}):
        with pytest.raises(RequestError, match=r'cannot be read: .* Nothing was changed'):
            run(twin, **args)
    assert snapshot(twin) == before
    assert run(twin, conflicts='report')['conflicts'][0]['handling'] == 'reported'


# ------------------------------------------------------- calls and converging


def test_check_mode_is_one_probe_call_and_changes_nothing() -> None:
    messy = (BLOCK_ALICE, our_rule(BOB_EXE, 'in', profiles=['domain']),
             our_rule('C:\\Users\\dave\\AppData\\Local\\Programs\\Notion\\Notion.exe', 'out'))
    twin = machine(*messy)
    before = snapshot(twin)
    planned = run(twin, check_mode=True)
    assert snapshot(twin) == before
    assert [(c['check_mode'], [OPERATIONS[o].mutates for o in c['operations']]) for c in twin.state['calls']] == \
        [(True, [False] * 6)]
    applied = run(machine(*messy))
    assert planned['changed'] is True
    for key in ('added', 'corrected', 'removed', 'disabled', 'conflicts', 'programs', 'record', 'diff'):
        assert planned[key] == applied[key], key


def test_a_real_run_is_two_calls() -> None:
    twin = machine(BLOCK_ALICE)
    run(twin)
    calls = twin.state['calls']
    assert [c['check_mode'] for c in calls] == [True, False]
    assert calls[0]['operations'] == ['get_profiles', 'stat_paths', 'stat_paths', 'list_firewall_rules',
                                      'read_registry', 'list_packages']
    assert all(OPERATIONS[o].mutates for o in calls[1]['operations'])


def test_repeated_runs_converge_to_one_set_of_rules_per_notion_exe() -> None:
    twin = machine(BLOCK_ALICE, our_rule(BOB_EXE, 'in', profiles=['domain']),
                   our_rule(BOB_EXE, 'out', name='loopbreaker.notion-00000000-out'),
                   our_rule('C:\\Users\\dave\\AppData\\Local\\Programs\\Notion\\Notion.exe', 'in'))
    first = run(twin)
    assert first['changed'] is True
    for _attempt in range(3):
        calls = len(twin.state['calls'])
        again = run(twin)
        assert again['changed'] is False
        assert len(twin.state['calls']) == calls + 1, 'converged runs only probe'
        assert again['added'] == again['corrected'] == again['removed'] == again['disabled'] == []
    assert sorted(ours(twin)) == ALL_FOUR
    for path in (ALICE_EXE, BOB_EXE):
        for direction in ('in', 'out'):
            assert [r for r in twin.state['firewall_rules'] if r['program'].lower() == path.lower()
                    and r['direction'] == direction and r['action'] == 'allow'] == [our_rule(path, direction)]
    assert {r['status'] for p in again['programs'] for r in p['rules']} == {'unchanged'}


def test_diff_lists_rules_before_and_after() -> None:
    twin = machine(BLOCK_ALICE)
    result = run(twin)
    before = result['diff']['before'].splitlines()
    after = result['diff']['after'].splitlines()
    assert before == [f"{BLOCK_ALICE['name']}: block outbound [domain, private, public] enabled {ALICE_EXE}"]
    assert f"{BLOCK_ALICE['name']}: block outbound [domain, private, public] disabled {ALICE_EXE}" in after
    assert f"{expected_name(BOB_EXE, 'in')}: allow inbound [private, public] enabled {BOB_EXE}" in after
    assert len(after) == 5


# ------------------------------------------------------------ other programs


def test_machine_wide_and_extra_programs_are_covered() -> None:
    twin = machine()
    machine_exe = 'C:\\Program Files\\Notion\\Notion.exe'
    extra = 'D:\\Apps\\Notion\\Notion.exe'
    twin.write(machine_exe, 'MZ')
    twin.write(extra, 'MZ')
    result = run(twin, users=['alice'], extra_programs=[extra, 'E:\\Missing\\Notion.exe'])
    assert [(p['path'], p['user'], p['source']) for p in result['programs']] == [
        (ALICE_EXE, 'alice', 'profile'), (machine_exe, 'machine', 'machine'), (extra, 'machine', 'extra')]
    assert sorted(ours(twin)) == sorted(expected_name(p, d) for p in (ALICE_EXE, machine_exe, extra) for d in ('in', 'out'))
    assert ours(twin)[expected_name(machine_exe, 'in')]['display_name'] == 'Notion (loopbreaker.notion) - machine - inbound'
    assert result['notices'] == ['extra_programs: E:\\Missing\\Notion.exe was not found']
    dropped = run(twin, users=['alice'])
    assert names(dropped['removed']) == sorted(expected_name(extra, d) for d in ('in', 'out'))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        ({'directions': []}, 'directions must name at least one of inbound, outbound'),
        ({'profiles': []}, 'profiles must name at least one of domain, private, public'),
        ({'users': ['']}, 'users must not contain empty names'),
        ({'exclude_users': ['alice', ' ']}, 'exclude_users must not contain empty names'),
        ({'users': ['mallory']}, 'users lists unknown user(s): mallory; profiles on this host: alice, bob, carol'),
        ({'extra_programs': ['Notion.exe']}, "extra_programs on Windows must be absolute paths to an .exe"),
        ({'extra_programs': ['D:\\Apps\\Notion']}, "extra_programs on Windows must be absolute paths to an .exe"),
        ({'extra_programs': ['D:\\*\\Notion.exe']}, "extra_programs must be exact paths, without wildcards: 'D:\\\\*\\\\Notion.exe'"),
    ],
)
def test_bad_input_fails_clearly_and_changes_nothing(args: dict[str, t.Any], message: str) -> None:
    twin = machine(BLOCK_ALICE)
    before = snapshot(twin)
    with pytest.raises(RequestError) as caught:
        run(twin, **args)
    assert message in str(caught.value)
    assert snapshot(twin) == before
    assert not [op for call in twin.state['calls'] for op in call['operations'] if OPERATIONS[op].mutates]


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        ({'state': 'gone'}, 'value of state must be one of: present, absent, restored, got: gone'),
        ({'directions': ['sideways']}, 'value of directions must be one or more of: inbound, outbound. Got no match for: sideways'),
        ({'profiles': ['home']}, 'value of profiles must be one or more of: domain, private, public. Got no match for: home'),
        ({'conflicts': 'ignore'}, 'value of conflicts must be one of: remove, disable, report, got: ignore'),
        ({'users': ['a'], 'exclude_users': ['b']}, 'parameters are mutually exclusive: users|exclude_users'),
    ],
)
def test_argument_spec_rejects(args: dict[str, t.Any], message: str) -> None:
    result = ArgumentSpecValidator(_firewall.ARGUMENT_SPEC, mutually_exclusive=_firewall.MUTUALLY_EXCLUSIVE).validate(args)
    assert message in ' '.join(result.error_messages)


def test_linux_is_not_applicable_and_still_validates() -> None:
    result = _firewall.not_applicable(params())
    assert (result['changed'], result['not_applicable'], result['platform']) == (False, True, 'linux')
    assert 'no firewall integration on Linux' in result['msg']
    with pytest.raises(RequestError, match='directions must name at least one'):
        _firewall.not_applicable(params(directions=[]))


def test_every_state_reports_what_is_recorded() -> None:
    twin = machine(BLOCK_ALICE)
    run(twin)
    for state in ('present', 'absent'):
        assert run(twin, state=state)['record'] == {'key': 'HKLM\\SOFTWARE\\loopbreaker\\notion\\firewall',
                                                    'value': 'record', 'rules': [BLOCK_ALICE['name']]}
    assert run(twin, state='restored', check_mode=True)['record']['rules'] == []
    assert record_of(twin) is not None

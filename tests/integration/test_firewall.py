"""firewall end to end: real ansible-playbook runs through the action plugin and the native module."""
from __future__ import annotations

import copy
import typing as t

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import OPERATIONS
from ansible_collections.loopbreaker.notion.plugins.module_utils._firewall import rule_name
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_windows_user

from .conftest import Lab, assert_ok

ALICE_EXE = 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe'
BOB_EXE = 'C:\\Users\\bob\\AppData\\Local\\Programs\\Notion\\Notion.exe'
PROBE = ['get_profiles', 'stat_paths', 'stat_paths', 'list_firewall_rules', 'read_registry', 'list_packages']
BLOCK_ALICE = {
    'name': '{0E9A4B1C-2D3E-4F50-8A6B-7C8D9E0F1A2B}', 'display_name': 'Block Notion', 'direction': 'out',
    'action': 'block', 'profiles': ['domain', 'private', 'public'], 'program': ALICE_EXE, 'enabled': True,
    'description': 'IT ticket 4711',
}
UNRELATED = {
    'name': 'ChromeIn', 'display_name': 'Google Chrome', 'direction': 'in', 'action': 'allow', 'profiles': ['private'],
    'program': 'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe', 'enabled': True, 'description': '',
}


def seed(lab: Lab, *, with_ours: bool = True) -> list[dict[str, t.Any]]:
    """alice (logged on) and bob (logged off) with Notion, carol without; a block rule for alice's
    exe, and (with_ours) a rule of ours for bob with the wrong profiles and one for a removed install."""
    twin = lab.twin()
    seed_windows_user(twin, 'alice', 'S-1-5-21-1-2-3-1001', loaded=True)
    seed_windows_user(twin, 'bob', 'S-1-5-21-1-2-3-1002', loaded=False)
    seed_windows_user(twin, 'carol', 'S-1-5-21-1-2-3-1003', loaded=False, with_notion=False)
    rules = [copy.deepcopy(UNRELATED), copy.deepcopy(BLOCK_ALICE)]
    if with_ours:
        rules.append({'name': rule_name(BOB_EXE, 'in'), 'display_name': 'Notion', 'direction': 'in', 'action': 'allow',
                      'profiles': ['domain'], 'program': BOB_EXE, 'enabled': True, 'description': ''})
        gone = 'C:\\Users\\dave\\AppData\\Local\\Programs\\Notion\\Notion.exe'
        rules.append({'name': rule_name(gone, 'out'), 'display_name': 'Notion', 'direction': 'out', 'action': 'allow',
                      'profiles': ['private', 'public'], 'program': gone, 'enabled': True, 'description': ''})
    twin.state['firewall_rules'] = rules
    lab.save(twin)
    return copy.deepcopy(rules)


def ours(state: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    return [r for r in state['firewall_rules'] if r['name'].startswith('loopbreaker.notion-')]


def by_name(rules: list[dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    return {rule['name']: rule for rule in rules}


@pytest.mark.integration
def test_four_runs_converge_then_restore_on_windows(lab: Lab) -> None:
    seeded = seed(lab)
    mounted = lab.state()['mounted_hives']
    completed, results = lab.play('firewall_four_runs', 'win')
    assert_ok(completed)
    apply = results['apply']
    assert sorted((a['user'], a['direction']) for a in apply['added']) == \
        [('alice', 'inbound'), ('alice', 'outbound'), ('bob', 'outbound')]
    assert [(c['user'], sorted(c['fields'])) for c in apply['corrected']] == \
        [('bob', ['description', 'display_name', 'profiles'])]
    assert [(r['program'], r['reason']) for r in apply['removed']] == \
        [('C:\\Users\\dave\\AppData\\Local\\Programs\\Notion\\Notion.exe', 'program not found')]
    assert [(d['name'], d['user']) for d in apply['disabled']] == [(BLOCK_ALICE['name'], 'alice')]
    assert [p['user'] for p in apply['programs']] == ['alice', 'bob']
    assert apply['users_without_notion'] == ['carol']

    state = lab.state()
    kinds = ['probe' if c['operations'] == PROBE else 'apply' for c in state['calls']]
    assert kinds == ['probe', 'probe', 'apply', 'probe', 'probe'], 'check: 1 call, apply: 2, then 1 and 1'
    assert [c['check_mode'] for c in state['calls']] == [True, False, False, False, True], 'the tasks\' check mode'
    per_exe = {(r['program'], r['direction']) for r in ours(state)}
    assert len(ours(state)) == 4 and per_exe == {(p, d) for p in (ALICE_EXE, BOB_EXE) for d in ('in', 'out')}
    assert {tuple(r['profiles']) for r in ours(state)} == {('private', 'public')}
    assert by_name(state['firewall_rules'])[BLOCK_ALICE['name']] == {**BLOCK_ALICE, 'enabled': False}
    assert state['mounted_hives'] == mounted, 'every hive the batches loaded was unloaded'

    completed, restored = lab.play('firewall_four_runs', 'win', {'firewall_args': {'state': 'restored'}})
    assert_ok(completed)
    assert [r['name'] for r in restored['apply']['restored']] == [BLOCK_ALICE['name']]
    assert len(restored['apply']['removed']) == 4
    after = lab.state()
    assert ours(after) == []
    assert by_name(after['firewall_rules']) == {r['name']: r for r in seeded if not r['name'].startswith('loopbreaker')}, \
        'every rule that is not ours is back byte for byte'
    assert 'record' not in after['hives']['HKLM'].get('software\\loopbreaker\\notion\\firewall', {}).get('values', {})


@pytest.mark.integration
def test_linux_is_not_applicable(lab: Lab) -> None:
    completed, results = lab.play('firewall_four_runs', 'posix', {'expect_change': False})
    assert_ok(completed)
    for run in results.values():
        assert (run['changed'], run['not_applicable'], run['platform']) == (False, True, 'linux')
        assert 'no firewall integration on Linux' in run['msg']


BAD_INPUT = [
    ('unknown state', {'state': 'gone'}, 'value of state must be one of: present, absent, restored, got: gone'),
    ('unknown direction', {'directions': ['sideways']},
     'value of directions must be one or more of: inbound, outbound. Got no match for: sideways'),
    ('no directions', {'directions': []}, 'directions must name at least one of inbound, outbound'),
    ('unknown conflicts', {'conflicts': 'ignore'}, 'value of conflicts must be one of: remove, disable, report, got: ignore'),
    ('users and exclude_users', {'users': ['alice'], 'exclude_users': ['bob']},
     'parameters are mutually exclusive: users|exclude_users'),
    ('empty user name', {'users': ['']}, 'users must not contain empty names'),
]
WINDOWS_ONLY = [
    ('unknown user', {'users': ['mallory']}, 'users lists unknown user(s): mallory; profiles on this host: alice, bob, carol'),
    ('relative extra program', {'extra_programs': ['Notion.exe']}, 'extra_programs on Windows must be absolute paths'),
    ('profiles_root on Windows', {'profiles_root': 'C:\\Users'},
     "profiles_root applies to macOS and Linux hosts; on Windows the profiles come from the host's ProfileList"),
]
POSIX_ONLY = [
    ('relative profiles_root', {'profiles_root': 'homes'}, "profiles_root must be an absolute path, got 'homes'"),
]


@pytest.mark.integration
@pytest.mark.parametrize('host', ['win', 'posix'])
def test_bad_input_fails_clearly_and_changes_nothing(lab: Lab, host: str) -> None:
    seed(lab)
    cases = BAD_INPUT + (WINDOWS_ONLY if host == 'win' else POSIX_ONLY)
    before = lab.state()
    completed, outcomes = lab.play('firewall_bad_input', host,
                                   {'cases': [{'name': name, 'args': args} for name, args, _m in cases]})
    assert_ok(completed)
    assert [o['case']['name'] for o in outcomes] == [name for name, _a, _m in cases]
    for outcome, (name, _args, message) in zip(outcomes, cases, strict=True):
        assert outcome.get('failed') is True, (name, outcome)
        assert message in outcome['msg'], (name, outcome['msg'])
        assert not outcome.get('changed'), name
    after = lab.state()
    for key in ('files', 'hives', 'mounted_hives', 'firewall_rules'):
        assert after[key] == before[key], key
    sent = [name for call in after['calls'] for name in call['operations']]
    assert not [name for name in sent if OPERATIONS[name].mutates], 'only probes were sent'

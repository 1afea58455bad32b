"""proxy end to end: real ansible-playbook runs through the action plugin and the native module."""
from __future__ import annotations

import base64
import struct
import typing as t
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.plugins.module_utils import _inet_proxy as blob
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import OPERATIONS
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_user_proxy

from .conftest import Lab, assert_ok

ALICE = 'S-1-5-21-7-8-9-1001'   # logged on, manual proxy with her own bypass list
BOB = 'S-1-5-21-7-8-9-1002'     # logged off, manual proxy, no SavedLegacySettings
CAROL = 'S-1-5-21-7-8-9-1003'   # logged off, PAC script
USERS = {'alice': ALICE, 'bob': BOB, 'carol': CAROL}
CORP_PROXY = 'proxy.corp.example:8080'
PAC_URL = 'http://wpad.corp.example/proxy.pac'
CONNECTIONS = 'software\\microsoft\\windows\\currentversion\\internet settings\\connections'
INTERNET_SETTINGS = 'software\\microsoft\\windows\\currentversion\\internet settings'
RECORD = 'software\\loopbreaker\\notion\\proxy'
BLOB_NAMES = ('DefaultConnectionSettings', 'SavedLegacySettings')
NOTION_HOSTS = ('www.notion.so', 'msgstore.www.notion.so', 'app.notion.com', 'file.notion.so',
                'prod-files-secure.s3.us-west-2.amazonaws.com')
PAC_NOTE = 'no manual proxy in use: nothing to bypass (a PAC script is in use: its own rules decide)'
NOT_APPLICABLE = ("GNOME proxy settings need the user's D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set); "
                  "on Linux, Notion follows the desktop session's proxy")


def seed(lab: Lab) -> None:
    twin = lab.twin()
    twin.add_profile('systemprofile', 'S-1-5-18', loaded=True, profile_path='C:\\Windows\\System32\\config\\systemprofile')
    twin.add_profile('alice', ALICE, loaded=True)
    twin.add_profile('bob', BOB, loaded=False)
    twin.add_profile('carol', CAROL, loaded=False)
    seed_user_proxy(twin, ALICE, proxy_server=CORP_PROXY, bypass='*.corp.example;<local>', counter=21)
    seed_user_proxy(twin, BOB, proxy_server=CORP_PROXY, counter=4, saved_legacy=False)
    seed_user_proxy(twin, CAROL, pac_url=PAC_URL, counter=60)
    lab.save(twin)


def hive_values(state: dict[str, t.Any], sid: str, key: str) -> dict[str, t.Any]:
    entry = state['hives'][sid].get(key)
    return {name: value['data'] for name, value in entry['values'].items()} if entry else {}


def blobs(state: dict[str, t.Any], sid: str) -> dict[str, bytes | None]:
    found = hive_values(state, sid, CONNECTIONS)
    return {name: base64.b64decode(found[name]) if name in found else None for name in BLOB_NAMES}


def counter(data: bytes) -> int:
    return struct.unpack_from('<I', data, 4)[0]


def statuses(result: dict[str, t.Any]) -> dict[str, str]:
    return {entry['name']: entry['status'] for entry in result['targets']}


@pytest.mark.integration
def test_bypass_then_restore_in_four_runs_on_windows(lab: Lab) -> None:
    seed(lab)
    original = lab.state()
    completed, bypass = lab.play('proxy_four_runs', 'win', {'proxy_args': {'mode': 'bypass'}})
    assert_ok(completed)
    assert [bypass[run]['changed'] for run in ('check', 'apply', 'again', 'again_check')] == [True, True, False, False]
    assert statuses(bypass['apply']) == {'alice': 'changed', 'bob': 'changed', 'carol': 'unchanged'}
    assert [e['notes'] for e in bypass['apply']['targets'] if e['name'] == 'carol'] == [[PAC_NOTE]]
    assert bypass['apply']['scope'] == 'user' and bypass['apply']['winhttp']['action'] == 'kept'
    state = lab.state()
    kinds = ['probe' if call['operations'][0] == 'get_profiles' else 'apply' for call in state['calls']]
    assert kinds == ['probe', 'probe', 'apply', 'probe', 'probe'], 'check: 1 call, apply: 2, then 1 and 1'
    assert [call['check_mode'] for call in state['calls']] == [True, False, False, False, True]
    assert state['mounted_hives'] == []
    for sid in (ALICE, BOB):
        settings = blob.parse(blobs(state, sid)['DefaultConnectionSettings'])
        assert blob.proxy_applies_to(settings, 'example.com')
        assert not [host for host in NOTION_HOSTS if blob.proxy_applies_to(settings, host)]
        assert hive_values(state, sid, INTERNET_SETTINGS)['ProxyOverride'] == settings.bypass_list
    assert state['hives'][CAROL] == original['hives'][CAROL]

    completed, restore = lab.play('proxy_four_runs', 'win', {'proxy_args': {'mode': 'restore'}})
    assert_ok(completed)
    assert [restore[run]['changed'] for run in ('check', 'apply', 'again', 'again_check')] == [True, True, False, False]
    assert statuses(restore['apply']) == {'alice': 'changed', 'bob': 'changed', 'carol': 'unchanged'}
    state = lab.state()
    assert state['mounted_hives'] == []
    for sid in USERS.values():
        for name, before in blobs(original, sid).items():
            after = blobs(state, sid)[name]
            if before is None:
                assert after is None, (sid, name)
                continue
            assert after[:4] == before[:4] and after[8:] == before[8:], (sid, name)
            assert counter(after) >= counter(before), (sid, name)
            if sid != CAROL:
                assert counter(after) > counter(before), (sid, name)
        assert hive_values(state, sid, INTERNET_SETTINGS) == hive_values(original, sid, INTERNET_SETTINGS)
        assert hive_values(state, sid, RECORD) == {}


@pytest.mark.integration
def test_linux_without_a_session_bus_is_not_applicable(lab: Lab, tmp_path: Path) -> None:
    home = tmp_path / 'home'
    home.mkdir()
    lab.env.pop('DBUS_SESSION_BUS_ADDRESS', None)
    lab.env['HOME'] = str(home)
    completed, results = lab.play('proxy_four_runs', 'posix', {'proxy_args': {'mode': 'bypass'}, 'expect_changes': False})
    assert_ok(completed)
    for run in ('check', 'apply', 'again', 'again_check'):
        result = results[run]
        assert result['changed'] is False and result['not_applicable'] is True, run
        assert result['platform'] == 'linux' and result['mode'] == 'bypass'
        assert result['msg'] == NOT_APPLICABLE
    assert not (home / '.local/share/loopbreaker/proxy-record.json').exists()


WIN_CASES = [
    ('unknown mode', {'mode': 'sideways'}, 'value of mode must be one of: direct, bypass, restore, got: sideways'),
    ('empty bypass_hosts', {'mode': 'bypass', 'bypass_hosts': []},
     'bypass_hosts must not be empty: leave it out to use the Notion hosts'),
    ('bypass_hosts with direct', {'mode': 'direct', 'bypass_hosts': ['*.notion.so']},
     'bypass_hosts only applies to mode bypass, not direct'),
    ('unknown user', {'mode': 'bypass', 'users': ['alice', 'mallory']},
     'users lists unknown user(s): mallory; profiles on this host: alice, bob, carol'),
    ('services on Windows', {'mode': 'bypass', 'services': ['Wi-Fi']},
     'services applies to macOS only; on Windows proxies are per user'),
]
POSIX_CASES = [
    ('unknown mode', {'mode': 'sideways'}, 'value of mode must be one of: direct, bypass, restore, got: sideways'),
    ('empty bypass_hosts', {'mode': 'bypass', 'bypass_hosts': []},
     'bypass_hosts must not be empty: leave it out to use the Notion hosts'),
    ('users on posix', {'mode': 'bypass', 'users': ['alice']},
     'users and exclude_users apply to Windows; on macOS proxies are per network service (see services) and on '
     'Linux per desktop session'),
    ('services on Linux', {'mode': 'bypass', 'services': ['Wi-Fi']}, 'services applies to macOS only'),
]


@pytest.mark.integration
@pytest.mark.parametrize('host', ['win', 'posix'])
def test_bad_input_fails_clearly_and_changes_nothing(lab: Lab, host: str, tmp_path: Path) -> None:
    seed(lab)
    home = tmp_path / 'home'
    home.mkdir()
    lab.env['HOME'] = str(home)
    cases = WIN_CASES if host == 'win' else POSIX_CASES
    before = lab.state()
    completed, outcomes = lab.play('proxy_four_runs', host,
                                   {'proxy_cases': [{'name': name, 'args': args} for name, args, _message in cases]})
    assert_ok(completed)
    assert [outcome['case']['name'] for outcome in outcomes] == [case[0] for case in cases]
    for outcome, (name, _args, message) in zip(outcomes, cases):
        assert outcome.get('failed') is True, (name, outcome)
        assert outcome['msg'] == message, (name, outcome['msg'])
        assert not outcome.get('changed'), name
    after = lab.state()
    for key in ('hives', 'mounted_hives', 'profiles', 'files'):
        assert after[key] == before[key], key
    sent = [name for call in after['calls'] for name in call['operations']]
    assert not [name for name in sent if OPERATIONS[name].mutates], 'only probes were sent'
    if host == 'win':
        assert [call['operations'][0] for call in after['calls']] == ['get_profiles'], \
            'only the unknown user needed a probe; the other cases fail before any call'
    else:
        assert after['calls'] == []
        assert not (home / '.local').exists()

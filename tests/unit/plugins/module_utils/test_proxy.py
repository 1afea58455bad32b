# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_proxy.py: the Windows planner, run through the bridge twin.

Every test drives ``_proxy.run`` against SimulatedWindows exactly as the action
plugin does (probe batch, then one apply batch), and checks the machine state
the twin is left in: hive values, blobs byte for byte, mounted hives, calls.
Expectations are written out here (blob bytes are compared with the bytes the
test seeded, not with anything _proxy computed).
"""
from __future__ import annotations

import base64
import copy
import datetime
import json
import struct
import typing as t

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _inet_proxy as blob
from ansible_collections.loopbreaker.notion.plugins.module_utils import _proxy
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_user_proxy
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
INTERNET_SETTINGS = 'Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings'
CONNECTIONS = INTERNET_SETTINGS + '\\Connections'
RECORD = 'Software\\loopbreaker\\notion\\proxy'
POLICY = 'SOFTWARE\\Policies\\Microsoft\\Windows\\CurrentVersion\\Internet Settings'
LEGACY = ('ProxyEnable', 'ProxyServer', 'ProxyOverride', 'AutoConfigURL')
CORP_PROXY = 'proxy.corp.example:8080'
PAC_URL = 'http://wpad.corp.example/proxy.pac'
# Hosts Notion's desktop app talks to (the facts note): all must bypass the proxy after mode bypass.
NOTION_HOSTS = ('www.notion.so', 'msgstore.www.notion.so', 'app.notion.com', 'file.notion.so',
                'prod-files-secure.s3.us-west-2.amazonaws.com')
OTHER_HOSTS = ('example.com', 'intranet.example.org', 'notion.so.evil.example')
HIVE_ERROR = 'The process cannot access the file because it is being used by another process.'
PAC_NOTE = 'no manual proxy in use: nothing to bypass (a PAC script is in use: its own rules decide)'
MACHINE_MSG = ("ProxySettingsPerUser is 0 (machine-wide proxy policy): the machine-wide settings in HKLM were used "
               "instead of each user's")


def sid(n: int) -> str:
    return f'S-1-5-21-4444-5555-6666-{1000 + n}'


class Recording(SimulatedWindows):
    """The twin, also remembering which hives each batch loaded (and so unloaded)."""

    def __init__(self, state: dict[str, t.Any]) -> None:
        super().__init__(state)
        self.loaded_per_batch: list[list[str]] = []

    def end_batch(self) -> dict[str, t.Any]:
        extra = super().end_batch()
        self.loaded_per_batch.append(list(extra['hives_loaded']))
        return extra


# ------------------------------------------------------------------- seeding


def machine(*users: tuple[str, int, bool], system: bool = True) -> Recording:
    """A machine with SYSTEM and the given (name, n, logged_on) users; no proxy settings yet."""
    twin = Recording(empty_state('WS01'))
    if system:
        twin.add_profile('systemprofile', 'S-1-5-18', loaded=True,
                         profile_path='C:\\Windows\\System32\\config\\systemprofile')
    for name, n, loaded in users:
        twin.add_profile(name, sid(n), loaded=loaded)
    return twin


def raw_blob(*, version: int = 0x46, counter: int = 7, flags: int = 0x03, proxy: str = '', bypass: str = '',
             pac: str = '', trailing: bytes = bytes(32)) -> bytes:
    """A blob written byte by byte here, independently of _inet_proxy.build."""
    def string(text: str) -> bytes:
        return struct.pack('<I', len(text)) + text.encode('ascii')
    body = struct.pack('<III', version, counter, flags) + string(proxy) + string(bypass)
    if version != 0x28:
        body += string(pac)
    return body + trailing


def put_blobs(twin: SimulatedWindows, hive: str, values: dict[str, bytes]) -> None:
    twin.set_registry(hive, CONNECTIONS, {name: {'type': 'REG_BINARY', 'data': base64.b64encode(data).decode()}
                                          for name, data in values.items()})


def put_legacy(twin: SimulatedWindows, hive: str, values: dict[str, t.Any]) -> None:
    twin.set_registry(hive, INTERNET_SETTINGS, {
        name: {'type': 'REG_DWORD' if name == 'ProxyEnable' else 'REG_SZ', 'data': value}
        for name, value in values.items()})


# ------------------------------------------------------------------ reading


def values(twin: SimulatedWindows, hive: str, key: str) -> dict[str, t.Any]:
    entry = twin.state['hives'].get(hive, {}).get(key.lower())
    return {name: value['data'] for name, value in entry['values'].items()} if entry else {}


def blob_bytes(twin: SimulatedWindows, hive: str, name: str = 'DefaultConnectionSettings') -> bytes | None:
    data = values(twin, hive, CONNECTIONS).get(name)
    return None if data is None else base64.b64decode(data)


def settings_of(twin: SimulatedWindows, hive: str, name: str = 'DefaultConnectionSettings') -> blob.ConnectionSettings:
    data = blob_bytes(twin, hive, name)
    assert data is not None, f'{hive} has no {name}'
    return blob.parse(data)


def legacy(twin: SimulatedWindows, hive: str) -> dict[str, t.Any]:
    return {name: value for name, value in values(twin, hive, INTERNET_SETTINGS).items() if name in LEGACY}


def without_calls(twin: SimulatedWindows) -> dict[str, t.Any]:
    state = copy.deepcopy(twin.state)
    state.pop('calls')
    return state


def counter(data: bytes) -> int:
    return struct.unpack_from('<I', data, 4)[0]


# ------------------------------------------------------------------ running


def params(**args: t.Any) -> dict[str, t.Any]:
    validated = ArgumentSpecValidator(_proxy.ARGUMENT_SPEC, mutually_exclusive=_proxy.MUTUALLY_EXCLUSIVE).validate(args)
    assert not validated.error_messages, validated.error_messages
    return validated.validated_parameters


def run(twin: SimulatedWindows, *, check_mode: bool = False, **args: t.Any) -> dict[str, t.Any]:
    return _proxy.run(twin, params(**args), check_mode=check_mode, now=NOW)


def target(result: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    [entry] = [entry for entry in result['targets'] if entry['name'] == name]
    return entry


def statuses(result: dict[str, t.Any]) -> dict[str, str]:
    return {entry['name']: entry['status'] for entry in result['targets']}


def calls(twin: SimulatedWindows) -> list[bool]:
    return [call['check_mode'] for call in twin.state['calls']]


def corporate_machine() -> Recording:
    """alice (logged on, manual proxy with a bypass list), bob (logged off, manual proxy, no
    SavedLegacySettings), carol (logged off, PAC script), dave (logged off, never configured)."""
    twin = machine(('alice', 1, True), ('bob', 2, False), ('carol', 3, False), ('dave', 4, False))
    seed_user_proxy(twin, sid(1), proxy_server=CORP_PROXY, bypass='*.corp.example;<local>', counter=11)
    seed_user_proxy(twin, sid(2), proxy_server=CORP_PROXY, counter=3, saved_legacy=False)
    seed_user_proxy(twin, sid(3), pac_url=PAC_URL, auto_detect=True, counter=40)
    return twin


# ================================================================ users & hives


def test_logged_on_and_logged_off_users_are_both_changed_and_every_hive_loaded_is_unloaded() -> None:
    twin = corporate_machine()
    result = run(twin, mode='bypass')
    assert result['changed'] is True and 'failed' not in result
    assert statuses(result) == {'alice': 'changed', 'bob': 'changed', 'carol': 'unchanged', 'dave': 'not_configured'}
    for n in (1, 2):
        assert settings_of(twin, sid(n)).flags & blob.ProxyFlags.PROXY
        assert not blob.proxy_applies_to(settings_of(twin, sid(n)), 'www.notion.so')
    logged_off = {sid(2), sid(3), sid(4)}
    probe, apply = twin.loaded_per_batch
    assert set(probe) == logged_off, 'the probe loads every logged-off hive, never a loaded one'
    assert set(apply) == {sid(2)}, 'the apply batch loads only the hive it writes to (once per operation)'
    assert twin.state['mounted_hives'] == []
    assert not [p for p in twin.state['profiles'] if p['sid'] in logged_off and p['loaded']]


def test_users_and_exclude_users_narrow_the_targets() -> None:
    twin = corporate_machine()
    bob_before = copy.deepcopy(twin.state['hives'][sid(2)])
    result = run(twin, mode='bypass', exclude_users=['BOB'])
    assert [entry['name'] for entry in result['targets']] == ['alice', 'carol', 'dave']
    assert twin.state['hives'][sid(2)] == bob_before
    result = run(twin, mode='bypass', users=['bob'])
    assert statuses(result) == {'bob': 'changed'}


def test_a_hive_that_fails_to_load_fails_that_user_only() -> None:
    twin = machine(('alice', 1, True), ('carol', 3, False))
    twin.add_profile('bob', sid(2), loaded=False, hive_error=HIVE_ERROR)
    for n in (1, 2, 3):
        seed_user_proxy(twin, sid(n), proxy_server=CORP_PROXY)
    bob_before = copy.deepcopy(twin.state['hives'][sid(2)])
    result = run(twin, mode='bypass')
    assert result['failed'] is True
    assert result['msg'] == f"bob: Cannot load hive of 'bob': {HIVE_ERROR}"
    assert target(result, 'bob')['status'] == 'failed'
    assert target(result, 'bob')['notes'] == [f"Cannot load hive of 'bob': {HIVE_ERROR}"]
    assert statuses(result)['alice'] == statuses(result)['carol'] == 'changed'
    for n in (1, 3):
        assert not blob.proxy_applies_to(settings_of(twin, sid(n)), 'msgstore.www.notion.so')
    assert twin.state['hives'][sid(2)] == bob_before
    assert twin.state['mounted_hives'] == []


def test_a_failing_write_fails_the_users_and_leaves_no_blob_without_its_record() -> None:
    twin = corporate_machine()
    twin.state['faults'].append({'during_op': 'write_registry', 'raise': 'Access is denied.'})
    hives_before = copy.deepcopy(twin.state['hives'])
    result = run(twin, mode='bypass')
    assert result['failed'] is True
    assert 'write_registry: Access is denied.' in result['msg']
    assert 'alice: Access is denied.' in result['msg'] and 'bob: Access is denied.' in result['msg']
    assert statuses(result) == {'alice': 'failed', 'bob': 'failed', 'carol': 'unchanged', 'dave': 'not_configured'}
    # The record is the first write of each user: when it fails, the blob write is skipped.
    assert twin.state['hives'] == hives_before
    assert twin.state['mounted_hives'] == []


class FailsForOneUser(Recording):
    """The twin, where every registry write in one user's hive is denied (the others' succeed)."""

    denied = sid(2)

    def op_write_registry(self, key: str, values: dict[str, t.Any], sid: str | None = None) -> dict[str, t.Any]:
        if sid == self.denied:
            raise BridgeOperationError('Access is denied.')
        return super().op_write_registry(key, values, sid)


def test_changed_counts_only_the_writes_that_happened() -> None:
    """Every write fails: the plan had changes, the host has none, so changed is false."""
    twin = corporate_machine()
    twin.state['faults'].append({'during_op': 'write_registry', 'raise': 'Access is denied.'})
    result = run(twin, mode='bypass')
    assert (result['failed'], result['changed']) == (True, False)
    assert run(twin, mode='bypass', check_mode=True)['changed'] is True, 'check mode reports the plan'


def test_a_write_failing_for_one_user_is_failed_for_them_and_changed_for_the_others() -> None:
    twin = FailsForOneUser(corporate_machine().state)
    bob_before = copy.deepcopy(twin.state['hives'][sid(2)])
    result = run(twin, mode='bypass')
    assert (result['failed'], result['changed']) == (True, True)
    assert statuses(result) == {'alice': 'changed', 'bob': 'failed', 'carol': 'unchanged', 'dave': 'not_configured'}
    assert result['msg'] == 'write_registry: Access is denied.; bob: Access is denied.'
    assert twin.state['hives'][sid(2)] == bob_before
    assert not blob.proxy_applies_to(settings_of(twin, sid(1)), 'msgstore.www.notion.so')


def test_only_the_failing_user_left_to_change_means_no_change() -> None:
    """alice is already bypassed; bob's write is denied: nothing was written, so nothing changed."""
    twin = FailsForOneUser(corporate_machine().state)
    run(twin, mode='bypass', users=['alice'])
    result = run(twin, mode='bypass')
    assert (result['failed'], result['changed']) == (True, False)
    assert statuses(result)['alice'] == 'unchanged' and statuses(result)['bob'] == 'failed'


def test_a_failing_winhttp_reset_is_reported_failed() -> None:
    twin = corporate_machine()
    seed_user_proxy(twin, None, proxy_server=CORP_PROXY)
    twin.set_registry('HKLM', CONNECTIONS, {'WinHttpSettings': {
        'type': 'REG_BINARY', 'data': base64.b64encode(raw_blob(version=0x28, flags=0x03, proxy=CORP_PROXY)).decode()}})
    twin.state['faults'].append({'during_op': 'write_registry', 'raise': 'Access is denied.'})
    result = run(twin, mode='direct', winhttp='reset', users=['dave'])
    assert result['changed'] is False
    assert result['winhttp']['action'] == 'failed'
    assert result['winhttp']['error'] == 'Access is denied.'
    assert result['winhttp']['after'] == result['winhttp']['before']


def test_a_failure_after_the_hive_was_loaded_still_unloads_it_and_keeps_the_record() -> None:
    twin = corporate_machine()
    original = blob_bytes(twin, sid(2))
    run(twin, mode='bypass')
    twin.state['faults'].append({'during_op': 'delete_registry_values', 'raise': 'Access is denied.'})
    twin.loaded_per_batch.clear()
    result = run(twin, mode='restore')
    assert result['failed'] is True
    assert target(result, 'bob')['status'] == 'failed'
    assert target(result, 'bob')['notes'] == ['Access is denied.']
    assert twin.loaded_per_batch[1] == [sid(2)], "bob's hive was loaded by the restore's first write"
    assert twin.state['mounted_hives'] == []
    assert 'DefaultConnectionSettings' in values(twin, sid(2), RECORD), 'the record survives for a retry'
    twin.state['faults'].clear()
    retry = run(twin, mode='restore')
    assert 'failed' not in retry
    restored = blob_bytes(twin, sid(2))
    assert restored[:4] + restored[8:] == original[:4] + original[8:]
    assert values(twin, sid(2), RECORD) == {}


# ============================================================ machine-wide policy


def test_machine_wide_policy_changes_hklm_and_leaves_users_alone() -> None:
    twin = corporate_machine()
    twin.set_registry('HKLM', POLICY, {'ProxySettingsPerUser': {'type': 'REG_DWORD', 'data': 0}})
    machine_blob = seed_user_proxy(twin, None, proxy_server=CORP_PROXY, bypass='<local>', counter=90)
    users_before = {n: copy.deepcopy(twin.state['hives'][sid(n)]) for n in (1, 2, 3, 4)}
    result = run(twin, mode='bypass')
    assert result['changed'] is True
    assert result['scope'] == 'machine' and result['machine_wide_policy'] is True
    assert result['msg'] == MACHINE_MSG
    assert [(e['name'], e['kind'], e['sid'], e['status']) for e in result['targets']] == \
        [('(machine)', 'machine', None, 'changed')]
    after = settings_of(twin, 'HKLM')
    assert after.flags & blob.ProxyFlags.PROXY
    assert not [host for host in NOTION_HOSTS if blob.proxy_applies_to(after, host)]
    assert blob.proxy_applies_to(after, 'example.com')
    assert legacy(twin, 'HKLM')['ProxyOverride'] == after.bypass_list
    assert {n: twin.state['hives'][sid(n)] for n in (1, 2, 3, 4)} == users_before
    restored = run(twin, mode='restore')
    assert restored['scope'] == 'machine' and restored['msg'] == MACHINE_MSG
    back = blob_bytes(twin, 'HKLM')
    assert back[:4] + back[8:] == machine_blob[:4] + machine_blob[8:] and counter(back) > 90
    assert {n: twin.state['hives'][sid(n)] for n in (1, 2, 3, 4)} == users_before


@pytest.mark.parametrize('option', ['users', 'exclude_users'])
def test_machine_wide_policy_refuses_user_names_and_changes_nothing(option: str) -> None:
    twin = corporate_machine()
    twin.set_registry('HKLM', POLICY, {'ProxySettingsPerUser': {'type': 'REG_DWORD', 'data': 0}})
    seed_user_proxy(twin, None, proxy_server=CORP_PROXY, bypass='<local>', counter=90)
    before = copy.deepcopy(twin.state['hives'])
    with pytest.raises(RequestError) as caught:
        run(twin, mode='bypass', **{option: ['alice']})
    assert str(caught.value) == (f'{option} cannot apply: ProxySettingsPerUser is 0 (machine-wide proxy policy), '
                                 'so only the machine-wide settings matter; nothing was changed')
    assert twin.state['hives'] == before
    assert len(twin.state['calls']) == 1


def test_per_user_policy_value_1_keeps_the_per_user_path() -> None:
    twin = corporate_machine()
    twin.set_registry('HKLM', POLICY, {'ProxySettingsPerUser': {'type': 'REG_DWORD', 'data': 1}})
    result = run(twin, mode='bypass')
    assert result['scope'] == 'user' and result['machine_wide_policy'] is False
    assert 'msg' not in result
    assert statuses(result)['alice'] == 'changed'


# ================================================================ what each mode does


@pytest.mark.parametrize('host', NOTION_HOSTS)
def test_bypass_keeps_the_proxy_for_other_hosts_and_bypasses_notion(host: str) -> None:
    twin = corporate_machine()
    before = settings_of(twin, sid(1))
    assert blob.proxy_applies_to(before, host), 'precondition: the proxy carried Notion before'
    run(twin, mode='bypass')
    for n in (1, 2):
        after = settings_of(twin, sid(n))
        assert after.flags & blob.ProxyFlags.PROXY and after.proxy_server == CORP_PROXY
        assert blob.proxy_applies_to(after, host) is False
        assert [other for other in OTHER_HOSTS if blob.proxy_applies_to(after, other)] == list(OTHER_HOSTS)


def test_bypass_adds_to_the_existing_list_and_keeps_legacy_values_consistent() -> None:
    twin = corporate_machine()
    run(twin, mode='bypass')
    after = settings_of(twin, sid(1))
    assert blob.bypass_entries(after) == ['*.corp.example', *blob.NOTION_BYPASS_HOSTS, '<local>']
    assert settings_of(twin, sid(1), 'SavedLegacySettings') == after
    assert legacy(twin, sid(1)) == {'ProxyEnable': 1, 'ProxyServer': CORP_PROXY, 'ProxyOverride': after.bypass_list}
    assert legacy(twin, sid(2))['ProxyOverride'] == ';'.join(blob.NOTION_BYPASS_HOSTS)


def test_bypass_with_own_hosts_adds_only_the_missing_ones() -> None:
    twin = corporate_machine()
    run(twin, mode='bypass', bypass_hosts=['*.CORP.example', ' *.notion.so '])
    assert blob.bypass_entries(settings_of(twin, sid(1))) == ['*.corp.example', '*.notion.so', '<local>']


def test_a_second_bypass_changes_nothing() -> None:
    twin = corporate_machine()
    run(twin, mode='bypass')
    settled = without_calls(twin)
    again = run(twin, mode='bypass')
    assert again['changed'] is False
    assert statuses(again) == {'alice': 'unchanged', 'bob': 'unchanged', 'carol': 'unchanged',
                               'dave': 'not_configured'}
    assert without_calls(twin) == settled
    assert calls(twin) == [True, False, True], 'no apply call when nothing changes'


def test_a_pac_user_is_left_alone_by_bypass_with_a_note() -> None:
    twin = corporate_machine()
    carol = copy.deepcopy(twin.state['hives'][sid(3)])
    result = run(twin, mode='bypass')
    entry = target(result, 'carol')
    assert entry['status'] == 'unchanged' and entry['notes'] == [PAC_NOTE]
    assert entry['before'] == entry['after'] and entry['before']['pac_url'] == PAC_URL
    assert twin.state['hives'][sid(3)] == carol


def test_direct_with_disable_pac_clears_the_pac_flag_and_deletes_auto_config_url() -> None:
    twin = corporate_machine()
    assert legacy(twin, sid(3))['AutoConfigURL'] == PAC_URL
    result = run(twin, mode='direct', disable=['pac'], users=['carol'])
    assert target(result, 'carol')['status'] == 'changed'
    assert target(result, 'carol')['after']['modes'] == ['direct', 'auto_detect']
    after = settings_of(twin, sid(3))
    assert after.flags == blob.ProxyFlags.DIRECT | blob.ProxyFlags.AUTO_DETECT
    assert settings_of(twin, sid(3), 'SavedLegacySettings').flags == after.flags
    assert 'AutoConfigURL' not in legacy(twin, sid(3))
    assert legacy(twin, sid(3))['ProxyEnable'] == 0


def test_direct_default_turns_off_only_the_manual_proxy_like_the_settings_toggle() -> None:
    twin = machine(('alice', 1, True))
    seed_user_proxy(twin, sid(1), proxy_server=CORP_PROXY, pac_url=PAC_URL, bypass='<local>')
    run(twin, mode='direct')
    after = settings_of(twin, sid(1))
    assert after.flags == blob.ProxyFlags.DIRECT | blob.ProxyFlags.AUTO_PROXY_URL
    assert after.proxy_server == CORP_PROXY, 'the proxy text stays, only the switch goes off'
    assert legacy(twin, sid(1)) == {'ProxyEnable': 0, 'ProxyServer': CORP_PROXY, 'ProxyOverride': '<local>',
                                    'AutoConfigURL': PAC_URL}


@pytest.mark.parametrize('args', [{'mode': 'bypass'}, {'mode': 'direct'},
                                  {'mode': 'direct', 'disable': ['manual_proxy', 'pac', 'auto_detect']}],
                         ids=['bypass', 'direct', 'direct-all'])
@pytest.mark.parametrize('saved_legacy', [True, False], ids=['with-saved-legacy', 'default-only'])
def test_a_user_with_no_proxy_is_not_changed(args: dict[str, t.Any], saved_legacy: bool) -> None:
    twin = machine(('erin', 5, False), ('dave', 4, False))
    seed_user_proxy(twin, sid(5), saved_legacy=saved_legacy)          # "Use a proxy server" never ticked
    before = without_calls(twin)
    result = run(twin, **args)
    assert result['changed'] is False
    assert statuses(result) == {'erin': 'unchanged', 'dave': 'not_configured'}
    assert target(result, 'dave')['notes'] == ['no DefaultConnectionSettings: WinINET uses no proxy']
    assert without_calls(twin) == before
    assert calls(twin) == [True]


# ===================================================================== restore


def _restore_machine() -> tuple[Recording, dict[str, dict[str, bytes | None]], dict[str, dict[str, t.Any]]]:
    """Users whose originals differ in every way restore must respect."""
    twin = machine(('alice', 1, True), ('bob', 2, False), ('carol', 3, False), ('frank', 6, False))
    seed_user_proxy(twin, sid(1), proxy_server=CORP_PROXY, bypass='*.corp.example;<local>', counter=11)
    # bob: manual proxy, no SavedLegacySettings, no ProxyOverride value, unknown trailing bytes.
    put_blobs(twin, sid(2), {'DefaultConnectionSettings': raw_blob(counter=3, proxy=CORP_PROXY,
                                                                   trailing=b'\x01\x02\x03\x04' + bytes(28))})
    put_legacy(twin, sid(2), {'ProxyEnable': 1, 'ProxyServer': CORP_PROXY})
    # carol: PAC + manual proxy + auto-detect, a per-protocol proxy, an IE6-era blob.
    put_blobs(twin, sid(3), {name: raw_blob(version=0x3C, counter=0xFFFFFF00, flags=0x0F,
                                            proxy='http=p1.example:80;https=p2.example:443', bypass='<local>',
                                            pac=PAC_URL, trailing=bytes(28))
                             for name in ('DefaultConnectionSettings', 'SavedLegacySettings')})
    put_legacy(twin, sid(3), {'ProxyEnable': 1, 'ProxyServer': 'http=p1.example:80;https=p2.example:443',
                              'ProxyOverride': '<local>', 'AutoConfigURL': PAC_URL})
    # frank: legacy values that disagree with the blob (a stale AutoConfigURL): kept as they were.
    seed_user_proxy(twin, sid(6), proxy_server=CORP_PROXY, counter=5)
    put_legacy(twin, sid(6), {'AutoConfigURL': 'http://old.example/stale.pac'})
    blobs = {n: {name: blob_bytes(twin, n, name) for name in ('DefaultConnectionSettings', 'SavedLegacySettings')}
             for n in (sid(1), sid(2), sid(3), sid(6))}
    legacies = {n: legacy(twin, n) for n in blobs}
    return twin, blobs, legacies


@pytest.mark.parametrize('args', [{'mode': 'bypass'}, {'mode': 'direct'},
                                  {'mode': 'direct', 'disable': ['manual_proxy', 'pac', 'auto_detect']}],
                         ids=['after-bypass', 'after-direct', 'after-direct-all'])
def test_restore_is_byte_identical_except_a_larger_counter(args: dict[str, t.Any]) -> None:
    twin, originals, legacies = _restore_machine()
    changed = run(twin, **args)
    assert changed['changed'] is True
    assert any(blob_bytes(twin, n) != originals[n]['DefaultConnectionSettings'] for n in originals)
    restored = run(twin, mode='restore')
    assert restored['changed'] is True and 'failed' not in restored
    for n, names in originals.items():
        for name, before in names.items():
            after = blob_bytes(twin, n, name)
            if before is None:
                assert after is None, f'{n} {name} did not exist before and must not after'
                continue
            assert after is not None and len(after) == len(before), (n, name)
            assert after[:4] == before[:4] and after[8:] == before[8:], (n, name)
            assert counter(after) > counter(before), (n, name)
        assert legacy(twin, n) == legacies[n], n
        assert values(twin, n, RECORD) == {}, 'the record is deleted'
    settled = without_calls(twin)
    again = run(twin, mode='restore')
    assert again['changed'] is False
    assert {entry['notes'][0] for entry in again['targets']} == {'nothing recorded to restore'}
    assert without_calls(twin) == settled


def test_restore_keeps_the_first_original_through_bypass_then_direct() -> None:
    twin, originals, legacies = _restore_machine()
    run(twin, mode='bypass')
    record_after_bypass = values(twin, sid(1), RECORD)
    assert json.loads(record_after_bypass['Legacy']) == {**dict.fromkeys(LEGACY), **legacies[sid(1)]}
    assert record_after_bypass['Mode'] == 'bypass' and record_after_bypass['Recorded'] == '2026-03-04T05:06:07Z'
    direct = run(twin, mode='direct', disable=['manual_proxy', 'pac'])
    assert statuses(direct)['alice'] == 'changed'
    assert values(twin, sid(1), RECORD) == record_after_bypass, 'the record is written once, by the first change'
    run(twin, mode='restore')
    for n, names in originals.items():
        before, after = names['DefaultConnectionSettings'], blob_bytes(twin, n)
        assert after[:4] + after[8:] == before[:4] + before[8:]
        assert legacy(twin, n) == legacies[n]


def test_restore_with_nothing_recorded_changes_nothing() -> None:
    twin = corporate_machine()
    before = without_calls(twin)
    result = run(twin, mode='restore')
    assert result['changed'] is False
    assert {entry['name']: entry['notes'] for entry in result['targets']} == \
        dict.fromkeys(['alice', 'bob', 'carol', 'dave'], ['nothing recorded to restore'])
    assert without_calls(twin) == before


# =================================================================== unparsable


@pytest.mark.parametrize('name', ['DefaultConnectionSettings', 'SavedLegacySettings'])
def test_an_unparsable_blob_is_reported_and_its_bytes_untouched(name: str) -> None:
    twin = corporate_machine()
    garbage = b'\x99\x00\x00\x00' + bytes(8)
    put_blobs(twin, sid(1), {name: garbage})
    alice_before = copy.deepcopy(twin.state['hives'][sid(1)])
    result = run(twin, mode='bypass')
    entry = target(result, 'alice')
    assert entry['status'] == 'unparsable'
    assert entry['notes'] == ['left untouched: unsupported version 0x99 at offset 0 (known: 0x28 winhttp, 0x3c ie6, 0x46 ie7)']
    assert blob_bytes(twin, sid(1), name) == garbage
    assert twin.state['hives'][sid(1)] == alice_before
    assert statuses(result)['bob'] == 'changed', 'the other users are still fixed'
    assert 'failed' not in result


def test_a_truncated_blob_is_reported_with_the_field_and_offset() -> None:
    twin = machine(('alice', 1, True))
    truncated = raw_blob(proxy=CORP_PROXY)[:20]
    put_blobs(twin, sid(1), {'DefaultConnectionSettings': truncated})
    result = run(twin, mode='direct')
    assert target(result, 'alice')['status'] == 'unparsable'
    assert 'proxy_server length 23 (prefix at offset 12) runs past the end' in target(result, 'alice')['notes'][0]
    assert blob_bytes(twin, sid(1)) == truncated and result['changed'] is False


# ====================================================================== WinHTTP


def _winhttp_machine() -> tuple[Recording, bytes]:
    twin = corporate_machine()
    winhttp = raw_blob(version=0x28, counter=2, flags=0x03, proxy='winhttp.corp.example:3128', bypass='<local>',
                       trailing=b'')
    put_blobs(twin, 'HKLM', {'WinHttpSettings': winhttp})
    return twin, winhttp


def test_winhttp_keep_reports_it_and_changes_nothing() -> None:
    twin, winhttp = _winhttp_machine()
    result = run(twin, mode='bypass')
    report = result['winhttp']
    assert report['action'] == 'kept' and report['error'] is None
    assert report['before'] == report['after']
    assert report['before']['proxy_server'] == 'winhttp.corp.example:3128'
    assert report['before']['version_name'] == 'winhttp'
    assert blob_bytes(twin, 'HKLM', 'WinHttpSettings') == winhttp
    assert 'WinHttpSettings' not in values(twin, 'HKLM', RECORD)


def test_winhttp_absent_is_reported_as_none() -> None:
    result = run(corporate_machine(), mode='bypass', winhttp='reset')
    assert result['winhttp'] == {'action': 'kept', 'before': None, 'after': None, 'error': None}


def test_winhttp_reset_is_recorded_and_restored_byte_for_byte() -> None:
    twin, winhttp = _winhttp_machine()
    result = run(twin, mode='bypass', winhttp='reset')
    assert result['winhttp']['action'] == 'reset'
    assert result['winhttp']['after']['modes'] == ['direct'] and result['winhttp']['after']['proxy_server'] == ''
    reset = settings_of(twin, 'HKLM', 'WinHttpSettings')
    assert (reset.version, reset.flags, reset.proxy_server, reset.bypass_list) == (0x28, blob.ProxyFlags.DIRECT, '', '')
    assert reset.counter > 2
    assert base64.b64decode(values(twin, 'HKLM', RECORD)['WinHttpSettings']) == winhttp
    settled = without_calls(twin)
    again = run(twin, mode='bypass', winhttp='reset')
    assert again['changed'] is False and again['winhttp']['action'] == 'kept'
    assert without_calls(twin) == settled
    restored = run(twin, mode='restore')
    assert restored['winhttp']['action'] == 'restored'
    assert restored['winhttp']['after']['proxy_server'] == 'winhttp.corp.example:3128'
    assert blob_bytes(twin, 'HKLM', 'WinHttpSettings') == winhttp
    assert 'WinHttpSettings' not in values(twin, 'HKLM', RECORD)


# ============================================================ calls & check mode


@pytest.mark.parametrize('users', [1, 6])
def test_bridge_calls_do_not_grow_with_the_number_of_users(users: int) -> None:
    twin = machine(*[(f'user{n}', n, n % 2 == 0) for n in range(1, users + 1)])
    for n in range(1, users + 1):
        seed_user_proxy(twin, sid(n), proxy_server=CORP_PROXY)
    check = run(twin, check_mode=True, mode='bypass')
    assert check['changed'] is True and calls(twin) == [True]
    applied = run(twin, mode='bypass')
    assert applied['changed'] is True and calls(twin) == [True, True, False]
    assert len(applied['targets']) == users
    assert {entry['status'] for entry in applied['targets']} == {'changed'}


@pytest.mark.parametrize('args', [{'mode': 'bypass', 'winhttp': 'reset'}, {'mode': 'direct', 'disable': ['pac']},
                                  {'mode': 'restore'}], ids=['bypass', 'direct', 'restore'])
def test_check_mode_changes_nothing_and_predicts_the_real_run(args: dict[str, t.Any]) -> None:
    twin = _winhttp_machine()[0]
    if args['mode'] == 'restore':
        run(twin, mode='bypass', winhttp='reset')
    before = without_calls(twin)
    calls_before = len(twin.state['calls'])
    check = run(twin, check_mode=True, **args)
    assert check['changed'] is True
    assert without_calls(twin) == before
    assert calls(twin)[calls_before:] == [True]
    real = run(twin, **args)
    assert check['targets'] == real['targets']
    assert check['winhttp'] == real['winhttp']
    assert check['diff'] == real['diff']


def test_diff_has_one_line_per_target() -> None:
    twin = corporate_machine()
    result = run(twin, mode='bypass', users=['alice', 'dave'])
    assert result['diff']['before'] == (
        f'alice: modes=direct,manual_proxy proxy={CORP_PROXY} bypass=*.corp.example;<local> pac=-\n'
        'dave: (no proxy settings)\n')
    assert result['diff']['after'] == (
        f"alice: modes=direct,manual_proxy proxy={CORP_PROXY} "
        f"bypass=*.corp.example;{';'.join(blob.NOTION_BYPASS_HOSTS)};<local> pac=-\n"
        'dave: (no proxy settings)\n')


# =================================================================== bad input


@pytest.mark.parametrize(('args', 'message'), [
    ({'mode': 'sideways'}, 'value of mode must be one of: direct, bypass, restore, got: sideways'),
    ({}, 'missing required arguments: mode'),
    ({'mode': 'direct', 'disable': ['socks']},
     'value of disable must be one or more of: manual_proxy, pac, auto_detect. Got no match for: socks'),
    ({'mode': 'bypass', 'winhttp': 'wipe'}, 'value of winhttp must be one of: keep, reset, got: wipe'),
    ({'mode': 'bypass', 'users': ['alice'], 'exclude_users': ['bob']},
     'parameters are mutually exclusive: users|exclude_users'),
])
def test_spec_level_bad_input_is_refused_by_the_argument_spec(args: dict[str, t.Any], message: str) -> None:
    validated = ArgumentSpecValidator(_proxy.ARGUMENT_SPEC, mutually_exclusive=_proxy.MUTUALLY_EXCLUSIVE).validate(args)
    assert validated.error_messages == [message]


@pytest.mark.parametrize(('args', 'message'), [
    ({'mode': 'bypass', 'bypass_hosts': []}, 'bypass_hosts must not be empty: leave it out to use the Notion hosts'),
    ({'mode': 'bypass', 'bypass_hosts': ['  ', '']},
     'bypass_hosts must not be empty: leave it out to use the Notion hosts'),
    ({'mode': 'direct', 'bypass_hosts': ['*.notion.so']}, 'bypass_hosts only applies to mode bypass, not direct'),
    ({'mode': 'restore', 'bypass_hosts': ['*.notion.so']}, 'bypass_hosts only applies to mode bypass, not restore'),
    ({'mode': 'bypass', 'bypass_hosts': ['*.notion.so;*.notion.com']},
     'bypass_hosts entries are single host patterns (no ";", "," or whitespace), got \'*.notion.so;*.notion.com\''),
    ({'mode': 'bypass', 'disable': ['pac']}, 'disable only applies to mode direct'),
    ({'mode': 'direct', 'disable': []}, 'disable must name at least one of manual_proxy, pac, auto_detect'),
])
def test_bad_input_is_refused_before_any_bridge_call(args: dict[str, t.Any], message: str) -> None:
    twin = corporate_machine()
    before = copy.deepcopy(twin.state)
    with pytest.raises(RequestError) as caught:
        run(twin, **args)
    assert str(caught.value) == message
    assert twin.state == before, 'not even a probe was sent'


def test_an_unknown_user_is_refused_after_the_probe_only() -> None:
    twin = corporate_machine()
    before = without_calls(twin)
    with pytest.raises(RequestError) as caught:
        run(twin, mode='bypass', users=['alice', 'mallory'])
    assert str(caught.value) == 'users lists unknown user(s): mallory; profiles on this host: alice, bob, carol, dave'
    assert without_calls(twin) == before
    assert calls(twin) == [True]

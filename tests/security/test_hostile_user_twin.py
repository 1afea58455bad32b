# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The same attacks on the simulated Windows host: a user's quarantine decides nothing.

alice forges or edits the manifest in her own %LOCALAPPDATA% quarantine so a
restore run by an administrator would plant files in System32, in bob's Startup
folder and in All Users' Startup; or points her shell folders into bob's profile
so a clear would move bob's data into her quarantine. Each test asserts the
refusal and that the machine outside alice's profile (files, hives, HKLM) is
exactly as before.
"""
from __future__ import annotations

import base64
import copy
import json
import typing as t

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed import ENTRY_ID, TwinEnv

FORGED_ID = '20260101T000000Z-abcdef'
PLANTS = ['C:\\Windows\\System32\\evil.dll',
          'C:\\Users\\bob\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\evil.cmd',
          'C:\\ProgramData\\Microsoft\\Windows\\Start Menu\\Programs\\StartUp\\evil.cmd']


def outside(env: TwinEnv, profile: str = 'C:\\Users\\alice') -> dict[str, t.Any]:
    """Every file outside ``profile`` and every hive, HKLM's record store left out."""
    state = copy.deepcopy(env.machine.state)
    prefix = profile.lower() + '\\'
    files = {k: v for k, v in state['files'].items() if not (k == profile.lower() or k.startswith(prefix))}
    hklm = {k: v for k, v in state['hives']['HKLM'].items() if not k.startswith('software\\loopbreaker\\notion\\records')}
    return {'files': files, 'hklm': hklm, 'hives': {k: v for k, v in state['hives'].items() if k != 'HKLM'}}


def forge(env: TwinEnv, entry_id: str, targets: list[str]) -> str:
    entry = f"{env.quarantine_root('alice')}\\{entry_id}"
    items = []
    for n, target in enumerate(targets):
        env.machine.write(f'{entry}\\items\\{n:03d}-evil', 'MZ evil')
        items.append({'original_path': target, 'stored_as': f'items\\{n:03d}-evil', 'scope': 'cache', 'type': 'file',
                      'bytes': 7, 'files': 1, 'attributes': {'owner_sid': 'S-1-5-18'}})
    alice_sid = next(p['sid'] for p in env.machine.state['profiles'] if p['username'] == 'alice')
    manifest = {'format': 2, 'id': entry_id, 'created': '2026-01-01T00:00:00Z', 'module': 'app_data',
                'reason': 'forged', 'user': 'alice', 'sid': alice_sid, 'platform': 'windows', 'items': items,
                'entry_dir': entry, 'profile_path': 'C:\\Users\\alice'}
    env.machine.write(f'{entry}\\manifest.json', json.dumps(manifest))
    return f'{entry}\\manifest.json'


def test_a_forged_manifest_plants_nothing_in_system32_or_anyones_startup() -> None:
    env = TwinEnv(['alice', 'bob'])
    manifest = forge(env, FORGED_ID, PLANTS)
    before = outside(env)
    listed = env.quarantine()
    assert listed['entries'] == []
    assert [(u['path'], u['error']) for u in listed['unreadable']] == [
        (manifest, "no trusted record: found only in the user's folder, so it is never acted on")]
    with pytest.raises(RequestError, match=f'^no quarantine entry {FORGED_ID} for the chosen users; nothing was changed$'):
        env.quarantine(state='restored', id=FORGED_ID, force=True)
    assert outside(env) == before
    assert not any(env.machine.exists(p) for p in PLANTS)


def test_an_edited_copy_of_a_real_manifest_is_ignored_and_reported() -> None:
    env = TwinEnv(['alice', 'bob'])
    env.app_data(users=['alice'])
    manifest = f"{env.quarantine_root('alice')}\\{ENTRY_ID}\\manifest.json"
    data = json.loads(env.machine.read(manifest))
    data['items'][0]['original_path'] = PLANTS[0]
    env.machine.write(manifest, json.dumps(data))
    before = outside(env)
    listed = env.quarantine()
    assert ('alice', manifest, 'differs from the trusted record; the trusted record is used') in [
        (u['user'], u['path'], u['error']) for u in listed['unreadable']]
    restored = env.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in restored
    assert outside(env) == before
    assert not env.machine.exists(PLANTS[0])


def test_a_trusted_record_that_points_outside_the_users_data_is_refused() -> None:
    """Defence in depth: even a record an administrator's store holds is checked for containment."""
    env = TwinEnv(['alice', 'bob'])
    env.app_data(users=['alice'])
    values = env.machine.state['hives']['HKLM']['software\\loopbreaker\\notion\\records\\quarantine']['values']
    [key] = list(values)
    record = json.loads(values[key]['data'])
    record['items'][0]['original_path'] = PLANTS[1]
    values[key]['data'] = json.dumps(record)
    listed = env.quarantine()
    assert listed['entries'] == []
    assert sorted(u['error'] for u in listed['unreadable'] if u['user'] == 'alice') == [
        'differs from the trusted record; the trusted record is used',
        f'trusted record {ENTRY_ID} refused: {PLANTS[1]!r} is not inside the Notion data of alice']
    before = outside(env)
    with pytest.raises(RequestError, match=f'^no quarantine entry {ENTRY_ID} for the chosen users'):
        env.quarantine(state='restored', id=ENTRY_ID)
    assert outside(env) == before


def test_shell_folders_pointing_into_another_profile_are_not_followed() -> None:
    env = TwinEnv(['alice', 'bob'])
    hive = env.machine.state['hives'][next(p['sid'] for p in env.machine.state['profiles'] if p['username'] == 'alice')]
    hive['software\\microsoft\\windows\\currentversion\\explorer\\user shell folders'] = {
        'path': 'Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\User Shell Folders',
        'values': {'AppData': {'type': 'REG_EXPAND_SZ', 'data': 'C:\\Users\\bob\\AppData\\Roaming'},
                   'Local AppData': {'type': 'REG_EXPAND_SZ', 'data': '%USERPROFILE%\\AppData\\Local'}}}
    bob_before = env.tree('C:\\Users\\bob')
    result = env.app_data(users=['alice'])
    [alice] = result['users']
    assert alice['status'] == 'failed'
    assert alice['errors'] == ['not touched: its AppData folder C:\\Users\\bob\\AppData\\Roaming lies inside the '
                               'profile of bob']
    assert env.tree('C:\\Users\\bob') == bob_before
    assert result['changed'] is False


def test_restore_on_windows_puts_the_recorded_owner_back() -> None:
    env = TwinEnv(['alice'])
    alice_sid = env.machine.state['profiles'][0]['sid']
    cookies = env.path('alice', 'Network/Cookies')
    env.machine.state['files'][cookies.lower()]['owner'] = alice_sid
    env.app_data(users=['alice'])
    [stored] = [k for k in env.machine.state['files'] if 'quarantine' in k and k.endswith('-cookies')
                and env.machine.state['files'][k].get('owner') == alice_sid]
    env.machine.state['files'][stored]['acl'] = {'owner': alice_sid, 'allow': ['S-1-1-0'], 'protected': True}
    restored = env.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in restored
    back = env.machine.state['files'][cookies.lower()]
    assert (back['owner'], back['acl']) == (alice_sid, None), 'recorded owner, explicit ACL dropped for the inherited one'
    assert base64.b64decode(back['content'])

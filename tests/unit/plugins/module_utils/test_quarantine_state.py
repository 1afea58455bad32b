# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_quarantine_state.py: list, restore and purge quarantine entries.

Entries are made the real way, by running app_data against the simulated
Windows host or LocalHost on tmp homes (see _notion_seed), then listed,
restored and purged. "Nothing changed" is checked on the whole machine state
(twin) or on a hash of every file under the homes (LocalHost).
"""
from __future__ import annotations

import datetime
import json
import re
import typing as t
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _quarantine_state
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._quarantine import parse_manifest
from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed import (
    ENTRY_ID,
    NOW,
    SELECTED,
    TwinEnv,
    bytes_under,
    file_tree,
)

LATER = NOW + datetime.timedelta(days=1)          # when restores and purges run
DISPLACED_ID = '20260305T050607Z-d4e5f6'          # LATER + token below
TOKEN2 = 'd4e5f6'
SECOND_ID = '20260306T050607Z-0f0f0f'             # a second clear, two days after the first
RECREATED = {'Cache/Cache_Data/data_0': 'recreated cache', 'Network/Cookies': 'SQLite format 3\x00fresh login'}


def write(env, path: str, content: str) -> None:
    if env.kind == 'windows':
        env.machine.write(path, content)
    else:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding='utf-8')


def data_tree(env, user: str) -> dict[str, str]:
    return env.tree(env.data_root(user)) if env.kind == 'windows' else file_tree(env.data_root(user))


def entry_dir(env, user: str, entry_id: str = ENTRY_ID) -> str:
    return env.quarantine_root(user) + env.sep + entry_id


def recreate(env, user: str) -> None:
    """What Notion does when it starts again after a clear."""
    for relative, content in RECREATED.items():
        write(env, env.path(user, relative), content)


def cleared(env, users: t.Sequence[str] = ('alice', 'bob'), **args: t.Any) -> dict[str, dict[str, str]]:
    """Run app_data for real; returns each user's data tree from before the clear."""
    before = {user: data_tree(env, user) for user in users}
    result = env.app_data(**args)
    assert result['changed'] is True
    return before


# ---------------------------------------------------------------------- listed


def test_listed_describes_each_entry(make_env) -> None:
    env = make_env(['alice', 'bob'])
    cleared(env, scopes=['cookies'])
    recreate(env, 'alice')
    before = env.snapshot()
    result = env.quarantine(state='listed')
    assert env.snapshot() == before
    assert env.calls() == [True, False, True]
    assert (result['changed'], result['state'], result['unreadable']) == (False, 'listed', [])
    assert set(result) == {'changed', 'state', 'unreadable', 'skipped_profiles', 'entries'}
    assert [(e['id'], e['user']) for e in result['entries']] == [(ENTRY_ID, 'alice'), (ENTRY_ID, 'bob')]
    alice = result['entries'][0]
    cookies = sorted(SELECTED['cookies'], key=lambda item: env.path('alice', item[0]).lower())
    assert alice == {
        'id': ENTRY_ID, 'user': 'alice', 'sid': alice['sid'], 'created': '2026-03-04T05:06:07Z', 'module': 'app_data',
        'reason': 'clear desktop app site data', 'path': entry_dir(env, 'alice'), 'restored': None,
        'bytes': sum(bytes_under(r)[0] for r, _content in cookies),
        'items': [{'original_path': env.path('alice', relative), 'scope': 'cookies', 'type': kind,
                   'bytes': bytes_under(relative)[0], 'files': 1, 'in_quarantine': True,
                   'original_exists': relative in RECREATED} for relative, kind in cookies],
    }
    assert [i['original_exists'] for i in result['entries'][1]['items']] == [False] * 4


def test_listed_for_chosen_users(make_env) -> None:
    env = make_env(['alice', 'bob'])
    cleared(env, scopes=['cache'])
    assert [e['user'] for e in env.quarantine(users=['bob'])['entries']] == ['bob']
    assert [e['user'] for e in env.quarantine(exclude_users=['bob'])['entries']] == ['alice']
    with pytest.raises(RequestError, match=re.escape('users lists unknown user(s): zed; profiles on this host: alice, bob, carol')):
        env.quarantine(users=['zed'])


def test_listed_with_no_quarantine_at_all(make_env) -> None:
    env = make_env(['alice'])
    result = env.quarantine()
    assert result == {'changed': False, 'state': 'listed', 'unreadable': [], 'skipped_profiles': [], 'entries': []}


def test_unreadable_manifest_is_reported_and_never_touched(make_env) -> None:
    env = make_env(['alice'])
    cleared(env, ['alice'], scopes=['cache'])
    broken_dir = env.quarantine_root('alice') + env.sep + '20260101T000000Z-000000'
    broken = broken_dir + env.sep + 'manifest.json'
    write(env, broken, '{"format": 1, "id": ')
    write(env, broken_dir + env.sep + 'items' + env.sep + '000-Cache' + env.sep + 'data', 'kept')
    future = json.dumps({'format': 3, 'id': '20260102T000000Z-000000'})
    write(env, env.quarantine_root('alice') + env.sep + '20260102T000000Z-000000' + env.sep + 'manifest.json', future)

    listed = env.quarantine()
    assert [e['id'] for e in listed['entries']] == [ENTRY_ID]
    assert [(u['user'], u['path']) for u in listed['unreadable']] == [
        ('alice', broken),
        ('alice', env.sep.join([env.quarantine_root('alice'), '20260102T000000Z-000000', 'manifest.json'])),
    ]
    assert re.fullmatch(re.escape(f'{broken}: not JSON (') + r'Expecting value: line 1 column \d+ \(char \d+\)\)',
                        listed['unreadable'][0]['error'])
    assert listed['unreadable'][1]['error'].endswith(': unsupported manifest format 3')

    purged = env.quarantine(state='purged', older_than='0s', now=LATER)
    assert [p['id'] for p in purged['purged']] == [ENTRY_ID]
    assert env.read(broken).decode() == '{"format": 1, "id": '
    assert env.read(broken_dir + env.sep + 'items' + env.sep + '000-Cache' + env.sep + 'data') == b'kept'
    assert not env.exists(entry_dir(env, 'alice'))
    assert len(purged['unreadable']) == 2


# --------------------------------------------------------------------- restored


def test_restore_puts_everything_back_byte_identical(make_env) -> None:
    env = make_env(['alice', 'bob'])
    before = cleared(env)
    result = env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2)
    assert result['changed'] is True
    assert 'failed' not in result
    for user in ('alice', 'bob'):
        assert data_tree(env, user) == before[user], user
    assert {(o['user'], o['action'], o['displaced_to']) for o in result['restored']} == {
        ('alice', 'restored', None), ('bob', 'restored', None)}
    assert len(result['restored']) == 34
    listed = {e['user']: e for e in env.quarantine()['entries']}
    assert listed['alice']['restored'] == '2026-03-05T05:06:07Z'      # the trusted record holds the tombstone
    assert result['diff'] == {'before': f'alice: {ENTRY_ID} (held)\nbob: {ENTRY_ID} (held)\n',
                              'after': f'alice: {ENTRY_ID} (restored)\nbob: {ENTRY_ID} (restored)\n'}


def test_restore_in_check_mode_changes_nothing(make_env) -> None:
    env = make_env(['alice'])
    cleared(env, ['alice'], scopes=['storage'])
    before = env.snapshot()
    checked = env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2, check_mode=True)
    assert env.snapshot() == before
    assert env.calls()[-1] is True and len(env.calls()) == 3
    assert checked['changed'] is True
    real = env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2)
    assert checked == real


def test_restore_is_idempotent(make_env) -> None:
    env = make_env(['alice'])
    cleared(env, ['alice'])
    env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2)
    after_first = env.snapshot()
    calls = len(env.calls())
    again = env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2)
    assert (again['changed'], again['restored']) == (False, [])
    assert again['diff'] == {'before': '', 'after': ''}
    assert env.snapshot() == after_first
    assert len(env.calls()) == calls + 1
    [entry] = again['entries']
    assert entry['restored'] == '2026-03-05T05:06:07Z'
    assert {i['in_quarantine'] for i in entry['items']} == {False}
    assert {i['original_exists'] for i in entry['items']} == {True}


def test_restore_conflict_is_refused_and_nothing_changes(make_env) -> None:
    env = make_env(['alice', 'bob'])
    cleared(env, scopes=['cache', 'cookies'])
    recreate(env, 'alice')
    before = env.snapshot()
    message = ('Notion has recreated data that restoring would overwrite: '
               f"alice: {env.path('alice', 'Cache')}; alice: {env.path('alice', 'Network/Cookies')}. Nothing was "
               'changed. Set force: true to move that data into a new quarantine entry and restore.')
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2)
    assert env.snapshot() == before


def test_restore_for_another_user_is_not_blocked_by_a_conflict(make_env) -> None:
    env = make_env(['alice', 'bob'])
    before = cleared(env, scopes=['cookies'])
    recreate(env, 'alice')
    result = env.quarantine(state='restored', id=ENTRY_ID, users=['bob'], now=LATER, token=TOKEN2)
    assert {o['user'] for o in result['restored']} == {'bob'}
    assert data_tree(env, 'bob') == before['bob']
    assert env.exists(entry_dir(env, 'alice') + env.sep + 'items')


def test_force_displaces_recreated_data_then_restores_byte_identical(make_env) -> None:
    env = make_env(['alice'])
    before = cleared(env, ['alice'])
    recreate(env, 'alice')
    result = env.quarantine(state='restored', id=ENTRY_ID, force=True, now=LATER, token=TOKEN2)
    assert result['changed'] is True and 'failed' not in result
    assert data_tree(env, 'alice') == before['alice']
    displaced = {o['path']: o['displaced_to'] for o in result['restored'] if o['displaced_to']}
    assert displaced == {env.path('alice', 'Cache'): DISPLACED_ID, env.path('alice', 'Network/Cookies'): DISPLACED_ID}

    # the recreated data is kept in a new entry, described by its own manifest
    new_dir = entry_dir(env, 'alice', DISPLACED_ID)
    manifest = parse_manifest(env.read(new_dir + env.sep + 'manifest.json').decode(), 'm')
    assert (manifest.id, manifest.module, manifest.reason, manifest.user, manifest.restored) == (
        DISPLACED_ID, 'quarantine', f'displaced by restoring {ENTRY_ID}', 'alice', None)
    assert [(i.original_path, i.scope) for i in manifest.items] == [
        (env.path('alice', 'Cache'), 'cache'), (env.path('alice', 'Network/Cookies'), 'cookies')]
    stored = [new_dir + env.sep + i.stored_as for i in manifest.items]
    assert env.read(stored[0] + env.sep + 'Cache_Data' + env.sep + 'data_0').decode() == RECREATED['Cache/Cache_Data/data_0']
    assert env.read(stored[1]).decode() == RECREATED['Network/Cookies']
    if env.kind == 'windows':
        assert env.machine.state['files'][new_dir.lower()]['acl']['owner'] == result['entries'][0]['sid']

    # and can itself be listed and restored later, swapping back
    listed = env.quarantine(now=LATER)
    assert [(e['id'], e['module'], e['restored']) for e in listed['entries']] == [
        (ENTRY_ID, 'app_data', '2026-03-05T05:06:07Z'), (DISPLACED_ID, 'quarantine', None)]


def test_restore_of_an_item_missing_from_the_quarantine(make_env) -> None:
    env = make_env(['alice'])
    cleared(env, ['alice'], scopes=['cookies'])
    listed = env.quarantine()
    [entry] = listed['entries']
    manifest = parse_manifest(env.read(entry['path'] + env.sep + 'manifest.json').decode(), 'm')
    lost = manifest.items[0]
    if env.kind == 'windows':
        env.machine.state['files'].pop((entry['path'] + '\\' + lost.stored_as).lower())
    else:
        Path(entry['path'], lost.stored_as).unlink()
    result = env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2)
    assert [(o['path'], o['action']) for o in result['restored']] == [
        (i.original_path, 'not_in_quarantine' if i == lost else 'restored') for i in manifest.items]
    assert not env.exists(lost.original_path)
    assert all(env.exists(i.original_path) for i in manifest.items[1:])


@pytest.mark.parametrize(
    ('state', 'entry_id'),
    [('restored', 'latest'), ('restored', '20260304T050607Z-A1B2C3'), ('purged', 'x'), ('purged', '20260304-a1b2c3')],
)
def test_invalid_id_is_refused(make_env, state: str, entry_id: str) -> None:
    env = make_env(['alice'])
    cleared(env, ['alice'], scopes=['cache'])
    before = env.snapshot()
    message = f"id {entry_id!r} is not a quarantine entry id (like '20261129T141500Z-1a2b3c')"
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        env.quarantine(state=state, id=entry_id, now=LATER, token=TOKEN2)
    assert env.snapshot() == before


def test_restore_of_an_unknown_id(make_env) -> None:
    env = make_env(['alice'])
    cleared(env, ['alice'], scopes=['cache'])
    before = env.snapshot()
    with pytest.raises(RequestError, match=re.escape(
            'no quarantine entry 20990101T000000Z-000000 for the chosen users; nothing was changed') + '$'):
        env.quarantine(state='restored', id='20990101T000000Z-000000', now=LATER, token=TOKEN2)
    with pytest.raises(RequestError, match=re.escape(f'no quarantine entry {ENTRY_ID} for the chosen users')):
        env.quarantine(state='restored', id=ENTRY_ID, users=['carol'], now=LATER, token=TOKEN2)
    assert env.snapshot() == before


def test_restore_with_notion_running_and_stop_app_false(make_env) -> None:
    env = make_env(['alice'])
    cleared(env, ['alice'], scopes=['cache'])
    pid = env.add_notion_process('alice')
    before = env.snapshot()
    message = f'Notion is running for the users being restored (pid {pid}); nothing was changed.'
    with pytest.raises(RequestError, match=f'^{re.escape(message)}$'):
        env.quarantine(state='restored', id=ENTRY_ID, stop_app=False, now=LATER, token=TOKEN2)
    assert env.snapshot() == before
    assert env.running(pid)


def test_restore_stops_the_users_notion_first(make_env) -> None:
    env = make_env(['alice'])
    before = cleared(env, ['alice'], scopes=['cache'])
    pid = env.add_notion_process('alice')
    result = env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2)
    assert 'failed' not in result
    assert not env.running(pid)
    assert data_tree(env, 'alice') == before['alice']


def test_restore_of_a_redirected_users_entry_on_another_volume() -> None:
    from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed import windows_user

    env = TwinEnv([])
    root = windows_user(env.machine, 'alice', 1, app_data='D:\\Redirected\\alice\\AppData')
    before = env.tree(root)
    env.app_data(scopes=['storage'])
    listed = env.quarantine()
    assert [e['path'] for e in listed['entries']] == ['D:\\Redirected\\alice\\AppData\\loopbreaker-quarantine\\' + ENTRY_ID]
    env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2)
    assert env.tree(root) == before


# ----------------------------------------------------------------------- purged


def two_entries(env) -> None:
    """ENTRY_ID (NOW) and SECOND_ID (NOW + 2 days) for alice."""
    cleared(env, ['alice'], scopes=['cache'])
    recreate(env, 'alice')
    env.app_data(scopes=['cache'], now=NOW + datetime.timedelta(days=2), token='0f0f0f')


@pytest.mark.parametrize(
    ('older_than', 'purged'),
    [
        ('3d', []),
        ('2d', [ENTRY_ID]),
        ('1h', [ENTRY_ID]),                 # SECOND_ID is exactly 1 h old: not older
        ('59m', [ENTRY_ID, SECOND_ID]),
        ('0s', [ENTRY_ID, SECOND_ID]),
        ('1w', []),
    ],
)
def test_purge_older_than(make_env, older_than: str, purged: list[str]) -> None:
    env = make_env(['alice'])
    two_entries(env)
    now = NOW + datetime.timedelta(days=2, hours=1)
    result = env.quarantine(state='purged', older_than=older_than, now=now)
    assert [p['id'] for p in result['purged']] == purged
    assert result['changed'] is bool(purged)
    for entry_id in (ENTRY_ID, SECOND_ID):
        assert env.exists(entry_dir(env, 'alice', entry_id)) is (entry_id not in purged)
    assert [e['id'] for e in env.quarantine()['entries']] == [i for i in (ENTRY_ID, SECOND_ID) if i not in purged]


def test_purge_by_id_for_every_user(make_env) -> None:
    env = make_env(['alice', 'bob'])
    cleared(env, scopes=['cookies'])
    result = env.quarantine(state='purged', id=ENTRY_ID, now=LATER)
    assert result['purged'] == [
        {'id': ENTRY_ID, 'user': user, 'path': entry_dir(env, user), 'bytes': sum(bytes_under(r)[0] for r, _content in SELECTED['cookies'])}
        for user in ('alice', 'bob')]
    assert result['diff'] == {'before': f'alice: {ENTRY_ID} (held)\nbob: {ENTRY_ID} (held)\n', 'after': ''}
    assert not env.exists(entry_dir(env, 'alice')) and not env.exists(entry_dir(env, 'bob'))
    assert env.exists(env.quarantine_root('alice'))
    again = env.quarantine(state='purged', id=ENTRY_ID, now=LATER)
    assert (again['changed'], again['purged']) == (False, [])


def test_purge_in_check_mode_changes_nothing(make_env) -> None:
    env = make_env(['alice'])
    cleared(env, ['alice'], scopes=['cache'])
    before = env.snapshot()
    result = env.quarantine(state='purged', older_than='1h', now=LATER, check_mode=True)
    assert ([p['id'] for p in result['purged']], result['changed']) == ([ENTRY_ID], True)
    assert env.snapshot() == before


def test_purge_of_one_user(make_env) -> None:
    env = make_env(['alice', 'bob'])
    cleared(env, scopes=['cache'])
    result = env.quarantine(state='purged', id=ENTRY_ID, users=['bob'], now=LATER)
    assert [p['user'] for p in result['purged']] == ['bob']
    assert env.exists(entry_dir(env, 'alice'))


def test_purge_with_a_bad_duration(make_env) -> None:
    env = make_env(['alice'])
    cleared(env, ['alice'], scopes=['cache'])
    before = env.snapshot()
    with pytest.raises(RequestError, match=re.escape("older_than must look like '7d', '12h', '30m', '2w' or '45s', "
                                                     "got '7 days'") + '$'):
        env.quarantine(state='purged', older_than='7 days', now=LATER)
    assert env.snapshot() == before


def test_purge_failure_is_reported() -> None:
    env = TwinEnv(['alice'])
    cleared(env, ['alice'], scopes=['cache'])
    locker = env.machine.add_process('MsMpEng.exe', 'C:\\ProgramData\\MsMpEng.exe', 'S-1-5-18')
    stored = entry_dir(env, 'alice') + '\\items\\000-Cache\\Cache_Data\\data_0'
    env.machine.state['files'][stored.lower()]['locked_by'] = locker
    result = env.quarantine(state='purged', id=ENTRY_ID, now=LATER)
    assert result['failed'] is True
    # The record is kept (its removal is skipped) while the entry it describes still exists.
    assert result['msg'] == ('1 operation(s) failed and 1 were skipped: remove_path: The process cannot access the file '
                             f"'{stored}' because it is being used by another process.")
    assert env.exists(entry_dir(env, 'alice'))


# --------------------------------------------------------------- known bugs


def test_purge_older_than_with_a_manifest_whose_id_is_not_an_entry_id() -> None:
    env = TwinEnv(['alice'])
    cleared(env, ['alice'], scopes=['cache'])
    good = json.loads(env.read(entry_dir(env, 'alice') + '\\manifest.json'))
    odd = env.quarantine_root('alice') + '\\copied\\manifest.json'
    env.machine.write(odd, json.dumps(dict(good, id='copied')))
    result = env.quarantine(state='purged', older_than='1h', now=LATER)
    assert [p['id'] for p in result['purged']] == [ENTRY_ID]
    assert env.exists(odd)


def test_restore_outcomes_reflect_failures() -> None:
    env = TwinEnv(['alice'])
    cleared(env, ['alice'], scopes=['cookies'])
    locker = env.machine.add_process('MsMpEng.exe', 'C:\\ProgramData\\MsMpEng.exe', 'S-1-5-18')
    stored = entry_dir(env, 'alice') + '\\items\\001-Cookies'
    env.machine.state['files'][stored.lower()]['locked_by'] = locker
    result = env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2)
    assert result['failed'] is True
    for outcome in result['restored']:
        if outcome['action'] == 'restored':
            assert env.exists(outcome['path']), f"reported restored but not back: {outcome['path']}"


def test_restore_does_not_proceed_when_notion_cannot_be_stopped() -> None:
    env = TwinEnv(['alice'])
    cleared(env, ['alice'], scopes=['cookies'])
    env.machine.add_process('Notion.exe', 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe',
                            'S-1-5-21-1111-2222-3333-1001', unkillable=True)
    quarantined = env.tree(entry_dir(env, 'alice'))
    result = env.quarantine(state='restored', id=ENTRY_ID, now=LATER, token=TOKEN2)
    assert result['failed'] is True
    assert env.tree(entry_dir(env, 'alice')) == quarantined
    assert not env.exists(env.path('alice', 'Cookies'))


# ------------------------------------------------------------ argument spec


def validate(args: dict[str, t.Any]):
    return ArgumentSpecValidator(_quarantine_state.ARGUMENT_SPEC, mutually_exclusive=_quarantine_state.MUTUALLY_EXCLUSIVE,
                                 required_if=_quarantine_state.REQUIRED_IF).validate(args)


@pytest.mark.parametrize(
    ('args', 'errors'),
    [
        ({'state': 'restored'}, ['state is restored but all of the following are missing: id']),
        ({'state': 'restored', 'older_than': '1d'}, ['state is restored but all of the following are missing: id']),
        ({'state': 'purged'}, ['state is purged but any of the following are missing: id, older_than']),
        ({'state': 'purged', 'id': ENTRY_ID, 'older_than': '1d'}, ['parameters are mutually exclusive: id|older_than']),
        ({'users': ['a'], 'exclude_users': ['b']}, ['parameters are mutually exclusive: users|exclude_users']),
        ({'state': 'gone'}, ['value of state must be one of: listed, restored, purged, got: gone']),
    ],
)
def test_argument_spec_rejects(args, errors: list[str]) -> None:
    assert validate(args).error_messages == errors


@pytest.mark.parametrize(
    'args',
    [{}, {'state': 'restored', 'id': ENTRY_ID}, {'state': 'purged', 'id': ENTRY_ID}, {'state': 'purged', 'older_than': '7d'},
     {'state': 'listed', 'users': ['alice']}, {'state': 'restored', 'id': ENTRY_ID, 'force': True, 'stop_app': False}],
)
def test_argument_spec_accepts(args) -> None:
    result = validate(args)
    assert result.error_messages == []
    expected = {'state': 'listed', 'id': None, 'older_than': None, 'force': False, 'users': None,
                'exclude_users': None, 'profiles_root': None, 'state_dir': None, 'stop_app': True}
    expected.update(args)
    assert result.validated_parameters == expected


def test_app_data_argument_spec() -> None:
    from ansible_collections.loopbreaker.notion.plugins.module_utils import _app_data

    validator = ArgumentSpecValidator(_app_data.ARGUMENT_SPEC, mutually_exclusive=_app_data.MUTUALLY_EXCLUSIVE)
    assert validator.validate({}).validated_parameters == {
        'scopes': ['all'], 'users': None, 'exclude_users': None, 'profiles_root': None, 'state_dir': None, 'stop_app': True,
        'stop_timeout': 30, 'quarantine': True}
    assert validator.validate({'users': ['a'], 'exclude_users': ['b']}).error_messages == [
        'parameters are mutually exclusive: users|exclude_users']
    assert validator.validate({'scopes': ['cache', 'bogus']}).error_messages == [
        'value of scopes must be one or more of: all, cache, service_workers, storage, cookies. Got no match for: bogus']

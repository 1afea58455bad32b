"""app_data end to end: real ansible-playbook runs through the action plugins, on both paths."""
from __future__ import annotations

import hashlib
import json
import typing as t
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import (
    KEPT_ENTRIES,
    seed_posix_home,
    seed_windows_user,
)

from .conftest import FakeNotion, Lab, assert_ok, own_homes

ALICE = 'S-1-5-21-1-2-3-1001'
BOB = 'S-1-5-21-1-2-3-1002'
PROBE = ['get_profiles', 'stat_paths', 'list_processes']
# NOTION_TREE's top level has 10 entries the scopes cover, its Partitions/notion 8 more
# (Network/Cookies and its journal count separately); Preferences, Local State, logs and
# state.json are kept.
EXPECTED_ITEMS = 18


def seed_both(lab: Lab, *, running: bool = False) -> None:
    twin = lab.twin()
    seed_windows_user(twin, 'alice', ALICE, loaded=True, running=running)
    seed_windows_user(twin, 'bob', BOB, loaded=False)
    seed_windows_user(twin, 'carol', 'S-1-5-21-1-2-3-1003', loaded=False, with_notion=False)
    lab.save(twin)
    seed_posix_home(str(lab.homes), 'alice')
    seed_posix_home(str(lab.homes), 'bob')
    seed_posix_home(str(lab.homes), 'carol', with_notion=False)


def posix_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else '<dir>'
            for p in sorted(root.rglob('*'))}


def shape(value: t.Any) -> t.Any:
    """Keys and value types, recursively: what must match between the Windows and POSIX results."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__ if value is not None else 'null'


@pytest.mark.integration
@pytest.mark.parametrize('host', ['win', 'posix'])
def test_four_runs_converge(lab: Lab, host: str) -> None:
    seed_both(lab, running=True)
    completed, results = lab.play('app_data_four_runs', host)
    assert_ok(completed)
    users = {u['user']: u for u in results['apply']['users']}
    assert sorted(users) == ['alice', 'bob'], 'carol has no Notion data and is not reported'
    for user in users.values():
        assert user['status'] == 'cleared'
        assert len(user['items']) == EXPECTED_ITEMS
        assert {i['action'] for i in user['items']} == {'quarantined'}
    if host == 'win':
        assert [p['name'] for p in users['alice']['processes_stopped']] == ['Notion.exe'] * 3
        assert users['bob']['processes_stopped'] == []
        state = lab.state()
        kinds = ['probe' if c['operations'] == PROBE else 'apply' for c in state['calls']]
        assert kinds == ['probe', 'probe', 'apply', 'probe', 'probe'], 'check: 1 call, apply: 2, then 1 and 1'
        assert state['calls'][2]['check_mode'] is False
        assert [p for p in state['processes'] if p['name'] == 'Notion.exe'] == [] and state['mounted_hives'] == []
    kept = set(KEPT_ENTRIES)
    if host == 'posix':
        for name in ('alice', 'bob'):
            remaining = {p.name for p in (lab.homes / name / '.config' / 'Notion').iterdir()}
            assert remaining == kept | {'Partitions'}
            entry = lab.homes / name / '.local/share/loopbreaker/quarantine' / results['apply']['quarantine_id']
            assert entry.stat().st_mode & 0o777 == 0o700
            manifest = json.loads((entry / 'manifest.json').read_text())
            assert len(manifest['items']) == EXPECTED_ITEMS


@pytest.mark.integration
def test_windows_and_posix_give_the_same_result_shape(lab: Lab) -> None:
    seed_both(lab)
    win, win_results = lab.play('clear', 'win')
    posix, posix_results = lab.play('clear', 'posix')
    assert_ok(win)
    assert_ok(posix)
    for result in (win_results, posix_results):
        result.pop('invocation', None)
    assert shape(win_results) == shape(posix_results)
    assert [(i['scope'], i['bytes'], i['files']) for i in win_results['users'][0]['items']] == \
        [(i['scope'], i['bytes'], i['files']) for i in posix_results['users'][0]['items']]
    assert win_results['totals'] == posix_results['totals']


@pytest.mark.integration
@pytest.mark.parametrize('host', ['win', 'posix'])
def test_restore_is_byte_identical(lab: Lab, host: str) -> None:
    seed_both(lab)
    before = lab.twin().tree_snapshot('C:\\Users') if host == 'win' else posix_tree(lab.homes)
    completed, cleared = lab.play('clear', host)
    assert_ok(completed)
    completed, results = lab.play('restore', host, {'quarantine_id': cleared['quarantine_id']})
    assert_ok(completed)
    assert results['check']['changed'] and results['apply']['changed']
    assert not results['again']['changed'] and not results['again_check']['changed']
    assert {r['action'] for r in results['apply']['restored']} == {'restored'}
    after = lab.twin().tree_snapshot('C:\\Users') if host == 'win' else posix_tree(lab.homes)
    quarantine_parts = ('\\appdata\\local\\loopbreaker', '/.local')
    outside_quarantine = {k: v for k, v in after.items() if not any(q in k.lower() for q in quarantine_parts)}
    assert outside_quarantine == before


@pytest.mark.integration
@pytest.mark.parametrize('host', ['win', 'posix'])
def test_restore_over_recreated_data_needs_force_and_keeps_both(lab: Lab, host: str) -> None:
    seed_both(lab)
    completed, cleared = lab.play('clear', host)
    assert_ok(completed)
    if host == 'win':
        twin = lab.twin()
        twin.write('C:\\Users\\alice\\AppData\\Roaming\\Notion\\Cache\\Cache_Data\\data_0', 'rebuilt')
        lab.save(twin)
    else:
        rebuilt = lab.homes / 'alice/.config/Notion/Cache/Cache_Data/data_0'
        rebuilt.parent.mkdir(parents=True)
        rebuilt.write_text('rebuilt')
    state_before = lab.state() if host == 'win' else posix_tree(lab.homes)
    completed, refused = lab.play('restore', host, {'quarantine_id': cleared['quarantine_id']})
    assert_ok(completed)
    assert refused['apply']['failed']
    assert 'Notion has recreated data that restoring would overwrite: alice:' in refused['apply']['msg']
    assert 'Nothing was changed' in refused['apply']['msg']
    if host == 'win':
        assert lab.state()['files'] == state_before['files']
    else:
        assert posix_tree(lab.homes) == state_before
    completed, forced = lab.play('restore', host, {'quarantine_id': cleared['quarantine_id'], 'force': True})
    assert_ok(completed)
    displaced = [r for r in forced['apply']['restored'] if r['displaced_to']]
    assert [r['user'] for r in displaced] == ['alice']
    assert not forced['again']['changed']
    completed, listed = lab.play('restore', host, {'quarantine_id': displaced[0]['displaced_to']})
    held = [e for e in listed['listed']['entries'] if e['id'] == displaced[0]['displaced_to']]
    assert held and held[0]['reason'] == f"displaced by restoring {cleared['quarantine_id']}"


@pytest.mark.integration
def test_a_locked_file_and_a_vanished_path_are_reported_exactly(lab: Lab) -> None:
    """Through the action plugin: one user's locked cookie stops only that user's remaining moves."""
    seed_both(lab)
    twin = lab.twin()
    scanner = twin.add_process('MsMpEng.exe', 'C:\\ProgramData\\Microsoft\\Windows Defender\\MsMpEng.exe', 'S-1-5-18')
    alice = 'C:\\Users\\alice\\AppData\\Roaming\\Notion'
    twin.state['files'][f'{alice}\\Partitions\\notion\\Network\\Cookies'.lower()]['locked_by'] = scanner
    # Bob's GPU cache disappears between the probe (call 1) and the apply (call 2).
    twin.state['faults'].append({'before_call': 2, 'remove_path': 'C:\\Users\\bob\\AppData\\Roaming\\Notion\\GPUCache'})
    lab.save(twin)
    completed, result = lab.play('clear', 'win', {'expect_failure': True})
    assert_ok(completed)
    assert result['failed'] is True
    assert result['msg'].startswith('Some Notion data could not be cleared; what was done is listed per user: alice: ')
    users = {u['user']: u for u in result['users']}
    actions = [(i['path'].rsplit('\\Notion\\', 1)[1], i['action']) for i in users['alice']['items']]
    locked = actions.index(('Partitions\\notion\\Network\\Cookies', 'failed'))
    assert {action for _path, action in actions[:locked]} == {'quarantined'}
    assert {action for _path, action in actions[locked + 1:]} == {'skipped'}
    assert users['alice']['status'] == 'failed'
    bob = {i['path'].rsplit('\\Notion\\', 1)[1]: i['action'] for i in users['bob']['items']}
    assert bob['GPUCache'] == 'vanished'
    assert set(bob.values()) == {'quarantined', 'vanished'} and users['bob']['status'] == 'cleared'
    state = lab.state()
    assert f'{alice}\\Partitions\\notion\\Network\\Cookies'.lower() in state['files'], 'the locked file stayed put'
    assert state['mounted_hives'] == []


@pytest.mark.integration
def test_a_clear_stops_only_the_notion_working_in_its_own_homes(lab: Lab) -> None:
    """Two sandboxes with one owner (as parallel tests have): a clear of one never stops the other's Notion.

    Processes are matched to a profile by owner *and* by the home their HOME is in, so the
    same-named, same-uid Notion of another sandbox is not this alice's.
    """
    other = lab.root / 'other-homes'
    for root in (lab.homes, other):
        seed_posix_home(str(root), 'alice')
        own_homes(root)
    mine, theirs = FakeNotion(lab.homes / 'alice'), FakeNotion(other / 'alice')
    untouched = posix_tree(other)
    try:
        completed, result = lab.play('clear', 'posix', {'homes': str(lab.homes)})
        assert_ok(completed)
        assert [(u['user'], u['status'], [p['pid'] for p in u['processes_stopped']]) for u in result['users']] == [
            ('alice', 'cleared', [mine.pid])]
        assert not mine.running(), "this sandbox's alice had her Notion stopped before her data moved"
        assert theirs.running(), "the other sandbox's Notion (same uid, same name) was left alone"
        assert posix_tree(other) == untouched
    finally:
        mine.close()
        theirs.close()

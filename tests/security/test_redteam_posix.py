# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Red-team findings against the POSIX path (real accounts; see conftest.py).

Each test states what must hold when a standard user attacks a root run; a
finding that is not fixed yet is marked ``xfail(strict=True)`` with the reason.
"""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import typing as t
from pathlib import Path

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import HostError
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import native_context
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost

from .conftest import ENTRY_ID, SYSTEM_PYTHON, Account, Machine
from .test_hostile_user_posix import _notion_seeded, _stored_as, cleared, notion_picture, unreadable_errors

DEEP = 1100  # deeper than Python's default recursion limit (1000)


def _spawn(account: Account, name: bytes) -> subprocess.Popen[str]:
    """A process of ``account`` whose /proc/<pid>/comm is ``name``, running until killed."""
    code = ("import sys, time\nopen('/proc/self/comm', 'wb').write(bytes.fromhex(sys.argv[1]))\n"
            "print('ready', flush=True)\ntime.sleep(300)\n")
    process = subprocess.Popen([SYSTEM_PYTHON, '-c', code, name.hex()], user=account.uid, group=account.gid,
                               extra_groups=[], stdout=subprocess.PIPE, text=True, cwd=account.home,
                               env={'HOME': str(account.home), 'PATH': '/usr/bin:/bin'})
    assert process.stdout is not None and process.stdout.readline().strip() == 'ready'
    return process


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def _deep_tree(account: Account, top: Path) -> None:
    """``top/d/d/d/...`` DEEP levels, made by the user (relative to descriptors: no PATH_MAX)."""
    account.run('''
        fd = os.open(DATA['top'], os.O_RDONLY | os.O_DIRECTORY)
        for _ in range(DATA['depth']):
            os.mkdir('d', dir_fd=fd)
            child = os.open('d', os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        with open(os.open('leaf', os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), 'w') as handle:
            handle.write('deep')
    ''', top=str(top), depth=DEEP)


def _remove_deep(path: Path) -> None:
    # shutil.rmtree (3.11) recurses too; rm -rf does not.
    subprocess.run(['rm', '-rf', '--one-file-system', str(path)], check=False)


# ------------------------------------------------------------------ /proc matching


def test_a_process_name_that_is_not_utf8_never_stops_anyone_elses_clear(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    hostile = _spawn(alice, b'\xffnotion')
    try:
        result = machine.app_data(users=[bob.home.name])
    finally:
        _stop(hostile)
    assert 'failed' not in result, result.get('msg')
    assert [(u['user'], u['status']) for u in result['users']] == [('bob', 'cleared')]


def test_a_pid_reused_between_probe_and_stop_is_never_signalled(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    notion = _spawn(alice, b'notion')
    victims: list[subprocess.Popen[str]] = []

    def reuse(event: str, operation: dict[str, t.Any]) -> None:
        if operation['op'] == 'stop_processes' and not victims:
            pid = notion.pid
            _stop(notion)                     # alice's Notion exits at the worst moment ...
            Path('/proc/sys/kernel/ns_last_pid').write_text(str(pid - 1), encoding='ascii')
            victims.append(_spawn(bob, b'bob-editor'))  # ... and bob's next process gets its pid
            if victims[0].pid != pid:
                pytest.skip('another process took the pid first')
    machine.hooks.append(reuse)
    try:
        machine.app_data(users=['alice'])
        assert victims and victims[0].poll() is None, "bob's process was killed by a root run for alice"
    finally:
        _stop(notion)
        for victim in victims:
            _stop(victim)


# ------------------------------------------------------------------ deep trees


def test_a_very_deep_tree_in_one_users_data_fails_that_user_only(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    _deep_tree(alice, alice.notion / 'Cache')
    try:
        result = machine.app_data()
        users = {u['user']: u for u in result['users']}
        assert users['bob']['status'] == 'cleared'
        assert users['alice']['status'] == 'failed'
        assert any('its directory tree is too deep to walk' in e for e in users['alice']['errors'])
        assert notion_picture(alice) == _notion_seeded(alice), 'nothing of alice was moved'
    finally:
        _remove_deep(alice.notion / 'Cache')


def test_a_very_deep_tree_in_one_users_quarantine_never_stops_another_users_purge(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    cleared(machine, alice)
    cleared(machine, bob)
    cache = alice.quarantine / ENTRY_ID / _stored_as(machine, alice, 'Cache')
    _deep_tree(alice, cache)
    try:
        purged = machine.quarantine(state='purged', id=ENTRY_ID)
        assert 'bob' in {p['user'] for p in purged['purged']}
        assert not (bob.quarantine / ENTRY_ID).exists()
        assert any(u['user'] == 'alice' for u in purged['unreadable']) or \
            'alice' in {p['user'] for p in purged['purged']}
    finally:
        _remove_deep(alice.quarantine)


# ------------------------------------------------------------------ the host lock


@pytest.mark.parametrize('module', ['app_data', 'quarantine'])
def test_the_host_lock_is_held_from_the_probe_on(machine: Machine, module: str) -> None:
    seen: list[str] = []

    def second_run(event: str, operation: dict[str, t.Any]) -> None:
        if operation['op'] == 'get_profiles' and not seen:
            seen.append('probing')
            other = LocalHost(str(machine.homes), 'linux', str(machine.state), exclusive=True, lock_timeout=0)
            try:
                other.run_batch([{'op': 'get_profiles', 'shell_folders': {}}])
                seen.append('a second run took the lock during the probe')
            except HostError:
                seen.append('refused')
            finally:
                other.release()
    machine.hooks.append(second_run)
    if module == 'app_data':
        machine.app_data()
    else:
        machine.quarantine()
    assert seen == ['probing', 'refused']


def test_the_default_state_dir_on_macos_is_reached_without_a_link() -> None:
    """/var, /tmp and /etc are links to /private/... on macOS; the state chain refuses every link."""
    _layout, host = native_context('Darwin', '/', lambda _path: True)
    assert host.state_dir is not None
    first = host.state_dir.strip('/').split('/')[0]
    assert first not in ('var', 'tmp', 'etc'), f'{host.state_dir} goes through the macOS link /{first}'


# ------------------------------------------------------------------ owner and mode


def test_restore_never_gives_a_file_the_user_wrote_to_someone_else(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    shared = machine.base / 'shared'
    shared.mkdir(mode=0o755)
    notes = shared / 'notes.txt'
    notes.write_text('bob notes\n', encoding='utf-8')
    os.chown(notes, bob.uid, bob.gid)
    os.chmod(notes, 0o666)                       # protected_hardlinks lets alice link a file she may write
    alice.run('''
        os.unlink(DATA['db'])
        os.link(DATA['notes'], DATA['db'])
    ''', db=str(alice.notion / 'notion.db'), notes=str(notes))
    cleared(machine, alice)                       # the record now says notion.db is bob's (uid, gid, mode)
    stored = alice.quarantine / ENTRY_ID / _stored_as(machine, alice, 'notion.db')
    alice.run('''
        os.unlink(DATA['stored'])
        with open(DATA['stored'], 'w') as handle:
            handle.write('written by alice\\n')
    ''', stored=str(stored))
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    for path in (stored, alice.notion / 'notion.db'):
        if path.exists() and path.read_text(encoding='utf-8') == 'written by alice\n':
            assert path.stat().st_uid == alice.uid, f'a root run gave the file alice wrote ({path}) to uid ' \
                                                    f'{path.stat().st_uid}'
    assert restored.get('failed') is True
    assert f"Refusing to move '{stored}': it belongs to uid {alice.uid}, not to uid {bob.uid} recorded for it." \
        in restored['msg']
    assert notes.read_text(encoding='utf-8') == 'bob notes\n' and notes.stat().st_uid == bob.uid


# ------------------------------------------------------------------ reporting


def test_items_differing_only_in_case_are_each_reported(machine: Machine) -> None:
    alice = machine.alice
    alice.run('''
        for partition in ('Notion', 'notion'):
            os.makedirs(os.path.join(DATA['notion'], 'Partitions', partition, 'Cache'), exist_ok=True)
    ''', notion=str(alice.notion))
    failing = str(alice.notion / 'Partitions' / 'Notion' / 'Cache')

    def fill(event: str, operation: dict[str, t.Any]) -> None:
        if operation['op'] == 'move_path' and operation['source'] == failing:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), operation['destination'])
    machine.hooks.append(fill)
    result = machine.app_data(users=['alice'])
    items = {i['path']: i for i in result['users'][0]['items']}
    assert items[failing]['action'] == 'failed'
    assert result.get('failed') is True, 'a move failed with ENOSPC and the run did not say so'


def test_a_restore_that_moves_nothing_leaves_the_entry_held(machine: Machine) -> None:
    alice = machine.alice
    cleared(machine, alice)
    entry = alice.quarantine / ENTRY_ID
    alice.run('os.rename(DATA["entry"], DATA["entry"] + ".aside")', entry=str(entry))
    first = machine.quarantine(state='restored', id=ENTRY_ID)
    assert {o['action'] for o in first['restored']} == {'not_in_quarantine'}
    assert first['changed'] is False, 'nothing was moved'
    alice.run('os.rename(DATA["entry"] + ".aside", DATA["entry"])', entry=str(entry))
    second = machine.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in second
    assert notion_picture(alice) == _notion_seeded(alice)


def test_a_user_whose_config_is_a_link_is_reported_not_silently_skipped(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    alice.run('''
        os.rename(DATA['config'], DATA['dotfiles'])
        os.symlink(DATA['dotfiles'], DATA['config'])
    ''', config=str(alice.home / '.config'), dotfiles=str(alice.home / 'dotfiles-config'))
    result = machine.app_data()
    users = {u['user']: u for u in result['users']}
    assert users['bob']['status'] == 'cleared'
    assert 'alice' in users, 'alice has Notion data and is not in the result at all'
    assert users['alice']['status'] == 'failed'
    assert any('symbolic link' in e for e in users['alice']['errors'])


def test_an_entry_of_more_than_a_thousand_items_can_be_restored(machine: Machine) -> None:
    alice = machine.alice
    alice.run('''
        for n in range(1000):
            os.makedirs(os.path.join(DATA['notion'], 'Partitions', f'p{n:04d}', 'Cache'))
    ''', notion=str(alice.notion))
    result = cleared(machine, alice)
    assert len(result['users'][0]['items']) > 1000
    listed = machine.quarantine()
    assert not unreadable_errors(listed, alice), unreadable_errors(listed, alice)
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in restored
    assert {o['action'] for o in restored['restored']} == {'restored'}
    assert notion_picture(alice) == _notion_seeded(alice)
    assert len(os.listdir(alice.notion / 'Partitions')) == 1001


def test_folders_a_restore_creates_are_private_to_the_user(machine: Machine) -> None:
    alice, bob = machine.alice, machine.bob
    os.chmod(alice.home, 0o755)                   # the Debian/Ubuntu default before 21.04
    os.chmod(alice.home / '.config', 0o755)
    os.chmod(alice.notion, 0o711)                 # others may pass through, never list
    cleared(machine, alice)
    alice.run('import shutil; shutil.rmtree(DATA["partitions"])', partitions=str(alice.notion / 'Partitions'))
    restored = machine.quarantine(state='restored', id=ENTRY_ID)
    assert 'failed' not in restored
    for directory in (alice.notion / 'Partitions', alice.notion / 'Partitions' / 'notion',
                      alice.notion / 'Partitions' / 'notion' / 'Network'):
        mode = stat.S_IMODE(directory.stat().st_mode)
        assert mode & 0o077 == 0, f'{directory} was created {mode:o}'
    listing = subprocess.run([SYSTEM_PYTHON, '-c', 'import os, sys; print(os.listdir(sys.argv[1]))',
                              str(alice.notion / 'Partitions' / 'notion')], user=bob.uid, group=bob.gid,
                             extra_groups=[], capture_output=True, text=True, check=False)
    assert listing.returncode != 0, f"bob lists alice's restored Notion data: {listing.stdout}"

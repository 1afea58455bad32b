# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_local_host.py: the bridge vocabulary on a real POSIX file system.

Everything happens under pytest's tmp_path; the process tests start their own
children (a copy of /bin/sleep named ``notion``) and never signal anything else.
"""
from __future__ import annotations

import os
import shutil
import signal
import stat as stat_module
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import SKIPPED_HOMES, LocalHost

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason='needs root to give homes distinct owners')
linux_only = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def one(host: LocalHost, operation: dict[str, t.Any], *, check_mode: bool = False) -> dict[str, t.Any]:
    return host.run_batch([operation], check_mode=check_mode)['results'][0]


def tree(root: Path) -> dict[str, t.Any]:
    """Relative path -> file bytes, symlink target or None for a directory: a full picture of a tree."""
    picture: dict[str, t.Any] = {}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = Path(directory, name)
            key = str(path.relative_to(root))
            if path.is_symlink():
                picture[key] = ('link', os.readlink(path))
            elif path.is_dir():
                picture[key] = None
            else:
                picture[key] = path.read_bytes()
    return picture


def write(path: Path, content: str | bytes = '') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


@pytest.fixture
def homes(tmp_path: Path) -> Path:
    root = tmp_path / 'homes'
    for name in ('alice', 'bob', 'Shared', '.localized', 'Guest', 'lost+found'):
        (root / name).mkdir(parents=True)
    write(root / 'README.txt', 'not a home')
    (root / 'alias').symlink_to(root / 'alice', target_is_directory=True)
    notion = root / 'alice' / '.config' / 'Notion'
    write(notion / 'Cache' / 'Cache_Data' / 'data_0', 'c' * 100)
    write(notion / 'Cache' / 'Cache_Data' / 'index', 'i' * 20)
    write(notion / 'Cache' / 'empty', '')
    write(notion / 'Partitions' / 'notion' / 'Cache' / 'Cache_Data' / 'data_1', 'p' * 7)
    write(notion / 'Partitions' / 'notion' / 'Network' / 'Cookies', 'cookie')
    write(notion / 'Partitions' / 'other' / 'cache' / 'x', 'lower-case cache dir')
    write(notion / 'Preferences', '{}')
    return root


# --------------------------------------------------------------------- profiles


def test_get_profiles(homes: Path) -> None:
    host = LocalHost(str(homes), 'linux')
    result = one(host, {'op': 'get_profiles', 'shell_folders': {'AppData': '.config', 'Data': '.local/share'}})
    profiles = result['data']['profiles']
    assert [(p['username'], p['special']) for p in profiles] == [
        ('.localized', True), ('Guest', True), ('Shared', True), ('alice', False), ('bob', False), ('lost+found', True)]
    alice = profiles[3]
    uid = os.stat(homes / 'alice').st_uid
    assert alice == {
        'sid': f'uid:{uid}/alice', 'owner_sid': f'uid:{uid}', 'username': 'alice', 'account': 'alice',
        'profile_path': str(homes / 'alice'), 'loaded': alice['loaded'],
        'special': False, 'selected': True,
        'folders': {'AppData': str(homes / 'alice' / '.config'), 'Data': str(homes / 'alice' / '.local/share')},
        'folder_source': {'AppData': 'default', 'Data': 'default'}, 'error': None,
    }
    assert SKIPPED_HOMES == frozenset({'Shared', 'Guest', 'lost+found'})


@needs_root
def test_get_profiles_owner_and_loaded(homes: Path) -> None:
    os.chown(homes / 'bob', 54321, -1)
    listed = one(LocalHost(str(homes), 'linux'), {'op': 'get_profiles', 'shell_folders': {}})['data']['profiles']
    profiles = {p['username']: p for p in listed}
    assert (profiles['bob']['sid'], profiles['bob']['owner_sid']) == ('uid:54321/bob', 'uid:54321')
    assert profiles['bob']['loaded'] is False             # nothing runs as uid 54321
    assert profiles['alice']['owner_sid'] == 'uid:0'
    assert profiles['alice']['loaded'] is True            # this test runs as uid 0
    assert profiles['alice']['sid'] != profiles['Shared']['sid']


def test_get_profiles_empty_root(tmp_path: Path) -> None:
    data = one(LocalHost(str(tmp_path), 'linux'), {'op': 'get_profiles', 'shell_folders': {}})['data']
    assert data == {'profiles': [], 'skipped': []}


# ------------------------------------------------------------------- stat_paths


def stat(host: LocalHost, *patterns: str) -> list[tuple[str, str, int, int]]:
    result = one(host, {'op': 'stat_paths', 'patterns': list(patterns)})
    assert result['status'] == 'ok', result
    return [(e['path'], e['type'], e['bytes'], e['files']) for e in result['data']['entries']]


@pytest.mark.parametrize(
    ('pattern', 'expected'),
    [
        pytest.param('alice/.config/Notion/Cache', [('alice/.config/Notion/Cache', 'directory', 120, 3)], id='dir'),
        pytest.param('alice/.config/Notion/Preferences', [('alice/.config/Notion/Preferences', 'file', 2, 1)], id='file'),
        pytest.param('alice/.config/Notion/Cache/empty', [('alice/.config/Notion/Cache/empty', 'file', 0, 1)],
                     id='empty-file'),
        pytest.param('alice/.config/Notion/Partitions/*/Cache',
                     [('alice/.config/Notion/Partitions/notion/Cache', 'directory', 7, 1)], id='wildcard-case-sensitive'),
        pytest.param('alice/.config/Notion/Partitions/*/cache',
                     [('alice/.config/Notion/Partitions/other/cache', 'directory', 20, 1)], id='wildcard-lower'),
        pytest.param('alice/.config/Notion/Partitions/*',
                     [('alice/.config/Notion/Partitions/notion', 'directory', 13, 2),
                      ('alice/.config/Notion/Partitions/other', 'directory', 20, 1)], id='wildcard-last-sorted'),
        pytest.param('*ce/.config/Notion/Pref*', [('alice/.config/Notion/Preferences', 'file', 2, 1)],
                     id='two-wildcards'),
        pytest.param('alice/.config/Notion/*/Cache_Data', [('alice/.config/Notion/Cache/Cache_Data', 'directory', 120, 2)],
                     id='star-within-one-segment'),
        pytest.param('alice/.config/notion/Cache', [], id='literal-case-sensitive'),
        pytest.param('bob/.config/Notion/Cache', [], id='missing'),
        pytest.param('alice/.config/Notion/Cache/', [('alice/.config/Notion/Cache', 'directory', 120, 3)],
                     id='trailing-slash'),
        pytest.param('alice//.config/Notion/Cache', [('alice/.config/Notion/Cache', 'directory', 120, 3)],
                     id='double-slash'),
    ],
)
def test_stat_paths(homes: Path, pattern: str, expected) -> None:
    host = LocalHost(str(homes), 'linux')
    assert stat(host, f'{homes}/{pattern}') == [(f'{homes}/{p}', k, b, f) for p, k, b, f in expected]


def test_stat_paths_entry_fields(homes: Path) -> None:
    target = homes / 'alice' / '.config' / 'Notion' / 'Preferences'
    os.utime(target, (0, 1767225600))      # 2026-01-01T00:00:00Z
    entries = one(LocalHost(str(homes), 'linux'), {'op': 'stat_paths', 'patterns': [str(target)]})['data']['entries']
    os.chmod(target, 0o640)
    status = os.lstat(target)
    assert entries == [{'pattern': str(target), 'path': str(target), 'type': 'file', 'bytes': 2, 'files': 1,
                        'modified': '2026-01-01T00:00:00Z', 'uid': status.st_uid, 'gid': status.st_gid,
                        'mode': 0o644 & ~_umask(), 'links': 1}]


def test_stat_paths_symlinks_are_measured_not_followed(homes: Path, tmp_path: Path) -> None:
    outside = write(tmp_path / 'outside' / 'big', 'x' * 1000).parent
    link = homes / 'alice' / '.config' / 'Notion' / 'GPUCache'
    link.symlink_to(outside, target_is_directory=True)
    [(path, kind, size, files)] = stat(LocalHost(str(homes), 'linux'), str(link))
    assert (path, kind, files) == (str(link), 'symlink', 1)
    assert size == len(str(outside))        # lstat of the link itself


# -------------------------------------------------------------- read / write


def test_read_files(homes: Path) -> None:
    q = homes / 'alice' / '.local' / 'share' / 'loopbreaker' / 'quarantine'
    write(q / '20260101T000000Z-000000' / 'manifest.json', '{"user": "zoë"}')
    write(q / '20260102T000000Z-000000' / 'manifest.json', '{}')
    (q / '20260103T000000Z-000000' / 'manifest.json').mkdir(parents=True)
    result = one(LocalHost(str(homes), 'linux'), {'op': 'read_files', 'patterns': [f'{q}/*/manifest.json', f'{q}/x/*']})
    assert result['data'] == {'files': [
        {'path': f'{q}/20260101T000000Z-000000/manifest.json', 'content': '{"user": "zoë"}', 'error': None},
        {'path': f'{q}/20260102T000000Z-000000/manifest.json', 'content': '{}', 'error': None},
    ]}


def test_write_file_creates_parents_and_replaces(tmp_path: Path) -> None:
    host = LocalHost(str(tmp_path), 'linux')
    target = tmp_path / 'a' / 'b' / 'manifest.json'
    assert one(host, {'op': 'write_file', 'path': str(target), 'content': 'zoë'})['data'] == {'bytes': 4}
    assert target.read_text(encoding='utf-8') == 'zoë'
    assert one(host, {'op': 'write_file', 'path': str(target), 'content': 'new'})['data'] == {'bytes': 3}
    assert target.read_text(encoding='utf-8') == 'new'
    assert sorted(os.listdir(target.parent)) == ['manifest.json']       # no temporary left behind


# ------------------------------------------------------------------ move_path


def test_move_path(homes: Path) -> None:
    host = LocalHost(str(homes), 'linux')
    source = homes / 'alice' / '.config' / 'Notion' / 'Cache'
    destination = homes / 'alice' / '.local' / 'share' / 'loopbreaker' / 'quarantine' / 'e' / 'items' / '000-Cache'
    before = tree(source)
    result = host.run_batch([{'op': 'move_path', 'source': str(source), 'destination': str(destination)}])
    assert result['results'][0]['data'] == {'moved': True, 'missing': False}
    assert result['changed'] is True
    assert not source.exists()
    assert tree(destination) == before


def test_move_path_missing_source(homes: Path) -> None:
    before = tree(homes)
    result = one(LocalHost(str(homes), 'linux'), {'op': 'move_path', 'source': str(homes / 'alice' / 'nope'),
                                                  'destination': str(homes / 'alice' / 'q' / 'nope')})
    assert (result['status'], result['data']) == ('ok', {'moved': False, 'missing': True})
    assert tree(homes) == before


def test_move_path_dangling_symlink_is_moved_not_missing(homes: Path) -> None:
    link = homes / 'alice' / 'dangling'
    link.symlink_to(homes / 'nowhere')
    result = one(LocalHost(str(homes), 'linux'), {'op': 'move_path', 'source': str(link),
                                                  'destination': str(homes / 'alice' / 'moved')})
    assert result['data'] == {'moved': True, 'missing': False}
    assert os.readlink(homes / 'alice' / 'moved') == str(homes / 'nowhere')


def test_move_path_existing_destination(homes: Path) -> None:
    source = homes / 'alice' / '.config' / 'Notion' / 'Cache'
    destination = write(homes / 'alice' / 'q' / 'items' / '000-Cache', 'occupied')
    before = tree(homes)
    result = one(LocalHost(str(homes), 'linux'), {'op': 'move_path', 'source': str(source),
                                                  'destination': str(destination)})
    assert (result['status'], result['error']) == ('error', f"Cannot move to '{destination}': it already exists.")
    assert tree(homes) == before


def test_move_path_out_of_the_profiles_root_is_refused(homes: Path, tmp_path: Path) -> None:
    source = homes / 'alice' / '.config' / 'Notion' / 'Cache'
    destination = tmp_path / 'elsewhere' / 'items' / '000-Cache'
    before = tree(homes)
    result = one(LocalHost(str(homes), 'linux'), {'op': 'move_path', 'source': str(source),
                                                  'destination': str(destination)})
    assert (result['status'], result['error']) == ('error', f"Refusing '{destination}': it is not inside '{homes}'.")
    assert tree(homes) == before
    assert not (tmp_path / 'elsewhere').exists()


# ---------------------------------------------------------------- remove_path


@pytest.mark.parametrize(
    ('relative', 'gone'),
    [
        ('alice/.config/Notion/Cache', ['alice/.config/Notion/Cache', 'alice/.config/Notion/Cache/Cache_Data/index']),
        ('alice/.config/Notion/Preferences', ['alice/.config/Notion/Preferences']),
        ('alice/.config/Notion/Partitions/notion/Network/Cookies', ['alice/.config/Notion/Partitions/notion/Network/Cookies']),
    ],
)
def test_remove_path(homes: Path, relative: str, gone: list[str]) -> None:
    before = tree(homes)
    result = one(LocalHost(str(homes), 'linux'), {'op': 'remove_path', 'path': str(homes / relative)})
    assert result['data'] == {'removed': True, 'missing': False}
    after = tree(homes)
    assert {k: v for k, v in before.items() if not (k == relative or k.startswith(relative + '/'))} == after
    assert all(g not in after for g in gone)


def test_remove_path_missing(homes: Path) -> None:
    before = tree(homes)
    envelope = LocalHost(str(homes), 'linux').run_batch([{'op': 'remove_path', 'path': str(homes / 'alice' / 'nope')}])
    assert envelope['results'][0]['data'] == {'removed': False, 'missing': True}
    assert envelope['changed'] is False
    assert tree(homes) == before


def test_remove_path_of_a_symlink_keeps_its_target(homes: Path, tmp_path: Path) -> None:
    target = write(tmp_path / 'precious' / 'keep', 'keep me').parent
    link = homes / 'alice' / '.config' / 'Notion' / 'Service Worker'
    link.symlink_to(target, target_is_directory=True)
    assert one(LocalHost(str(homes), 'linux'), {'op': 'remove_path', 'path': str(link)})['data'] == {
        'removed': True, 'missing': False}
    assert not os.path.lexists(link)
    assert (target / 'keep').read_text() == 'keep me'


# --------------------------------------------------------- ensure_private_dir


def test_ensure_private_dir_creates_mode_0700_and_is_idempotent(tmp_path: Path) -> None:
    host = LocalHost(str(tmp_path), 'linux')
    target = tmp_path / 'alice' / '.local' / 'share' / 'loopbreaker' / 'quarantine' / '20260101T000000Z-000000'
    owner = f'uid:{os.geteuid()}/alice'
    assert one(host, {'op': 'ensure_private_dir', 'path': str(target), 'owner_sid': owner})['data'] == {
        'created': True, 'acl_corrected': False}
    assert stat_module.S_IMODE(os.stat(target).st_mode) == 0o700
    again = host.run_batch([{'op': 'ensure_private_dir', 'path': str(target), 'owner_sid': owner}])
    assert again['results'][0]['data'] == {'created': False, 'acl_corrected': False}
    assert again['changed'] is False


@pytest.mark.parametrize('mode', [0o755, 0o777, 0o750, 0o600])
def test_ensure_private_dir_corrects_the_mode(tmp_path: Path, mode: int) -> None:
    target = tmp_path / 'q'
    target.mkdir()
    os.chmod(target, mode)
    result = one(LocalHost(str(tmp_path), 'linux'), {'op': 'ensure_private_dir', 'path': str(target),
                                                     'owner_sid': f'uid:{os.geteuid()}'})
    assert result['data'] == {'created': False, 'acl_corrected': True}
    assert stat_module.S_IMODE(os.stat(target).st_mode) == 0o700


@needs_root
def test_ensure_private_dir_gives_the_directory_to_the_owner(tmp_path: Path) -> None:
    host = LocalHost(str(tmp_path), 'linux')
    created = tmp_path / 'new'
    assert one(host, {'op': 'ensure_private_dir', 'path': str(created), 'owner_sid': 'uid:54321/bob'})['data'] == {
        'created': True, 'acl_corrected': False}
    assert os.stat(created).st_uid == 54321
    existing = tmp_path / 'existing'
    existing.mkdir(mode=0o700)
    os.chmod(existing, 0o700)
    assert one(host, {'op': 'ensure_private_dir', 'path': str(existing), 'owner_sid': 'uid:54321'})['data'] == {
        'created': False, 'acl_corrected': True}
    assert (os.stat(existing).st_uid, stat_module.S_IMODE(os.stat(existing).st_mode)) == (54321, 0o700)


# ------------------------------------------------------------------- processes


def start_notion(tmp_path: Path, env: dict[str, str] | None) -> subprocess.Popen:
    binary = tmp_path / 'notion'
    if not binary.exists():
        shutil.copy('/bin/sleep', binary)
        os.chmod(binary, 0o755)
    child = subprocess.Popen([str(binary), '60'], env=env)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if Path(f'/proc/{child.pid}/comm').read_text().strip() == 'notion':
                break
        except OSError:
            pass
        time.sleep(0.01)
    return child


@pytest.fixture
def notion_process(tmp_path: Path):
    """A child whose comm is 'notion' (a copy of /bin/sleep), its HOME the profile tmp_path/alice."""
    (tmp_path / 'alice').mkdir()
    child = start_notion(tmp_path, {'HOME': str(tmp_path / 'alice'), 'PATH': '/usr/bin:/bin'})
    yield child
    if child.poll() is None:
        child.kill()
    child.wait(timeout=5)


@linux_only
def test_list_processes_finds_the_child(notion_process: subprocess.Popen, tmp_path: Path) -> None:
    host = LocalHost(str(tmp_path), 'linux')
    for names in (['notion'], ['Notion', 'notion-app'], ['NOTION']):
        processes = one(host, {'op': 'list_processes', 'names': names})['data']['processes']
        mine = [p for p in processes if p['pid'] == notion_process.pid]
        assert [p.pop('started').isdigit() for p in mine] == [True]
        assert mine == [{'pid': notion_process.pid, 'name': 'notion', 'path': str(tmp_path / 'notion'),
                         'owner_sid': f'uid:{os.geteuid()}', 'session_id': None,
                         'home': str(tmp_path / 'alice')}], names
    others = one(host, {'op': 'list_processes', 'names': ['notion-desktop']})['data']['processes']
    assert notion_process.pid not in [p['pid'] for p in others]


@linux_only
@pytest.mark.parametrize('home, expected', [
    pytest.param('{root}/alice', '{root}/alice', id='in-a-profile'),
    pytest.param('{root}/alice/snap/notion/12/', '{root}/alice/snap/notion/12', id='below-a-profile-normalised'),
    pytest.param('{link}/alice', '{root}/alice', id='through-a-link-to-the-root-spelt-below-the-root'),
    pytest.param('{elsewhere}', '{elsewhere}', id='outside-the-root'),
    pytest.param(None, None, id='no-HOME'),
    pytest.param('', None, id='empty-HOME'),
])
def test_a_process_carries_its_home_spelt_below_the_profiles_root(tmp_path: Path, home: str | None,
                                                                  expected: str | None) -> None:
    root = tmp_path / 'homes'
    (root / 'alice').mkdir(parents=True)
    (tmp_path / 'elsewhere').mkdir()
    (tmp_path / 'link').symlink_to(root)
    places = {'root': str(root), 'link': str(tmp_path / 'link'), 'elsewhere': str(tmp_path / 'elsewhere')}
    env = {'PATH': '/usr/bin:/bin'} if home is None else {'PATH': '/usr/bin:/bin', 'HOME': home.format(**places)}
    child = start_notion(tmp_path, env)
    try:
        listed = one(LocalHost(str(root), 'linux'), {'op': 'list_processes', 'names': ['notion']})['data']['processes']
        assert [p['home'] for p in listed if p['pid'] == child.pid] == [expected and expected.format(**places)]
    finally:
        child.kill()
        child.wait(timeout=5)


def listed_as(host: LocalHost, pid: int, name: str = 'notion') -> list[dict[str, t.Any]]:
    """The process as list_processes reports it: what stop_processes is given."""
    return [p for p in one(host, {'op': 'list_processes', 'names': [name]})['data']['processes'] if p['pid'] == pid]


@linux_only
def test_stop_processes_stops_the_child(notion_process: subprocess.Popen, tmp_path: Path) -> None:
    host = LocalHost(str(tmp_path), 'linux')
    envelope = host.run_batch([{'op': 'stop_processes', 'processes': listed_as(host, notion_process.pid),
                                'timeout_seconds': 10}])
    assert envelope['results'][0]['data'] == {'stopped': [notion_process.pid], 'already_gone': [], 'not_stopped': []}
    assert envelope['changed'] is True
    assert notion_process.wait(timeout=5) == -signal.SIGTERM
    listed = one(host, {'op': 'list_processes', 'names': ['notion']})['data']['processes']
    assert notion_process.pid not in [p['pid'] for p in listed]


@linux_only
@pytest.mark.parametrize('changed', [{'started': '1'}, {'owner_sid': 'uid:4242'}, {'name': 'other'}],
                         ids=['another start time', 'another owner', 'another program'])
def test_stop_processes_leaves_a_process_that_is_not_the_listed_one(notion_process: subprocess.Popen, tmp_path: Path,
                                                                    changed: dict[str, str]) -> None:
    host = LocalHost(str(tmp_path), 'linux')
    [listed] = listed_as(host, notion_process.pid)
    result = one(host, {'op': 'stop_processes', 'processes': [dict(listed, **changed)], 'timeout_seconds': 2})
    assert (result['data']['stopped'], [p['pid'] for p in result['data']['not_stopped']]) == ([], [notion_process.pid])
    assert notion_process.poll() is None, 'a pid whose process is not the listed one is never signalled'


@linux_only
def test_stop_processes_missing_pid_is_already_gone(tmp_path: Path) -> None:
    finished = subprocess.Popen(['/bin/true'])
    finished.wait()
    host = LocalHost(str(tmp_path), 'linux')
    gone = [{'pid': pid, 'name': 'true', 'owner_sid': f'uid:{os.geteuid()}', 'started': '1'}
            for pid in (finished.pid, 2 ** 31 - 7)]
    envelope = host.run_batch([{'op': 'stop_processes', 'processes': gone}])
    assert envelope['results'][0]['data'] == {'stopped': [], 'already_gone': [finished.pid, 2 ** 31 - 7],
                                              'not_stopped': []}
    assert envelope['changed'] is False


@linux_only
def test_stop_processes_escalates_to_sigkill(tmp_path: Path) -> None:
    stubborn = subprocess.Popen([sys.executable, '-c',
                                 'import signal, sys, time\n'
                                 'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
                                 'print("ready", flush=True)\n'
                                 'time.sleep(60)\n'], stdout=subprocess.PIPE, text=True)
    try:
        assert stubborn.stdout.readline() == 'ready\n'
        started = time.monotonic()
        host = LocalHost(str(tmp_path), 'linux')
        comm = Path(f'/proc/{stubborn.pid}/comm').read_text().strip()
        result = one(host, {'op': 'stop_processes', 'processes': listed_as(host, stubborn.pid, comm),
                            'timeout_seconds': 1})
        assert result['data'] == {'stopped': [stubborn.pid], 'already_gone': [], 'not_stopped': []}
        assert 1 <= time.monotonic() - started < 10
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
        stubborn.wait(timeout=5)
        stubborn.stdout.close()


# ------------------------------------------------------------ not on this host


@pytest.mark.parametrize(
    'operation',
    [
        {'op': 'read_registry', 'key': 'Software'},
        {'op': 'write_registry', 'key': 'Software', 'values': {}},
        {'op': 'list_firewall_rules'},
        {'op': 'remove_firewall_rule', 'name': 'x'},
    ],
    ids=lambda op: op['op'],
)
def test_windows_only_operations_are_errors(tmp_path: Path, operation: dict[str, t.Any]) -> None:
    before = tree(tmp_path)
    result = one(LocalHost(str(tmp_path), 'linux'), operation)
    assert (result['status'], result['data'], result['error']) == (
        'error', None, f"operation {operation['op']} is not available on this host")
    assert tree(tmp_path) == before


def test_check_mode_refuses_mutations(homes: Path) -> None:
    before = tree(homes)
    envelope = LocalHost(str(homes), 'linux').run_batch([
        {'op': 'stat_paths', 'patterns': [str(homes / 'alice' / '.config' / 'Notion' / 'Cache')]},
        {'op': 'remove_path', 'path': str(homes / 'alice' / '.config' / 'Notion' / 'Cache')},
        {'op': 'write_file', 'path': str(homes / 'alice' / 'x'), 'content': 'x'},
    ], check_mode=True)
    assert [(r['status'], r['error']) for r in envelope['results']] == [
        ('ok', None), ('error', 'refused in check mode'), ('error', 'refused in check mode')]
    assert tree(homes) == before


def test_unknown_parameter_is_a_vocabulary_error(tmp_path: Path) -> None:
    from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import VocabularyError

    with pytest.raises(VocabularyError, match=r'^operation 0 \(stat_paths\): unknown parameters bogus$'):
        LocalHost(str(tmp_path), 'linux').run_batch([{'op': 'stat_paths', 'patterns': [], 'bogus': 1}])


def test_quick_check_reads_notion_db_only_through_no_link(tmp_path: Path) -> None:
    """diagnose's quick_check runs as root: a link above or at notion.db, or a FIFO, is never opened."""
    import sqlite3

    notion = tmp_path / 'alice' / '.config' / 'Notion'
    notion.mkdir(parents=True)
    sqlite3.connect(notion / 'notion.db').execute('CREATE TABLE t (x)').connection.commit()
    (notion / 'torn.db').write_bytes(b'SQLite format 3\x00' + b'\xff' * 200)
    secret = tmp_path / 'bob' / 'private'
    secret.mkdir(parents=True)
    sqlite3.connect(secret / 'notion.db').execute('CREATE TABLE t (x)').connection.commit()
    (tmp_path / 'alice' / 'swapped').symlink_to(secret)
    (notion / 'linked.db').symlink_to(secret / 'notion.db')
    os.mkfifo(notion / 'fifo.db')
    host = LocalHost(str(tmp_path), 'linux', str(tmp_path / 'state'))
    assert host.quick_check(str(notion / 'notion.db')) == 'ok'
    assert host.quick_check(str(notion / 'torn.db')) not in (None, 'ok')
    for refused in ('swapped/notion.db', '.config/Notion/linked.db', '.config/Notion/fifo.db', '.config/Notion/gone.db'):
        assert host.quick_check(str(tmp_path / 'alice' / refused)) is None, refused
    assert host.quick_check('/etc/passwd') is None

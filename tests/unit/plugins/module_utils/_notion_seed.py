# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helpers: one Notion userData tree, seeded into the simulated Windows host or a tmp POSIX home.

Imported by the app_data and quarantine tests as
``ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed``.
The expectations (which entries each scope selects) are written out here by
hand, independently of plugins/module_utils/_layout.py.
"""
from __future__ import annotations

import copy
import datetime
import hashlib
import itertools
import ntpath
import os
import shutil
import subprocess
import tempfile
import time
import typing as t
from pathlib import Path

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _app_data, _quarantine_state
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import LINUX, WINDOWS
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
TOKEN = 'a1b2c3'
ENTRY_ID = '20260304T050607Z-a1b2c3'
IS_ROOT = os.geteuid() == 0

# relative path under userData -> content
TREE: dict[str, str] = {
    'Cache/Cache_Data/data_0': 'c' * 2048,
    'Cache/Cache_Data/index': 'i' * 64,
    'Code Cache/js/index': 'j' * 128,
    'GPUCache/data_1': 'g' * 512,
    'notionAssetCache-v2/assets.json': '{"version": 2}',
    'Service Worker/ScriptCache/index': 'v' * 200,
    'Local Storage/leveldb/000003.log': 'l' * 300,
    'IndexedDB/https_www.notion.so_0.indexeddb.leveldb/CURRENT': 'MANIFEST-000001\n',
    'notion.db': 'SQLite format 3\x00' + 'n' * 100,
    'notion.db-wal': 'w' * 100,
    'Cookies': 'SQLite format 3\x00root',
    'Network/Cookies': 'SQLite format 3\x00token_v2',
    'Network/Cookies-journal': '',
    'Network/TransportSecurity': '{"sts": []}',
    'Partitions/notion/Cache/Cache_Data/data_0': 'p' * 1024,
    'Partitions/notion/Service Worker/ScriptCache/index': 'v' * 50,
    'Partitions/notion/Network/Cookies': 'SQLite format 3\x00partition',
    'Partitions/notion/IndexedDB/https_www.notion.so_0.indexeddb.leveldb/000004.log': 'x' * 700,
    'Partitions/notion/Local Storage/leveldb/000005.ldb': 'k' * 90,
    'Partitions/notion/Preferences': '{}',
    'Preferences': '{"spellcheck": {}}',
    'Local State': '{"os_crypt": {}}',
    'logs/main.log': 'started\n',
}

# scope -> (relative item path, type) the scope must select from TREE
SELECTED: dict[str, set[tuple[str, str]]] = {
    'cache': {('Cache', 'directory'), ('Code Cache', 'directory'), ('GPUCache', 'directory'),
              ('notionAssetCache-v2', 'directory'), ('Partitions/notion/Cache', 'directory')},
    'service_workers': {('Service Worker', 'directory'), ('Partitions/notion/Service Worker', 'directory')},
    'storage': {('IndexedDB', 'directory'), ('Local Storage', 'directory'), ('notion.db', 'file'),
                ('notion.db-wal', 'file'), ('Partitions/notion/IndexedDB', 'directory'),
                ('Partitions/notion/Local Storage', 'directory')},
    'cookies': {('Cookies', 'file'), ('Network/Cookies', 'file'), ('Network/Cookies-journal', 'file'),
                ('Partitions/notion/Network/Cookies', 'file')},
}
# what no scope touches
KEPT: set[str] = {'Network/TransportSecurity', 'Partitions/notion/Preferences', 'Preferences', 'Local State',
                  'logs/main.log'}


def bytes_under(relative: str) -> tuple[int, int]:
    """(bytes, files) TREE holds at or under a relative path."""
    inside = [c for p, c in TREE.items() if p == relative or p.startswith(relative + '/')]
    return sum(len(c.encode()) for c in inside), len(inside)


SYSTEM_NOTION = 'C:\\Windows\\System32\\config\\systemprofile\\AppData\\Roaming\\Notion'


def sid(n: int) -> str:
    return f'S-1-5-21-1111-2222-3333-{1000 + n}'


# --------------------------------------------------------------------- the twin


def windows_user(machine: SimulatedWindows, username: str, n: int, *, notion: bool = True, loaded: bool = False,
                 app_data: str | None = None, local_app_data: str | None = None) -> str:
    """Add a profile (optionally with redirected folders) and its Notion data; returns the userData path."""
    folders = {}
    if app_data:
        folders['AppData'] = app_data
    if local_app_data:
        folders['Local AppData'] = local_app_data
    profile = machine.add_profile(username, sid(n), loaded=loaded, shell_folders=folders or None)
    appdata = app_data.replace('%USERPROFILE%', profile['profile_path']) if app_data else \
        ntpath.join(profile['profile_path'], 'AppData', 'Roaming')
    root = ntpath.join(appdata, 'Notion')
    if notion:
        for relative, content in TREE.items():
            machine.write(ntpath.join(root, relative.replace('/', '\\')), content)
    return root


def twin(users: t.Iterable[str] = ('alice', 'bob')) -> SimulatedWindows:
    """A machine with SYSTEM, the named users (with Notion data, logged off) and carol (no Notion data)."""
    machine = SimulatedWindows(empty_state('WS01'))
    machine.add_profile('systemprofile', 'S-1-5-18', loaded=True, profile_path='C:\\Windows\\System32\\config\\systemprofile')
    for relative, content in TREE.items():                      # a special profile's data is never touched
        machine.write(ntpath.join(SYSTEM_NOTION, relative.replace('/', '\\')), content)
    for n, name in enumerate(users, start=1):
        windows_user(machine, name, n)
    windows_user(machine, 'carol', 99, notion=False)
    return machine


def machine_state(machine: SimulatedWindows) -> dict[str, t.Any]:
    """The machine without its call log."""
    state = copy.deepcopy(machine.state)
    state.pop('calls')
    return state


def notion_exe(username: str) -> str:
    return f'C:\\Users\\{username}\\AppData\\Local\\Programs\\Notion\\Notion.exe'


# ---------------------------------------------------------------- POSIX homes

_uids = itertools.count(100000 + (os.getpid() % 10000) * 1000)


def next_uid() -> int:
    """A uid nobody on this machine runs processes as (distinct per call, per test process)."""
    return next(_uids)


def posix_home(profiles_root: Path, username: str, *, notion: bool = True, uid: int | None = None,
               platform: str = 'linux') -> Path:
    """A home with a Notion userData tree, owned by ``uid`` when running as root; returns userData."""
    home = profiles_root / username
    root = home / ('Library/Application Support/Notion' if platform == 'darwin' else '.config/Notion')
    home.mkdir(parents=True, exist_ok=True)
    if notion:
        for relative, content in TREE.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding='utf-8')
    if IS_ROOT:
        owner = next_uid() if uid is None else uid
        for directory, subdirs, files in os.walk(home):
            for name in [directory] + [os.path.join(directory, n) for n in subdirs + files]:
                os.lchown(name, owner, owner)
    return root


def file_tree(root: Path | str) -> dict[str, str]:
    """Relative path -> sha256 of every file ('<dir>' for directories) under root: byte identity checks."""
    root = Path(root)
    picture: dict[str, str] = {}
    if not root.exists():
        return picture
    for directory, subdirs, files in os.walk(root):
        for name in subdirs:
            picture[str(Path(directory, name).relative_to(root))] = '<dir>'
        for name in files:
            path = Path(directory, name)
            picture[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return picture


class NotionProcess:
    """A copy of /bin/sleep named ``notion`` running as ``uid`` (root only) with HOME set to ``home``.

    As a user's real session would: the local host matches a process to the profile its HOME is in.
    """

    def __init__(self, uid: int, home: str) -> None:
        self.directory = tempfile.mkdtemp(prefix='lb-notion-')
        os.chmod(self.directory, 0o755)
        binary = os.path.join(self.directory, 'notion')
        shutil.copy('/bin/sleep', binary)
        os.chmod(binary, 0o755)
        self.child = subprocess.Popen([binary, '60'], user=uid, group=uid, env={'HOME': home, 'PATH': '/usr/bin:/bin'})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with open(f'/proc/{self.child.pid}/comm', encoding='utf-8') as handle:
                    if handle.read().strip() == 'notion':
                        break
            except OSError:
                pass
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.child.pid

    def close(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)


# -------------------------------------------------------------------- params


def validated(spec: dict[str, t.Any], args: dict[str, t.Any], **constraints: t.Any) -> dict[str, t.Any]:
    """Module parameters exactly as Ansible would hand them over (defaults filled in)."""
    result = ArgumentSpecValidator(spec, **constraints).validate(args)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


# ------------------------------------------------------------- two environments


class CountingLocalHost(LocalHost):
    """LocalHost that counts bridge calls and can remove a path just before a given call."""

    def __init__(self, root: str, state_dir: str) -> None:
        super().__init__(root, 'linux', state_dir)
        self.calls: list[bool] = []
        self.vanish: dict[int, str] = {}

    def run_batch(self, operations, *, check_mode=False):
        self.calls.append(check_mode)
        doomed = self.vanish.get(len(self.calls))
        if doomed:
            if os.path.isdir(doomed):
                shutil.rmtree(doomed)
            else:
                os.unlink(doomed)
        return super().run_batch(operations, check_mode=check_mode)


class Env:
    """What the app_data and quarantine tests need from a host, whichever kind."""

    layout: t.Any
    host: t.Any

    def app_data(self, *, check_mode: bool = False, now: datetime.datetime = NOW, token: str = TOKEN,
                 **args: t.Any) -> dict[str, t.Any]:
        parameters = validated(_app_data.ARGUMENT_SPEC, args, mutually_exclusive=_app_data.MUTUALLY_EXCLUSIVE)
        return _app_data.run(self.host, self.layout, parameters, check_mode=check_mode, now=now, entry_token=token)

    def quarantine(self, *, check_mode: bool = False, now: datetime.datetime = NOW, token: str = TOKEN,
                   **args: t.Any) -> dict[str, t.Any]:
        parameters = validated(_quarantine_state.ARGUMENT_SPEC, args,
                               mutually_exclusive=_quarantine_state.MUTUALLY_EXCLUSIVE,
                               required_if=_quarantine_state.REQUIRED_IF)
        return _quarantine_state.run(self.host, self.layout, parameters, check_mode=check_mode, now=now,
                                     entry_token=token)


class TwinEnv(Env):
    kind = 'windows'
    layout = WINDOWS
    sep = '\\'

    def __init__(self, users: t.Sequence[str]) -> None:
        self.machine = twin(users)

    def data_root(self, user: str) -> str:
        return f'C:\\Users\\{user}\\AppData\\Roaming\\Notion'

    def quarantine_root(self, user: str) -> str:
        return f'C:\\Users\\{user}\\AppData\\Local\\loopbreaker\\quarantine'

    def path(self, user: str, relative: str) -> str:
        return self.data_root(user) + '\\' + relative.replace('/', '\\')

    def relative(self, user: str, path: str) -> str:
        root = self.data_root(user) + '\\'
        assert path.startswith(root), path
        return path[len(root):].replace('\\', '/')

    @property
    def host(self) -> SimulatedWindows:
        return self.machine

    def snapshot(self) -> t.Any:
        return machine_state(self.machine)

    def calls(self) -> list[bool]:
        return [c['check_mode'] for c in self.machine.state['calls']]

    def exists(self, path: str) -> bool:
        return self.machine.exists(path)

    def read(self, path: str) -> bytes:
        return self.machine.read(path)

    def tree(self, path: str) -> dict[str, str]:
        return self.machine.tree_snapshot(path)

    def vanish_before_call(self, call: int, path: str) -> None:
        self.machine.state['faults'].append({'before_call': call, 'remove_path': path})

    def add_notion_process(self, user: str) -> int:
        number = {'alice': 1, 'bob': 2}[user]
        return self.machine.add_process('Notion.exe', notion_exe(user), sid(number))

    def running(self, pid: int) -> bool:
        return any(p['pid'] == pid for p in self.machine.state['processes'])

    def close(self) -> None:
        pass


class LocalEnv(Env):
    kind = 'linux'
    layout = LINUX
    sep = '/'

    def __init__(self, root: Path, users: t.Sequence[str]) -> None:
        self.root = root / 'homes'
        self.root.mkdir()
        os.chmod(root, 0o755)
        os.chmod(self.root, 0o755)
        self.uids: dict[str, int] = {}
        for name in users:
            self.uids[name] = next_uid()
            posix_home(self.root, name, uid=self.uids[name])
        self.uids['carol'] = next_uid()
        posix_home(self.root, 'carol', notion=False, uid=self.uids['carol'])
        (self.root / 'Shared' / '.config').mkdir(parents=True)
        posix_home(self.root, 'Shared')                                          # special: never touched
        self.state_dir = root / 'state'
        self.host = CountingLocalHost(str(self.root), str(self.state_dir))
        self.processes: list[NotionProcess] = []

    def data_root(self, user: str) -> str:
        return f'{self.root}/{user}/.config/Notion'

    def quarantine_root(self, user: str) -> str:
        return f'{self.root}/{user}/.local/share/loopbreaker/quarantine'

    def path(self, user: str, relative: str) -> str:
        return self.data_root(user) + '/' + relative

    def relative(self, user: str, path: str) -> str:
        root = self.data_root(user) + '/'
        assert path.startswith(root), path
        return path[len(root):]

    def snapshot(self) -> t.Any:
        return file_tree(self.root), sorted(p.pid for p in self.processes if p.child.poll() is None)

    def calls(self) -> list[bool]:
        return list(self.host.calls)

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def read(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def tree(self, path: str) -> dict[str, str]:
        return file_tree(path) if os.path.isdir(path) else {'': file_tree(Path(path).parent)[Path(path).name]}

    def vanish_before_call(self, call: int, path: str) -> None:
        self.host.vanish[call] = path

    def add_notion_process(self, user: str) -> int:
        if not IS_ROOT:
            import pytest
            pytest.skip('needs root to run a process as the user')
        process = NotionProcess(self.uids[user], str(self.root / user))
        self.processes.append(process)
        return process.pid

    def running(self, pid: int) -> bool:
        process = next(p for p in self.processes if p.pid == pid)
        if process.child.poll() is not None:
            return False
        try:
            with open(f'/proc/{pid}/stat', encoding='utf-8') as handle:
                return not handle.read().rsplit(') ', 1)[-1].startswith('Z')
        except OSError:
            return False

    def close(self) -> None:
        for process in self.processes:
            process.close()

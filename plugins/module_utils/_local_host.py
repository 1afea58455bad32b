# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bridge vocabulary executed locally on a macOS or Linux host.

Private to this collection. The native modules run the same probe and apply
batches as the Windows path, so both give the same result shape. Profiles are
the directories under ``profiles_root``; a profile's "sid" is ``uid:<n>`` of
the home directory's owner followed by ``/<name>`` (unique even when a lab's
homes share one owner); ``owner_sid`` (``uid:<n>``) is how processes are
matched to users. On Linux a process also carries ``home``, its ``HOME``
environment variable when readable, so a process is matched to the profile
whose home it works in, not to every home of its uid (_host.owns).
Registry and firewall operations do not exist here and fail if asked for.

The module runs as root over other users' homes, so it never follows a
symbolic link below the profiles root (a user could otherwise point their
Notion folder at someone else's data) and gives every directory it creates
in a home to that home's owner.
"""
from __future__ import annotations

import datetime
import fnmatch
import os
import shutil
import signal
import subprocess
import time
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BatchRunner, BridgeOperationError
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import validate_operations

SKIPPED_HOMES = frozenset({'Shared', 'Guest', 'lost+found'})


def _split(pattern: str) -> list[str]:
    return [part for part in pattern.split('/') if part]


class LocalHost(BatchRunner):
    def __init__(self, profiles_root: str, platform: str) -> None:
        self.profiles_root = os.path.normpath(profiles_root)
        self.platform = platform

    def run_batch(self, operations: list[dict[str, t.Any]], *, check_mode: bool = False) -> dict[str, t.Any]:
        validate_operations(operations)
        return super().run_batch(operations, check_mode=check_mode)

    # ------------------------------------------------------------ safety
    def _inside_homes(self, path: str) -> list[str]:
        """Components of path below the profiles root, or [] when it is outside."""
        relative = os.path.relpath(os.path.normpath(path), self.profiles_root)
        return [] if relative.startswith('..') or os.path.isabs(relative) else relative.split(os.sep)

    def _refuse_links(self, path: str, *, final: bool = False) -> None:
        """Raise if an existing directory on the way to path (or path itself, if final) is a symlink."""
        parts = self._inside_homes(path)
        checked = parts if final else parts[:-1]
        current = self.profiles_root
        for part in checked:
            current = os.path.join(current, part)
            if os.path.islink(current):
                raise BridgeOperationError(f"Refusing to follow the symbolic link '{current}'.")

    def _home_owner(self, path: str) -> int | None:
        parts = self._inside_homes(path)
        home = os.path.join(self.profiles_root, parts[0]) if parts and parts[0] != '.' else None
        return os.lstat(home).st_uid if home and os.path.lexists(home) else None

    def _makedirs(self, path: str, mode: int = 0o755) -> None:
        """Create missing directories, each owned by the owner of the home they are in."""
        self._refuse_links(path, final=True)
        missing = []
        current = os.path.normpath(path)
        while not os.path.isdir(current):
            missing.append(current)
            current = os.path.dirname(current)
        owner = self._home_owner(path)
        for directory in reversed(missing):
            os.mkdir(directory, mode)
            if owner is not None and os.geteuid() == 0:
                os.chown(directory, owner, -1)

    # ----------------------------------------------------------- profiles
    def op_get_profiles(self, shell_folders: dict[str, str]) -> dict[str, t.Any]:
        profiles = []
        running_owners = {p['owner_sid'] for p in self._processes()}
        for name in sorted(os.listdir(self.profiles_root)):
            home = os.path.join(self.profiles_root, name)
            if not os.path.isdir(home) or os.path.islink(home):
                continue
            owner = os.stat(home).st_uid
            profiles.append({
                'sid': f'uid:{owner}/{name}', 'owner_sid': f'uid:{owner}', 'username': name, 'account': name, 'profile_path': home,
                'loaded': f'uid:{owner}' in running_owners,
                'special': name.startswith('.') or name in SKIPPED_HOMES,
                'folders': {folder: os.path.join(home, relative) for folder, relative in shell_folders.items()},
                'folder_source': {folder: 'default' for folder in shell_folders}, 'error': None,
            })
        return {'profiles': profiles}

    # -------------------------------------------------------------- files
    def _glob(self, pattern: str) -> list[str]:
        matches = ['/']
        for part in _split(pattern):
            following: list[str] = []
            for base in matches:
                if self._inside_homes(base) and os.path.islink(base):
                    continue  # never descend through a link inside a home
                if '*' not in part:
                    candidate = os.path.join(base, part)
                    if os.path.lexists(candidate):
                        following.append(candidate)
                elif os.path.isdir(base):
                    following += [os.path.join(base, n) for n in sorted(os.listdir(base)) if fnmatch.fnmatchcase(n, part)]
            matches = following
        return matches

    def op_stat_paths(self, patterns: list[str]) -> dict[str, t.Any]:
        entries = []
        for pattern in patterns:
            for path in self._glob(pattern):
                kind, size, count = _measure(path)
                modified = datetime.datetime.fromtimestamp(os.lstat(path).st_mtime, datetime.timezone.utc)
                entries.append({'pattern': pattern, 'path': path, 'type': kind, 'bytes': size, 'files': count,
                                'modified': modified.strftime('%Y-%m-%dT%H:%M:%SZ')})
        return {'entries': entries}

    def op_read_files(self, patterns: list[str]) -> dict[str, t.Any]:
        files = []
        for pattern in patterns:
            for path in self._glob(pattern):
                if os.path.isfile(path):
                    with open(path, encoding='utf-8') as handle:
                        files.append({'path': path, 'content': handle.read()})
        return {'files': files}

    def op_write_file(self, path: str, content: str) -> dict[str, t.Any]:
        self._makedirs(os.path.dirname(path))
        self._refuse_links(path, final=True)
        temporary = path + '.tmp'
        with open(temporary, 'w', encoding='utf-8') as handle:
            handle.write(content)
        os.replace(temporary, path)
        return {'bytes': len(content.encode())}

    def op_ensure_private_dir(self, path: str, owner_sid: str) -> dict[str, t.Any]:
        created = not os.path.isdir(path)
        self._makedirs(path, mode=0o700)
        owner = int(owner_sid.split(':', 1)[1].split('/', 1)[0])
        status = os.stat(path)
        corrected = False
        if status.st_mode & 0o777 != 0o700:
            os.chmod(path, 0o700)
            corrected = not created
        if status.st_uid != owner and os.geteuid() == 0:
            os.chown(path, owner, -1)
            corrected = not created
        return {'created': created, 'acl_corrected': corrected}

    def op_move_path(self, source: str, destination: str) -> dict[str, t.Any]:
        self._refuse_links(source)
        if not os.path.lexists(source):
            return {'moved': False, 'missing': True}
        if os.path.lexists(destination):
            raise BridgeOperationError(f"Cannot move to '{destination}': it already exists.")
        self._makedirs(os.path.dirname(destination))
        try:
            os.rename(source, destination)
        except OSError as error:
            raise BridgeOperationError(f"Cannot move '{source}' to '{destination}': {error.strerror}") from None
        return {'moved': True, 'missing': False}

    def op_remove_path(self, path: str) -> dict[str, t.Any]:
        self._refuse_links(path)
        if not os.path.lexists(path):
            return {'removed': False, 'missing': True}
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError as error:
            raise BridgeOperationError(f"Cannot remove '{path}': {error.strerror}") from None
        return {'removed': True, 'missing': False}

    # ---------------------------------------------------------- processes
    def op_list_processes(self, names: list[str]) -> dict[str, t.Any]:
        wanted = {name.lower() for name in names}
        return {'processes': [p for p in self._processes() if p['name'].lower() in wanted]}

    def _processes(self) -> list[dict[str, t.Any]]:
        if self.platform == 'darwin':
            output = subprocess.run(['ps', '-axo', 'pid=,uid=,comm='], capture_output=True, text=True, check=True)
            rows = [line.split(None, 2) for line in output.stdout.splitlines() if line.strip()]
            return [{'pid': int(pid), 'name': os.path.basename(comm), 'path': comm, 'owner_sid': f'uid:{uid}',
                     'session_id': None} for pid, uid, comm in rows]
        processes = []
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                with open(f'/proc/{entry}/comm', encoding='utf-8') as handle:
                    name = handle.read().strip()
                owner = os.stat(f'/proc/{entry}').st_uid
                path = os.readlink(f'/proc/{entry}/exe') if os.access(f'/proc/{entry}/exe', os.R_OK) else ''
            except OSError:
                continue
            if _is_zombie(int(entry)):
                continue  # exited, not yet reaped: nothing to stop, and no HOME to tell whose it is
            processes.append({'pid': int(entry), 'name': name, 'path': path, 'owner_sid': f'uid:{owner}',
                              'session_id': None, 'home': self._home_of(entry)})
        return processes

    def _home_of(self, pid: str) -> str | None:
        """A process's HOME, spelt below profiles_root when it resolves to a place there."""
        home = _environment_home(pid)
        if home is None:
            return None
        real, root = os.path.realpath(home), os.path.realpath(self.profiles_root)
        relative = os.path.relpath(real, root)
        if relative == '.' or relative.startswith('..'):
            return real
        return os.path.join(self.profiles_root, relative)

    def op_stop_processes(self, pids: list[int], timeout_seconds: int = 30) -> dict[str, t.Any]:
        running = {p['pid'] for p in self._processes()}
        targets = [pid for pid in pids if pid in running]
        for pid in targets:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_seconds
        remaining = _alive(targets)
        while remaining and time.monotonic() < deadline:
            time.sleep(0.1)
            remaining = _alive(remaining)
        for pid in remaining:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.2 if remaining else 0)
        stuck = _alive(remaining)
        if stuck:
            raise BridgeOperationError(f'Processes still running after {timeout_seconds} s: {", ".join(map(str, stuck))}')
        return {'stopped': targets, 'already_gone': [pid for pid in pids if pid not in running]}


def _environment_home(pid: str) -> str | None:
    """HOME of a Linux process, None when its environment cannot be read (another user's, gone)."""
    try:
        with open(f'/proc/{pid}/environ', 'rb') as handle:
            environment = handle.read()
    except OSError:
        return None
    for variable in environment.split(b'\0'):
        if variable.startswith(b'HOME=') and len(variable) > 5:
            return os.path.normpath(variable[5:].decode('utf-8', 'surrogateescape'))
    return None


def _measure(path: str) -> tuple[str, int, int]:
    if os.path.isdir(path) and not os.path.islink(path):
        size = count = 0
        for directory, _subdirs, files in os.walk(path):
            for name in files:
                try:
                    size += os.lstat(os.path.join(directory, name)).st_size
                except OSError:
                    continue
                count += 1
        return 'directory', size, count
    return 'file', os.lstat(path).st_size, 1


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        if not _is_zombie(pid):
            alive.append(pid)
    return alive


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped still answers kill(0); /proc says it is gone (Linux only)."""
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as handle:
            return handle.read().rsplit(') ', 1)[-1].startswith('Z')
    except OSError:
        return False

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bridge vocabulary executed locally on a macOS or Linux host.

Private to this collection. The native modules run the same probe and apply
batches as the Windows path, so both give the same result shape. Profiles are
the directories under ``profiles_root``; a profile's "sid" is ``uid:<n>`` of
the home directory's owner followed by ``/<name>`` (unique even when a lab's
homes share one owner); ``owner_sid`` (``uid:<n>``) is how processes are
matched to users (processes are the _local_processes mixin's, diagnose's
probes the _local_probes mixin's).
Registry and firewall operations do not exist here and fail if asked for.

The module runs as root over other users' homes, which their owners can
change at any moment. So every path operation walks from the profiles root
with directory descriptors, opening each component with O_NOFOLLOW and
acting on names relative to the last one: a symbolic link swapped in before
the walk is refused, one swapped in after it is never reached. Every
directory it creates in a home goes to that home's owner. Trusted records
and the host lock live in ``state_dir``, which only root may change; a host
built without one (single-operation tests) has neither.
"""
from __future__ import annotations

import base64
import datetime
import errno
import fcntl
import fnmatch
import os
import re
import secrets
import shutil
import stat
import time
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import (
    BatchRunner,
    BridgeOperationError,
    HostError,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_probes import LocalProbes
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_processes import LocalProcesses
from ansible_collections.loopbreaker.notion.plugins.module_utils._nofollow import FILE_FLAGS, open_regular
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import (
    LOCK_TIMEOUT_SECONDS,
    RECORD_NAME_PATTERN,
    mutating,
    validate_operations,
)

SKIPPED_HOMES = frozenset({'Shared', 'Guest', 'lost+found'})
DEFAULT_MAX_BYTES = 1048576
DEFAULT_TREE_BYTES = 64 * 1048576
MAX_RECORD_BYTES = 4 * 1048576
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _split(pattern: str) -> list[str]:
    return [part for part in pattern.split('/') if part]


class _Chain:
    """Directory descriptors from an anchor down to one directory, each opened without following a link.

    Holding the descriptors is what makes a later swap harmless: an operation names its target
    relative to ``fd``, never by a path that could be re-resolved through a link.
    """

    def __init__(self, fds: list[int], path: str) -> None:
        self.fds = fds
        self.path = path

    @property
    def fd(self) -> int:
        return self.fds[-1]

    def close(self) -> None:
        for fd in reversed(self.fds):
            os.close(fd)
        self.fds = []

    def __enter__(self) -> _Chain:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class LocalHost(LocalProcesses, LocalProbes, BatchRunner):
    def __init__(self, profiles_root: str, platform: str, state_dir: str | None = None, *,
                 exclusive: bool = False, lock_timeout: float | None = None) -> None:
        self.profiles_root = os.path.normpath(profiles_root)
        self.platform = platform
        self.state_dir = os.path.normpath(state_dir) if state_dir else None
        # exclusive: take the host lock at the first batch (the probe), so a second run cannot plan
        # from what this run is about to change; otherwise it is taken by the first mutating batch.
        self.exclusive = exclusive
        self.lock_timeout = LOCK_TIMEOUT_SECONDS if lock_timeout is None else lock_timeout
        self._lock_fd: int | None = None
        self.hook: t.Callable[[str, dict[str, t.Any]], None] = lambda _event, _operation: None

    def run_batch(self, operations: list[dict[str, t.Any]], *, check_mode: bool = False) -> dict[str, t.Any]:
        validate_operations(operations)
        # The probe is sent with check_mode=True: an exclusive run must still take the lock there.
        if self.state_dir is not None and (self.exclusive or (not check_mode and mutating(operations))):
            self._acquire_lock()
        return super().run_batch(operations, check_mode=check_mode)

    def dispatch(self, name: str, params: dict[str, t.Any]) -> dict[str, t.Any]:
        try:
            self.hook('before', {'op': name, **params})
            return super().dispatch(name, params)
        except OSError as error:
            # A full disk, a read-only file system, a permission problem: this operation fails,
            # the batch goes on with the other groups and reports what was done.
            raise BridgeOperationError(_describe(error)) from None
        except UnicodeError as error:
            raise BridgeOperationError(f'not valid text: {error}') from None
        except RecursionError:
            # os.fwalk and shutil.rmtree recurse once per level: a user's tree deeper than the
            # interpreter's limit fails this operation (this user), never the whole run.
            raise BridgeOperationError(f"Refusing '{params.get('path') or params.get('source') or params.get('patterns')}':"
                                       ' its directory tree is too deep to walk.') from None

    # ------------------------------------------------------------- the lock
    def _acquire_lock(self) -> None:
        if self._lock_fd is not None:
            return
        try:
            with self._state_chain() as chain:
                fd = os.open('lock', os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=chain.fd)
        except (OSError, BridgeOperationError) as error:
            raise HostError(f'cannot take the host lock in {self.state_dir}: {_describe(error)} Nothing was changed.') \
                from None
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise HostError(f'another loopbreaker.notion run has held {self.state_dir}/lock for '
                                    f'{self.lock_timeout:g} s; nothing was changed') from None
                time.sleep(0.2)

    def release(self) -> None:
        """Give up the host lock; a module's process also drops it when it ends."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __del__(self) -> None:
        self.release()

    # ------------------------------------------------------------ safety
    def _relative(self, path: str, within: str | None) -> tuple[str, list[str]]:
        """(anchor, components of path below it); the anchor is within, itself inside the profiles root."""
        anchor = os.path.normpath(within) if within else self.profiles_root
        if not os.path.isabs(path) or not os.path.isabs(anchor):
            raise BridgeOperationError(f"Refusing '{path}': only absolute paths are accepted.")
        for outer, inner in ((self.profiles_root, anchor), (anchor, path)):
            relative = os.path.relpath(os.path.normpath(inner), outer)
            if relative == '..' or relative.startswith('../') or os.path.isabs(relative):
                raise BridgeOperationError(f"Refusing '{inner}': it is not inside '{outer}'.")
        relative = os.path.relpath(os.path.normpath(path), anchor)
        return anchor, [] if relative == '.' else relative.split(os.sep)

    def _open_anchor(self, anchor: str) -> _Chain:
        """The profiles root (trusted: an administrator chose it), then every component down to anchor."""
        fds = [os.open(self.profiles_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
        chain = _Chain(fds, self.profiles_root)
        try:
            for part in _split(os.path.relpath(anchor, self.profiles_root)):
                if part != '.':
                    self._descend(chain, part)
        except BaseException:
            chain.close()
            raise
        return chain

    def _descend(self, chain: _Chain, part: str, *, create: bool = False, mode: int = 0o755,
                 home_owned: bool = True) -> None:
        path = os.path.join(chain.path, part)
        try:
            fd = os.open(part, _DIRECTORY_FLAGS, dir_fd=chain.fd)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(part, mode, dir_fd=chain.fd)
            fd = os.open(part, _DIRECTORY_FLAGS, dir_fd=chain.fd)
            if home_owned:
                self._give_to_home_owner(fd, path)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                kind = 'symbolic link' if os.path.islink(path) else 'non-directory'
                raise BridgeOperationError(f"Refusing to follow the {kind} '{path}'.") from None
            raise
        chain.fds.append(fd)
        chain.path = path

    def _parent(self, path: str, within: str | None, *, create: bool = False) -> tuple[_Chain, str]:
        """(descriptors down to path's parent, path's last component)."""
        anchor, parts = self._relative(path, within)
        if not parts:
            raise BridgeOperationError(f"Refusing '{path}': it is the anchor itself.")
        chain = self._open_anchor(anchor)
        try:
            for part in parts[:-1]:
                # A folder made in a home is private to its owner, as the folder it stands in for may have been.
                self._descend(chain, part, create=create, mode=0o700)
        except BaseException:
            chain.close()
            raise
        return chain, parts[-1]

    def _home_owner(self, path: str) -> int | None:
        relative = os.path.relpath(path, self.profiles_root)
        if relative == '.' or relative.startswith('..'):
            return None
        home = os.path.join(self.profiles_root, relative.split(os.sep)[0])
        try:
            return os.lstat(home).st_uid
        except FileNotFoundError:
            return None

    def _give_to_home_owner(self, fd: int, path: str) -> None:
        owner = self._home_owner(path)
        if owner is not None and os.geteuid() == 0:
            os.fchown(fd, owner, -1)

    # ----------------------------------------------------------- profiles
    def op_get_profiles(self, shell_folders: dict[str, str], users: list[str] | None = None,
                        exclude_users: list[str] | None = None) -> dict[str, t.Any]:
        profiles = []
        running_owners = {p['owner_sid'] for p in self._processes()}
        for name in sorted(os.listdir(self.profiles_root)):
            home = os.path.join(self.profiles_root, name)
            if not os.path.isdir(home) or os.path.islink(home):
                continue
            owner = os.lstat(home).st_uid
            profiles.append({
                'sid': f'uid:{owner}/{name}', 'owner_sid': f'uid:{owner}', 'username': name, 'account': name, 'profile_path': home,
                'loaded': f'uid:{owner}' in running_owners,
                'special': name.startswith('.') or name in SKIPPED_HOMES,
                'folders': {folder: os.path.join(home, relative) for folder, relative in shell_folders.items()},
                'folder_source': {folder: 'default' for folder in shell_folders}, 'error': None,
            })
        for profile in profiles:
            named = {profile['username'], profile['account']}
            profile['selected'] = not profile['special'] and (users is None or bool(named & set(users))) and \
                not named & set(exclude_users or ())
        return {'profiles': profiles, 'skipped': []}

    # -------------------------------------------------------------- files
    def _glob(self, pattern: str, within: str | None) -> t.Iterator[tuple[_Chain, str, os.stat_result]]:
        """(parent descriptors, name, lstat) of every match; links below the anchor are never descended.

        Read-only lookups outside the profiles root (``/Applications`` on macOS) walk the system's
        own tree, which only administrators can change, from ``/`` without that rule.
        """
        if within is None and self._outside_homes(pattern):
            chain = _Chain([os.open('/', os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)], '/')
            with chain:
                yield from self._glob_below(chain, _split(pattern), follow=True)
            return
        anchor, parts = self._relative(pattern, within)
        if not parts:
            return
        try:
            chain = self._open_anchor(anchor)
        except (FileNotFoundError, BridgeOperationError):
            return
        with chain:
            yield from self._glob_below(chain, parts)

    def _outside_homes(self, path: str) -> bool:
        relative = os.path.relpath(os.path.normpath(path), self.profiles_root)
        return relative == '..' or relative.startswith('../')

    def _glob_below(self, chain: _Chain, parts: list[str], *,
                    follow: bool = False) -> t.Iterator[tuple[_Chain, str, os.stat_result]]:
        part, rest = parts[0], parts[1:]
        if '*' in part:
            names = sorted(n for n in os.listdir(chain.fd) if fnmatch.fnmatchcase(n, part))
        else:
            names = [part]
        for name in names:
            status = _lstat(chain.fd, name)
            if status is None:
                continue
            if not rest:
                yield chain, name, status
                continue
            if not (stat.S_ISDIR(status.st_mode) or (follow and stat.S_ISLNK(status.st_mode))):
                if stat.S_ISLNK(status.st_mode) and '*' not in part:
                    # A fixed folder on the way (~/.config, the data root) that is a link: say so, or the
                    # user would be skipped silently as if they had no data.
                    raise BridgeOperationError(f"Refusing to follow the symbolic link '{os.path.join(chain.path, name)}'.")
                continue
            depth = len(chain.fds)
            try:
                if follow:
                    chain.fds.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=chain.fd))
                    chain.path = os.path.join(chain.path, name)
                else:
                    self._descend(chain, name)
            except (OSError, BridgeOperationError):
                continue
            try:
                yield from self._glob_below(chain, rest, follow=follow)
            finally:
                while len(chain.fds) > depth:
                    os.close(chain.fds.pop())
                chain.path = os.path.dirname(chain.path)

    def op_stat_paths(self, patterns: list[str], within: str | None = None) -> dict[str, t.Any]:
        entries = []
        for pattern in patterns:
            for chain, name, status in self._glob(pattern, within):
                kind, size, count = _measure(chain.fd, name, status)
                modified = datetime.datetime.fromtimestamp(status.st_mtime, datetime.timezone.utc)
                entries.append({'pattern': pattern, 'path': os.path.join(chain.path, name), 'type': kind,
                                'bytes': size, 'files': count, 'modified': modified.strftime('%Y-%m-%dT%H:%M:%SZ'),
                                'uid': status.st_uid, 'gid': status.st_gid, 'mode': stat.S_IMODE(status.st_mode),
                                'links': status.st_nlink})
        return {'entries': entries}

    def op_read_files(self, patterns: list[str], within: str | None = None,
                      max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, t.Any]:
        files = []
        for pattern in patterns:
            for chain, name, status in self._glob(pattern, within):
                if stat.S_ISDIR(status.st_mode):
                    continue
                path = os.path.join(chain.path, name)
                try:
                    files.append({'path': path, 'content': _read_text(chain.fd, name, max_bytes), 'error': None})
                except (OSError, BridgeOperationError) as error:
                    files.append({'path': path, 'content': None, 'error': _describe(error)})
        return {'files': files}

    def op_write_file(self, path: str, content: str, within: str | None = None) -> dict[str, t.Any]:
        chain, name = self._parent(path, within, create=True)
        with chain:
            _replace_file(chain.fd, name, content.encode(), owner=self._home_owner(path))
        return {'bytes': len(content.encode())}

    def op_ensure_private_dir(self, path: str, owner_sid: str, within: str | None = None) -> dict[str, t.Any]:
        owner = int(owner_sid.split(':', 1)[1].split('/', 1)[0])
        chain, name = self._parent(path, within, create=True)
        with chain:
            created = False
            try:
                os.mkdir(name, 0o700, dir_fd=chain.fd)
                created = True
            except FileExistsError:
                pass
            self._descend(chain, name)
            status = os.fstat(chain.fd)
            corrected = False
            if stat.S_IMODE(status.st_mode) != 0o700:
                os.fchmod(chain.fd, 0o700)
                corrected = not created
            if status.st_uid != owner and os.geteuid() == 0:
                os.fchown(chain.fd, owner, -1)
                corrected = not created
        return {'created': created, 'acl_corrected': corrected}

    def op_move_path(self, source: str, destination: str, within: str | None = None, expect_type: str | None = None,
                     attributes: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        source_chain, source_name = self._parent(source, within)
        with source_chain:
            status = _lstat(source_chain.fd, source_name)
            if status is None:
                return {'moved': False, 'missing': True}
            self._check_movable(source, status, expect_type, attributes)
            destination_chain, destination_name = self._parent(destination, within, create=True)
            with destination_chain:
                if _lstat(destination_chain.fd, destination_name) is not None:
                    raise BridgeOperationError(f"Cannot move to '{destination}': it already exists.")
                try:
                    os.rename(source_name, destination_name, src_dir_fd=source_chain.fd,
                              dst_dir_fd=destination_chain.fd)
                except OSError as error:
                    raise BridgeOperationError(f"Cannot move '{source}' to '{destination}': {error.strerror}") from None
                if attributes:
                    _apply_attributes(destination_chain.fd, destination_name, destination, status, attributes)
        return {'moved': True, 'missing': False}

    def _check_movable(self, source: str, status: os.stat_result, expect_type: str | None,
                       attributes: dict[str, t.Any] | None) -> None:
        """Refuse, before anything moves, an item that is not what the trusted record says it was."""
        if expect_type is not None:
            found = _kind(status)
            if found != expect_type:
                raise BridgeOperationError(f"Refusing to move '{source}': it is a {found}, expected a {expect_type}.")
            if found == 'file' and status.st_nlink != 1:
                raise BridgeOperationError(f"Refusing to move '{source}': it has {status.st_nlink} hard links.")
        if attributes:
            # Exactly the recorded owner: the item is chowned to it after the move, so accepting the home's
            # owner too would let a user swap in a file of their own and have root give it to that uid.
            expected = attributes.get('uid')
            if expected is None:
                expected = self._home_owner(source)
            if status.st_uid != expected:
                raise BridgeOperationError(f"Refusing to move '{source}': it belongs to uid {status.st_uid}, not to "
                                           f'uid {expected} recorded for it.')

    def op_remove_path(self, path: str, within: str | None = None) -> dict[str, t.Any]:
        chain, name = self._parent(path, within)
        with chain:
            status = _lstat(chain.fd, name)
            if status is None:
                return {'removed': False, 'missing': True}
            try:
                if stat.S_ISDIR(status.st_mode):
                    shutil.rmtree(name, dir_fd=chain.fd)  # descriptor-based: never follows a link inside
                else:
                    os.unlink(name, dir_fd=chain.fd)
            except OSError as error:
                raise BridgeOperationError(f"Cannot remove '{path}': {error.strerror}") from None
        return {'removed': True, 'missing': False}

    # ------------------------------------------------------ binary trees
    def op_read_trees(self, patterns: list[str], within: str | None = None,
                      max_bytes: int = DEFAULT_TREE_BYTES) -> dict[str, t.Any]:
        trees = []
        for pattern in patterns:
            for chain, name, status in self._glob(pattern, within):
                path = os.path.join(chain.path, name)
                tree: dict[str, t.Any] = {'pattern': pattern, 'path': path, 'type': _kind(status),
                                          'uid': status.st_uid, 'gid': status.st_gid,
                                          'mode': stat.S_IMODE(status.st_mode), 'files': None, 'error': None}
                try:
                    tree['files'] = _read_tree(chain.fd, name, status, max_bytes)
                except (OSError, BridgeOperationError) as error:
                    tree['error'] = _describe(error)
                trees.append(tree)
        return {'trees': trees}

    def op_write_tree(self, path: str, files: list[dict[str, t.Any]], within: str | None = None,
                      attributes: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        chain, name = self._parent(path, within)
        owner = (int(attributes.get('uid', -1)), int(attributes.get('gid', -1))) if attributes else None
        with chain:
            if (_lstat(chain.fd, name) is not None):
                raise BridgeOperationError(f"Cannot write '{path}': it already exists.")
            temporary = f'.{name}.{secrets.token_hex(4)}.tmp'
            written = 0
            try:
                mode = int(attributes['mode']) & 0o777 if attributes and 'mode' in attributes else None
                if len(files) == 1 and files[0]['name'] == '':
                    single = dict(files[0], mode=mode) if mode is not None else files[0]
                    written = _create_file(chain.fd, temporary, single, owner)
                else:
                    os.mkdir(temporary, 0o700, dir_fd=chain.fd)
                    top = os.open(temporary, _DIRECTORY_FLAGS, dir_fd=chain.fd)
                    try:
                        for entry in files:
                            written += _create_below(top, entry, owner)
                        if owner and os.geteuid() == 0:
                            os.fchown(top, *owner)
                        if mode is not None:
                            os.fchmod(top, mode)
                    finally:
                        os.close(top)
                os.rename(temporary, name, src_dir_fd=chain.fd, dst_dir_fd=chain.fd)
            except BaseException:
                _discard(chain.fd, temporary)
                raise
        return {'created': True, 'bytes': written}

    # ------------------------------------------------------ trusted records
    def _state_chain(self, *parts: str, create: bool = True) -> _Chain:
        """Descriptors down to <state_dir>/<parts>, checking that only root (or we) could have changed any of it."""
        if self.state_dir is None:
            raise BridgeOperationError('no state directory is configured for trusted records')
        for part in parts:
            if not re.fullmatch(RECORD_NAME_PATTERN, part):
                raise BridgeOperationError(f"'{part}' is not a valid record name.")
        chain = _Chain([os.open('/', os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)], '/')
        try:
            components = _split(self.state_dir)
            for index, part in enumerate(components + list(parts)):
                ours = index >= len(components) - 1
                self._descend(chain, part, create=create, mode=0o700 if ours else 0o755, home_owned=False)
                _assert_trusted_directory(chain.fd, chain.path, private=ours)
        except BaseException:
            chain.close()
            raise
        return chain

    def op_read_records(self, namespace: str) -> dict[str, t.Any]:
        try:
            chain = self._state_chain('records', namespace, create=False)
        except FileNotFoundError:
            return {'records': [], 'store': os.path.join(str(self.state_dir), 'records', namespace)}
        records = []
        with chain:
            for name in sorted(os.listdir(chain.fd)):
                key = name[:-len('.json')]
                if not name.endswith('.json') or not re.fullmatch(RECORD_NAME_PATTERN, key):
                    continue
                try:
                    records.append({'key': key, 'content': _read_text(chain.fd, name, MAX_RECORD_BYTES, owner=os.geteuid()),
                                    'error': None})
                except (OSError, BridgeOperationError) as error:
                    records.append({'key': key, 'content': None,
                                    'error': _describe(error)})
            return {'records': records, 'store': chain.path}

    def op_write_record(self, namespace: str, key: str, content: str) -> dict[str, t.Any]:
        if not re.fullmatch(RECORD_NAME_PATTERN, key):
            raise BridgeOperationError(f"'{key}' is not a valid record name.")
        with self._state_chain('records', namespace) as chain:
            _replace_file(chain.fd, f'{key}.json', content.encode(), owner=None, durable=True)
        return {'updated': True, 'bytes': len(content.encode())}

    def op_remove_record(self, namespace: str, key: str) -> dict[str, t.Any]:
        if not re.fullmatch(RECORD_NAME_PATTERN, key):
            raise BridgeOperationError(f"'{key}' is not a valid record name.")
        try:
            chain = self._state_chain('records', namespace, create=False)
        except FileNotFoundError:
            return {'removed': False, 'missing': True}
        with chain:
            try:
                os.unlink(f'{key}.json', dir_fd=chain.fd)
            except FileNotFoundError:
                return {'removed': False, 'missing': True}
        return {'removed': True, 'missing': False}


def _kind(status: os.stat_result) -> str:
    if stat.S_ISLNK(status.st_mode):
        return 'symlink'
    return 'directory' if stat.S_ISDIR(status.st_mode) else 'file'


def _measure(parent_fd: int, name: str, status: os.stat_result) -> tuple[str, int, int]:
    kind = _kind(status)
    if kind != 'directory':
        return kind, status.st_size, 1
    size = count = 0
    fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=parent_fd)
    try:
        for _directory, _subdirs, files, directory_fd in os.fwalk('.', dir_fd=fd):
            for file_name in files:
                try:
                    size += os.stat(file_name, dir_fd=directory_fd, follow_symlinks=False).st_size
                except OSError:
                    continue
                count += 1
    finally:
        os.close(fd)
    return kind, size, count


def _lstat(parent_fd: int, name: str) -> os.stat_result | None:
    """The entry itself (a link is not followed), or None when there is none."""
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _read_text(parent_fd: int, name: str, max_bytes: int, *, owner: int | None = None) -> str:
    """A regular file's UTF-8 text, never through a link, at most max_bytes."""
    fd, status = open_regular(parent_fd, name)
    try:
        if owner is not None and status.st_uid != owner:
            raise BridgeOperationError(f'it belongs to uid {status.st_uid}, not {owner}')
        if status.st_size > max_bytes:
            raise BridgeOperationError(f'it is larger than {max_bytes} bytes')
        data = os.read(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise BridgeOperationError(f'it is larger than {max_bytes} bytes')
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        raise BridgeOperationError('it is not UTF-8 text') from None


def _replace_file(parent_fd: int, name: str, data: bytes, *, owner: int | None, durable: bool = False) -> None:
    """Write a new file beside name and rename it over name: a link there is replaced, never followed."""
    existing = _lstat(parent_fd, name)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise BridgeOperationError(f"Cannot write '{name}': it is a directory.")
    temporary = f'.{name}.{secrets.token_hex(4)}.tmp'
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=parent_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if owner is not None and os.geteuid() == 0:
                os.fchown(fd, owner, -1)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=parent_fd)
        except OSError:
            pass
        raise


def _apply_attributes(parent_fd: int, name: str, path: str, moved: os.stat_result, attributes: dict[str, t.Any]) -> None:
    """Owner and mode from the trusted record, on the very inode that was moved, through no link."""
    flags = _DIRECTORY_FLAGS if stat.S_ISDIR(moved.st_mode) else FILE_FLAGS
    if stat.S_ISLNK(moved.st_mode):
        return  # a link is restored as a link; its own owner does not matter to anyone
    try:
        fd = os.open(name, flags, dir_fd=parent_fd)
    except OSError as error:
        raise BridgeOperationError(f"Moved '{path}' but did not set its owner and mode: {_describe(error)}") from None
    try:
        status = os.fstat(fd)
        if (status.st_dev, status.st_ino) != (moved.st_dev, moved.st_ino):
            raise BridgeOperationError(f"Moved '{path}' but it was replaced before its owner and mode were set.")
        if os.geteuid() == 0:
            os.fchown(fd, int(attributes.get('uid', -1)), int(attributes.get('gid', -1)))
        if 'mode' in attributes:
            os.fchmod(fd, int(attributes['mode']) & 0o7777 & ~(stat.S_ISUID | stat.S_ISGID))
    finally:
        os.close(fd)


def _assert_trusted_directory(fd: int, path: str, *, private: bool) -> None:
    """Only root (or the user the module runs as) may be able to change a state directory or its ancestors.

    An ancestor may be world-writable only if sticky (like /tmp): then no one else can replace it.
    """
    status = os.fstat(fd)
    me = os.geteuid()
    if status.st_uid not in (0, me):
        raise BridgeOperationError(f"Refusing the state directory: '{path}' belongs to uid {status.st_uid}.")
    mode = stat.S_IMODE(status.st_mode)
    if private and mode & 0o077:
        if status.st_uid != me:
            raise BridgeOperationError(f"Refusing the state directory: '{path}' is open to others (mode {mode:o}).")
        os.fchmod(fd, mode & 0o700)
    elif not private and mode & 0o022 and not mode & stat.S_ISVTX:
        raise BridgeOperationError(f"Refusing the state directory: '{path}' is writable by others (mode {mode:o}).")


def _describe(error: Exception) -> str:
    """An operation's error as the result reports it: an OSError with its file, anything else as it says."""
    if not isinstance(error, OSError):
        return str(error)
    where = f" '{error.filename}'" if error.filename else ''
    return f'{error.strerror or error}{where}'


def _read_tree(parent_fd: int, name: str, status: os.stat_result, max_bytes: int) -> list[dict[str, t.Any]]:
    """Every regular file of a file or directory, base64; a link or special file anywhere is an error."""
    kind = _kind(status)
    if kind == 'file' and stat.S_ISREG(status.st_mode):
        return [{'name': '', 'mode': stat.S_IMODE(status.st_mode),
                 'data': base64.b64encode(_read_bytes(parent_fd, name, max_bytes)).decode()}]
    if kind != 'directory':
        raise BridgeOperationError(f'it is a {kind}; not followed')
    files: list[dict[str, t.Any]] = []
    budget = max_bytes
    fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=parent_fd)
    try:
        for directory, subdirs, names, directory_fd in os.fwalk('.', dir_fd=fd):
            for entry in sorted(names) + sorted(subdirs):
                entry_status = os.stat(entry, dir_fd=directory_fd, follow_symlinks=False)
                if stat.S_ISDIR(entry_status.st_mode):
                    continue
                relative = os.path.normpath(os.path.join(directory, entry)).replace(os.sep, '/')
                if not stat.S_ISREG(entry_status.st_mode):
                    raise BridgeOperationError(f"it holds '{relative}', which is a {_kind(entry_status)}; not followed")
                data = _read_bytes(directory_fd, entry, budget)
                budget -= len(data)
                files.append({'name': relative, 'mode': stat.S_IMODE(entry_status.st_mode),
                              'data': base64.b64encode(data).decode()})
    finally:
        os.close(fd)
    return files


def _read_bytes(parent_fd: int, name: str, max_bytes: int) -> bytes:
    fd, status = open_regular(parent_fd, name)
    try:
        if status.st_nlink != 1:
            raise BridgeOperationError(f'it has {status.st_nlink} hard links')
        if status.st_size > max_bytes:
            raise BridgeOperationError(f'it is larger than the {max_bytes} bytes left to read')
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1048576)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise BridgeOperationError(f'it is larger than the {max_bytes} bytes left to read')
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b''.join(chunks)


def _create_file(parent_fd: int, name: str, entry: dict[str, t.Any], owner: tuple[int, int] | None) -> int:
    data = base64.b64decode(entry['data'], validate=True)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 int(entry.get('mode', 0o600)) & 0o777, dir_fd=parent_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if owner and os.geteuid() == 0:
            os.fchown(fd, *owner)
        os.fchmod(fd, int(entry.get('mode', 0o600)) & 0o777)
    finally:
        os.close(fd)
    return len(data)


def _create_below(top_fd: int, entry: dict[str, t.Any], owner: tuple[int, int] | None) -> int:
    """One file of a new tree, in directories created for it; names are relative and plain."""
    parts = entry['name'].split('/')
    if not entry['name'] or any(part in ('', '.', '..') for part in parts):
        raise BridgeOperationError(f"Refusing the file name {entry['name']!r} in a tree.")
    fds = [top_fd]
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o700, dir_fd=fds[-1])
                created = True
            except FileExistsError:
                created = False
            fd = os.open(part, _DIRECTORY_FLAGS, dir_fd=fds[-1])
            fds.append(fd)
            if created and owner and os.geteuid() == 0:
                os.fchown(fd, *owner)
        return _create_file(fds[-1], parts[-1], entry, owner)
    finally:
        for fd in fds[1:]:
            os.close(fd)


def _discard(parent_fd: int, name: str) -> None:
    try:
        if stat.S_ISDIR(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
    except OSError:
        pass

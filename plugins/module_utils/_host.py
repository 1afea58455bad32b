# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every remediation needs from a host, whichever path it runs on.

Private to this collection. ``Host`` is satisfied by the Windows bridge client
(action plugins), the simulated Windows host and the local POSIX host. The
helpers here turn a batch envelope into data or raise, and choose the target
profiles the same way for every module.
"""
from __future__ import annotations

import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import HostError
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import LAYOUTS, PlatformLayout
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost

Envelope = dict[str, t.Any]
# The longest text option value any module accepts (a path, a URL, a name); see _validation.
MAX_TEXT = 4096


class Host(t.Protocol):
    platform: str

    def run_batch(self, operations: list[dict[str, t.Any]], *, check_mode: bool = False) -> Envelope:
        ...


class RequestError(Exception):
    """Bad input or an impossible state, found before anything was changed."""


def operation_data(envelope: Envelope, index: int) -> dict[str, t.Any]:
    """Data of one operation of a read-only batch; raises HostError if it failed."""
    result = envelope['results'][index]
    if result['status'] != 'ok':
        raise HostError(f"{result['op']} failed: {result['error'] or result['status']}")
    return result['data']


def per_profile(envelope: Envelope, index: int) -> dict[str, dict[str, t.Any]]:
    """``by_sid`` results of an each_profile operation."""
    return operation_data(envelope, index)['by_sid']


def owns(profile: dict[str, t.Any], process: dict[str, t.Any]) -> bool:
    """Whether a process is the profile's user's, working on that profile's data.

    The owner must match (POSIX profiles carry a separate ``owner_sid``, the home's uid). On
    POSIX the local host also reports the process's ``HOME`` when it can read it: Notion keeps its
    data under ``$HOME``, so a process of the same uid whose HOME is outside this profile's home
    (another home sharing the owner, as in a lab of sandboxed homes) is not working on this
    profile and is left alone. Without a HOME (Windows, macOS, an unreadable environment) the
    owner decides alone.
    """
    if process['owner_sid'] != profile.get('owner_sid', profile['sid']):
        return False
    home = process.get('home')
    if not home or not profile.get('profile_path'):
        return True
    root = profile['profile_path'].rstrip('/')
    return bool(home == root or home.startswith(root + '/'))


# What stop_processes needs to tell a listed process from a later one that got its id.
PROCESS_IDENTITY = ('pid', 'name', 'owner_sid', 'started')


def stop_operation(processes: t.Iterable[dict[str, t.Any]], group: str,
                   timeout_seconds: int | None = None) -> dict[str, t.Any]:
    """stop_processes for processes as list_processes reported them: the host stops each only while it is still
    that process (same image name, owner and start time), never one that took its id since the probe."""
    operation: dict[str, t.Any] = {'op': 'stop_processes', 'group': group, 'processes': [
        {field: process.get(field) for field in PROCESS_IDENTITY}
        for process in sorted(processes, key=lambda p: p['pid'])]}
    if timeout_seconds is not None:
        operation['timeout_seconds'] = timeout_seconds
    return operation


def not_stopped(results: t.Iterable[dict[str, t.Any]] | None, group: str) -> list[dict[str, t.Any]]:
    """The processes a group's stop_processes left running because they were no longer the listed ones."""
    return [dict(entry) for result in results or () if result.get('group') == group
            and result['op'] == 'stop_processes' and result['status'] == 'ok'
            for entry in (result.get('data') or {}).get('not_stopped', [])]


def profiles_operation(shell_folders: dict[str, str], users: list[str] | None,
                       exclude_users: list[str] | None) -> dict[str, t.Any]:
    """The get_profiles operation of a probe, with the module's selection, so the host loads only those hives."""
    operation: dict[str, t.Any] = {'op': 'get_profiles', 'shell_folders': dict(shell_folders)}
    if users:
        operation['users'] = list(users)
    if exclude_users:
        operation['exclude_users'] = list(exclude_users)
    return operation


def skipped_profiles(profiles_data: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The ProfileList entries the host skipped (a .bak key, a temporary or incomplete profile), for the result."""
    return [{'user': s.get('username'), 'sid': s.get('sid'), 'key': s.get('key'), 'profile_path': s.get('profile_path'),
             'reason': s.get('reason')} for s in profiles_data.get('skipped') or []]


def select_profiles(profiles: list[dict[str, t.Any]], users: list[str] | None, exclude_users: list[str] | None,
                    *, case_insensitive: bool, skipped: list[dict[str, t.Any]] | None = None) -> list[dict[str, t.Any]]:
    """Real (non-special) profiles, narrowed to ``users`` or minus ``exclude_users``.

    A user is named by the profile name or by the account (``DOMAIN\\name``, ``AzureAD\\FirstLast``);
    a bare name two accounts share is ambiguous and must be given as the account. Naming a user who
    has no profile is an error listing the profiles there are (and, for one the host skipped, why);
    excluding one is not (a fleet-wide exclusion list names users absent from most machines).
    """
    def fold(name: str) -> str:
        return name.lower() if case_insensitive else name

    real = [p for p in profiles if not p['special']]
    by_name: dict[str, list[dict[str, t.Any]]] = {}
    for profile in real:
        names = {fold(profile['username'])} | ({fold(profile['account'])} if profile.get('account') else set())
        for name in names:
            by_name.setdefault(name, []).append(profile)
    if users is not None and not users:
        # An empty list is not "no filter": that would turn "nobody" into "everybody".
        raise RequestError('users must name at least one user; leave it out to mean every user')
    if users:
        unknown = [name for name in users if fold(name) not in by_name]
        if unknown:
            listing = ', '.join(sorted(p['username'] for p in real)) or 'none'
            why = [f"{s['username']} ({s['key']}): skipped, {s['reason']}" for s in skipped or ()
                   if fold(s.get('username') or '') in {fold(n) for n in unknown}]
            raise RequestError(f'users lists unknown user(s): {", ".join(unknown)}; profiles on this host: {listing}'
                               + (f'; {"; ".join(why)}' if why else ''))
        ambiguous = [name for name in users if len(by_name[fold(name)]) > 1]
        if ambiguous:
            accounts = ', '.join(sorted(p['account'] for name in ambiguous for p in by_name[fold(name)]))
            raise RequestError(f'users names {", ".join(ambiguous)}, which is more than one account here ({accounts}): '
                               'name the account')
        return list({p['sid']: p for name in users for p in by_name[fold(name)]}.values())
    excluded = {id(p) for name in exclude_users or () for p in by_name.get(fold(name), [])}
    return [p for p in real if id(p) not in excluded]


DEFAULT_PROFILES_ROOTS: dict[str, str] = {'darwin': '/Users', 'linux': '/home'}
DEFAULT_STATE_DIR = '/var/lib/loopbreaker/notion'
# The state chain opens every component without following links, and on macOS /var is a link to
# /private/var: name the real directory there.
DEFAULT_STATE_DIRS: dict[str, str] = {'darwin': '/private' + DEFAULT_STATE_DIR, 'linux': DEFAULT_STATE_DIR}


def native_context(system: str, profiles_root: str | None, is_dir: t.Callable[[str], bool], *,
                   state_dir: str | None = None, exclusive: bool = False) -> tuple[PlatformLayout, LocalHost]:
    """(layout, LocalHost) for a native macOS/Linux run; raises RequestError for bad roots.

    ``state_dir`` holds the trusted records and the host lock (DEFAULT_STATE_DIRS unless given);
    ``exclusive`` takes the lock before the probe, for a run that will change the host.
    """
    name = system.lower()
    if name not in DEFAULT_PROFILES_ROOTS:
        raise RequestError(f'unsupported platform {system!r}: Windows hosts must be reached over a PowerShell '
                           'connection (winrm, psrp or ssh with the powershell shell)')
    root = _absolute_path('profiles_root', profiles_root or DEFAULT_PROFILES_ROOTS[name])
    if not is_dir(root):
        raise RequestError(f'profiles_root {root!r} does not exist or is not a directory')
    state = _absolute_path('state_dir', state_dir or DEFAULT_STATE_DIRS[name])
    return LAYOUTS[name], LocalHost(root, name, state, exclusive=exclusive)


def _absolute_path(option: str, path: str) -> str:
    """An administrator's path option, checked before the host is touched."""
    if '\x00' in path:
        raise RequestError(f'{option} must not contain NUL characters')
    if len(path) > MAX_TEXT:
        raise RequestError(f'{option} is too long: {len(path)} characters, at most {MAX_TEXT}')
    if not path.startswith('/'):
        raise RequestError(f'{option} must be an absolute path, got {path!r}')
    if '..' in path.split('/'):
        raise RequestError(f"{option} must not contain '..' components, got {path!r}")
    return path


def native_outcome(produce: t.Callable[[], dict[str, t.Any]], *, diff: bool,
                   errors: tuple[type[Exception], ...] = (RequestError, HostError)) -> tuple[bool, dict[str, t.Any]]:
    """(succeeded, result) of a native module run, for main() to exit or fail with.

    An expected error becomes a failure with its message and no change; ``diff`` is kept only
    when diff mode is on; a result that says ``failed`` (work done part-way) fails with all it
    reports.
    """
    try:
        result = produce()
    except errors as error:
        return False, {'msg': str(error), 'changed': False}
    if not diff:
        result.pop('diff', None)
    return not result.pop('failed', False), result

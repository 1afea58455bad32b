# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulated Windows host's user profiles, hives and access checks (a mixin of SimulatedWindows).

Private to this collection. It models what real fleets have and the clean twin
did not:

* Real users are ``S-1-5-21-`` (local and domain) and ``S-1-12-1-`` (Entra ID)
  SIDs whose ProfileList entry has a ``ProfileImagePath``, a folder and an
  ``NTUSER.DAT``. A ``<SID>.bak`` key (Windows renamed the original profile
  before handing out a temporary one), a ``State`` with the temporary-profile
  bit (0x0800), a ``TEMP`` folder, a missing path, folder or hive file: the
  profile is skipped and reported, never a user and never an error of the host.
* A logged-off user's hive is loaded only for a selected user, for one
  operation, and unloaded as soon as that operation is done. ``unload_error``
  on a profile makes the unload fail: an error for that user, and the hive
  stays loaded, so that user's next logon (``logon``) gets a temporary profile.
* The administrator's network logon (WinRM) is denied what an ACL without
  Administrators protects and every UNC path (no credentials for the second
  hop): reads say "access denied", never "nothing there".
* Shell folders are expanded with the user's own environment (their hive's
  ``Environment`` and ``Volatile Environment`` over the profile's defaults and
  the machine's variables); an unknown variable is an error for that folder.
"""
from __future__ import annotations

import ntpath
import re
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError

# Who may own a hive file besides its user: SYSTEM and Administrators (profiles Windows created).
HIVE_OWNERS = ('S-1-5-18', 'S-1-5-32-544')

REAL_USER_PREFIXES = ('S-1-5-21-', 'S-1-12-1-')
PROFILE_TEMPORARY = 0x0800  # ProfileList State: "Temporary profile loaded"
SID_PATTERN = re.compile(r'S-1-\d+(-\d+)+')
ADMINISTRATORS = 'S-1-5-32-544'
SYSTEM = 'S-1-5-18'
PROFILE_LIST = r'SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList'
USER_SHELL_FOLDERS = r'Software\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders'
MACHINE_ENVIRONMENT = r'SYSTEM\CurrentControlSet\Control\Session Manager\Environment'
# The variables every session of the machine has, whoever logs on (not the administrator's own).
MACHINE_VARIABLES = {
    'SystemDrive': 'C:', 'SystemRoot': 'C:\\Windows', 'windir': 'C:\\Windows', 'ProgramData': 'C:\\ProgramData',
    'ALLUSERSPROFILE': 'C:\\ProgramData', 'PUBLIC': 'C:\\Users\\Public', 'ProgramFiles': 'C:\\Program Files',
    'ProgramFiles(x86)': 'C:\\Program Files (x86)', 'ProgramW6432': 'C:\\Program Files',
    'CommonProgramFiles': 'C:\\Program Files\\Common Files',
    'CommonProgramFiles(x86)': 'C:\\Program Files (x86)\\Common Files',
}
_VARIABLE = re.compile(r'%([^%]+)%')


def _norm(path: str) -> str:
    return ntpath.normpath(path).rstrip('\\').lower()


def expand_for_user(value: str, environment: dict[str, str]) -> str:
    """%NAME% from the user's environment (names case-insensitive); an unknown one raises ValueError."""
    folded = {name.lower(): data for name, data in environment.items()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.lower() not in folded:
            raise ValueError(f'%{name}% is not set in the environment of this user')
        return folded[name.lower()]
    return _VARIABLE.sub(replace, value)


def profile_problem(key: str, profile: dict[str, t.Any], folder: dict[str, t.Any] | None,
                    hive_file: dict[str, t.Any] | None) -> str | None:
    """Why a ProfileList entry of a real user is not a usable profile, or None (the rule get_profiles documents)."""
    if not SID_PATTERN.fullmatch(key):
        if key.lower().endswith('.bak'):
            return ('a backup of the profile kept by Windows (.bak): the user was given a temporary profile; '
                    'repair the profile (rename the keys back) and log on again')
        return 'the ProfileList key is not a SID'
    if not key.startswith(REAL_USER_PREFIXES):
        return None  # a special account (SYSTEM, services): listed as special, never a user either way
    path = profile.get('profile_path')
    if not path:
        return 'the ProfileList entry has no ProfileImagePath (an incomplete profile)'
    if int(profile.get('state') or 0) & PROFILE_TEMPORARY:
        return 'a temporary profile (State has the temporary-profile flag): its data is deleted at logoff'
    if ntpath.basename(ntpath.normpath(path)).upper().startswith('TEMP'):
        return f"a temporary profile folder ('{path}')"
    if folder is None:
        return f"the profile folder '{path}' does not exist"
    if hive_file is None:
        return f"the profile has no NTUSER.DAT in '{path}'"
    return None


def name_matches(profile: dict[str, t.Any], names: t.Iterable[str]) -> bool:
    """A user is named by the bare name or the account (DOMAIN\\name, AzureAD\\name), case-insensitively."""
    wanted = {name.lower() for name in names}
    return profile['username'].lower() in wanted or (profile.get('account') or '').lower() in wanted


class SimulatedProfiles:
    """get_profiles, per-operation hives, logon, access denied and the reparse anchor for SimulatedWindows."""

    state: dict[str, t.Any]
    hive_load_counts: dict[str, int]
    _op_hives: list[str]
    _batch_hives: list[str]
    _entry: t.Callable[[str], dict[str, t.Any] | None]
    _effective_acl: t.Callable[[str], dict[str, t.Any] | None]

    # ------------------------------------------------------------------ seeding
    def add_broken_profile(self, key: str, username: str, *, profile_path: str | None = None, state: int = 0,
                           folder: bool = True, hive_file: bool = True) -> dict[str, t.Any]:
        """A ProfileList entry as broken machines have them: a .bak key, a temporary or incomplete profile."""
        profile = {'sid': key, 'key': key, 'username': username, 'account': f'{self.state["hostname"]}\\{username}',
                   'profile_path': profile_path, 'loaded': False, 'hive_error': None, 'state': state}
        self.state['profiles'].append(profile)
        values: dict[str, t.Any] = {'State': {'type': 'REG_DWORD', 'data': state}}
        if profile_path:
            values['ProfileImagePath'] = {'type': 'REG_EXPAND_SZ', 'data': profile_path}
            if folder:
                self.mkdir(profile_path)  # type: ignore[attr-defined]
                if hive_file:
                    self.write(ntpath.join(profile_path, 'NTUSER.DAT'), 'hive')  # type: ignore[attr-defined]
        self.set_registry('HKLM', f'{PROFILE_LIST}\\{key}', values)  # type: ignore[attr-defined]
        return profile

    def set_user_environment(self, sid: str, values: dict[str, str], *, volatile: bool = False) -> None:
        """Variables in the user's hive: Environment (persistent) or Volatile Environment (set at logon)."""
        key = 'Volatile Environment' if volatile else 'Environment'
        self.set_registry(sid, key, {name: {'type': 'REG_EXPAND_SZ', 'data': data}  # type: ignore[attr-defined]
                                     for name, data in values.items()})

    def deny_administrators(self, path: str, owner: str) -> None:
        """The user took Administrators out of a folder's ACL (only they and SYSTEM may open it)."""
        entry = self._entry(path)
        if entry is None:
            raise BridgeOperationError(f"Could not find '{path}'.")
        entry['acl'] = {'owner': owner, 'allow': sorted({owner, SYSTEM}), 'protected': True}

    def hive_loads(self) -> dict[str, int]:
        """How often each user's hive was loaded by this instance (kept out of the JSON state)."""
        return dict(self.hive_load_counts)

    def logon(self, sid: str) -> str:
        """The user logs on: a hive still loaded under another key gives a temporary profile, as on Windows."""
        profile = self._profile(sid)
        if sid in self.state['mounted_hives']:
            profile['state'] = int(profile.get('state') or 0) | PROFILE_TEMPORARY
            return 'temporary'
        profile['loaded'] = True
        return 'normal'

    # ---------------------------------------------------------------- profiles
    def _profile(self, sid: str) -> dict[str, t.Any]:
        for profile in self.state['profiles']:
            if profile['sid'] == sid and SID_PATTERN.fullmatch(profile.get('key', sid)):
                return profile
        raise BridgeOperationError(f"No profile for SID '{sid}' in ProfileList.")

    def _hive(self, sid: str | None) -> dict[str, t.Any]:
        """The hive an operation reads or writes; a logged-off user's is loaded until the operation ends."""
        if sid is None:
            return t.cast(dict[str, t.Any], self.state['hives']['HKLM'])
        profile = self._profile(sid)
        if not profile['loaded'] and sid not in self.state['mounted_hives']:
            if profile.get('hive_error'):
                raise BridgeOperationError(f"Cannot load hive of '{profile['username']}': {profile['hive_error']}")
            self._check_hive_file(sid, profile['profile_path'])
            self.state['mounted_hives'].append(sid)
            self.hive_load_counts[sid] = self.hive_load_counts.get(sid, 0) + 1
            self._op_hives.append(sid)
            self._batch_hives.append(sid)
        return t.cast(dict[str, t.Any], self.state['hives'].setdefault(sid, {}))

    def _check_hive_file(self, sid: str, profile_path: str) -> None:
        """What reg load would open, as the bridge checks it first: the user's own file, no link, one name.

        The file lies in a folder the user controls: a link or a second hard link would make the
        administrator load (and the rungs write) another user's hive as this user's.
        """
        hive_file = ntpath.join(profile_path, 'NTUSER.DAT')
        # The profile folder resolves as Windows resolves it (a relocated C:\Users); the file itself is not followed.
        real = self._real(hive_file, follow_last=False)  # type: ignore[attr-defined]
        entry = self.state['files'].get(real.strip('\\').lower())  # type: ignore[attr-defined]
        if entry is None:
            raise BridgeOperationError(f"Cannot load the hive of '{sid}': '{hive_file}' does not exist.")
        owner = entry.get('owner') or sid
        if entry['type'] != 'file':
            problem = 'is a junction or symbolic link' if entry['type'] == 'junction' else 'is a directory'
        elif int(entry.get('links', 1)) != 1:
            problem = f"has {entry.get('links')} hard links"
        elif owner not in (sid, HIVE_OWNERS[0], HIVE_OWNERS[1]):
            problem = f'is owned by {owner}, not by the user'
        else:
            return
        raise BridgeOperationError(f"Refusing to load the hive of '{sid}': '{hive_file}' {problem}.")

    def _unload_op_hives(self) -> None:
        """Unload what the operation loaded; a failed unload is an error (of that user, for an each_profile op)."""
        failures = []
        for sid in self._op_hives:
            profile = self._profile(sid)
            if profile.get('unload_error'):
                failures.append(f"Could not unload the hive of '{profile['username']}' ({sid}): "
                                f"{profile['unload_error']}. It stays loaded, and the user's next logon gets a "
                                'temporary profile: reboot, or unload it (reg unload) before the user logs on.')
                continue
            self.state['mounted_hives'].remove(sid)
        self._op_hives = []
        if failures:
            raise BridgeOperationError(' '.join(failures))

    def dispatch(self, name: str, params: dict[str, t.Any]) -> dict[str, t.Any]:
        self._op_hives = []
        try:
            data = super().dispatch(name, params)  # type: ignore[misc]
        except BridgeOperationError:
            try:
                self._unload_op_hives()
            except BridgeOperationError:
                pass  # the operation's own error is reported; the unload failure is in the batch's hives
            raise
        self._unload_op_hives()
        return t.cast(dict[str, t.Any], data)

    def _environment(self, profile: dict[str, t.Any], hive: dict[str, t.Any]) -> dict[str, str]:
        """The variables a session of this user has: machine, then profile defaults, Environment, Volatile."""
        path = profile['profile_path']
        account = profile.get('account') or ''
        environment = dict(MACHINE_VARIABLES)
        machine = self.state['hives']['HKLM'].get(MACHINE_ENVIRONMENT.lower(), {}).get('values', {})
        for name, value in machine.items():
            try:
                environment[name] = expand_for_user(str(value['data']), environment)
            except ValueError:
                continue
        drive, rest = ntpath.splitdrive(path)
        environment.update({
            'USERPROFILE': path, 'USERNAME': profile['username'],
            'USERDOMAIN': account.split('\\', 1)[0] if '\\' in account else self.state['hostname'],
            'HOMEDRIVE': drive, 'HOMEPATH': rest or '\\',
            'APPDATA': ntpath.join(path, 'AppData', 'Roaming'), 'LOCALAPPDATA': ntpath.join(path, 'AppData', 'Local'),
            'TEMP': ntpath.join(path, 'AppData', 'Local', 'Temp'), 'TMP': ntpath.join(path, 'AppData', 'Local', 'Temp'),
        })
        for key in ('environment', 'volatile environment'):
            for name, value in sorted(hive.get(key, {}).get('values', {}).items()):
                try:
                    environment[name] = expand_for_user(str(value['data']), environment)
                except ValueError:
                    continue  # a variable that refers to an unknown one is not set, as Windows leaves it
        return environment

    def _read_profile(self, profile: dict[str, t.Any], shell_folders: dict[str, str]) -> dict[str, t.Any]:
        """Folders, sources and environment of a selected user: their hive loaded, read and unloaded again."""
        path = profile['profile_path']
        result: dict[str, t.Any] = {'folders': {}, 'folder_source': {}, 'environment': {}, 'error': None}
        errors = []
        self._op_hives = []
        loaded = True
        try:
            hive = self._hive(profile['sid'])
        except BridgeOperationError as failure:
            hive, errors, loaded = {}, [str(failure)], False
        try:
            self._unload_op_hives()
        except BridgeOperationError as failure:
            errors.append(str(failure))
        environment = self._environment(profile, hive)
        configured = hive.get(USER_SHELL_FOLDERS.lower(), {}).get('values', {})
        for name, default in shell_folders.items():
            value = configured.get(name)
            if value and not errors:
                try:
                    result['folders'][name] = ntpath.normpath(expand_for_user(str(value['data']), environment))
                except ValueError as failure:
                    result['folders'][name] = str(value['data'])
                    errors.append(f"shell folder '{name}' ({value['data']}): {failure}")
                result['folder_source'][name] = 'registry'
            else:
                result['folders'][name] = ntpath.join(path, default)
                result['folder_source'][name] = 'default'
        # Without the hive the user's own variables are unknown: no environment rather than a guessed one.
        result['environment'] = environment if loaded else {}
        result['error'] = '; '.join(errors) or None
        return result

    def op_get_profiles(self, shell_folders: dict[str, str], users: list[str] | None = None,
                        exclude_users: list[str] | None = None) -> dict[str, t.Any]:
        profiles, skipped = [], []
        for profile in self.state['profiles']:
            key = profile.get('key', profile['sid'])
            path = profile.get('profile_path') or ''
            folder = self._entry(path) if path else None
            hive_file = self._entry(ntpath.join(path, 'NTUSER.DAT')) if folder else None
            problem = profile_problem(key, profile, folder, hive_file)
            if problem:
                skipped.append({'key': key, 'sid': key.split('.', 1)[0], 'username': profile['username'],
                                'profile_path': path or None, 'reason': problem})
                continue
            special = not profile['sid'].startswith(REAL_USER_PREFIXES)
            selected = not special and (users is None or name_matches(profile, users)) and \
                not name_matches(profile, exclude_users or ())
            entry = {'sid': profile['sid'], 'username': profile['username'], 'account': profile['account'],
                     'profile_path': path, 'loaded': profile['loaded'], 'special': special, 'selected': selected}
            if selected:
                entry.update(self._read_profile(profile, shell_folders))
            else:
                # Not read: the hive is left alone; the defaults only say where the profile's folders are.
                entry.update(folders={name: ntpath.join(path, default) for name, default in shell_folders.items()},
                             folder_source={name: 'not_read' for name in shell_folders}, environment={}, error=None)
            profiles.append(entry)
        return {'profiles': profiles, 'skipped': skipped}

    # ---------------------------------------------------------- access denied
    def _assert_readable(self, path: str) -> None:
        """The administrator's network logon may not open this path: raise, never report it absent."""
        if path.startswith('\\\\') or path.startswith('//'):
            raise BridgeOperationError(f"Access to the path '{path}' is denied: a network share cannot be reached "
                                       'from a WinRM network logon (no credentials for the second hop).')
        acl = self._effective_acl(path)
        if acl is not None and ADMINISTRATORS not in set(acl.get('allow', [])) | set(acl.get('read', [])):
            raise BridgeOperationError(f"Access to the path '{path}' is denied: its ACL does not let Administrators "
                                       'read it.')

    # ------------------------------------------------------------ reparse scope
    def _profile_anchor(self, path: str) -> str | None:
        """The profile folder path lies strictly inside (longest first), or None: where the reparse check starts."""
        folded = _norm(path)
        roots = sorted((p['profile_path'] for p in self.state['profiles']
                        if p.get('profile_path') and SID_PATTERN.fullmatch(p.get('key', p['sid']))),
                       key=len, reverse=True)
        for root in roots:
            if folded.startswith(_norm(root) + '\\'):
                return ntpath.normpath(root)
        return None

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A simulated Windows host: the Python twin of plugins/modules/win_bridge.ps1.

Private to this collection. It implements the bridge vocabulary
(module_utils/_bridge_vocabulary.py) against an in-memory machine whose whole
state is plain JSON, so a test or the bundled lab can seed it, run real
playbooks against it through the ``simulated_windows`` connection plugin, and
inspect it afterwards. It models what the remediation modules depend on:
ProfileList with logged-off users, per-user hives that must be loaded and
unloaded, a case-insensitive file system with volumes and open-file locks,
processes with owners, and firewall rules. ``faults`` lets a test inject what
goes wrong on real machines (a path vanishing between probe and apply, a hive
that fails to load, an operation that fails after a hive was loaded) and what a
user does to attack the bridge (a directory swapped for a junction, a staged
installer replaced) between two operations of a batch.

File-system entries have an ``owner`` (a SID; None: installed with the system)
and an ``acl`` (None: inherited from the nearest folder above that has one).
An ACL is ``{owner, allow: [full control], read: [read and execute],
create: [create files and folders], protected}``; a standard user controls
everything below a folder they own or have full control of, as on Windows
(an owner can always rewrite the DACL). ``junction`` entries carry a
``target``: by-name operations follow them like Windows does, WITHIN refuses
them below ``within``.
"""
from __future__ import annotations

import base64
import bisect
import copy
import fnmatch
import hashlib
import ntpath
import re
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BatchRunner, BridgeOperationError
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_browsers import SimulatedBrowserStores
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_firewall import SimulatedFirewall
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_network import SimulatedNetwork
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_packages import SimulatedPackages
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_processes import SimulatedProcesses
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_profiles import (
    REAL_USER_PREFIXES,
    SimulatedProfiles,
)
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_signatures import (
    SimulatedSignatures,
    signature_of,
    signed_copy,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import (
    LOCK_NAME,
    LOCK_TIMEOUT_SECONDS,
    RECORD_NAME_PATTERN,
    RECORDS_KEY,
    mutating,
    validate_operations,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import HostError

State = dict[str, t.Any]
SYSTEM_SID = 'S-1-5-18'
ADMINISTRATORS_SID = 'S-1-5-32-544'
USERS_SID = 'S-1-5-32-545'
TRUSTED_INSTALLER_SID = 'S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464'
# Owners that no standard user can be: what an administrator-only folder may be owned by.
TRUSTED_OWNERS = (ADMINISTRATORS_SID, SYSTEM_SID, TRUSTED_INSTALLER_SID)
# C:\ProgramData as Windows ships it: Users may create files and folders (and own what they create).
PROGRAM_DATA_ACL = {'owner': SYSTEM_SID, 'allow': [SYSTEM_SID, ADMINISTRATORS_SID], 'read': [USERS_SID],
                    'create': [USERS_SID], 'protected': True}
# What ensure_admin_dir gives a folder: Administrators and SYSTEM full control, Users read and execute
# (per-user installers run as the user and must read the file), nobody else, inheritance disabled.
ADMIN_DIR_ACL = {'owner': ADMINISTRATORS_SID, 'allow': [ADMINISTRATORS_SID, SYSTEM_SID], 'read': [USERS_SID],
                 'protected': True}
MAX_LINK_DEPTH = 31
PROFILE_LIST_KEY = r'SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList'
SHELL_FOLDERS_KEY = r'Software\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders'
NOTION_UNINSTALL_KEY = r'Software\Microsoft\Windows\CurrentVersion\Uninstall\661f0cc6-343a-59cb-a5e8-8f6324cc6998'
NOTION_PUBLISHER = 'Notion Labs, Inc'
FIXED_TIME = '2026-01-01T00:00:00Z'


def empty_state(hostname: str = 'WS01') -> State:
    return {
        'hostname': hostname,
        'profiles': [],
        'hives': {'HKLM': {}},
        'files': {},
        'processes': [],
        'firewall_rules': [],
        'faults': [],
        'mounted_hives': [],
        'calls': [],
        'downloads': {},
        'packages': [],
        'provisioned': [],
        'tasks_run': [],
        'lock': None,
        'denied': [],
    }


def _norm(path: str) -> str:
    return ntpath.normpath(path).rstrip('\\').lower()


def _key(path: str) -> str:
    return path.strip('\\').lower()


class SimulatedWindows(SimulatedProfiles, SimulatedNetwork, SimulatedBrowserStores, SimulatedFirewall,
                       SimulatedPackages, SimulatedProcesses, SimulatedSignatures, BatchRunner):
    """Executes bridge batches against a JSON state, mutating it in place."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._batch_hives: list[str] = []
        self._op_hives: list[str] = []
        self.hive_load_counts: dict[str, int] = {}

    # ------------------------------------------------------------------ seeding
    def add_profile(self, username: str, sid: str, *, loaded: bool = False,
                    profile_path: str | None = None, shell_folders: dict[str, str] | None = None,
                    hive_error: str | None = None, logged_on: bool | None = None,
                    account: str | None = None) -> dict[str, t.Any]:
        """Add a user: a ProfileList entry, a profile directory and an NTUSER.DAT hive.

        ``account`` is what the SID translates to (default ``<hostname>\\<username>``; an Entra ID user's is
        ``AzureAD\\<name>``).

        A logged-on user (by default, a real user whose hive is loaded) also gets an explorer.exe in
        session 1: that, not a loaded hive, is what the bridge takes as an interactive session.
        """
        path = profile_path or f'C:\\Users\\{username}'
        profile = {'sid': sid, 'key': sid, 'username': username, 'account': account or f'{self.state["hostname"]}\\{username}',
                   'profile_path': path, 'loaded': loaded, 'hive_error': hive_error, 'state': 0}
        self.state['profiles'].append(profile)
        # As Windows creates a profile: SYSTEM owns it, its user has full control (so controls all below).
        acl = {'owner': SYSTEM_SID, 'allow': sorted({SYSTEM_SID, ADMINISTRATORS_SID, sid}), 'protected': True}
        self.mkdir(path, owner=SYSTEM_SID, acl=acl)
        self.write(ntpath.join(path, 'NTUSER.DAT'), 'hive')
        hive = self.state['hives'].setdefault(sid, {})
        if shell_folders:
            hive[_key(SHELL_FOLDERS_KEY)] = {
                'path': SHELL_FOLDERS_KEY,
                'values': {name: {'type': 'REG_EXPAND_SZ', 'data': value} for name, value in shell_folders.items()},
            }
        self.set_registry('HKLM', f'{PROFILE_LIST_KEY}\\{sid}',
                          {'ProfileImagePath': {'type': 'REG_EXPAND_SZ', 'data': path}})
        if (loaded and sid.startswith(REAL_USER_PREFIXES)) if logged_on is None else logged_on:
            self.add_process('explorer.exe', 'C:\\Windows\\explorer.exe', sid)
        return profile

    def mkdir(self, path: str, *, owner: str | None = None, acl: dict[str, t.Any] | None = None) -> None:
        """Create a directory and its parents (through junctions, as Windows would); ``owner``/``acl`` for new ones."""
        real = self._real(path)
        parts = real.split('\\')
        for depth in range(1, len(parts) + 1):
            current = '\\'.join(parts[:depth])
            if depth == 1:
                current += '\\'
            entry = self.state['files'].get(_norm(current))
            if entry is None:
                self.state['files'][_norm(current)] = {'path': ntpath.normpath(current), 'type': 'directory',
                                                       'modified': FIXED_TIME, 'acl': None}
                if owner is not None:
                    self.state['files'][_norm(current)]['owner'] = owner
            elif entry['type'] != 'directory':
                raise BridgeOperationError(f"Cannot create '{current}': a file of that name exists.")
        if acl is not None:
            self.state['files'][_norm(real)]['acl'] = copy.deepcopy(acl)

    def write(self, path: str, content: str | bytes, *, locked_by: int | None = None,
              meta: dict[str, t.Any] | None = None, owner: str | None = None, links: int = 1) -> None:
        """Write a file; ``meta`` describes executables (kind, version, signer, signature, hangs)."""
        real = ntpath.join(self._real(ntpath.dirname(ntpath.normpath(path))), ntpath.basename(ntpath.normpath(path)))
        self.mkdir(ntpath.dirname(real))
        data = content.encode() if isinstance(content, str) else content
        entry = {'path': real, 'type': 'file', 'modified': FIXED_TIME, 'acl': None,
                 'content': base64.b64encode(data).decode(), 'locked_by': locked_by, 'meta': meta}
        if owner is not None:
            entry['owner'] = owner
        if links != 1:
            entry['links'] = links
        self.state['files'][_norm(real)] = entry

    def add_junction(self, path: str, target: str, *, owner: str | None = None) -> None:
        """A directory junction (mount point) at path pointing to target; whatever was at path is gone."""
        self._remove_tree(path)
        self.mkdir(ntpath.dirname(ntpath.normpath(path)))
        entry = {'path': ntpath.normpath(path), 'type': 'junction', 'target': ntpath.normpath(target),
                 'modified': FIXED_TIME, 'acl': None}
        if owner is not None:
            entry['owner'] = owner
        self.state['files'][_norm(path)] = entry

    def read(self, path: str) -> bytes:
        entry = self.state['files'].get(_norm(self._real(path)))
        if entry is not None:
            self._assert_readable(entry['path'])
        if entry is None or entry['type'] != 'file':
            raise BridgeOperationError(f"Could not find file '{path}'.")
        return base64.b64decode(entry['content'])

    def exists(self, path: str) -> bool:
        return _norm(path) in self.state['files']

    def _real(self, path: str, *, follow_last: bool = True, depth: int = 0) -> str:
        """The path with every junction on the way resolved, as Windows resolves a path by name."""
        parts = ntpath.normpath(path).split('\\')
        current = parts[0] + '\\' if parts[0].endswith(':') else parts[0]
        for index, part in enumerate(parts[1:], start=1):
            if not part:
                continue
            candidate = ntpath.join(current, part)
            entry = self.state['files'].get(_norm(candidate))
            if entry is not None and entry['type'] == 'junction' and (follow_last or index < len(parts) - 1):
                if depth >= MAX_LINK_DEPTH:
                    raise BridgeOperationError(f"The name of the file cannot be resolved by the system: '{path}'.")
                candidate = self._real(entry['target'], depth=depth + 1)
            current = candidate
        return ntpath.normpath(current)

    def _entry(self, path: str) -> dict[str, t.Any] | None:
        """The entry a by-name operation reaches (junctions followed, the last one too)."""
        return self.state['files'].get(_norm(self._real(path)))

    def _held_file(self, path: str) -> dict[str, t.Any] | None:
        """The entry an operation verifies and then uses by name (verify_package, provision_package, run_as_user
        with sha256 or signer): the bridge opens every folder from the drive root and the file itself without
        following a link, and holds them until the use is done, so a link anywhere on the way is refused."""
        real = self._guard(path, None)
        entry = self.state['files'].get(_norm(real))
        if entry is not None and entry['type'] == 'junction':
            raise BridgeOperationError(f"Refusing '{path}': it is a junction or symbolic link.")
        return entry

    def set_registry(self, hive: str, key: str, values: dict[str, dict[str, t.Any]]) -> None:
        tree = self.state['hives'].setdefault(hive, {})
        entry = tree.setdefault(_key(key), {'path': key.strip('\\'), 'values': {}})
        entry['values'].update(copy.deepcopy(values))

    def tree_snapshot(self, root: str) -> dict[str, str]:
        """Relative path -> content digest of everything under root: for byte-identity checks."""
        prefix = _norm(root) + '\\'
        return {entry['path'][len(root):].lower(): entry.get('content', '<dir>')
                for key, entry in sorted(self.state['files'].items()) if key.startswith(prefix)}

    # ------------------------------------------------------------ who may write
    def _effective_acl(self, path: str) -> dict[str, t.Any] | None:
        """The entry's own ACL, else the nearest one above it (inherited); None: the system default."""
        key = _norm(path)
        while True:
            entry = self.state['files'].get(key)
            if entry is not None and entry.get('acl') is not None:
                return t.cast(dict[str, t.Any], entry['acl'])
            parent = _norm(ntpath.dirname(key + '\\' if key.endswith(':') else key))
            if parent == key or not parent:
                return None
            key = parent

    @staticmethod
    def _grants(acl: dict[str, t.Any] | None, sid: str, right: str) -> bool:
        """Whether an ACL gives sid (a standard user, a member of Users) full control or the right to create."""
        if acl is None:
            return False
        holders = set(acl.get('allow', []))
        if right == 'create':
            holders |= set(acl.get('create', []))
        return sid in holders or (USERS_SID in holders and sid.startswith(REAL_USER_PREFIXES))

    def user_controls(self, sid: str, path: str) -> bool:
        """Whether a standard user can create or replace what is at path (an owner can rewrite any DACL)."""
        key = _norm(path)
        parts = key.split('\\')
        for depth in range(2, len(parts)):
            above = self.state['files'].get('\\'.join(parts[:depth]))
            if above is not None and (above.get('owner') == sid or
                                      self._grants(self._effective_acl(above['path']), sid, 'full')):
                return True
        entry = self.state['files'].get(key)
        if entry is not None:
            return entry.get('owner') == sid or self._grants(self._effective_acl(key), sid, 'full')
        parent = ntpath.dirname(key)
        return parent in self.state['files'] and self._grants(self._effective_acl(parent), sid, 'create')

    # -------------------------------------------------------------- execution
    def run_batch(self, operations: list[dict[str, t.Any]], *, check_mode: bool = False) -> dict[str, t.Any]:
        """Run one bridge call and log it; the same envelope win_bridge.ps1 returns."""
        validate_operations(operations)
        self.state['calls'].append({'operations': [op['op'] for op in operations], 'check_mode': check_mode})
        self._apply_faults('before_call', len(self.state['calls']))
        warnings = self._take_lock() if mutating(operations) and not check_mode else []
        envelope = super().run_batch(operations, check_mode=check_mode)
        if warnings:
            envelope['warnings'] = warnings
        return envelope

    def _take_lock(self) -> list[str]:
        """The host-wide mutex: a batch that would change something waits for it, then fails untouched."""
        lock = self.state.get('lock')
        if not lock:
            return []
        if lock.get('abandoned'):
            self.state['lock'] = None
            return [f"The host-wide lock {LOCK_NAME} was abandoned by a run that ended without releasing it "
                    f"({lock.get('holder', 'unknown')}); this run took it over."]
        raise HostError(f"Another run of loopbreaker.notion holds the host-wide lock {LOCK_NAME} "
                        f"({lock.get('holder', 'unknown')}); gave up after {LOCK_TIMEOUT_SECONDS} s. Nothing was changed.")

    def begin_batch(self, operations: list[dict[str, t.Any]]) -> None:
        self._batch_hives = []

    def end_batch(self) -> dict[str, t.Any]:
        # Each operation unloaded what it loaded (SimulatedProfiles.dispatch); what is still mounted failed to unload.
        loaded = list(self._batch_hives)
        self._batch_hives = []
        return {'hives_loaded': loaded, 'hives_unloaded': [s for s in loaded if s not in self.state['mounted_hives']]}

    def dispatch(self, name: str, params: dict[str, t.Any]) -> dict[str, t.Any]:
        self._apply_faults('during_op', name)
        return super().dispatch(name, params)

    def _apply_faults(self, when: str, value: t.Any) -> None:
        """Faults fire just before the call or operation they name; the attacks in them fire once.

        ``replace_with_junction: {path, target}`` puts a junction where a directory (or file) was;
        ``replace_file: {path, content, meta}`` replaces a file's content. With ``as_user`` the attack is what
        that user can do: refused (logged in ``denied``) where the ACLs do not let them write.
        """
        for fault in self.state['faults']:
            if fault.get(when) != value:
                continue
            if fault.get('remove_path'):
                self._remove_tree(fault['remove_path'])
            self._apply_process_fault(fault)
            attack = fault.get('replace_with_junction') or fault.get('replace_file')
            if attack and not fault.get('fired'):
                fault['fired'] = True
                user = fault.get('as_user')
                if user is not None and not self.user_controls(user, attack['path']):
                    self.state['denied'].append({'user': user, 'path': attack['path'], 'fault': when, 'at': value})
                elif fault.get('replace_with_junction'):
                    self.add_junction(attack['path'], attack['target'], owner=user)
                else:
                    self.write(attack['path'], attack['content'], meta=copy.deepcopy(attack.get('meta')), owner=user)
            if fault.get('raise'):
                raise BridgeOperationError(fault['raise'])

    # -------------------------------------------------------------- operations
    def _glob(self, pattern: str, keys: list[str] | None = None, *, root: str | None = None,
              shown_root: str | None = None) -> list[dict[str, t.Any]]:
        """Entries matching a pattern with ``*`` in any segment, walked segment by segment.

        Never descends through a junction: one is a match only as the last segment, reported as itself.
        ``root`` (a real path, already checked) is where the walk starts; matches are reported under
        ``shown_root`` (the caller's spelling of within, perhaps through a junction above it).
        """
        files = self.state['files']
        keys = keys if keys is not None else sorted(files)
        self._assert_readable(pattern)
        if root is None:
            parts = _norm(pattern).split('\\')
            matches = [parts[0] + '\\'] if _norm(parts[0] + '\\') in files else []
            rest = parts[1:]
        else:
            matches = [_norm(root)] if _norm(root) in files else []
            rest = _norm(pattern)[len(_norm(t.cast(str, shown_root))) + 1:].split('\\')
        for part in rest:
            following = []
            for base in matches:
                if files[_norm(base)]['type'] != 'directory':
                    continue
                self._assert_readable(files[_norm(base)]['path'])  # listing it, or opening a child by name
                prefix = base.rstrip('\\') + '\\'
                if '*' not in part:
                    if prefix + part in files:
                        following.append(prefix + part)
                    continue
                following += [key for key in self._keys_under(prefix, keys)
                              if '\\' not in key[len(prefix):] and fnmatch.fnmatchcase(key[len(prefix):], part)]
            matches = following
        found = [files[key] for key in sorted(matches)]
        if root is None or _norm(root) == _norm(t.cast(str, shown_root)):
            return found
        return [dict(entry, path=t.cast(str, shown_root) + entry['path'][len(root):]) for entry in found]

    def _keys_under(self, prefix: str, keys: list[str] | None = None) -> list[str]:
        """Keys starting with prefix, found by bisection in the sorted key list."""
        keys = keys if keys is not None else sorted(self.state['files'])
        start = bisect.bisect_left(keys, prefix)
        end = bisect.bisect_left(keys, prefix[:-1] + chr(ord(prefix[-1]) + 1))
        return keys[start:end]

    def _children(self, path: str, keys: list[str] | None = None) -> list[dict[str, t.Any]]:
        """Everything below path; a folder below it the administrator may not open is an error, not empty."""
        found = [self.state['files'][key] for key in self._keys_under(_norm(path) + '\\', keys)]
        for entry in [self.state['files'].get(_norm(path))] + found:
            if entry is not None and entry['type'] == 'directory':
                self._assert_readable(entry['path'])
        return found

    def _guard(self, path: str, within: str | None) -> str:
        """WITHIN of the vocabulary; returns the real path to act on (the last component not followed).

        With within: path must lie strictly inside it, and no component strictly below within, up to the
        parent of path, may be a junction (within itself and what is above it are resolved as Windows does,
        so a relocated profile works). Without within: no junction anywhere above path, from the drive root.
        """
        normal = ntpath.normpath(path)
        if within is None:
            anchor = self._profile_anchor(normal)
            if anchor is not None:
                return self._guard(normal, anchor)  # below a profile folder: the WITHIN rule from there
            parts = normal.split('\\')
            for depth in range(2, len(parts)):
                above = '\\'.join(parts[:depth])
                entry = self.state['files'].get(_norm(above))
                if entry is not None and entry['type'] == 'junction':
                    raise BridgeOperationError(f"Refusing to follow the junction or symbolic link '{entry['path']}' on "
                                               f"the way to '{path}'.")
            return normal
        if not _norm(normal).startswith(_norm(within) + '\\'):
            raise BridgeOperationError(f"Refusing '{path}': it is not inside '{within}'.")
        current = self._real(within)
        below = normal[len(ntpath.normpath(within).rstrip('\\')) + 1:].split('\\')
        for index, part in enumerate(below):
            current = ntpath.join(current, part)
            entry = self.state['files'].get(_norm(current))
            if index < len(below) - 1 and entry is not None and entry['type'] == 'junction':
                shown = ntpath.join(ntpath.normpath(within), *below[:index + 1])
                raise BridgeOperationError(f"Refusing '{path}': '{shown}' is a junction or symbolic link below "
                                           f"'{within}'.")
        return current

    def op_stat_paths(self, patterns: list[str], within: str | None = None) -> dict[str, t.Any]:
        entries = []
        keys = sorted(self.state['files'])  # read-only operation: one sorted index for every pattern
        for pattern in patterns:
            found = self._matches(pattern, within, keys)
            for entry in found:
                real = self._real(entry['path'], follow_last=False)
                if entry['type'] == 'directory':
                    inside = [e for e in self._children(real, keys) if e['type'] == 'file']
                elif entry['type'] == 'file':
                    inside = [entry]
                else:
                    inside = []  # a link is reported as itself, never followed
                entries.append({'pattern': pattern, 'path': entry['path'], 'type': entry['type'],
                                'bytes': sum(len(base64.b64decode(e['content'])) for e in inside),
                                'files': len(inside), 'modified': entry['modified'],
                                'owner_sid': entry.get('owner'), 'links': entry.get('links', 1)})
        return {'entries': entries}

    def _matches(self, pattern: str, within: str | None, keys: list[str] | None = None) -> list[dict[str, t.Any]]:
        """Pattern matches; with within, the walk starts at within, resolved, and never crosses a junction."""
        if within is None:
            anchor = self._profile_anchor(pattern)
            if anchor is not None:
                # Below a profile folder: the check starts there; the folder and what is above it resolve as on
                # Windows (a relocated C:\\Users, a profile folder that is a mounted volume).
                return self._matches(pattern, anchor, keys)
            # Elsewhere: a match reached through a junction anywhere is dropped.
            return [entry for entry in self._glob(pattern, keys) if self._no_junction_above(entry['path'])]
        if not _norm(pattern).startswith(_norm(within) + '\\'):
            raise BridgeOperationError(f"Refusing '{pattern}': it is not inside '{within}'.")
        return self._glob(pattern, keys, root=self._real(within), shown_root=ntpath.normpath(within))

    def _no_junction_above(self, path: str) -> bool:
        parts = ntpath.normpath(path).split('\\')
        return not any((self.state['files'].get(_norm('\\'.join(parts[:depth]))) or {}).get('type') == 'junction'
                       for depth in range(2, len(parts)))

    def op_read_files(self, patterns: list[str], within: str | None = None,
                      max_bytes: int = 1048576) -> dict[str, t.Any]:
        files = []
        for pattern in patterns:
            for entry in self._matches(pattern, within):
                if entry['type'] == 'file':
                    files.append(_read_text(entry, max_bytes))
                elif entry['type'] == 'junction':
                    files.append({'path': entry['path'], 'content': None, 'error': 'a junction or symbolic link'})
        return {'files': files}

    def op_write_file(self, path: str, content: str, within: str | None = None) -> dict[str, t.Any]:
        real = self._guard(path, within)
        existing = self.state['files'].get(_norm(real))
        if existing is not None and existing['type'] == 'directory':
            raise BridgeOperationError(f"Cannot write '{path}': it is a directory.")
        self._check_unlocked(real)
        if existing is not None and existing['type'] == 'junction':
            self._remove_tree(real)  # the link is replaced, never written through
        self.write(real, content, owner=ADMINISTRATORS_SID)
        return {'bytes': len(content.encode())}

    def op_ensure_private_dir(self, path: str, owner_sid: str, within: str | None = None) -> dict[str, t.Any]:
        real = self._guard(path, within)
        existing = self.state['files'].get(_norm(real))
        if existing is not None and existing['type'] == 'junction':
            raise BridgeOperationError(f"Refusing '{path}': it is a junction or symbolic link.")
        created = existing is None
        self.mkdir(real, owner=ADMINISTRATORS_SID)
        wanted = {'owner': owner_sid, 'allow': sorted({owner_sid, ADMINISTRATORS_SID, SYSTEM_SID}), 'protected': True}
        entry = self.state['files'][_norm(real)]
        corrected = not created and entry.get('acl') != wanted
        entry['acl'] = wanted
        entry['owner'] = owner_sid
        return {'created': created, 'acl_corrected': corrected}

    def _running_pids(self) -> set[int]:
        return {p['pid'] for p in self.state['processes']}

    def _check_unlocked(self, path: str) -> None:
        running = self._running_pids()
        for entry in [self.state['files'].get(_norm(path))] + self._children(path):
            if entry and entry.get('locked_by') in running:
                raise BridgeOperationError(
                    f"The process cannot access the file '{entry['path']}' because it is being used by "
                    'another process.')

    def op_move_path(self, source: str, destination: str, within: str | None = None, expect_type: str | None = None,
                     attributes: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        real_source = self._guard(source, within)
        real_destination = self._guard(destination, within)
        found = self.state['files'].get(_norm(real_source))
        if found is None:
            return {'moved': False, 'missing': True}
        if expect_type is not None and found['type'] != expect_type:
            raise BridgeOperationError(f"Refusing to move '{source}': it is a {found['type']}, expected a {expect_type}.")
        if expect_type == 'file' and found.get('links', 1) != 1:
            raise BridgeOperationError(f"Refusing to move '{source}': it has {found['links']} hard links.")
        if attributes and attributes.get('owner_sid') and found.get('owner') != attributes['owner_sid']:
            raise BridgeOperationError(f"Refusing to move '{source}': it belongs to {found.get('owner') or 'no owner'}, "
                                       f"not its recorded owner {attributes['owner_sid']}.")
        if _norm(real_destination) in self.state['files']:
            raise BridgeOperationError(f"Cannot create '{destination}' because a file or directory with the same "
                                       'name already exists.')
        if ntpath.splitdrive(real_source)[0].lower() != ntpath.splitdrive(real_destination)[0].lower():
            raise BridgeOperationError('Source and destination path must have identical roots. Move will not work '
                                       'across volumes.')
        self._check_unlocked(real_source)
        self.mkdir(ntpath.dirname(real_destination), owner=ADMINISTRATORS_SID)
        # A junction moves as a link: its entry (and target) moves, nothing under the target does.
        old_prefix, new_root = _norm(real_source), ntpath.normpath(real_destination)
        for key in [k for k in self.state['files'] if k == old_prefix or k.startswith(old_prefix + '\\')]:
            entry = self.state['files'].pop(key)
            entry['path'] = new_root + entry['path'][len(ntpath.normpath(real_source)):]
            self.state['files'][_norm(entry['path'])] = entry
        if attributes and attributes.get('owner_sid'):
            moved = self.state['files'][_norm(real_destination)]
            moved.update(owner=attributes['owner_sid'], acl=None)  # owner set, explicit ACL dropped: inherited
        return {'moved': True, 'missing': False}

    def _remove_tree(self, path: str) -> bool:
        prefix = _norm(path)
        doomed = [k for k in self.state['files'] if k == prefix or k.startswith(prefix + '\\')]
        for key in doomed:
            del self.state['files'][key]
        return bool(doomed)

    def op_remove_path(self, path: str, within: str | None = None) -> dict[str, t.Any]:
        real = self._guard(path, within)
        if _norm(real) not in self.state['files']:
            return {'removed': False, 'missing': True}
        self._check_unlocked(real)
        self._remove_tree(real)  # a junction is removed as a link; its target is not under it
        return {'removed': True, 'missing': False}

    def op_read_registry(self, key: str, sid: str | None = None, names: list[str] | None = None) -> dict[str, t.Any]:
        entry = self._hive(sid).get(_key(key))
        if entry is None:
            return {'exists': False, 'values': {}}
        values = entry['values']
        chosen = {n: values[n] for n in values if names is None or n in names}
        return {'exists': True, 'values': copy.deepcopy(chosen)}

    def op_write_registry(self, key: str, values: dict[str, dict[str, t.Any]], sid: str | None = None) -> dict[str, t.Any]:
        hive = self._hive(sid)
        created = _key(key) not in hive
        entry = hive.setdefault(_key(key), {'path': key.strip('\\'), 'values': {}})
        entry['values'].update(copy.deepcopy(values))
        return {'created_key': created}

    def op_delete_registry_values(self, key: str, names: list[str], sid: str | None = None) -> dict[str, t.Any]:
        entry = self._hive(sid).get(_key(key))
        present = entry['values'] if entry else {}
        deleted = [n for n in names if n in present]
        for name in deleted:
            del present[name]
        return {'deleted': deleted, 'missing': [n for n in names if n not in deleted]}

    # ------------------------------------------------------ installs and tasks
    def op_list_registry_subkeys(self, key: str, sid: str | None = None,
                                 names: list[str] | None = None) -> dict[str, t.Any]:
        prefix = _key(key) + '\\'
        keys = []
        for path, entry in sorted(self._hive(sid).items()):
            if path.startswith(prefix) and '\\' not in path[len(prefix):]:
                values = {n: v for n, v in entry['values'].items() if names is None or n in names}
                keys.append({'name': entry['path'].rsplit('\\', 1)[-1], 'values': copy.deepcopy(values)})
        return {'keys': keys}

    def op_get_file_info(self, paths: list[str]) -> dict[str, t.Any]:
        files = []
        for path in paths:
            self._assert_readable(path)
            entry = self._entry(path)
            if entry is not None:
                self._assert_readable(entry['path'])
            if entry is None or entry['type'] != 'file':
                files.append({'path': path, 'exists': False, 'bytes': None, 'version': None, 'sha256': None,
                              'signature': None})
                continue
            data = base64.b64decode(entry['content'])
            meta = entry.get('meta') or {}
            files.append({'path': entry['path'], 'exists': True, 'bytes': len(data), 'version': meta.get('version'),
                          'sha256': hashlib.sha256(data).hexdigest(), 'signature': signature_of(meta)})
        return {'files': files}

    def op_download_file(self, url: str, destination: str, timeout_seconds: int = 300, sha256: str | None = None,
                         signer: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        served = self.state['downloads'].get(url)
        if served is None:
            raise BridgeOperationError(f'The remote server returned an error: (404) Not Found. ({url})')
        if served.get('error'):
            raise BridgeOperationError(served['error'])
        data = base64.b64decode(served['content'])
        if sha256 or signer is not None:
            staging = destination + '.part'
            self.write(staging, data, meta=copy.deepcopy(served.get('meta')), owner=ADMINISTRATORS_SID)
            try:
                self.op_verify_file(staging, sha256, signer)
            except BridgeOperationError as error:
                raise BridgeOperationError(str(error).replace(staging, url)) from None
            finally:
                self._remove_tree(staging)
        self.write(destination, data, meta=copy.deepcopy(served.get('meta')), owner=ADMINISTRATORS_SID)
        return {'bytes': len(data), 'sha256': hashlib.sha256(data).hexdigest()}

    def _interactive(self, sid: str) -> dict[str, t.Any]:
        profile = self._profile(sid)
        if not any(p['owner_sid'] == sid and p['name'].lower() == 'explorer.exe' and p['session_id']
                   for p in self.state['processes']):
            raise BridgeOperationError(f"'{profile['username']}' is not logged on: there is no interactive session "
                                       'to run a per-user program in.')
        return profile

    def op_run_as_user(self, sid: str, executable: str, arguments: list[str], timeout_seconds: int = 600,
                       success_codes: list[int] | None = None, sha256: str | None = None,
                       signer: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        profile = self._interactive(sid)
        entry = self._held_file(executable) if sha256 or signer is not None else self._entry(executable)
        if entry is None or entry['type'] != 'file':
            raise BridgeOperationError(f"The system cannot find the file specified: '{executable}'.")
        if sha256 or signer is not None:
            # Verified here, in the operation that runs it: the real bridge holds it open denying writes and
            # deletes from this check until the task ends, so the twin runs it in the same step.
            self.op_verify_file(executable, sha256, signer)
        meta = entry.get('meta') or {}
        task = self._register_task(profile)
        run = {'sid': sid, 'executable': entry['path'], 'arguments': list(arguments), 'exit_code': None,
               'timed_out': False, 'principal': task['user_id'], 'priority': self._task_process_priority(task)}
        self.state['tasks_run'].append(run)
        in_place = any(a.startswith('_?=') for a in arguments)
        if meta.get('hangs') or (meta.get('kind') == 'notion_uninstaller' and in_place and '/S' not in arguments):
            run['timed_out'] = True  # a hung or interactive (un)installer: the task is stopped at the timeout
        elif meta.get('kind') == 'notion_installer':
            run['exit_code'] = self.install_notion(profile, meta, arguments)
        elif meta.get('kind') == 'notion_uninstaller':
            # Without _?= the NSIS uninstaller copies itself to %TEMP%, starts the copy and exits 0 at
            # once: nothing is removed by the time the task ends.
            run['exit_code'] = self._uninstall_notion(profile, entry['path']) if in_place else 0
        else:
            run['exit_code'] = meta.get('exit_code', 0)
        if run['timed_out']:
            raise BridgeOperationError(f"'{entry['path']}' did not finish within {timeout_seconds} s; the task was "
                                       'stopped.')
        if run['exit_code'] not in (success_codes or [0]):
            raise BridgeOperationError(f"'{entry['path']}' exited with code {run['exit_code']}.")
        return {'exit_code': run['exit_code']}

    def install_notion(self, profile: dict[str, t.Any], meta: dict[str, t.Any], arguments: list[str]) -> int:
        """What the per-user NSIS installer does when run as that user with /S."""
        if any(p['owner_sid'] == profile['sid'] and p['name'].lower() == 'notion.exe' for p in self.state['processes']):
            return 2  # "package in use"
        # The installer runs inside the user's session, where their hive is loaded: read it
        # directly rather than through _hive(), which would mount it for a batch.
        configured = self.state['hives'].get(profile['sid'], {}).get(_key(SHELL_FOLDERS_KEY), {}).get('values', {})
        local = configured.get('Local AppData')
        local_app_data = _expand_profile(local['data'], profile['profile_path']) if local else \
            ntpath.join(profile['profile_path'], 'AppData', 'Local')
        target = next((a[3:] for a in arguments if a.startswith('/D=')), ntpath.join(local_app_data, 'Programs', 'Notion'))
        version = meta['version']
        # What it installs is signed as the installer is (payload_signature: a payload whose signature broke).
        self.write(ntpath.join(target, 'Notion.exe'), f'MZ Notion {version}',
                   meta={'kind': 'notion_exe', 'version': version,
                         **signed_copy(meta, status=meta.get('payload_signature'))})
        self.write(ntpath.join(target, 'Uninstall Notion.exe'), f'MZ Uninstall Notion {version}',
                   meta={'kind': 'notion_uninstaller', 'version': version, **signed_copy(meta),
                         'hangs': meta.get('uninstaller_hangs', False)})
        self.write(ntpath.join(target, 'resources', 'app.asar'), f'asar {version}')
        uninstaller = ntpath.join(target, 'Uninstall Notion.exe')
        self.set_registry(profile['sid'], NOTION_UNINSTALL_KEY, {
            'DisplayName': {'type': 'REG_SZ', 'data': f'Notion {version}'},
            'DisplayVersion': {'type': 'REG_SZ', 'data': version},
            'Publisher': {'type': 'REG_SZ', 'data': NOTION_PUBLISHER},
            'InstallLocation': {'type': 'REG_SZ', 'data': target},
            'UninstallString': {'type': 'REG_SZ', 'data': f'"{uninstaller}" /currentuser'},
            'QuietUninstallString': {'type': 'REG_SZ', 'data': f'"{uninstaller}" /currentuser /S'},
        })
        return 0

    def _uninstall_notion(self, profile: dict[str, t.Any], uninstaller: str) -> int:
        """The per-user uninstaller: run as anyone but the owner it exits 0 and deletes nothing."""
        install_dir = ntpath.dirname(uninstaller)
        if not _norm(install_dir).startswith(_norm(profile['profile_path']) + '\\'):
            return 0
        # Run in place (_?=), it removes the app but not itself nor the folder it is in.
        prefix = _norm(install_dir) + '\\'
        keep = {_norm(uninstaller), _norm(install_dir)}
        for key in [k for k in self.state['files'] if k.startswith(prefix) and k not in keep]:
            del self.state['files'][key]
        hive = self.state['hives'].get(profile['sid'], {})
        hive.pop(_key(NOTION_UNINSTALL_KEY), None)
        return 0

    def op_start_as_user(self, sid: str, executable: str, arguments: list[str] | None = None) -> dict[str, t.Any]:
        profile = self._interactive(sid)
        if self._entry(executable) is None:
            raise BridgeOperationError(f"The system cannot find the file specified: '{executable}'.")
        task = self._register_task(profile)
        priority = self._task_process_priority(task)
        pid = self.add_process(ntpath.basename(executable), ntpath.normpath(executable), sid, priority=priority)
        self.state.setdefault('tasks_started', []).append({
            'sid': sid, 'executable': ntpath.normpath(executable), 'arguments': list(arguments or []), 'pid': pid,
            'principal': task['user_id'], 'priority': priority})
        return {'started': True, 'pid': pid}

    # ------------------------------------------------------ trusted records
    def _records_key(self, namespace: str, key: str | None = None) -> str:
        for name in (namespace,) if key is None else (namespace, key):
            if not re.fullmatch(RECORD_NAME_PATTERN, name):
                raise BridgeOperationError(f"'{name}' is not a valid record name.")
        return f'{RECORDS_KEY}\\{namespace}'

    def op_read_records(self, namespace: str) -> dict[str, t.Any]:
        entry = self.state['hives']['HKLM'].get(_key(self._records_key(namespace)))
        values = entry['values'] if entry else {}
        return {'records': [{'key': name, 'content': values[name]['data']} for name in sorted(values)],
                'store': f'HKLM\\{self._records_key(namespace)}'}

    def op_write_record(self, namespace: str, key: str, content: str) -> dict[str, t.Any]:
        self.set_registry('HKLM', self._records_key(namespace, key), {key: {'type': 'REG_SZ', 'data': content}})
        return {'updated': True, 'bytes': len(content.encode())}

    def op_remove_record(self, namespace: str, key: str) -> dict[str, t.Any]:
        entry = self.state['hives']['HKLM'].get(_key(self._records_key(namespace, key)))
        if entry is None or key not in entry['values']:
            return {'removed': False, 'missing': True}
        del entry['values'][key]
        return {'removed': True, 'missing': False}

    # ------------------------------------------------------ installer staging
    def op_ensure_admin_dir(self, path: str) -> dict[str, t.Any]:
        normal = ntpath.normpath(path)
        parts = normal.split('\\')
        if len(parts) < 2 or not parts[0].endswith(':'):
            raise BridgeOperationError(f"'{path}' is not an absolute local path.")
        for depth in range(2, len(parts) + 1):
            current = '\\'.join(parts[:depth])
            entry = self.state['files'].get(_norm(current))
            if entry is None:
                break
            self._assert_admin_folder(entry, path, last=depth == len(parts))
        existing = self.state['files'].get(_norm(normal))
        if existing is None:
            # Created with its security descriptor in one step: there is no moment a user could open it.
            self.mkdir(normal, owner=ADMINISTRATORS_SID)
            self.state['files'][_norm(normal)].update(owner=ADMINISTRATORS_SID, acl=copy.deepcopy(ADMIN_DIR_ACL))
            return {'created': True, 'acl_corrected': False}
        corrected = existing.get('acl') != ADMIN_DIR_ACL
        existing['acl'] = copy.deepcopy(ADMIN_DIR_ACL)
        return {'created': False, 'acl_corrected': corrected}

    def _assert_admin_folder(self, entry: dict[str, t.Any], path: str, *, last: bool) -> None:
        """ensure_admin_dir's rule for one existing folder on the way (last: the folder itself)."""
        shown = entry['path']
        if entry['type'] == 'junction':
            raise BridgeOperationError(f"Refusing '{path}': '{shown}' is a junction or symbolic link.")
        if entry['type'] != 'directory':
            raise BridgeOperationError(f"Refusing '{path}': '{shown}' is a file.")
        owner = entry.get('owner') or SYSTEM_SID  # None: installed with the system
        if owner not in TRUSTED_OWNERS:
            raise BridgeOperationError(f"Refusing '{path}': '{shown}' is owned by {owner}, not by Administrators or "
                                       'SYSTEM (a user created it, and may control what is in it). Remove it and run '
                                       'again.')
        acl = self._effective_acl(shown) or {}
        others = {sid for sid in acl.get('allow', []) if sid not in TRUSTED_OWNERS}
        if last:
            others |= {sid for sid in acl.get('create', []) if sid not in TRUSTED_OWNERS}
        if others:
            rights = 'write to' if last else 'take control of'
            raise BridgeOperationError(f"Refusing '{path}': {', '.join(sorted(others))} may {rights} '{shown}', which "
                                       'only administrators may change. Remove it and run again.')


def _read_text(entry: dict[str, t.Any], max_bytes: int) -> dict[str, t.Any]:
    data = base64.b64decode(entry['content'])
    if len(data) > max_bytes:
        return {'path': entry['path'], 'content': None, 'error': f'larger than {max_bytes} bytes'}
    try:
        return {'path': entry['path'], 'content': data.decode('utf-8'), 'error': None}
    except UnicodeDecodeError:
        return {'path': entry['path'], 'content': None, 'error': 'not UTF-8 text'}


def _expand_profile(value: str, profile_path: str) -> str:
    lowered = value.lower()
    if lowered.startswith('%userprofile%'):
        return ntpath.normpath(profile_path + value[len('%userprofile%'):])
    return ntpath.normpath(value)

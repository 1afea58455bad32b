# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app lifecycle rungs on Windows: stop, restart, uninstall, install, reinstall Notion per user.

Private to this collection. Notion for Windows installs per user, and its
uninstaller run by an administrator against someone else's install exits 0
and deletes nothing; so every install and uninstall here runs as the owning
user, in their interactive session, through the bridge's run_as_user. A user
who is not logged on cannot have that done and is reported ``pending``.
Installers are verified (checksum, Authenticode signer) in the same group
before anything of that user is touched, so a bad installer changes nothing.
"""
from __future__ import annotations

import datetime
import ntpath
import re
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from ansible_collections.loopbreaker.notion.plugins.module_utils import _app_data, _containment, _msix
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import data_changed, substitute
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import OPERATIONS
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import (
    Host,
    RequestError,
    operation_data,
    owns,
    not_stopped,
    per_profile,
    profiles_operation,
    select_profiles,
    skipped_profiles,
    stop_operation,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import WINDOWS, PlatformLayout
from ansible_collections.loopbreaker.notion.plugins.module_utils._signature import (
    NOTION_ORGANIZATION,
    TRUSTED_SIGNING_ISSUERS,
    expectation,
    signature_problem,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._quarantine import (
    Manifest,
    QuarantinedItem,
    entry_operations,
    item_attributes,
    stored_name,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import (
    check_common,
    check_seconds,
    redact_url,
    shown,
)

UNINSTALL_KEY = 'Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall'
MACHINE_UNINSTALL_KEYS = ('SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall',
                          'SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall')
UNINSTALL_VALUES = ['DisplayName', 'DisplayVersion', 'Publisher', 'InstallLocation', 'QuietUninstallString',
                    'UninstallString']
DEFAULT_INSTALL_DIR = '{Local AppData}\\Programs\\Notion'
MACHINE_EXES = ('C:\\Program Files\\Notion\\Notion.exe', 'C:\\Program Files (x86)\\Notion\\Notion.exe')
DOWNLOAD_DIR = 'C:\\ProgramData\\loopbreaker\\installers'
NOTION_NAME = re.compile(r'^Notion \d')
INSTALLER_VERSION = re.compile(r'Notion[ _-]Setup[ _-](\d+(?:\.\d+)+)', re.IGNORECASE)
SHA256 = re.compile(r'^[0-9a-fA-F]{64}$')
# The subject O= of Notion's Trusted Signing certificates; compared normalised (docs/signatures.md).
DEFAULT_SIGNER = NOTION_ORGANIZATION
MAX_TIMEOUT = 86400
MAX_STOP_TIMEOUT = 3600

ARGUMENT_SPEC: dict[str, t.Any] = {
    'state': {'type': 'str', 'required': True, 'choices': ['present', 'absent', 'reinstalled', 'restarted', 'stopped']},
    'installer': {'type': 'str'},
    'checksum': {'type': 'str'},
    'signer': {'type': 'str', 'default': DEFAULT_SIGNER},
    'signer_issuers': {'type': 'list', 'elements': 'str', 'default': list(TRUSTED_SIGNING_ISSUERS)},
    'version': {'type': 'str'},
    'remove_user_data': {'type': 'bool', 'default': False},
    'users': {'type': 'list', 'elements': 'str'},
    'exclude_users': {'type': 'list', 'elements': 'str'},
    'timeout': {'type': 'int', 'default': 600},
    'stop_timeout': {'type': 'int', 'default': 30},
    'profiles_root': {'type': 'path'},
    'state_dir': {'type': 'path'},
    'app_path': {'type': 'path'},
    'team_id': {'type': 'str'},
    'use_homebrew': {'type': 'bool', 'default': False},
    'package_format': {'type': 'str', 'choices': ['nsis', 'msix']},
    'package_family': {'type': 'str'},
}
MUTUALLY_EXCLUSIVE: list[list[str]] = [['users', 'exclude_users'], ['installer', 'use_homebrew'],
                                       ['package_format', 'use_homebrew'], ['package_family', 'use_homebrew']]
REQUIRED_IF: list[t.Any] = [['state', 'present', ['installer', 'use_homebrew'], True],
                            ['state', 'reinstalled', ['installer', 'use_homebrew'], True]]


def validate(params: dict[str, t.Any], platform: str = 'windows') -> None:
    """What the spec cannot say; raises RequestError before anything is read."""
    check_common(params, ARGUMENT_SPEC)
    if params['state'] in ('present', 'reinstalled') and not params.get('use_homebrew'):
        # installer: null or use_homebrew: false pass the spec's required_if (the key is there).
        if params.get('installer') is None:
            raise RequestError(f"state is {params['state']} but any of the following are missing: installer, "
                               'use_homebrew')
        check_installer(params['installer'], platform)
    for option in ('checksum', 'version', 'team_id'):
        if params.get(option) is not None and not params[option].strip():
            raise RequestError(f'{option} must not be empty; leave it out instead')
    if params.get('checksum') and not SHA256.match(params['checksum']):
        raise RequestError(f"checksum must be a SHA-256 (64 hex digits), got {params['checksum']!r}")
    if params['state'] not in ('present', 'reinstalled'):
        given = [name for name in ('installer', 'checksum', 'version') if params.get(name)]
        if given:
            verb = 'applies' if len(given) == 1 else 'apply'
            raise RequestError(f"{', '.join(given)} only {verb} to state present or reinstalled, not {params['state']}")
    if params['remove_user_data'] and params['state'] != 'absent':
        raise RequestError('remove_user_data only applies to state absent')
    check_seconds(params, 'timeout', MAX_TIMEOUT)
    check_seconds(params, 'stop_timeout', MAX_STOP_TIMEOUT)
    if not params['signer'].strip():
        raise RequestError('signer must not be empty: every installer is checked against a signer')
    if not params['signer_issuers'] or any(not pattern.strip() for pattern in params['signer_issuers']):
        raise RequestError('signer_issuers must name at least one certificate authority, and no empty one: every '
                           "signer's certificate is checked against them")
    check_package_format(params, platform)


def check_package_format(params: dict[str, t.Any], platform: str) -> None:
    """package_format and package_family: which rules an MSIX request must follow; raises RequestError."""
    msix = params.get('package_format') == 'msix'
    if params.get('package_format') and platform != 'windows':
        raise RequestError('package_format applies to Windows hosts only')
    if params.get('package_family') is not None and not msix:
        raise RequestError('package_family only applies with package_format: msix')
    if msix and params.get('package_family') is not None and not _msix.FAMILY_NAME.match(params['package_family']):
        raise RequestError("package_family must be a package family name like "
                           f"'{_msix.NOTION_FAMILY}', got {shown(params['package_family'])}")
    if msix and params['state'] not in ('present', 'reinstalled', 'absent'):
        raise RequestError(f"package_format: msix only applies to state present, reinstalled or absent, not "
                           f"{params['state']}")
    if msix and params['remove_user_data']:
        raise RequestError('remove_user_data does not apply with package_format: msix (the package data of users '
                           'who have the MSIX is never removed)')
    installer = params.get('installer')
    if not installer or params['state'] not in ('present', 'reinstalled'):
        return
    if msix and not params.get('checksum'):
        raise RequestError('package_format is msix but checksum is missing: an MSIX is only provisioned when its '
                           'SHA-256 is known')
    shown_installer = shown(redact_url(installer))
    path = urllib.parse.urlparse(installer).path if is_url(installer) else installer
    if msix and not is_url(installer) and not path.lower().endswith(('.msix', '.appx')):
        raise RequestError(f'installer must be an .msix or .appx package (not a bundle) with package_format: msix, '
                           f'got {shown_installer}')
    if not msix and _msix.is_package_path(path):
        raise RequestError(f'installer {shown_installer} is an MSIX package: set package_format: msix')


def check_installer(installer: str, platform: str) -> None:
    """A local absolute path on the host, or an http(s) URL with a host; raises RequestError."""
    shown_installer = shown(redact_url(installer))
    if not installer.strip():
        raise RequestError('installer must not be empty')
    try:
        url = urllib.parse.urlsplit(installer)
    except ValueError as error:
        raise RequestError(f'installer is neither a path nor a valid URL ({error}): {shown_installer}') from None
    scheme = url.scheme.lower()
    if is_url(installer):
        if not url.hostname:
            raise RequestError(f'installer URL has no host: {shown_installer}')
        return
    if len(scheme) > 1:  # a drive letter parses as a one-letter scheme
        raise RequestError(f'installer must be a path on the host or an http(s) URL, not a {scheme} URL: '
                           f'{shown_installer}')
    if platform == 'windows':
        if installer.startswith(('\\\\', '//')):
            raise RequestError(f'installer must be on a local drive or an http(s) URL, not a UNC path (the task '
                               f'runs as the user and cannot reach network shares with your credentials): '
                               f'{shown_installer}')
        drive, rest = ntpath.splitdrive(installer)
        if not drive or not rest.startswith(('\\', '/')):
            raise RequestError(f"installer must be an absolute path (like 'C:\\Installers\\Notion Setup.exe') "
                               f'or an http(s) URL, got {shown_installer}')
        parts = re.split(r'[\\/]', rest)
    else:
        if not installer.startswith('/'):
            raise RequestError(f'installer must be an absolute path or an http(s) URL, got {shown_installer}')
        parts = installer.split('/')
    if '..' in parts:
        raise RequestError(f"installer must not contain '..' components: {shown_installer}")


def installer_version(installer: str, info: dict[str, t.Any] | None, params: dict[str, t.Any]) -> str | None:
    """The version the installer brings: as told, from the file, or from Notion's release file name."""
    if params.get('version'):
        return str(params['version'])
    if info and info.get('version'):
        return str(info['version'])
    match = INSTALLER_VERSION.search(urllib.parse.unquote(installer))
    return match.group(1) if match else None


def is_url(installer: str) -> bool:
    return urllib.parse.urlparse(installer).scheme in ('http', 'https')


def probe_operations(params: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    installer = params.get('installer')
    local_files = list(MACHINE_EXES) + ([installer] if installer and not is_url(installer) else [])
    return [
        profiles_operation(WINDOWS.shell_folders, params.get('users'), params.get('exclude_users')),
        {'op': 'list_registry_subkeys', 'each_profile': True, 'sid': '{Sid}', 'key': UNINSTALL_KEY,
         'names': UNINSTALL_VALUES},
        {'op': 'get_file_info', 'each_profile': True, 'paths': [DEFAULT_INSTALL_DIR + '\\Notion.exe']},
        {'op': 'stat_paths', 'each_profile': True, 'patterns': [WINDOWS.data_root]},
        {'op': 'list_registry_subkeys', 'key': MACHINE_UNINSTALL_KEYS[0], 'names': UNINSTALL_VALUES},
        {'op': 'list_registry_subkeys', 'key': MACHINE_UNINSTALL_KEYS[1], 'names': UNINSTALL_VALUES},
        {'op': 'get_file_info', 'paths': local_files},
        {'op': 'list_packages', 'names': ['*notion*'], 'include_provisioned': True},
        {'op': 'list_processes', 'names': list(WINDOWS.process_names) + ['explorer.exe']},
    ] + _msix_probe(params)


def _msix_probe(params: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """A local MSIX is read (identity, hash, signature) with the probe: planning needs its version."""
    installer = params.get('installer')
    if params.get('package_format') != 'msix' or not installer or is_url(installer):
        return []
    return [{'op': 'verify_package', 'group': 'package', 'path': installer}]


def notion_entries(keys: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """Uninstall entries of Notion itself: "Notion <version>", never Notion Calendar."""
    entries = []
    for key in keys:
        values = {name: value['data'] for name, value in key['values'].items()}
        name = str(values.get('DisplayName', ''))
        if NOTION_NAME.match(name) and 'calendar' not in name.lower():
            entries.append({'key': key['name'], 'display_name': name, 'version': values.get('DisplayVersion'),
                            'publisher': values.get('Publisher'), 'install_location': values.get('InstallLocation'),
                            'quiet_uninstall': values.get('QuietUninstallString')})
    return entries


@dataclass
class UserApp:
    profile: dict[str, t.Any]
    entry: dict[str, t.Any] | None
    exe: dict[str, t.Any] | None
    processes: list[dict[str, t.Any]]
    data_root: str
    has_data: bool
    logged_on: bool
    error: str | None = None
    data_size: dict[str, int] | None = None

    @property
    def install_dir(self) -> str:
        if self.entry and self.entry.get('install_location'):
            return str(self.entry['install_location'])
        return substitute(DEFAULT_INSTALL_DIR, {**self.profile['folders']})

    @property
    def installed_version(self) -> str | None:
        if self.exe and self.exe.get('exists'):
            return self.exe.get('version') or (self.entry or {}).get('version')
        return (self.entry or {}).get('version')

    @property
    def foreign_install_dir(self) -> bool:
        """The uninstall entry points outside this user's profile: its uninstaller would not act for them.

        Only the profile counts, not the Local AppData shell folder: the user's own hive sets that, so pointing
        it at C:\\Program Files would make the machine-wide install "theirs" to uninstall and delete.
        """
        folder = ntpath.normcase(ntpath.normpath(self.install_dir))
        return not folder.startswith(ntpath.normcase(ntpath.normpath(self.profile['profile_path'])) + '\\')

    @property
    def installed(self) -> bool:
        return bool(self.entry or (self.exe and self.exe.get('exists')))

    def facts(self) -> dict[str, t.Any]:
        return {'user': self.profile['username'], 'sid': self.profile['sid'], 'logged_on': self.logged_on,
                'installed': self.installed, 'version': self.installed_version, 'install_dir': self.install_dir,
                'uninstall_entry': self.entry, 'executable': self.exe, 'running': len(self.processes),
                'user_data': self.data_root if self.has_data else None, 'error': self.error}


@dataclass
class Discovery:
    users: list[UserApp]
    machine_installs: list[dict[str, t.Any]]
    packages: list[dict[str, t.Any]]
    installer_info: dict[str, t.Any] | None
    all_profiles: list[dict[str, t.Any]] = field(default_factory=list)
    provisioned: list[dict[str, t.Any]] = field(default_factory=list)
    skipped_profiles: list[dict[str, t.Any]] = field(default_factory=list)

    def facts(self) -> dict[str, t.Any]:
        return {'users': [{**u.facts(), 'msix': self.user_packages(u.profile['sid'])} for u in self.users],
                'machine_installs': self.machine_installs, 'packages': self.packages, 'provisioned': self.provisioned}

    def user_packages(self, sid: str) -> list[dict[str, t.Any]]:
        """The MSIX packages Windows lists for this user, whatever their state (Installed, Staged, Paused...)."""
        found = []
        for package in self.packages:
            states = package.get('user_states') or {s: 'Installed' for s in package.get('user_sids') or []}
            if sid in states:
                found.append({'family_name': package.get('family_name'), 'version': package.get('version'),
                              'install_location': package.get('install_location'), 'state': states[sid]})
        return found


def discover(params: dict[str, t.Any], envelope: dict[str, t.Any]) -> Discovery:
    profiles_data = operation_data(envelope, 0)
    profiles = profiles_data['profiles']
    entries, exes, stats = (per_profile(envelope, index) for index in (1, 2, 3))
    listed = operation_data(envelope, 8)['processes']
    processes = [p for p in listed if p['name'].lower() != 'explorer.exe']
    # An interactive session is an explorer.exe of the user's outside session 0; a loaded hive
    # is not one (services, runas and WinRM logons load hives too).
    sessions = {p['owner_sid'] for p in listed if p['name'].lower() == 'explorer.exe' and p['session_id']}
    chosen = select_profiles(profiles, params.get('users'), params.get('exclude_users'), case_insensitive=True,
                             skipped=profiles_data.get('skipped'))
    users = []
    for profile in chosen:
        sid = profile['sid']
        failed = [r[sid]['error'] for r in (entries, exes, stats) if r[sid]['status'] != 'ok']
        # A shell folder of the user's own hive pointing into another profile makes nothing there theirs: not
        # their uninstall folder to clean, not their program to run (as app_data refuses to take data from it).
        foreign = _containment.foreign_folder(WINDOWS, profile, profiles)
        if foreign is not None:
            failed.insert(0, f'its shell folders are not trusted: {foreign}')
        data_root = substitute(WINDOWS.data_root, {**profile['folders']})
        app = UserApp(profile=profile, entry=None, exe=None, data_root=data_root, has_data=False,
                      logged_on=sid in sessions,
                      processes=[p for p in processes if owns(profile, p)], error=profile.get('error') or
                      (failed[0] if failed else None))
        if not failed:
            found = notion_entries(entries[sid]['data']['keys'])
            app.entry = found[0] if found else None
            app.exe = exes[sid]['data']['files'][0]
            found_data = stats[sid]['data']['entries']
            app.has_data = bool(found_data)
            app.data_size = {'bytes': found_data[0]['bytes'], 'files': found_data[0]['files'],
                             **(item_attributes(found_data[0]) or {})} if found_data else None
        users.append(app)
    machine = notion_entries(operation_data(envelope, 4)['keys'] + operation_data(envelope, 5)['keys'])
    files = operation_data(envelope, 6)['files']
    machine_exes = [f for f in files if f['exists'] and f['path'].lower() in {p.lower() for p in MACHINE_EXES}]
    installer = params.get('installer')
    installer_info = next((f for f in files if installer and f['path'].lower() == installer.lower()), None)
    listed = operation_data(envelope, 7)
    packages = [p for p in listed['packages'] if 'calendar' not in p['name'].lower()]
    provisioned = [p for p in listed.get('provisioned', []) if 'calendar' not in p['display_name'].lower()]
    return Discovery(users=users, machine_installs=machine + [{'executable': f} for f in machine_exes],
                     packages=packages, installer_info=installer_info, all_profiles=profiles,
                     provisioned=provisioned,
                     skipped_profiles=skipped_profiles(profiles_data))


def verify_local_installer(params: dict[str, t.Any], info: dict[str, t.Any] | None) -> None:
    """Refuse a local installer that is missing, altered or signed by someone else — before anything."""
    installer = params['installer']
    if info is None or not info['exists']:
        raise RequestError(f"installer {installer!r} does not exist on the host; nothing was changed")
    if params.get('checksum') and info['sha256'] != params['checksum'].lower():
        raise RequestError(f"installer {installer!r} has SHA-256 {info['sha256']}, expected "
                           f"{params['checksum'].lower()}: refused, nothing was changed")
    signature = info['signature'] or {}
    if signature.get('status') != 'Valid':
        raise RequestError(f"installer {installer!r} has no valid Authenticode signature (status "
                           f"{signature.get('status')}): refused, nothing was changed")
    problem = signature_problem(installer, signature, signer_expectation(params))
    if problem is not None:
        raise RequestError(f'installer {problem[:-1]}: refused, nothing was changed')


def signer_expectation(params: dict[str, t.Any]) -> dict[str, t.Any]:
    """Who must have signed the installer and the installed Notion.exe: the bridge's signer parameter."""
    return expectation(params['signer'], params['signer_issuers'])


@dataclass
class UserPlan:
    app: UserApp
    action: str
    operations: list[dict[str, t.Any]] = field(default_factory=list)
    reason: str | None = None
    version_after: str | None = None


def _stop(app: UserApp, params: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    if not app.processes:
        return []
    return [stop_operation(app.processes, app.profile['sid'], params['stop_timeout'])]


def _uninstall(app: UserApp, params: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    group = app.profile['sid']
    uninstaller = ntpath.join(app.install_dir, 'Uninstall Notion.exe')
    # _?= makes the NSIS uninstaller run in place and wait; without it, it relaunches itself from
    # %TEMP% and exits 0 at once, before anything is removed. It must be the last argument.
    operations = [{'op': 'run_as_user', 'group': group, 'sid': group, 'executable': uninstaller,
                   'arguments': ['/currentuser', '/S', f'_?={app.install_dir}'], 'timeout_seconds': params['timeout']}]
    # The uninstaller leaves files behind when Notion held them; clean the program folder, but only a
    # folder that is Notion's own: InstallLocation comes from the user's hive, and pointing it at
    # their Documents or AppData must not make an administrator delete that.
    if ntpath.basename(ntpath.normpath(app.install_dir)).lower().startswith('notion'):
        operations.append({'op': 'remove_path', 'group': group, 'path': app.install_dir,
                           'within': _containment.anchor_for(WINDOWS, app.profile, app.install_dir)})
    return operations


def _install(app: UserApp, installer_path: str, params: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    group = app.profile['sid']
    exe = substitute(DEFAULT_INSTALL_DIR + '\\Notion.exe', {**app.profile['folders']})
    # Verified again by the operation that runs it, through a handle held until the task ends: the
    # verify_file at the start of the group is minutes earlier (stop, uninstall).
    run = {'op': 'run_as_user', 'group': group, 'sid': group, 'executable': installer_path, 'arguments': ['/S'],
           'timeout_seconds': params['timeout'], **_expected(params)}
    return [run, {'op': 'verify_file', 'group': group, 'path': exe, 'signer': signer_expectation(params)}]


def _expected(params: dict[str, t.Any]) -> dict[str, t.Any]:
    expected: dict[str, t.Any] = {'signer': signer_expectation(params)}
    if params.get('checksum'):
        expected['sha256'] = params['checksum'].lower()
    return expected


def _staging_check(installer_path: str, group: str) -> list[dict[str, t.Any]]:
    """Every use of a downloaded installer first checks that only administrators can change its folder."""
    if ntpath.dirname(installer_path).lower() != DOWNLOAD_DIR.lower():
        return []
    return [{'op': 'ensure_admin_dir', 'group': group, 'path': DOWNLOAD_DIR}]


def _verify_installer(app: UserApp, installer_path: str, params: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    group = app.profile['sid']
    return _staging_check(installer_path, group) + [
        {'op': 'verify_file', 'group': group, 'path': installer_path, **_expected(params)}]


def quarantine_operations(layout: PlatformLayout, profile: dict[str, t.Any], data_root: str, entry_id: str,
                          now: datetime.datetime, *, size: dict[str, int] | None = None) -> list[dict[str, t.Any]]:
    """Move a user's whole Notion data folder into their quarantine, as app_data lays it out (any platform)."""
    group = profile['sid']
    root = _app_data.quarantine_root(layout, profile, data_root)
    entry_dir = layout.join(root, entry_id)
    item = QuarantinedItem(original_path=data_root, stored_as=layout.join('items', stored_name(0, data_root, layout.path)),
                           scope='user_data', type='directory', bytes=(size or {}).get('bytes', 0),
                           files=(size or {}).get('files', 0), attributes=item_attributes(size or {}) if size else None)
    manifest = Manifest(id=entry_id, created=now.strftime('%Y-%m-%dT%H:%M:%SZ'), module='app',
                        reason='remove_user_data with state absent', user=profile['username'], sid=group,
                        platform=layout.name, items=(item,), entry_dir=entry_dir, profile_path=profile['profile_path'])
    return entry_operations(manifest, group=group, owner_sid=profile.get('owner_sid', group),
                            anchor=_app_data.user_anchor(layout, profile), path_module=layout.path)


def _quarantine_user_data(app: UserApp, entry_id: str, now: datetime.datetime) -> list[dict[str, t.Any]]:
    return quarantine_operations(WINDOWS, app.profile, app.data_root, entry_id, now, size=app.data_size)


def plan_user(app: UserApp, discovery: Discovery, params: dict[str, t.Any], installer_path: str | None,
              version: str | None, entry_id: str, now: datetime.datetime) -> UserPlan:
    state = params['state']
    if state == 'stopped':
        # Processes are listed by owner: stopping them needs nothing from the user's hive.
        return UserPlan(app, 'stopped', _stop(app, params)) if app.processes else UserPlan(app, 'unchanged')
    if app.error:
        return UserPlan(app, 'failed', reason=f"this user's install could not be read, so nothing was done for "
                                              f'them: {app.error}')
    if state == 'restarted':
        if not app.installed:
            return UserPlan(app, 'unchanged', reason='Notion is not installed for this user')
        if not app.logged_on:
            return UserPlan(app, 'pending', reason='not logged on: Notion starts with their next session')
        start = {'op': 'start_as_user', 'group': app.profile['sid'], 'sid': app.profile['sid'],
                 'executable': ntpath.join(app.install_dir, 'Notion.exe')}
        return UserPlan(app, 'restarted', _stop(app, params) + [start])
    if state in ('absent', 'reinstalled') and app.installed and app.foreign_install_dir:
        return UserPlan(app, 'failed', reason=f"the Notion uninstall entry points to {app.install_dir}, outside "
                                              f"{app.profile['username']}'s profile: its uninstaller would not act "
                                              'for this user, nothing was run')
    if state == 'absent':
        if not app.installed and not (params['remove_user_data'] and app.has_data):
            return UserPlan(app, 'unchanged')
        if app.installed and not app.logged_on:
            return UserPlan(app, 'pending', reason='not logged on: a per-user uninstaller only acts in the '
                                                   "user's own session")
        operations = _stop(app, params) + (_uninstall(app, params) if app.installed else [])
        if params['remove_user_data'] and app.has_data:
            operations += _quarantine_user_data(app, entry_id, now)
        return UserPlan(app, 'removed', operations)
    if state == 'present' and app.installed and version is not None and app.installed_version == version:
        return UserPlan(app, 'unchanged', version_after=version)
    if state == 'present' and app.installed and version is None:
        return UserPlan(app, 'unchanged', reason='installer version unknown: Notion is installed, left as it is')
    if not app.logged_on:
        return UserPlan(app, 'pending', reason="not logged on: a per-user installer only runs in the user's own session")
    operations = _verify_installer(app, t.cast(str, installer_path), params) + _stop(app, params)
    if state == 'reinstalled' and app.installed:
        operations += _uninstall(app, params)
    operations += _install(app, t.cast(str, installer_path), params)
    if state == 'reinstalled' and app.installed:
        action = 'reinstalled'
    elif not app.installed:
        action = 'installed'
    else:
        action = 'upgraded' if _version_key(version) > _version_key(app.installed_version) else 'downgraded'
    return UserPlan(app, action, operations, version_after=version)


def _version_key(version: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r'\d+', version or ''))


def targets(discovery: Discovery, params: dict[str, t.Any]) -> list[UserApp]:
    """Who a state concerns by default: stop/restart where Notion runs, the rest where it is installed."""
    if params.get('users'):
        return discovery.users
    if params['state'] in ('stopped', 'restarted'):
        return [u for u in discovery.users if u.processes]
    if params['state'] == 'present':
        return discovery.users
    # A user whose hive or profile could not be read may have Notion: reported as failed, never left out.
    return [u for u in discovery.users if u.installed or u.error or (params['remove_user_data'] and u.has_data)]


def run(host: Host, params: dict[str, t.Any], *, check_mode: bool, now: datetime.datetime,
        entry_token: str) -> dict[str, t.Any]:
    validate(params)
    for option in ('profiles_root', 'state_dir', 'app_path', 'team_id'):
        if params.get(option):
            raise RequestError(f'{option} applies to macOS hosts only')
    if params.get('use_homebrew'):
        raise RequestError('use_homebrew applies to macOS hosts only')
    envelope = host.run_batch(probe_operations(params), check_mode=True)
    discovery = discover(params, envelope)
    if params.get('package_format') == 'msix':
        # Imported here: _app_msix builds on this module's discovery and per-user steps.
        from ansible_collections.loopbreaker.notion.plugins.module_utils import _app_msix
        probed = envelope['results'][9] if len(envelope['results']) > 9 else None
        return _app_msix.run(host, params, discovery, probed, check_mode=check_mode)
    installer = params.get('installer')
    installer_path = None
    operations: list[dict[str, t.Any]] = []
    if installer and params['state'] in ('present', 'reinstalled'):
        if is_url(installer):
            name = ntpath.basename(urllib.parse.unquote(urllib.parse.urlparse(installer).path)) or 'NotionSetup.exe'
            installer_path = ntpath.join(DOWNLOAD_DIR, name)
        else:
            verify_local_installer(params, discovery.installer_info)
            installer_path = installer
    version = installer_version(installer or '', discovery.installer_info, params)
    entry_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{entry_token}"
    plans = [plan_user(app, discovery, params, installer_path, version, entry_id, now)
             for app in targets(discovery, params)]
    user_operations = [op for plan in plans for op in plan.operations]
    if user_operations and installer and is_url(installer) and params['state'] in ('present', 'reinstalled'):
        download = {'op': 'download_file', 'group': 'download', 'url': installer, 'destination': installer_path,
                    'timeout_seconds': params['timeout'], **_expected(params)}
        operations += _staging_check(t.cast(str, installer_path), 'download') + [download]
    operations += user_operations
    applied: list[dict[str, t.Any]] = []
    if operations and not check_mode:
        applied = host.run_batch(operations, check_mode=False)['results']
    return _result(params, discovery, plans, operations, applied, check_mode, version, entry_id)


def _version_after(plan: UserPlan, status: str) -> str | None:
    if status in ('installed', 'upgraded', 'downgraded', 'reinstalled'):
        return plan.version_after
    if status == 'removed':
        return None
    return plan.app.installed_version


def _result(params: dict[str, t.Any], discovery: Discovery, plans: list[UserPlan], operations: list[dict[str, t.Any]],
            applied: list[dict[str, t.Any]], check_mode: bool, version: str | None, entry_id: str) -> dict[str, t.Any]:
    errors_by_group: dict[str, list[str]] = {}
    done_by_group: dict[str, list[str]] = {}
    for operation, result in zip(operations, applied):
        bucket = errors_by_group if result['status'] == 'error' else done_by_group
        if result['status'] != 'skipped':
            bucket.setdefault(operation['group'], []).append(
                f"{operation['op']}: {result['error']}" if result['status'] == 'error' else operation['op'])
    users = []
    for plan in plans:
        sid = plan.app.profile['sid']
        # The staging check fails the same way in the download group and the user's: said once.
        errors = list(dict.fromkeys(errors_by_group.get(sid, []) +
                                    (errors_by_group.get('download', []) if plan.operations else [])))
        left_running = not_stopped(applied, sid)
        status = plan.action
        if plan.action == 'failed' or errors:
            status = 'failed'
        users.append({'user': plan.app.profile['username'], 'sid': sid, 'status': status,
                      'reason': plan.reason or ('; '.join(errors) if errors else None),
                      'version_before': plan.app.installed_version,
                      'version_after': _version_after(plan, status),
                      'processes_stopped': [p['pid'] for p in plan.app.processes
                                            if any(op['op'] == 'stop_processes' for op in plan.operations)
                                            and p['pid'] not in {entry['pid'] for entry in left_running}],
                      'processes_not_stopped': left_running,
                      'operations': [op['op'] for op in plan.operations] if check_mode else done_by_group.get(sid, []),
                      'quarantine_id': entry_id if any(op['op'] == 'move_path' for op in plan.operations) else None})
    if check_mode or not applied:
        changed = bool(operations)
    else:
        # A staging folder that was already right is a check, not a change.
        changed = any(r['status'] == 'ok' and OPERATIONS[r['op']].mutates and
                      (r['op'] != 'ensure_admin_dir' or data_changed(r['data'])) for r in applied)
    manual = []
    if discovery.packages or discovery.provisioned:
        manual.append('MSIX Notion packages were found (see facts.packages and facts.provisioned); this run acts on '
                      'the per-user installs only (package_format: msix provisions the MSIX and migrates them).')
    if discovery.machine_installs and params['state'] in ('absent', 'reinstalled'):
        manual.append('A machine-wide Notion install was found (see facts.machine_installs); it is not a per-user '
                      'install and was left alone.')
    result: dict[str, t.Any] = {
        'changed': changed, 'platform': 'windows', 'state': params['state'], 'installer_version': version,
        'users': users, 'skipped_profiles': discovery.skipped_profiles, 'facts': discovery.facts(),
        'manual_actions': manual,
        'diff': {'before': ''.join(f"{u['user']}: {u['version_before'] or 'not installed'}\n" for u in users),
                 'after': ''.join(f"{u['user']}: {u['version_after'] or 'not installed'} ({u['status']})\n"
                                  for u in users)},
    }
    failures = [f"{u['user']}: {u['reason']}" for u in users if u['status'] == 'failed']
    if failures:
        result.update(failed=True, msg='; '.join(failures))
    return result

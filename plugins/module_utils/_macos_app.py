# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app lifecycle rungs on macOS: stop, restart, remove, install or reinstall Notion.app.

Private to this collection. Every command line the module may run is built in
COMMANDS and every output it reads is parsed by a function next to it, so the
contract is tested as tables (tests/unit/plugins/module_utils/test_macos_app.py).
Only the commands in READ_ONLY run in check mode; the runner refuses the rest.

The bundles are the machine-wide ``app_path`` (``/Applications/Notion.app``) and
each chosen user's ``~/Applications/Notion.app``. A new bundle is unpacked into a
private work directory and verified there — SHA-256 of the .dmg/.zip, ``codesign
--verify --deep --strict``, and the signing team (``team_id``, else Notion's) —
before any Notion process is stopped or any bundle removed. User data is moved
into the same per-user quarantine as app_data, through LocalHost.

Helpers return values or raise (RequestError for bad input, MacAppError when the
host refuses or fails before anything changed); only the module's main() fails.
"""
from __future__ import annotations

import datetime
import hashlib
import posixpath
import re
import time
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from ansible_collections.loopbreaker.notion.plugins.module_utils import _app
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import (
    Host,
    RequestError,
    native_context,
    select_profiles,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import DARWIN
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import SKIPPED_HOMES

# Notion Labs' Apple Developer Team ID, as Installomator's ``notion`` label expects it
# (fragments/labels/notion.sh, expectedTeamID="LBQJ96FQ8D"); Notion Calendar is signed by the same team.
NOTION_TEAM_ID = 'LBQJ96FQ8D'
DEFAULT_APP_PATH = '/Applications/Notion.app'
BUNDLE_NAME = 'Notion.app'
BREW_PATHS = ('/opt/homebrew/bin/brew', '/usr/local/bin/brew')
CASK = 'notion'
WORK_PREFIX = '/private/tmp/loopbreaker-notion.'
TEAM_ID = re.compile(r'^[A-Z0-9]{10}$')
# The main process and every Electron helper (Renderer, GPU, Plugin); never "Notion Calendar".
PROCESS_NAME = re.compile(r'^Notion(?: Helper.*)?$')
INSTALLER_VERSION = re.compile(r'Notion[ _-](\d+(?:\.\d+)+)', re.IGNORECASE)
POLL_SECONDS = 0.5

DSCL = '/usr/bin/dscl'
WHO = '/usr/bin/who'
PS = '/bin/ps'
DEFAULTS = '/usr/bin/defaults'
CODESIGN = '/usr/bin/codesign'
STAT = '/usr/bin/stat'
ID = '/usr/bin/id'
SUDO = '/usr/bin/sudo'
MKTEMP = '/usr/bin/mktemp'
CURL = '/usr/bin/curl'
HDIUTIL = '/usr/bin/hdiutil'
DITTO = '/usr/bin/ditto'
CHOWN = '/usr/sbin/chown'
RM = '/bin/rm'
KILL = '/bin/kill'
LAUNCHCTL = '/bin/launchctl'
OPEN = '/usr/bin/open'

Argv = list[str]
Runner = t.Callable[[Argv], tuple[int, str, str]]


def _brew(brew: str, run_as: str | None, *args: str) -> Argv:
    """Homebrew refuses to run as root: run it as the owner of its prefix."""
    return ([SUDO, '-u', run_as, '-H'] if run_as else []) + [brew, *args]


COMMANDS: dict[str, t.Callable[..., Argv]] = {
    # --- discovery (read-only)
    'list_accounts': lambda: [DSCL, '.', '-list', '/Users', 'UniqueID'],
    'console_users': lambda: [WHO],
    'processes': lambda: [PS, '-axo', 'pid=,uid=,comm='],
    'bundle_version': lambda bundle: [DEFAULTS, 'read', f'{bundle}/Contents/Info.plist', 'CFBundleShortVersionString'],
    'signature': lambda bundle: [CODESIGN, '-dv', '--verbose=4', bundle],
    'verify_signature': lambda bundle: [CODESIGN, '--verify', '--deep', '--strict', bundle],
    'file_owner': lambda path: [STAT, '-f', '%Su', path],
    'current_user': lambda: [ID, '-un'],
    'brew_list': lambda brew, run_as: _brew(brew, run_as, 'list', '--cask', '--versions', CASK),
    # --- staging a new bundle (private work directory, removed afterwards)
    'make_workdir': lambda: [MKTEMP, '-d', WORK_PREFIX + 'XXXXXX'],
    'download': lambda url, destination, timeout: [CURL, '--fail', '--silent', '--show-error', '--location',
                                                   '--max-time', str(timeout), '--output', destination, url],
    'attach': lambda image, mountpoint: [HDIUTIL, 'attach', '-nobrowse', '-readonly', '-mountpoint', mountpoint, image],
    'detach': lambda mountpoint: [HDIUTIL, 'detach', mountpoint],
    'unzip': lambda archive, destination: [DITTO, '-x', '-k', archive, destination],
    # --- changes
    'copy_bundle': lambda source, destination: [DITTO, source, destination],
    'give_to': lambda user, path: [CHOWN, '-R', user, path],
    'remove': lambda path: [RM, '-rf', path],
    'signal': lambda name, pids: [KILL, f'-{name}', *(str(pid) for pid in pids)],
    # launchctl asuser puts the command in the user's GUI (Aqua) bootstrap; sudo -u makes it theirs, not root's.
    'open_as_user': lambda uid, user, bundle: [LAUNCHCTL, 'asuser', str(uid), SUDO, '-u', user, OPEN, '-a', bundle],
    'brew_fetch': lambda brew, run_as: _brew(brew, run_as, 'fetch', '--cask', CASK),
    'brew_install': lambda brew, run_as: _brew(brew, run_as, 'install', '--cask', CASK),
    'brew_reinstall': lambda brew, run_as: _brew(brew, run_as, 'reinstall', '--cask', CASK),
    'brew_uninstall': lambda brew, run_as: _brew(brew, run_as, 'uninstall', '--cask', CASK),
}
READ_ONLY: frozenset[str] = frozenset({'list_accounts', 'console_users', 'processes', 'bundle_version', 'signature',
                                       'verify_signature', 'file_owner', 'current_user', 'brew_list'})


class MacAppError(Exception):
    """The host refused or failed before anything was changed (or a command failed); the message says which."""


class CommandOutputError(MacAppError):
    """Output a parser does not recognise."""


class CommandFailed(MacAppError):
    def __init__(self, argv: Argv, rc: int, detail: str) -> None:
        super().__init__(f"{' '.join(argv)} failed (rc={rc}): {detail}")
        self.rc = rc


# ------------------------------------------------------------------ parsers


def parse_accounts(output: str) -> dict[str, int]:
    """``dscl . -list /Users UniqueID``: ``name   uid`` per line; service accounts (``_www``) left out."""
    accounts = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r'-?\d+', parts[1]):
            raise CommandOutputError(f'unexpected dscl -list /Users UniqueID line: {line[:80]!r}')
        if not parts[0].startswith('_'):
            accounts[parts[0]] = int(parts[1])
    return accounts


def parse_console_users(output: str) -> set[str]:
    """``who``: users with a ``console`` line have a GUI (loginwindow) session, fast-user-switched ones included."""
    return {fields[0] for fields in (line.split() for line in output.splitlines()) if len(fields) > 1 and fields[1] == 'console'}


def parse_processes(output: str) -> list[dict[str, t.Any]]:
    """``ps -axo pid=,uid=,comm=``: on macOS ``comm`` is the executable's full path (spaces included)."""
    processes = []
    for line in output.splitlines():
        parts = line.split(None, 2)
        if not parts:
            continue
        if len(parts) != 3 or not parts[0].isdigit() or not re.fullmatch(r'-?\d+', parts[1]):
            raise CommandOutputError(f'unexpected ps output line: {line[:80]!r}')
        processes.append({'pid': int(parts[0]), 'uid': int(parts[1]), 'path': parts[2],
                          'name': posixpath.basename(parts[2])})
    return processes


def notion_processes(processes: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    return [p for p in processes if PROCESS_NAME.match(p['name'])]


def bundle_of(path: str) -> str | None:
    """The outermost .app a process runs from: helpers live in Notion.app/Contents/Frameworks/*.app."""
    index = path.find('.app/')
    return path[:index + 4] if index >= 0 else None


def parse_signature(output: str) -> dict[str, t.Any]:
    """``codesign -dv --verbose=4`` (printed on stderr): identifier, team, authority chain, ad-hoc."""
    fields: dict[str, str] = {}
    authorities = []
    for line in output.splitlines():
        name, sep, value = line.partition('=')
        if not sep:
            continue
        if name == 'Authority':
            authorities.append(value)
        else:
            fields.setdefault(name, value)
    if 'Identifier' not in fields and 'Executable' not in fields:
        raise CommandOutputError(f'unexpected codesign -dv output: {output[:80]!r}')
    team = fields.get('TeamIdentifier')
    return {'identifier': fields.get('Identifier'), 'team_id': None if team in (None, 'not set') else team,
            'authorities': authorities, 'adhoc': fields.get('Signature') == 'adhoc'}


def parse_version(output: str) -> str:
    """``defaults read …/Info.plist CFBundleShortVersionString``: the version on one line."""
    version = output.strip()
    if not version or '\n' in version:
        raise CommandOutputError(f'unexpected defaults read output: {output[:80]!r}')
    return version


def parse_brew_versions(output: str) -> str | None:
    """``brew list --cask --versions notion``: ``notion 4.3.0`` (newest last), nothing when not installed."""
    parts = output.split()
    return parts[-1] if len(parts) >= 2 and parts[0] == CASK else None


def parse_workdir(output: str) -> str:
    path = output.strip()
    if not path.startswith(WORK_PREFIX) or '/' in path[len(WORK_PREFIX):]:
        raise CommandOutputError(f'unexpected mktemp output: {output[:80]!r}')
    return path


def parse_user(output: str) -> str:
    name = output.strip()
    if not name or any(c.isspace() for c in name):
        raise CommandOutputError(f'unexpected user name output: {output[:80]!r}')
    return name


# ------------------------------------------------------------------ the runner


class Shell:
    """Runs COMMANDS entries through the module's runner, keeping a log; mutating ones never in check mode."""

    def __init__(self, runner: Runner, check_mode: bool) -> None:
        self.runner = runner
        self.check_mode = check_mode
        self.log: list[dict[str, t.Any]] = []

    def run(self, name: str, *args: t.Any, scratch: bool = False) -> tuple[int, str, str]:
        """Run one command; ``scratch`` marks work in the private work directory, which is no change to the host."""
        if self.check_mode and name not in READ_ONLY:
            raise MacAppError(f'{name} changes the host and is never run in check mode')
        argv = COMMANDS[name](*args)
        rc, out, err = self.runner(argv)
        self.log.append({'command': name, 'argv': argv, 'rc': rc, 'scratch': scratch})
        return rc, out, err

    def ok(self, name: str, *args: t.Any, scratch: bool = False) -> str:
        rc, out, err = self.run(name, *args, scratch=scratch)
        if rc != 0:
            raise CommandFailed(COMMANDS[name](*args), rc, (err or out).strip())
        return out

    @property
    def changed(self) -> bool:
        """Whether a command that changes the host (not the work directory) succeeded."""
        return any(entry['rc'] == 0 and entry['command'] not in READ_ONLY and not entry['scratch'] for entry in self.log)


# ------------------------------------------------------------------ discovery


@dataclass
class Bundle:
    path: str
    scope: str                      # machine | user
    owner: dict[str, t.Any] | None  # the profile, for ~/Applications bundles
    exists: bool
    version: str | None = None
    signature: dict[str, t.Any] | None = None
    processes: list[dict[str, t.Any]] = field(default_factory=list)

    def facts(self) -> dict[str, t.Any]:
        signature = self.signature or {}
        return {'path': self.path, 'scope': self.scope, 'user': self.owner['username'] if self.owner else None,
                'exists': self.exists, 'version': self.version, 'team_id': signature.get('team_id'),
                'authority': (signature.get('authorities') or [None])[0], 'running': len(self.processes)}


@dataclass
class Discovery:
    profiles: list[dict[str, t.Any]]
    uids: dict[str, int]
    processes: list[dict[str, t.Any]]
    bundles: list[Bundle]
    data: dict[str, dict[str, t.Any] | None]
    homebrew: dict[str, t.Any] | None

    @property
    def machine(self) -> Bundle:
        return self.bundles[0]

    def own_bundle(self, profile: dict[str, t.Any]) -> Bundle | None:
        return next((b for b in self.bundles if b.owner is profile), None)

    def processes_of(self, profile: dict[str, t.Any]) -> list[dict[str, t.Any]]:
        return [p for p in self.processes if p['uid'] == self.uids[profile['username']]]

    def facts(self) -> dict[str, t.Any]:
        users = []
        for profile in self.profiles:
            own = self.own_bundle(profile)
            data = self.data.get(profile['username'])
            users.append({'user': profile['username'], 'uid': self.uids[profile['username']], 'home': profile['profile_path'],
                          'logged_on': profile['loaded'], 'running': len(self.processes_of(profile)),
                          'bundle': own.path if own and own.exists else None,
                          'user_data': data['path'] if data else None, 'user_data_bytes': data['bytes'] if data else None})
        return {'bundles': [b.facts() for b in self.bundles], 'users': users, 'homebrew': self.homebrew}


def _profile(name: str, uid: int, home: str, logged_on: bool) -> dict[str, t.Any]:
    """The same profile shape LocalHost.get_profiles gives, so app_data's quarantine helpers apply."""
    return {'sid': f'uid:{uid}/{name}', 'owner_sid': f'uid:{uid}', 'username': name, 'account': name,
            'profile_path': home, 'loaded': logged_on, 'special': False,
            'folders': {folder: posixpath.join(home, relative) for folder, relative in DARWIN.shell_folders.items()},
            'folder_source': {folder: 'default' for folder in DARWIN.shell_folders}, 'error': None}


def _read_bundle(shell: Shell, bundle: Bundle) -> None:
    rc, out, _err = shell.run('bundle_version', bundle.path)
    bundle.version = parse_version(out) if rc == 0 else None
    rc, _out, err = shell.run('signature', bundle.path)
    unsigned = {'identifier': None, 'team_id': None, 'authorities': [], 'adhoc': False, 'error': err.strip()}
    bundle.signature = parse_signature(err) if rc == 0 else unsigned


def discover(shell: Shell, host: Host, params: dict[str, t.Any], profiles_root: str,
             path_exists: t.Callable[[str], bool]) -> Discovery:
    accounts = parse_accounts(shell.ok('list_accounts'))
    console = parse_console_users(shell.ok('console_users'))
    processes = notion_processes(parse_processes(shell.ok('processes')))
    profiles = []
    for name, uid in sorted(accounts.items()):
        home = posixpath.join(profiles_root, name)
        if name in SKIPPED_HOMES or name.startswith('.') or not path_exists(home):
            continue
        profiles.append(_profile(name, uid, home, name in console))
    chosen = select_profiles(profiles, params.get('users'), params.get('exclude_users'), case_insensitive=True)
    uids = {p['username']: accounts[p['username']] for p in profiles}
    app_path = params.get('app_path') or DEFAULT_APP_PATH
    bundles = [Bundle(app_path, 'machine', None, path_exists(app_path))]
    bundles += [Bundle(posixpath.join(p['profile_path'], 'Applications', BUNDLE_NAME), 'user', p, False) for p in chosen]
    for bundle in bundles:
        bundle.exists = path_exists(bundle.path)
        if bundle.exists:
            _read_bundle(shell, bundle)
        bundle.processes = [p for p in processes if bundle_of(p['path']) == bundle.path]
    data: dict[str, dict[str, t.Any] | None] = {}
    roots = {p['username']: posixpath.join(p['folders']['AppData'], 'Notion') for p in chosen}
    if roots:
        envelope = host.run_batch([{'op': 'stat_paths', 'patterns': [root]} for root in roots.values()], check_mode=True)
        for (name, root), result in zip(roots.items(), envelope['results']):  # noqa: B905 (one result per operation)
            entries = (result['data'] or {}).get('entries', []) if result['status'] == 'ok' else []
            data[name] = {'path': root, 'bytes': entries[0]['bytes'], 'files': entries[0]['files']} if entries else None
    homebrew = _discover_homebrew(shell, path_exists) if params.get('use_homebrew') else None
    return Discovery(profiles=chosen, uids=uids, processes=processes, bundles=bundles, data=data, homebrew=homebrew)


def _discover_homebrew(shell: Shell, path_exists: t.Callable[[str], bool]) -> dict[str, t.Any]:
    brew = next((path for path in BREW_PATHS if path_exists(path)), None)
    if brew is None:
        raise RequestError(f"use_homebrew: Homebrew was not found at {' or '.join(BREW_PATHS)}")
    owner = parse_user(shell.ok('file_owner', brew))
    me = parse_user(shell.ok('current_user'))
    run_as = None if owner == me else owner
    rc, out, _err = shell.run('brew_list', brew, run_as)
    return {'path': brew, 'owner': owner, 'run_as': run_as, 'notion_version': parse_brew_versions(out) if rc == 0 else None}


# ------------------------------------------------------------------ validation


def validate(params: dict[str, t.Any]) -> None:
    """What only macOS cares about; _app.validate has done the rest."""
    app_path = params.get('app_path')
    if app_path and (not app_path.startswith('/') or not app_path.rstrip('/').endswith('.app')):
        raise RequestError(f'app_path must be an absolute path to an .app bundle, got {app_path!r}')
    if params.get('use_homebrew') and app_path and app_path.rstrip('/') != DEFAULT_APP_PATH:
        raise RequestError(f'use_homebrew manages {DEFAULT_APP_PATH}, where the cask installs; app_path cannot be '
                           'combined with it')
    team = params.get('team_id')
    if team is not None and not TEAM_ID.match(team):
        raise RequestError(f'team_id must be a 10-character Apple Team ID (like {NOTION_TEAM_ID}), got {team!r}')
    installer = params.get('installer')
    if installer and _archive_kind(installer) is None:
        raise RequestError(f'installer must be a .dmg or .zip on macOS, got {installer!r}')


def _archive_kind(installer: str) -> str | None:
    path = urllib.parse.unquote(urllib.parse.urlparse(installer).path) if _app.is_url(installer) else installer
    suffix = posixpath.splitext(path.lower())[1]
    return suffix[1:] if suffix in ('.dmg', '.zip') else None


def _installer_name(installer: str) -> str:
    if _app.is_url(installer):
        return posixpath.basename(urllib.parse.unquote(urllib.parse.urlparse(installer).path))
    return posixpath.basename(installer)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _check_checksum(installer: str, actual: str, expected: str | None) -> None:
    if expected and actual != expected.lower():
        raise MacAppError(f'installer {installer!r} has SHA-256 {actual}, expected {expected.lower()}: refused, '
                          'nothing was changed')


# ------------------------------------------------------------------ planning


@dataclass
class BundlePlan:
    bundle: Bundle
    action: str
    steps: list[str] = field(default_factory=list)
    reason: str | None = None
    version_after: str | None = None
    status: str | None = None
    done: list[str] = field(default_factory=list)


@dataclass
class UserPlan:
    profile: dict[str, t.Any]
    action: str
    steps: list[str] = field(default_factory=list)
    reason: str | None = None
    stop: list[dict[str, t.Any]] = field(default_factory=list)
    open_bundle: str | None = None
    quarantine: bool = False
    status: str | None = None
    done: list[str] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)


def _compare(version: str | None, installed: str | None) -> str:
    return 'upgraded' if _app._version_key(version) > _app._version_key(installed) else 'downgraded'


def plan_bundles(discovery: Discovery, params: dict[str, t.Any], version: str | None) -> list[BundlePlan]:
    state = params['state']
    homebrew = discovery.homebrew
    plans: list[BundlePlan] = []
    for bundle in discovery.bundles:
        machine = bundle.scope == 'machine'
        if not machine and not bundle.exists:
            continue
        stop = ['stop'] if bundle.processes else []
        if state == 'absent':
            brew_owned = machine and homebrew is not None and homebrew['notion_version'] is not None
            if brew_owned:
                plans.append(BundlePlan(bundle, 'removed', stop + ['brew_uninstall']))
            elif bundle.exists:
                plans.append(BundlePlan(bundle, 'removed', stop + ['remove']))
            continue
        if state not in ('present', 'reinstalled'):
            continue
        if homebrew is not None:
            if not machine:
                continue
            plans.append(_plan_homebrew(bundle, homebrew, state))
            continue
        replace = stop + (['remove'] if bundle.exists else []) + ['copy'] + ([] if machine else ['give_to']) + ['verify']
        if not bundle.exists:
            plans.append(BundlePlan(bundle, 'installed', replace, version_after=version))
        elif state == 'reinstalled':
            plans.append(BundlePlan(bundle, 'reinstalled', replace, version_after=version))
        elif version is None:
            unknown = 'installer version unknown: Notion is installed, left as it is (set version)'
            plans.append(BundlePlan(bundle, 'unchanged', reason=unknown, version_after=bundle.version))
        elif bundle.version == version:
            plans.append(BundlePlan(bundle, 'unchanged', version_after=version))
        else:
            plans.append(BundlePlan(bundle, _compare(version, bundle.version), replace, version_after=version))
    return plans


def _plan_homebrew(bundle: Bundle, homebrew: dict[str, t.Any], state: str) -> BundlePlan:
    stop = ['stop'] if bundle.processes else []
    cask = homebrew['notion_version']
    if state == 'present':
        if cask is not None:
            return BundlePlan(bundle, 'unchanged', version_after=bundle.version or cask)
        if bundle.exists:
            return BundlePlan(bundle, 'unchanged', reason=f'{bundle.path} is installed but not by Homebrew; left as it is '
                                                          '(state reinstalled hands it to the cask)',
                              version_after=bundle.version)
        return BundlePlan(bundle, 'installed', ['brew_fetch', 'brew_install', 'verify'])
    if cask is not None:
        return BundlePlan(bundle, 'reinstalled', ['brew_fetch'] + stop + ['brew_reinstall', 'verify'])
    if bundle.exists:
        return BundlePlan(bundle, 'reinstalled', ['brew_fetch'] + stop + ['remove', 'brew_install', 'verify'])
    return BundlePlan(bundle, 'installed', ['brew_fetch', 'brew_install', 'verify'])


def _launch_target(discovery: Discovery, profile: dict[str, t.Any], processes: list[dict[str, t.Any]]) -> str | None:
    existing = {b.path for b in discovery.bundles if b.exists}
    for process in processes:
        running_from = bundle_of(process['path'])
        if running_from in existing:
            return running_from
    own = discovery.own_bundle(profile)
    if own is not None and own.exists:
        return own.path
    return discovery.machine.path if discovery.machine.exists else None


def plan_users(discovery: Discovery, params: dict[str, t.Any], bundle_plans: list[BundlePlan]) -> list[UserPlan]:
    state = params['state']
    named = bool(params.get('users'))
    plans = []
    for profile in discovery.profiles:
        mine = discovery.processes_of(profile)
        if state == 'stopped':
            if mine:
                plans.append(UserPlan(profile, 'stopped', ['stop'], stop=mine))
            elif named:
                plans.append(UserPlan(profile, 'unchanged', reason='Notion is not running for this user'))
            continue
        if state == 'restarted':
            if not mine and not named:
                continue
            target = _launch_target(discovery, profile, mine)
            if target is None:
                plans.append(UserPlan(profile, 'unchanged', reason='Notion is not installed for this user'))
            elif not profile['loaded']:
                plans.append(UserPlan(profile, 'pending', reason='not logged on: Notion starts with their next session'))
            else:
                plans.append(UserPlan(profile, 'restarted', (['stop'] if mine else []) + ['open'], stop=mine,
                                      open_bundle=target))
            continue
        changing = {p.bundle.path for p in bundle_plans if 'stop' in p.steps}
        stop = [p for p in mine if bundle_of(p['path']) in changing]
        quarantine = state == 'absent' and params['remove_user_data'] and discovery.data.get(profile['username']) is not None
        if quarantine:
            stop = mine
        own = discovery.own_bundle(profile)
        owns_plan = any(p.bundle is own and p.steps for p in bundle_plans)
        if not (stop or quarantine or owns_plan or named):
            continue
        steps = (['stop'] if stop else []) + (['quarantine'] if quarantine else [])
        plans.append(UserPlan(profile, 'changed' if steps or owns_plan else 'unchanged', steps, stop=stop,
                              quarantine=quarantine))
    return plans


# ------------------------------------------------------------------ applying


@dataclass
class Staged:
    bundle: str
    version: str
    signature: dict[str, t.Any]


class Context:
    def __init__(self, shell: Shell, params: dict[str, t.Any], path_exists: t.Callable[[str], bool],
                 sleep: t.Callable[[float], None], clock: t.Callable[[], float]) -> None:
        self.shell = shell
        self.params = params
        self.path_exists = path_exists
        self.sleep = sleep
        self.clock = clock
        self.team = params.get('team_id') or NOTION_TEAM_ID
        self.workdir: str | None = None
        self.mounted: str | None = None

    def alive(self, processes: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
        running = {(p['pid'], p['path']) for p in parse_processes(self.shell.ok('processes'))}
        return [p for p in processes if (p['pid'], p['path']) in running]

    def stop(self, processes: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
        """End processes (TERM, then KILL after stop_timeout); returns those still running."""
        if not processes:
            return []
        self.shell.run('signal', 'TERM', sorted({p['pid'] for p in processes}))  # some may already be gone
        deadline = self.clock() + self.params['stop_timeout']
        remaining = self.alive(processes)
        while remaining and self.clock() < deadline:
            self.sleep(POLL_SECONDS)
            remaining = self.alive(remaining)
        if remaining:
            self.shell.run('signal', 'KILL', sorted({p['pid'] for p in remaining}))
            self.sleep(POLL_SECONDS)
            remaining = self.alive(remaining)
        return remaining

    def verify_bundle(self, path: str, what: str) -> dict[str, t.Any]:
        rc, out, err = self.shell.run('verify_signature', path)
        if rc != 0:
            raise MacAppError(f'{what} fails code signature verification (codesign --verify --deep --strict: '
                              f'{(err or out).strip()})')
        rc, _out, err = self.shell.run('signature', path)
        signature = parse_signature(err) if rc == 0 else {'team_id': None}
        if signature.get('team_id') != self.team:
            raise MacAppError(f"{what} is signed by team {signature.get('team_id') or 'none'}, expected {self.team}")
        return signature

    def stage(self, installer: str, version: str | None) -> Staged:
        """Unpack and verify the new Notion.app in a private work directory; nothing else is touched."""
        shell = self.shell
        self.workdir = parse_workdir(shell.ok('make_workdir', scratch=True))
        archive = installer
        if _app.is_url(installer):
            archive = posixpath.join(self.workdir, _installer_name(installer) or 'Notion.dmg')
            try:
                shell.ok('download', installer, archive, self.params['timeout'], scratch=True)
            except CommandFailed as error:
                raise MacAppError(f'could not download {installer}: {error}; nothing was changed') from None
            _check_checksum(installer, sha256_file(archive), self.params.get('checksum'))
        if _archive_kind(installer) == 'dmg':
            mountpoint = posixpath.join(self.workdir, 'mount')
            shell.ok('attach', archive, mountpoint, scratch=True)
            self.mounted = mountpoint
            found = posixpath.join(mountpoint, BUNDLE_NAME)
            if not self.path_exists(found):
                raise MacAppError(f'installer {installer!r} has no {BUNDLE_NAME} at the top of the disk image: refused, '
                                  'nothing was changed')
            staged = posixpath.join(self.workdir, BUNDLE_NAME)
            shell.ok('copy_bundle', found, staged, scratch=True)
            shell.ok('detach', mountpoint, scratch=True)
            self.mounted = None
        else:
            unpacked = posixpath.join(self.workdir, 'unpacked')
            shell.ok('unzip', archive, unpacked, scratch=True)
            staged = posixpath.join(unpacked, BUNDLE_NAME)
            if not self.path_exists(staged):
                raise MacAppError(f'installer {installer!r} has no {BUNDLE_NAME} at the top of the archive: refused, '
                                  'nothing was changed')
        try:
            signature = self.verify_bundle(staged, f'{BUNDLE_NAME} in installer {installer!r}')
        except MacAppError as error:
            raise MacAppError(f'{error}: refused, nothing was changed') from None
        found_version = parse_version(shell.ok('bundle_version', staged))
        if version is not None and found_version != version:
            raise MacAppError(f'installer {installer!r} holds Notion {found_version}, not {version} as its name or '
                              'the version option says: refused, nothing was changed')
        return Staged(bundle=staged, version=found_version, signature=signature)

    def cleanup(self) -> None:
        if self.mounted:
            self.shell.run('detach', self.mounted, scratch=True)
            self.mounted = None
        if self.workdir and self.workdir.startswith(WORK_PREFIX):
            self.shell.run('remove', self.workdir, scratch=True)
            self.workdir = None


def _apply_bundle(context: Context, plan: BundlePlan, staged: Staged | None, stuck: dict[int, list[int]]) -> None:
    shell = context.shell
    bundle = plan.bundle
    homebrew_args: tuple[t.Any, ...] = ()
    if any(step.startswith('brew_') for step in plan.steps):
        homebrew = t.cast(dict, context.params.get('_homebrew'))
        homebrew_args = (homebrew['path'], homebrew['run_as'])
    try:
        for step in plan.steps:
            if step == 'stop':
                still = [p['pid'] for p in bundle.processes if p['pid'] in stuck.get(p['uid'], [])]
                if still:
                    raise MacAppError(f"Notion is still running from it (pid {', '.join(map(str, still))}) after "
                                      f"{context.params['stop_timeout']} s")
            elif step == 'remove':
                shell.ok('remove', bundle.path)
            elif step == 'copy':
                shell.ok('copy_bundle', t.cast(Staged, staged).bundle, bundle.path)
            elif step == 'give_to':
                shell.ok('give_to', t.cast(dict, bundle.owner)['username'], bundle.path)
            elif step == 'verify':
                context.verify_bundle(bundle.path, bundle.path)
                plan.version_after = parse_version(shell.ok('bundle_version', bundle.path))
            else:
                shell.ok(step, *homebrew_args)
            plan.done.append(step)
        plan.status = plan.action
    except MacAppError as error:
        plan.status = 'failed'
        plan.reason = str(error)


def _apply_users(context: Context, plans: list[UserPlan], stuck: dict[int, list[int]], uids: dict[str, int]) -> None:
    for plan in plans:
        uid = uids[plan.profile['username']]
        if 'stop' in plan.steps:
            left = stuck.get(uid, [])
            plan.stopped = [p['pid'] for p in plan.stop if p['pid'] not in left]
            if left:
                plan.status, plan.reason = 'failed', (f"Notion is still running (pid {', '.join(map(str, left))}) after "
                                                      f"{context.params['stop_timeout']} s")
                continue
            plan.done.append('stop')
        if 'open' in plan.steps:
            rc, out, err = context.shell.run('open_as_user', uid, plan.profile['username'], plan.open_bundle)
            if rc != 0:
                plan.status, plan.reason = 'failed', f'could not relaunch Notion in their session: {(err or out).strip()}'
                continue
            plan.done.append('open')
        plan.status = plan.status or plan.action


def _stop_all(context: Context, user_plans: list[UserPlan], bundle_plans: list[BundlePlan]) -> dict[int, list[int]]:
    """Stop what each user plan and bundle plan needs stopped, per user; returns uid -> pids still running."""
    wanted: dict[tuple[int, str], dict[str, t.Any]] = {}
    for plan in user_plans:
        for process in plan.stop:
            wanted[(process['pid'], process['path'])] = process
    for bundle_plan in bundle_plans:
        if 'stop' in bundle_plan.steps:
            for process in bundle_plan.bundle.processes:
                wanted[(process['pid'], process['path'])] = process
    by_uid: dict[int, list[dict[str, t.Any]]] = {}
    for process in wanted.values():
        by_uid.setdefault(process['uid'], []).append(process)
    return {uid: [p['pid'] for p in context.stop(processes)] for uid, processes in sorted(by_uid.items())}


# ------------------------------------------------------------------ the rung


def run(params: dict[str, t.Any], *, runner: Runner, check_mode: bool, now: datetime.datetime, token: str,
        path_exists: t.Callable[[str], bool], host: Host | None = None, sleep: t.Callable[[float], None] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic) -> dict[str, t.Any]:
    """The whole rung on macOS. Raises RequestError/MacAppError before anything changed."""
    _app.validate(params)
    validate(params)
    _layout, local = native_context('darwin', params.get('profiles_root'), path_exists,
                                    state_dir=params.get('state_dir'), exclusive=not check_mode)
    host = host or local
    shell = Shell(runner, check_mode)
    discovery = discover(shell, host, params, local.profiles_root, path_exists)
    installer = params.get('installer') if params['state'] in ('present', 'reinstalled') else None
    if installer and not _app.is_url(installer):
        if not path_exists(installer):
            raise RequestError(f'installer {installer!r} does not exist on the host; nothing was changed')
        _check_checksum(installer, sha256_file(installer), params.get('checksum'))
    version = None
    if installer:
        version = params.get('version') or _match_version(_installer_name(installer))
    bundle_plans = plan_bundles(discovery, params, version)
    user_plans = plan_users(discovery, params, bundle_plans)
    entry_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{token}"
    quarantine_ops = [op for plan in user_plans if plan.quarantine
                      for op in _app.quarantine_operations(DARWIN, plan.profile,
                                                           t.cast(dict, discovery.data[plan.profile['username']])['path'],
                                                           entry_id, now, size=discovery.data[plan.profile['username']])]
    planned = any(p.steps for p in bundle_plans) or any(p.steps for p in user_plans)
    if check_mode or not planned:
        for plan in bundle_plans:
            plan.status = plan.action
        for user_plan in user_plans:
            user_plan.status = user_plan.action
            user_plan.stopped = [p['pid'] for p in user_plan.stop]
        return _result(params, discovery, bundle_plans, user_plans, planned, check_mode, version, entry_id)
    context = Context(shell, {**params, '_homebrew': discovery.homebrew}, path_exists, sleep, clock)
    stuck: dict[int, list[int]] = {}
    try:
        staged = None
        if any('copy' in p.steps for p in bundle_plans):
            try:
                staged = context.stage(t.cast(str, installer), version)
            except CommandFailed as error:
                raise MacAppError(f'could not unpack the installer: {error}; nothing was changed') from None
        elif any('brew_fetch' in p.steps for p in bundle_plans):
            homebrew = t.cast(dict, discovery.homebrew)
            try:
                shell.ok('brew_fetch', homebrew['path'], homebrew['run_as'], scratch=True)
            except CommandFailed as error:
                raise MacAppError(f'Homebrew could not fetch the {CASK} cask: {error}; nothing was changed') from None
        stuck = _stop_all(context, user_plans, bundle_plans)
        for plan in bundle_plans:
            if plan.steps:
                _apply_bundle(context, plan, staged, stuck)
            else:
                plan.status = plan.action
    finally:
        context.cleanup()
    _apply_users(context, user_plans, stuck, discovery.uids)
    _quarantine(host, user_plans, quarantine_ops)
    return _result(params, discovery, bundle_plans, user_plans, shell.changed or any('quarantine' in p.done for p in user_plans),
                   check_mode, version, entry_id)


def _match_version(name: str) -> str | None:
    match = INSTALLER_VERSION.search(name)
    return match.group(1) if match else None


def _quarantine(host: Host, user_plans: list[UserPlan], operations: list[dict[str, t.Any]]) -> None:
    ready = {p.profile['sid'] for p in user_plans if p.quarantine and p.status != 'failed'}
    operations = [op for op in operations if op['group'] in ready]
    if not operations:
        return
    results = host.run_batch(operations, check_mode=False)['results']
    errors: dict[str, list[str]] = {}
    for result in results:
        if result['status'] == 'error':
            errors.setdefault(result['group'], []).append(f"{result['op']}: {result['error']}")
    for plan in user_plans:
        if plan.profile['sid'] not in ready:
            continue
        if errors.get(plan.profile['sid']):
            plan.status, plan.reason = 'failed', '; '.join(errors[plan.profile['sid']])
        else:
            plan.done.append('quarantine')


def _user_status(plan: UserPlan, own: BundlePlan | None) -> str:
    if plan.status in ('failed', 'pending', 'stopped', 'restarted') or plan.action in ('stopped', 'restarted', 'pending'):
        return t.cast(str, plan.status)
    if own is not None and own.status == 'failed':
        return 'failed'
    if own is not None and own.status not in (None, 'unchanged'):
        return t.cast(str, own.status)
    if plan.quarantine:
        return 'removed'
    if plan.stop:
        return 'stopped'
    return 'unchanged'


def _version_after(plan: BundlePlan, status: str) -> str | None:
    if status == 'removed':
        return None
    if status == 'unchanged':
        return plan.bundle.version if plan.bundle.exists else None
    if status != 'failed':
        return plan.version_after
    removed = any(step in plan.done for step in ('remove', 'brew_uninstall'))
    replaced = any(step in plan.done for step in ('copy', 'brew_install', 'brew_reinstall'))
    if replaced:
        return None  # a new bundle is there but did not pass verification
    return None if removed or not plan.bundle.exists else plan.bundle.version


def _result(params: dict[str, t.Any], discovery: Discovery, bundle_plans: list[BundlePlan], user_plans: list[UserPlan],
            changed: bool, check_mode: bool, version: str | None, entry_id: str) -> dict[str, t.Any]:
    bundles = []
    for bundle_plan in bundle_plans:
        status = t.cast(str, bundle_plan.status)
        after = _version_after(bundle_plan, status)
        bundles.append({'path': bundle_plan.bundle.path, 'scope': bundle_plan.bundle.scope,
                        'user': bundle_plan.bundle.owner['username'] if bundle_plan.bundle.owner else None, 'status': status,
                        'reason': bundle_plan.reason, 'version_before': bundle_plan.bundle.version if bundle_plan.bundle.exists else None,
                        'version_after': after, 'operations': list(bundle_plan.steps if check_mode else bundle_plan.done)})
    by_path = {b['path']: b for b in bundles}
    users = []
    for plan in user_plans:
        own_bundle = discovery.own_bundle(plan.profile)
        own_plan = next((p for p in bundle_plans if own_bundle is not None and p.bundle is own_bundle), None)
        status = _user_status(plan, own_plan)
        shown = by_path.get(own_bundle.path) if own_bundle is not None and own_bundle.path in by_path else \
            by_path.get(discovery.machine.path)
        reason = plan.reason or (own_plan.reason if own_plan is not None and status == 'failed' else None)
        users.append({'user': plan.profile['username'], 'uid': discovery.uids[plan.profile['username']],
                      'logged_on': plan.profile['loaded'], 'status': status, 'reason': reason,
                      'version_before': shown['version_before'] if shown else None,
                      'version_after': shown['version_after'] if shown else None,
                      'processes_stopped': plan.stopped,
                      'relaunched': plan.open_bundle if ('open' in plan.done or (check_mode and plan.open_bundle)) else None,
                      'operations': list(plan.steps if check_mode else plan.done),
                      'quarantine_id': entry_id if plan.quarantine and ('quarantine' in plan.done or check_mode) else None})
    manual = []
    others = [b for b in discovery.bundles if b.scope == 'user' and b.exists]
    if discovery.homebrew is not None and others and params['state'] in ('present', 'reinstalled'):
        manual.append('Per-user copies of Notion were found (' + ', '.join(b.path for b in others) + '); Homebrew '
                      'manages only /Applications/Notion.app, so they were left as they are.')
    result: dict[str, t.Any] = {
        'changed': changed, 'platform': 'darwin', 'state': params['state'], 'installer_version': version,
        'bundles': bundles, 'users': users, 'facts': discovery.facts(), 'manual_actions': manual,
        'diff': {'before': ''.join(f"{b['path']}: {b['version_before'] or 'not installed'}\n" for b in bundles),
                 'after': ''.join(f"{b['path']}: {b['version_after'] or 'not installed'} ({b['status']})\n"
                                  for b in bundles)},
    }
    failures = [f"{b['path']}: {b['reason']}" for b in bundles if b['status'] == 'failed']
    failures += [f"{u['user']}: {u['reason']}" for u in users if u['status'] == 'failed' and u['reason']
                 and not any(u['reason'] == b['reason'] for b in bundles)]
    if failures:
        result.update(failed=True, msg='; '.join(failures))
    return result

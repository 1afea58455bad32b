# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""app with ``package_format: msix``: provision Notion's MSIX for all users, migrating per-user copies.

Private to this collection. Pure planning on the controller, like _app. A provisioned package is
staged for the whole machine and registered for each user at their next logon, so it needs no user
session. Notion's migration rule is to uninstall the per-user (NSIS) app first; that uninstaller only
acts in its owner's session, so:

* a logged-on user's NSIS copy is stopped and uninstalled as that user, in the same batch group as the
  provisioning and before it (one group: a failed uninstall provisions nothing, no user gets two
  Notions because of this run);
* a logged-off user's NSIS copy is left alone and the user is reported ``pending``: it is uninstalled
  by a later run while they are logged on. Their ``%APPDATA%\\Notion`` is never touched by either
  path, since the MSIX reads the same profile.

The package is verified before anything changes (``verify_package`` first in the group: SHA-256,
valid signature, family name, which pins the publisher) and again by ``provision_package`` through a
handle held until provisioning ends.
"""
from __future__ import annotations

import ntpath
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from ansible_collections.loopbreaker.notion.plugins.module_utils import _app
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import data_changed
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import OPERATIONS
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._msix import NOTION_FAMILY, version_key

GROUP = 'msix'
PENDING_NSIS = ("not logged on: their per-user Notion is uninstalled by a run while they are logged on (its "
                "uninstaller only acts in their session); their data in %APPDATA%\\Notion is kept, and the MSIX "
                'registers at their next logon')

KEPT = ('the MSIX stays registered for this user: removing it for them also deletes its package data '
        '(Packages\\<family>, with any virtualised AppData), which this module never does')
MANUAL_REMOVE = ('The MSIX Notion stays registered for {users}: removing it (Remove-AppxPackage in their session, or '
                 'Settings > Apps) deletes its package data, including its virtualised AppData; move that data aside '
                 'first if it matters (loopbreaker.notion.app_data).')


def family(params: dict[str, t.Any]) -> str:
    return str(params.get('package_family') or NOTION_FAMILY)


def package_path(params: dict[str, t.Any]) -> str:
    installer = params['installer']
    if not _app.is_url(installer):
        return str(installer)
    name = ntpath.basename(urllib.parse.unquote(urllib.parse.urlparse(installer).path))
    if not name.lower().endswith(('.msix', '.appx')):
        name = 'Notion.msix'  # Notion's download URL has no file name; Add-AppxProvisionedPackage wants one
    return ntpath.join(_app.DOWNLOAD_DIR, name)


def verify_local_package(params: dict[str, t.Any], probed: dict[str, t.Any]) -> dict[str, t.Any]:
    """The local package's identity, or RequestError: nothing is changed for a package that is not the one wanted."""
    installer = params['installer']
    if probed['status'] != 'ok':
        if 'does not exist' in str(probed.get('error')):
            raise RequestError(f'installer {installer!r} does not exist on the host; nothing was changed')
        raise RequestError(f"installer refused, nothing was changed: {probed.get('error')}")
    info = probed['data']
    if info['sha256'] != params['checksum'].lower():
        raise RequestError(f"installer {installer!r} has SHA-256 {info['sha256']}, expected "
                           f"{params['checksum'].lower()}: refused, nothing was changed")
    if info['signature']['status'] != 'Valid':
        raise RequestError(f"installer {installer!r} has no valid signature (status {info['signature']['status']}): "
                           'refused, nothing was changed')
    identity = info['identity']
    if identity['family_name'].lower() != family(params).lower():
        raise RequestError(f"installer {installer!r} is the package family {identity['family_name']} (publisher "
                           f"{identity['publisher']}), expected {family(params)}: refused, nothing was changed")
    if params.get('version') and version_key(params['version']) != version_key(identity['version']):
        raise RequestError(f"version is {params['version']} but installer {installer!r} is version "
                           f"{identity['version']}: refused, nothing was changed")
    return t.cast(dict[str, t.Any], identity)


@dataclass
class MsixState:
    """What the machine has of the wanted family: provisioned versions and each user's registered version."""
    provisioned: list[dict[str, t.Any]]
    registered: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, discovery: _app.Discovery, family_name: str) -> MsixState:
        same = [p for p in discovery.provisioned if p['family_name'].lower() == family_name.lower()]
        registered: dict[str, str] = {}
        for package in discovery.packages:
            if package.get('family_name', '').lower() != family_name.lower():
                continue
            for sid in package.get('user_sids') or []:
                if version_key(package['version']) > version_key(registered.get(sid)):
                    registered[sid] = package['version']
        return cls(provisioned=same, registered=registered)

    def conflict(self, version: str | None, users: dict[str, str]) -> str | None:
        """Why Windows would refuse to provision this version (a higher one present), else None."""
        if version is None:
            return None
        for staged in self.provisioned:
            if version_key(staged['version']) > version_key(version):
                return f"version {staged['version']} is provisioned"
        for sid, installed in sorted(self.registered.items()):
            if version_key(installed) > version_key(version):
                return f'version {installed} is installed for {users.get(sid, sid)}'
        return None

    def has(self, version: str | None) -> bool:
        return any(version is not None and version_key(p['version']) == version_key(version) for p in self.provisioned)


@dataclass
class MsixUserPlan:
    app: _app.UserApp
    action: str
    operations: list[dict[str, t.Any]] = field(default_factory=list)
    reason: str | None = None
    before: str = 'not installed'


def _describe_before(app: _app.UserApp, state: MsixState) -> str:
    forms = []
    if app.installed:
        forms.append(f'per-user {app.installed_version or "unknown version"}')
    if app.profile['sid'] in state.registered:
        forms.append(f"MSIX {state.registered[app.profile['sid']]}")
    return ', '.join(forms) or 'not installed'


def plan_user(app: _app.UserApp, params: dict[str, t.Any], state: MsixState, version: str | None,
              provisioning: bool) -> MsixUserPlan:
    before = _describe_before(app, state)
    if app.error:
        return MsixUserPlan(app, 'failed', before=before,
                            reason=f"this user's install could not be read, so nothing was done: {app.error}")
    if app.installed and app.foreign_install_dir:
        return MsixUserPlan(app, 'failed', before=before,
                            reason=f'the Notion uninstall entry points to {app.install_dir}, outside '
                                   f"{app.profile['username']}'s profile: its uninstaller would not act for this "
                                   'user, nothing was run')
    if app.installed and not app.logged_on:
        return MsixUserPlan(app, 'pending', reason=PENDING_NSIS, before=before)
    if app.installed:
        operations = [{**op, 'group': GROUP} for op in _app._stop(app, params) + _app._uninstall(app, params)]
        return MsixUserPlan(app, 'migrated', operations, before=before)
    registered = state.registered.get(app.profile['sid'])
    if provisioning and (registered is None or version_key(registered) < version_key(version)):
        return MsixUserPlan(app, 'provisioned', before=before)
    return MsixUserPlan(app, 'unchanged', before=before)


def run(host: t.Any, params: dict[str, t.Any], discovery: _app.Discovery, probed: dict[str, t.Any] | None, *,
        check_mode: bool) -> dict[str, t.Any]:
    if params['state'] == 'absent':
        return deprovision(host, params, discovery, check_mode=check_mode)
    family_name = family(params)
    installer = params['installer']
    path = package_path(params)
    if _app.is_url(installer):
        version = params.get('version')
    else:
        version = verify_local_package(params, t.cast(dict[str, t.Any], probed))['version']
    state = MsixState.of(discovery, family_name)
    names = {p['sid']: p['username'] for p in discovery.all_profiles}
    conflict = state.conflict(version, names)
    if conflict:
        raise RequestError(f'{family_name}: {conflict}, and Windows refuses to provision the older {version} over it '
                           '(0x80073D06); remove that package first. Nothing was changed')
    # Unknown version (a URL without version): a provisioned package of the family is left as it is.
    provisioning = not state.provisioned if version is None else not state.has(version)
    plans = [plan_user(app, params, state, version, provisioning) for app in discovery.users]
    migrations = [op for plan in plans for op in plan.operations]
    operations: list[dict[str, t.Any]] = []
    if provisioning or migrations:
        if _app.is_url(installer):
            operations += _app._staging_check(path, GROUP) + [
                {'op': 'download_file', 'group': GROUP, 'url': installer, 'destination': path,
                 'timeout_seconds': params['timeout'], 'sha256': params['checksum'].lower()}]
        elif ntpath.dirname(path).lower() == _app.DOWNLOAD_DIR.lower():
            operations += _app._staging_check(path, GROUP)
        operations.append({'op': 'verify_package', 'group': GROUP, 'path': path, 'family_name': family_name,
                           'sha256': params['checksum'].lower()})
        operations += migrations
        if provisioning:
            operations.append({'op': 'provision_package', 'group': GROUP, 'path': path, 'family_name': family_name,
                               'sha256': params['checksum'].lower()})
    applied: list[dict[str, t.Any]] = []
    if operations and not check_mode:
        applied = host.run_batch(operations, check_mode=False)['results']
    return _result(params, discovery, state, plans, operations, applied, check_mode, version, provisioning)


def _result(params: dict[str, t.Any], discovery: _app.Discovery, state: MsixState, plans: list[MsixUserPlan],
            operations: list[dict[str, t.Any]], applied: list[dict[str, t.Any]], check_mode: bool,
            version: str | None, provisioning: bool) -> dict[str, t.Any]:
    errors = [f"{op['op']}: {r['error']}" for op, r in zip(operations, applied) if r['status'] == 'error']
    done = [op for op, r in zip(operations, applied) if r['status'] == 'ok']
    users = []
    for plan in plans:
        sid = plan.app.profile['sid']
        status, reason = plan.action, plan.reason
        if errors and (plan.operations or plan.action == 'provisioned'):
            status, reason = 'failed', '; '.join(errors)
        mine = [op['op'] for op in plan.operations if check_mode or any(op is ran for ran in done)]
        after = version if status in ('migrated', 'provisioned') else (
            plan.app.installed_version if plan.app.installed else state.registered.get(sid))
        users.append({'user': plan.app.profile['username'], 'sid': sid, 'status': status, 'reason': reason,
                      'version_before': plan.app.installed_version or state.registered.get(sid),
                      'version_after': after,
                      'processes_stopped': [p['pid'] for p in plan.app.processes
                                            if any(op['op'] == 'stop_processes' for op in plan.operations)],
                      'operations': mine, 'quarantine_id': None})
    if check_mode or not applied:
        changed = bool(operations)
    else:
        changed = any(r['status'] == 'ok' and OPERATIONS[r['op']].mutates and _changed(r['op'], r['data'])
                      for r in applied)
    provisioned_before = [p['version'] for p in state.provisioned]
    package_status = 'failed' if errors else ('provisioned' if provisioning else 'unchanged')
    package = {'family_name': family(params), 'version': version, 'status': package_status,
               'provisioned_before': provisioned_before,
               'operations': [op['op'] for op in operations if op['op'] in ('download_file', 'verify_package',
                                                                            'provision_package')]}
    manual = []
    if discovery.machine_installs:
        manual.append('A machine-wide Notion install was found (see facts.machine_installs); it is not a per-user '
                      'install and was left alone.')
    before_line = f"all users (provisioned): {', '.join(provisioned_before) or 'none'}\n"
    after_version = version if provisioning else (', '.join(provisioned_before) or 'none')
    result: dict[str, t.Any] = {
        'changed': changed, 'platform': 'windows', 'state': params['state'], 'installer_version': version,
        'package_format': 'msix', 'package': package, 'users': users, 'facts': discovery.facts(),
        'manual_actions': manual,
        'diff': {'before': before_line + ''.join(f"{u['user']}: {p.before}\n" for u, p in zip(users, plans)),
                 'after': f"all users (provisioned): {after_version or 'unknown version'} ({package_status})\n" +
                 ''.join(f"{u['user']}: {_after_text(u, p)} ({u['status']})\n" for u, p in zip(users, plans))},
    }
    failures = [f"{u['user']}: {u['reason']}" for u in users if u['status'] == 'failed']
    if errors and not failures:
        failures = ['; '.join(errors)]
    if failures:
        result.update(failed=True, msg='; '.join(failures))
    return result


def deprovision(host: t.Any, params: dict[str, t.Any], discovery: _app.Discovery, *,
                check_mode: bool) -> dict[str, t.Any]:
    """state absent: new logons no longer get the MSIX; users who have it keep it and its package data."""
    family_name = family(params)
    state = MsixState.of(discovery, family_name)
    operations = [{'op': 'remove_provisioned_package', 'group': GROUP, 'package_name': p['package_name']}
                  for p in state.provisioned]
    applied = host.run_batch(operations, check_mode=False)['results'] if operations and not check_mode else []
    errors = [f"{op['op']}: {r['error']}" for op, r in zip(operations, applied) if r['status'] == 'error']
    kept = [app for app in discovery.users if app.profile['sid'] in state.registered]
    users = [{'user': app.profile['username'], 'sid': app.profile['sid'], 'status': 'unchanged', 'reason': KEPT,
              'version_before': state.registered[app.profile['sid']],
              'version_after': state.registered[app.profile['sid']], 'processes_stopped': [], 'operations': [],
              'quarantine_id': None} for app in kept]
    status = 'failed' if errors else ('deprovisioned' if operations else 'unchanged')
    before = [p['version'] for p in state.provisioned]
    result: dict[str, t.Any] = {
        'changed': bool(operations) if check_mode else any(r['status'] == 'ok' and r['data'].get('removed')
                                                           for r in applied),
        'platform': 'windows', 'state': 'absent', 'installer_version': None, 'package_format': 'msix',
        'package': {'family_name': family_name, 'version': None, 'status': status, 'provisioned_before': before,
                    'operations': [op['op'] for op in operations]},
        'users': users, 'facts': discovery.facts(),
        'manual_actions': [MANUAL_REMOVE.format(users=', '.join(u['user'] for u in users))] if users else [],
        'diff': {'before': f"all users (provisioned): {', '.join(before) or 'none'}\n",
                 'after': f"all users (provisioned): none ({status})\n"},
    }
    if errors:
        result.update(failed=True, msg='; '.join(errors))
    return result


def _changed(operation: str, data: dict[str, t.Any]) -> bool:
    """A staging folder that was already right, or a package already provisioned, is a check, not a change."""
    if operation == 'ensure_admin_dir':
        return data_changed(data)
    if operation == 'provision_package':
        return bool(data['changed'])
    return True


def _after_text(user: dict[str, t.Any], plan: MsixUserPlan) -> str:
    if user['status'] in ('migrated', 'provisioned'):
        return f"MSIX {user['version_after'] or ''} at next logon".replace('  ', ' ')
    return plan.before

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fix 1 of the runbook: clear the Notion desktop app's site data, per user.

Private to this collection. Probe (one host batch) -> plan (pure) -> apply (one
more batch, never in check mode) -> result. The same code serves the Windows
bridge, the simulated Windows host and the native macOS/Linux module.
"""
from __future__ import annotations

import datetime
import typing as t
from dataclasses import dataclass, field

from ansible_collections.loopbreaker.notion.plugins.module_utils import _containment, _layout
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import substitute
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import (
    Host,
    RequestError,
    operation_data,
    profiles_operation,
    owns,
    per_profile,
    not_stopped,
    select_profiles,
    skipped_profiles,
    stop_operation,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._quarantine import (
    Manifest,
    QuarantinedItem,
    entry_operations,
    item_attributes,
    stored_name,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import check_common, check_seconds

MANUAL_LOGOUT = ('Account-wide "Log out of all sessions" (Settings > My Account > Security) has no API: '
                 'ask the user to run it from a working browser, then sign in again on this device.')

ARGUMENT_SPEC: dict[str, t.Any] = {
    'scopes': {'type': 'list', 'elements': 'str', 'default': ['all'], 'choices': list(_layout.SCOPE_CHOICES)},
    'users': {'type': 'list', 'elements': 'str'},
    'exclude_users': {'type': 'list', 'elements': 'str'},
    'profiles_root': {'type': 'path'},
    'state_dir': {'type': 'path'},
    'stop_app': {'type': 'bool', 'default': True},
    'stop_timeout': {'type': 'int', 'default': 30},
    'quarantine': {'type': 'bool', 'default': True},
}
MUTUALLY_EXCLUSIVE: list[list[str]] = [['users', 'exclude_users']]
MAX_STOP_TIMEOUT = 3600


@dataclass(frozen=True)
class Request:
    scopes: tuple[str, ...]
    users: list[str] | None
    exclude_users: list[str] | None
    stop_app: bool
    stop_timeout: int
    quarantine: bool

    @classmethod
    def from_params(cls, params: dict[str, t.Any]) -> Request:
        check_common(params, ARGUMENT_SPEC)
        if params['scopes'] is not None and not params['scopes']:
            raise RequestError('scopes must name at least one of: ' + ', '.join(_layout.SCOPE_CHOICES))
        try:
            scopes = _layout.expand_scopes(params['scopes'] or ['all'])
        except ValueError as error:
            raise RequestError(str(error)) from None
        check_seconds(params, 'stop_timeout', MAX_STOP_TIMEOUT)
        return cls(scopes=scopes, users=params.get('users'), exclude_users=params.get('exclude_users'),
                   stop_app=params['stop_app'], stop_timeout=params['stop_timeout'], quarantine=params['quarantine'])


@dataclass(frozen=True)
class PlannedItem:
    path: str
    scope: str
    type: str
    bytes: int
    files: int
    stored_path: str | None
    attributes: dict[str, t.Any] | None = None


@dataclass
class UserPlan:
    profile: dict[str, t.Any]
    data_root: str
    items: list[PlannedItem] = field(default_factory=list)
    processes: list[dict[str, t.Any]] = field(default_factory=list)
    entry_dir: str | None = None
    error: str | None = None
    # Every data root found for the user (data_root first, always listed; an MSIX's virtualised copy when present).
    data_roots: list[str] = field(default_factory=list)

    @property
    def user(self) -> str:
        return self.profile['username']


def probe_operations(layout: _layout.PlatformLayout, scopes: tuple[str, ...], users: list[str] | None = None,
                     exclude_users: list[str] | None = None) -> list[dict[str, t.Any]]:
    patterns = [template for _scope, template in _layout.scope_patterns(layout, scopes)]
    return [
        profiles_operation(layout.shell_folders, users, exclude_users),
        {'op': 'stat_paths', 'each_profile': True, 'patterns': list(layout.data_roots()) + patterns},
        {'op': 'list_processes', 'names': list(layout.process_names)},
    ]


def _substitutions(profile: dict[str, t.Any]) -> dict[str, str]:
    return {'ProfilePath': profile['profile_path'], 'Sid': profile['sid'], **profile['folders']}


def quarantine_root(layout: _layout.PlatformLayout, profile: dict[str, t.Any], data_root: str) -> str:
    """The user's quarantine root, on the same volume as the data so a move is a rename."""
    root = substitute(layout.quarantine_root, _substitutions(profile))
    fallback = layout.fallback_quarantine_root
    if fallback and layout.path.splitdrive(root)[0].lower() != layout.path.splitdrive(data_root)[0].lower():
        return substitute(fallback, _substitutions(profile))
    return root


def plan(layout: _layout.PlatformLayout, request: Request, envelope: dict[str, t.Any], entry_id: str) -> list[UserPlan]:
    """Which paths each chosen user loses, from one probe envelope. Raises RequestError."""
    profiles_data = operation_data(envelope, 0)
    profiles = profiles_data['profiles']
    stats = per_profile(envelope, 1)
    processes = operation_data(envelope, 2)['processes']
    explicit = bool(request.users)
    chosen = select_profiles(profiles, request.users, request.exclude_users,
                             case_insensitive=layout.name != 'linux', skipped=profiles_data.get('skipped'))
    plans = []
    for profile in chosen:
        foreign = _containment.foreign_folder(layout, profile, profiles)
        if foreign:
            user_plan = UserPlan(profile=profile, data_root=substitute(layout.data_root, _substitutions(profile)),
                                 processes=[p for p in processes if owns(profile, p)], error=f'not touched: {foreign}')
        else:
            user_plan = _plan_user(layout, request, profile, stats.get(profile['sid']), processes, entry_id)
        user_plan.data_roots = _found_roots(layout, profile, stats.get(profile['sid']))
        if explicit or user_plan.items or user_plan.error or _root_exists(user_plan, stats.get(profile['sid'])):
            plans.append(user_plan)
    running = [p for p in plans if p.items and p.processes]
    if running and not request.stop_app:
        described = '; '.join(f'{p.user} (pid {", ".join(str(x["pid"]) for x in p.processes)})' for p in running)
        raise RequestError(f'Notion is running for {described}: nothing was changed. Let the module stop it '
                           '(stop_app: true) or close Notion first.')
    return plans


def _root_exists(user_plan: UserPlan, stat: dict[str, t.Any] | None) -> bool:
    return bool(stat and stat['status'] == 'ok'
                and any(e['path'] in user_plan.data_roots or e['pattern'] in user_plan.data_roots
                        for e in stat['data']['entries']))


def _found_roots(layout: _layout.PlatformLayout, profile: dict[str, t.Any], stat: dict[str, t.Any] | None) -> list[str]:
    """The user's data root, and each other data root the probe found."""
    roots = [substitute(template, _substitutions(profile)) for template in layout.data_roots()]
    found = {e['pattern'] for e in stat['data']['entries']} if stat and stat['status'] == 'ok' else set()
    return [roots[0]] + [root for root in roots[1:] if root in found]


def _plan_user(layout: _layout.PlatformLayout, request: Request, profile: dict[str, t.Any],
               stat: dict[str, t.Any] | None, processes: list[dict[str, t.Any]], entry_id: str) -> UserPlan:
    substitutions = _substitutions(profile)
    data_root = substitute(layout.data_root, substitutions)
    user_plan = UserPlan(profile=profile, data_root=data_root,
                         processes=[p for p in processes if owns(profile, p)])
    if profile.get('error'):
        # Without the user's hive their real AppData is unknown: clearing the default
        # location could miss the data or hit the wrong place.
        user_plan.error = profile['error']
        return user_plan
    if stat is None or stat['status'] != 'ok':
        user_plan.error = (stat or {}).get('error') or 'the profile could not be read'
        return user_plan
    scope_of = {substitute(template, substitutions): scope
                for scope, template in _layout.scope_patterns(layout, request.scopes)}
    matches = [e for e in stat['data']['entries'] if e['pattern'] in scope_of]
    entry_dir = layout.join(quarantine_root(layout, profile, data_root), entry_id)
    for index, entry in enumerate(sorted(matches, key=lambda e: e['path'].lower())):
        stored = layout.join(entry_dir, 'items', stored_name(index, entry['path'], layout.path)) \
            if request.quarantine else None
        user_plan.items.append(PlannedItem(path=entry['path'], scope=scope_of[entry['pattern']], type=entry['type'],
                                           bytes=entry['bytes'], files=entry['files'], stored_path=stored,
                                           attributes=item_attributes(entry)))
    try:
        for item in user_plan.items:
            _containment.check_original(layout, profile, item.path)
            _containment.anchor_for(layout, profile, *[p for p in (item.path, item.stored_path) if p])
    except _containment.ContainmentError as error:
        user_plan.items, user_plan.error = [], f'not touched: {error}'
        return user_plan
    if request.quarantine and user_plan.items:
        user_plan.entry_dir = entry_dir
    return user_plan


def manifest_for(user_plan: UserPlan, layout: _layout.PlatformLayout, entry_id: str, now: datetime.datetime,
                 module: str = 'app_data', reason: str = 'clear desktop app site data') -> Manifest:
    entry_dir = user_plan.entry_dir or ''
    items = tuple(QuarantinedItem(original_path=item.path, stored_as=layout.path.relpath(item.stored_path, entry_dir),
                                  scope=item.scope, type=item.type, bytes=item.bytes, files=item.files,
                                  attributes=item.attributes)
                  for item in user_plan.items if item.stored_path)
    return Manifest(id=entry_id, created=now.strftime('%Y-%m-%dT%H:%M:%SZ'), module=module, reason=reason,
                    user=user_plan.user, sid=user_plan.profile['sid'], platform=layout.name, items=items,
                    entry_dir=entry_dir, profile_path=user_plan.profile['profile_path'])


def user_anchor(layout: _layout.PlatformLayout, profile: dict[str, t.Any]) -> t.Callable[..., str]:
    """The ``within`` chooser for one user's operations (paths were checked when planned)."""
    return lambda *paths: _containment.anchor_for(layout, profile, *paths)


def apply_operations(plans: list[UserPlan], layout: _layout.PlatformLayout, request: Request, entry_id: str,
                     now: datetime.datetime) -> list[dict[str, t.Any]]:
    """One batch for every user; each user is a group, so a failure stops only that user's work."""
    operations: list[dict[str, t.Any]] = []
    for user_plan in plans:
        if not user_plan.items:
            continue
        group = user_plan.profile['sid']
        if user_plan.processes:
            operations.append(stop_operation(user_plan.processes, group, request.stop_timeout))
        anchor = user_anchor(layout, user_plan.profile)
        if user_plan.entry_dir:
            operations += entry_operations(manifest_for(user_plan, layout, entry_id, now), group=group,
                                           owner_sid=group, anchor=anchor, path_module=layout.path)
        else:
            operations += [{'op': 'remove_path', 'group': group, 'path': item.path, 'within': anchor(item.path)}
                           for item in user_plan.items]
    return operations


def _item_outcomes(user_plan: UserPlan, results: list[dict[str, t.Any]] | None,
                   quarantine: bool) -> tuple[list[dict[str, t.Any]], list[str]]:
    """Per item what happened; ``results`` None means check mode (the plan itself)."""
    planned_action = 'quarantined' if quarantine else 'removed'
    by_path = {}
    errors = []
    for result in results or ():
        if result['op'] in ('move_path', 'remove_path'):
            by_path[result.get('_path') or ''] = result
        elif result['status'] == 'error':
            errors.append(f"{result['op']}: {result['error']}")
    outcomes = []
    for item in user_plan.items:
        record = {'path': item.path, 'scope': item.scope, 'type': item.type, 'bytes': item.bytes,
                  'files': item.files, 'quarantine_path': item.stored_path, 'action': planned_action, 'error': None}
        if results is not None:
            result = by_path.get(item.path)
            if result is None or result['status'] == 'skipped':
                record['action'] = 'skipped'
            elif result['status'] == 'error':
                record.update(action='failed', error=result['error'])
                errors.append(f"{item.path}: {result['error']}")
            elif result['data'].get('missing'):
                record.update(action='vanished', bytes=0, files=0, quarantine_path=None)
        outcomes.append(record)
    return outcomes, errors


def user_results(plans: list[UserPlan], request: Request, apply_results: list[dict[str, t.Any]] | None) -> list[dict[str, t.Any]]:
    users = []
    for user_plan in plans:
        mine = None if apply_results is None else [r for r in apply_results if r.get('group') == user_plan.profile['sid']]
        items, errors = _item_outcomes(user_plan, mine, request.quarantine)
        if user_plan.error:
            errors.insert(0, user_plan.error)
        left_running = not_stopped(mine, user_plan.profile['sid'])
        stopped = [p for p in user_plan.processes if user_plan.items
                   and p['pid'] not in {entry['pid'] for entry in left_running}]
        if mine is not None and any(r['op'] == 'stop_processes' and r['status'] != 'ok' for r in mine):
            stopped = []
        done = [i for i in items if i['action'] in ('quarantined', 'removed')]
        status = 'failed' if errors else ('cleared' if done or stopped else 'clean')
        users.append({
            'user': user_plan.user, 'sid': user_plan.profile['sid'], 'profile_path': user_plan.profile['profile_path'],
            'logged_on': user_plan.profile['loaded'], 'data_root': user_plan.data_root,
            'data_roots': user_plan.data_roots,
            'data_root_source': user_plan.profile['folder_source'].get('AppData', 'default'), 'status': status,
            'processes_stopped': [{'pid': p['pid'], 'name': p['name']} for p in stopped],
            'processes_not_stopped': left_running,
            'items': items, 'bytes': sum(i['bytes'] for i in done), 'files': sum(i['files'] for i in done),
            'quarantine_path': user_plan.entry_dir if done else None, 'errors': errors,
        })
    return users


def diff(plans: list[UserPlan], users: list[dict[str, t.Any]]) -> dict[str, str]:
    before, after = [], []
    for user_plan, outcome in zip(plans, users):
        for item, record in zip(user_plan.items, outcome['items']):
            line = f'{user_plan.user}: {item.path} [{item.scope}, {item.files} files, {item.bytes} bytes]'
            before.append(line)
            if record['action'] in ('quarantined',):
                after.append(f'{user_plan.user}: {item.path} -> {record["quarantine_path"]}')
            elif record['action'] not in ('removed', 'vanished'):
                after.append(line)
    return {'before_header': 'Notion site data', 'after_header': 'Notion site data',
            'before': ''.join(f'{line}\n' for line in before), 'after': ''.join(f'{line}\n' for line in after)}


def run(host: Host, layout: _layout.PlatformLayout, params: dict[str, t.Any], *, check_mode: bool,
        now: datetime.datetime, entry_token: str) -> dict[str, t.Any]:
    """The whole rung. Returns the module result; raises RequestError/HostError before any change."""
    request = Request.from_params(params)
    entry_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{entry_token}"
    probe = host.run_batch(probe_operations(layout, request.scopes, request.users, request.exclude_users),
                           check_mode=True)
    plans = plan(layout, request, probe, entry_id)
    operations = [] if check_mode else apply_operations(plans, layout, request, entry_id, now)
    applied = None
    if operations:
        envelope = host.run_batch(operations, check_mode=False)
        applied = _tag_paths(operations, envelope['results'])
    users = user_results(plans, request, None if check_mode else (applied or []))
    items = [i for u in users for i in u['items'] if i['action'] in ('quarantined', 'removed')]
    changed = bool(items) or any(u['processes_stopped'] for u in users)
    result: dict[str, t.Any] = {
        'changed': changed,
        'platform': layout.name,
        'scopes': list(request.scopes),
        'quarantine_id': entry_id if request.quarantine and items else None,
        'users': users,
        'skipped_profiles': skipped_profiles(operation_data(probe, 0)),
        'totals': {'users': sum(1 for u in users if u['status'] == 'cleared'), 'items': len(items),
                   'bytes': sum(i['bytes'] for i in items), 'files': sum(i['files'] for i in items)},
        'manual_actions': [MANUAL_LOGOUT] if 'cookies' in request.scopes else [],
        'diff': diff(plans, users),
    }
    failures = [f"{u['user']}: {error}" for u in users for error in u['errors']]
    if failures:
        result['failed'] = True
        result['msg'] = 'Some Notion data could not be cleared; what was done is listed per user: ' + '; '.join(failures)
    return result


def _tag_paths(operations: list[dict[str, t.Any]], results: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """Pair each result with the path its operation acted on, so outcomes can be matched to items."""
    tagged = []
    for operation, result in zip(operations, results):
        tagged.append({**result, '_path': operation.get('source') or operation.get('path')})
    return tagged

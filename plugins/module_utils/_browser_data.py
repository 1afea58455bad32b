# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fix 2 of the runbook: clear Notion's site data in every user's browsers, and nothing else.

Private to this collection. Probe (one host batch: profiles, each browser's
profile list, the entries that hold site data, the bytes of the shared stores,
processes) -> plan (pure, plus editing private copies of the shared stores in
_site_stores) -> apply (one batch, one group per user: the trusted record, the
originals moved into the user's quarantine, the edited stores written in their
place). With ``stop_browser`` a running browser is stopped by one more batch
and the host probed again, so the stores are read after the browser wrote them.
At most four host calls whatever the number of users and profiles.
"""
from __future__ import annotations

import base64
import datetime
import typing as t
from dataclasses import dataclass, field

from ansible_collections.loopbreaker.notion.plugins.module_utils import _browser_profiles as bp
from ansible_collections.loopbreaker.notion.plugins.module_utils import _containment, _layout, _site_stores
from ansible_collections.loopbreaker.notion.plugins.module_utils._app_data import MANUAL_LOGOUT, quarantine_root, user_anchor
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import substitute
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import (
    Host,
    RequestError,
    operation_data,
    owns,
    per_profile,
    profiles_operation,
    select_profiles,
    skipped_profiles,
    stop_operation,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import check_common, check_seconds
from ansible_collections.loopbreaker.notion.plugins.module_utils._quarantine import (
    Manifest,
    QuarantinedItem,
    entry_operations,
    item_attributes,
    stored_name,
)

MODULE = 'browser_data'
REASON = "clear Notion's site data in browsers"
LIST_MAX_BYTES = 8 * 1048576
MAX_STOP_TIMEOUT = 3600
ARGUMENT_SPEC: dict[str, t.Any] = {
    'browsers': {'type': 'list', 'elements': 'str', 'default': ['all'], 'choices': ['all'] + list(bp.BROWSER_NAMES)},
    'sites': {'type': 'list', 'elements': 'str', 'default': list(bp.DEFAULT_SITES)},
    'scopes': {'type': 'list', 'elements': 'str', 'default': ['all'], 'choices': ['all'] + list(bp.SCOPE_NAMES)},
    'users': {'type': 'list', 'elements': 'str'},
    'exclude_users': {'type': 'list', 'elements': 'str'},
    'profiles_root': {'type': 'path'},
    'state_dir': {'type': 'path'},
    'stop_browser': {'type': 'bool', 'default': False},
    'stop_timeout': {'type': 'int', 'default': 30},
    'quarantine': {'type': 'bool', 'default': True},
}
MUTUALLY_EXCLUSIVE: list[list[str]] = [['users', 'exclude_users']]


def _choose(values: list[str] | None, names: tuple[str, ...], what: str) -> tuple[str, ...]:
    values = values or ['all']
    unknown = sorted(set(values) - set(names) - {'all'})
    if unknown:
        raise RequestError(f'unknown {what}(s) {", ".join(unknown)}; choose from all, {", ".join(names)}')
    return names if 'all' in values else tuple(n for n in names if n in values)


@dataclass(frozen=True)
class Request:
    browsers: tuple[str, ...]
    sites: tuple[str, ...]
    scopes: tuple[str, ...]
    users: list[str] | None
    exclude_users: list[str] | None
    stop_browser: bool
    stop_timeout: int
    quarantine: bool

    @classmethod
    def from_params(cls, params: dict[str, t.Any]) -> Request:
        browsers = _choose(params.get('browsers'), bp.BROWSER_NAMES, 'browser')
        scopes = _choose(params.get('scopes'), bp.SCOPE_NAMES, 'scope')
        try:
            sites = bp.validate_sites(list(params.get('sites') or bp.DEFAULT_SITES))
        except ValueError as error:
            raise RequestError(str(error)) from None
        check_common(params, ARGUMENT_SPEC)
        check_seconds({'stop_timeout': 30, **params}, 'stop_timeout', MAX_STOP_TIMEOUT)
        return cls(browsers=browsers, sites=sites, scopes=scopes, users=params.get('users'),
                   exclude_users=params.get('exclude_users'), stop_browser=bool(params.get('stop_browser')),
                   stop_timeout=int(params.get('stop_timeout', 30)), quarantine=params.get('quarantine', True))


@dataclass
class Removal:
    """One thing removed from a profile: a per-origin entry moved, or a shared store edited."""
    scope: str
    store: str
    path: str
    sites: dict[str, int]
    originals: list[dict[str, t.Any]]  # stat-like entries moved aside (path, type, bytes, files, attributes)
    edited_files: list[dict[str, t.Any]] | None = None  # the store written back in place
    attributes: dict[str, t.Any] | None = None
    companions: list[str] = field(default_factory=list)  # journals the browser may leave beside the store
    action: str = ''
    error: str | None = None


@dataclass
class ProfilePlan:
    browser: str
    data_root: str
    directory: str
    name: str
    path: str
    removals: list[Removal] = field(default_factory=list)
    skipped: list[dict[str, t.Any]] = field(default_factory=list)
    running: list[dict[str, t.Any]] = field(default_factory=list)


@dataclass
class UserPlan:
    profile: dict[str, t.Any]
    profiles: list[ProfilePlan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    entry_dir: str | None = None

    @property
    def user(self) -> str:
        return str(self.profile['username'])

    @property
    def removals(self) -> list[Removal]:
        return [r for p in self.profiles for r in p.removals]


def probe_operations(layout: _layout.PlatformLayout, request: Request) -> list[dict[str, t.Any]]:
    lists, stats, trees = bp.probe_patterns(layout, request.browsers, request.scopes)
    return [
        profiles_operation(layout.shell_folders, request.users, request.exclude_users),
        {'op': 'read_files', 'each_profile': True, 'patterns': lists, 'max_bytes': LIST_MAX_BYTES},
        {'op': 'stat_paths', 'each_profile': True, 'patterns': stats or lists},
        {'op': 'read_trees', 'each_profile': True, 'patterns': trees or lists},
        {'op': 'list_processes', 'names': bp.process_names(layout, request.browsers)},
    ]


def _key(layout: _layout.PlatformLayout, path: str) -> str:
    normal = str(layout.path.normpath(path))
    return normal.lower() if layout.name == 'windows' else normal


def _substitutions(profile: dict[str, t.Any]) -> dict[str, str]:
    return {'ProfilePath': profile['profile_path'], 'Sid': profile['sid'], **profile['folders']}


def _size(files: list[dict[str, t.Any]]) -> int:
    return sum(len(base64.b64decode(f['data'])) for f in files)


def _moved(tree_or_stat: dict[str, t.Any]) -> dict[str, t.Any]:
    if 'files' in tree_or_stat and isinstance(tree_or_stat['files'], list):
        size, count = _size(tree_or_stat['files']), len(tree_or_stat['files'])
    else:
        size, count = tree_or_stat.get('bytes', 0), tree_or_stat.get('files', 1)
    return {'path': tree_or_stat['path'], 'type': tree_or_stat['type'], 'bytes': size, 'files': count,
            'attributes': item_attributes(tree_or_stat)}


class _Index:
    """One user's probe data, by path."""

    def __init__(self, layout: _layout.PlatformLayout, lists: dict[str, t.Any] | None, stats: dict[str, t.Any] | None,
                 trees: dict[str, t.Any] | None) -> None:
        self.layout = layout
        self.errors = [r.get('error') or 'the profile could not be read' for r in (lists, stats, trees)
                       if r is None or r['status'] != 'ok']
        ok = not self.errors
        self.lists = {_key(layout, f['path']): f for f in (lists['data']['files'] if ok else [])}  # type: ignore[index]
        self.trees = {_key(layout, f['path']): f for f in (trees['data']['trees'] if ok else [])}  # type: ignore[index]
        self.stats = stats['data']['entries'] if ok else []  # type: ignore[index]

    def list_text(self, path: str) -> tuple[str | None, str | None]:
        found = self.lists.get(_key(self.layout, path))
        if found is None:
            return None, None
        return found.get('content'), found.get('error')

    def tree(self, path: str) -> dict[str, t.Any] | None:
        return self.trees.get(_key(self.layout, path))

    def children(self, folder: str) -> list[dict[str, t.Any]]:
        parent = _key(self.layout, folder)
        return [e for e in self.stats if _key(self.layout, self.layout.path.dirname(e['path'])) == parent]


def plan(layout: _layout.PlatformLayout, request: Request, envelope: dict[str, t.Any], entry_id: str) -> list[UserPlan]:
    profiles_data = operation_data(envelope, 0)
    profiles = profiles_data['profiles']
    lists, stats, trees = per_profile(envelope, 1), per_profile(envelope, 2), per_profile(envelope, 3)
    processes = operation_data(envelope, 4)['processes']
    chosen = select_profiles(profiles, request.users, request.exclude_users, case_insensitive=layout.name != 'linux',
                             skipped=profiles_data.get('skipped'))
    plans = []
    for profile in chosen:
        user_plan = UserPlan(profile=profile)
        foreign = _containment.foreign_folder(layout, profile, profiles)
        if profile.get('error') or foreign:
            user_plan.errors.append(f'not touched: {foreign}' if foreign else profile['error'])
        else:
            sid = profile['sid']
            index = _Index(layout, lists.get(sid), stats.get(sid), trees.get(sid))
            if index.errors:
                user_plan.errors += index.errors
            else:
                mine = [p for p in processes if owns(profile, p)]
                for browser, template in bp.roots(layout, request.browsers):
                    root = substitute(template, _substitutions(profile))
                    user_plan.profiles += _plan_root(layout, request, browser, root, index, mine, user_plan)
        _check_containment(layout, user_plan)
        if user_plan.removals and request.quarantine:
            user_plan.entry_dir = layout.join(quarantine_root(layout, profile, profile['folders'].get(
                'Local AppData', profile['profile_path'])), entry_id)
        if request.users or user_plan.profiles or user_plan.errors:
            plans.append(user_plan)
    return plans


def _check_containment(layout: _layout.PlatformLayout, user_plan: UserPlan) -> None:
    try:
        for removal in user_plan.removals:
            for original in removal.originals:
                if not bp.holds(layout, user_plan.profile, original['path']):
                    raise _containment.ContainmentError(f"{original['path']!r} is not inside a browser's data "
                                                        f'of {user_plan.user}')
                _containment.anchor_for(layout, user_plan.profile, original['path'])
    except _containment.ContainmentError as error:
        for profile_plan in user_plan.profiles:
            profile_plan.removals = []
        user_plan.errors.append(f'not touched: {error}')


def _plan_root(layout: _layout.PlatformLayout, request: Request, browser: bp.Browser, root: str, index: _Index,
               processes: list[dict[str, t.Any]], user_plan: UserPlan) -> list[ProfilePlan]:
    list_name = 'profiles.ini' if browser.family == 'firefox' else 'Local State'
    text, error = index.list_text(layout.join(root, list_name))
    if text is None and error is None:
        return []  # this browser has no data here for this user
    found, problem = (bp.firefox_profiles if browser.family == 'firefox' else bp.chromium_profiles)(text)
    problem = problem or (f'{list_name} could not be read ({error})' if error else None)
    if problem:
        user_plan.errors.append(f'{browser.name} ({root}): {problem}; nothing was touched there')
        return []
    names = {p.lower() for p in browser.processes.get(layout.name, ())}
    running = [p for p in processes if p['name'].lower() in names]
    plans = []
    for directory, display in sorted((found or {}).items()):
        if directory.startswith('/'):
            plans.append(ProfilePlan(browser.name, root, directory, display, directory, skipped=[{
                'scope': None, 'store': None, 'path': directory,
                'reason': f'the profile lies outside the {browser.name} folder; not touched'}]))
            continue
        path = layout.join(root, layout.native(directory))
        profile_plan = ProfilePlan(browser.name, root, directory, display, path, running=running)
        _plan_profile(layout, request, browser, profile_plan, index)
        if running and profile_plan.removals:
            profile_plan.skipped.insert(0, {
                'scope': None, 'store': None, 'path': path,
                'reason': f'{browser.name} is running (pid {", ".join(str(p["pid"]) for p in running)}); the profile '
                          'was not touched. Close the browser or set stop_browser: true.'})
            profile_plan.removals = []
        plans.append(profile_plan)
    return plans


def _plan_profile(layout: _layout.PlatformLayout, request: Request, browser: bp.Browser, profile_plan: ProfilePlan,
                  index: _Index) -> None:
    path, sites = profile_plan.path, request.sites
    fs_folders: dict[str, str] = {}
    for scope, entry, kind, companions in bp.edited_entries(browser, request.scopes):
        store_path = layout.join(path, layout.native(entry))
        tree = index.tree(store_path)
        if tree is None:
            continue
        skip = {'scope': scope, 'store': kind, 'path': store_path}
        if tree.get('error'):
            profile_plan.skipped.append({**skip, 'reason': f"not readable: {tree['error']}", 'failed': True})
            continue
        companion_trees = {}
        for companion in companions:
            found = index.tree(layout.join(path, layout.native(companion)))
            if found is not None:
                companion_trees[companion[len(entry):]] = found
        bad = [c for c in companion_trees.values() if c.get('error')]
        if bad:
            profile_plan.skipped.append({**skip, 'reason': f"not readable: {bad[0]['error']}", 'failed': True})
            continue
        try:
            result = _site_stores.edit(kind, tree['files'], {s: c['files'] for s, c in companion_trees.items()}, sites)
        except _site_stores.StoreUnavailable as error:
            profile_plan.skipped.append({**skip, 'reason': f'skipped: {error}'})
            continue
        except _site_stores.StoreError as error:
            profile_plan.skipped.append({**skip, 'reason': f'left untouched: {error}', 'failed': True})
            continue
        if kind == 'file_system_origins':
            fs_folders = result.details.get('folders', {})
        if result.entries or result.removed:
            profile_plan.removals.append(Removal(
                scope=scope, store=kind, path=store_path, sites=result.removed,
                originals=[_moved(tree)] + [_moved(c) for c in companion_trees.values()],
                edited_files=result.files, attributes=item_attributes(tree),
                companions=[layout.join(path, layout.native(c)) for c in companions]))
    _plan_origin_folders(layout, request, browser, profile_plan, index, fs_folders)


def _plan_origin_folders(layout: _layout.PlatformLayout, request: Request, browser: bp.Browser,
                         profile_plan: ProfilePlan, index: _Index, fs_folders: dict[str, str]) -> None:
    path, sites = profile_plan.path, request.sites
    buckets: dict[str, str] = {}
    quota = index.tree(layout.join(path, 'WebStorage', 'QuotaManager'))
    if quota and quota.get('files') and 'storage' in request.scopes:
        try:
            buckets = _site_stores.quota_buckets(quota['files'], sites)
        except _site_stores.StoreError as error:
            profile_plan.skipped.append({'scope': 'storage', 'store': 'quota_manager', 'path': quota['path'],
                                         'reason': f'storage buckets not cleared: {error}'})
    if not fs_folders and 'storage' in request.scopes and browser.family == 'chromium':
        origins = index.tree(layout.join(path, 'File System', 'Origins'))
        if origins and origins.get('files'):
            try:
                fs_folders = _site_stores.file_system_folders(origins['files'], sites)
            except _site_stores.StoreError:
                fs_folders = {}
    for scope, folder in bp.origin_folders(browser, request.scopes):
        folder_path = layout.join(path, layout.native(folder))
        for entry in index.children(folder_path):
            name = layout.path.basename(entry['path'])
            site = None
            if folder == 'IndexedDB':
                site = bp.host_matches(bp.chromium_identifier_host(name), sites)
            elif folder == 'File System':
                site = fs_folders.get(name)
            elif folder == 'WebStorage':
                site = buckets.get(name)
            elif folder == 'Service Worker/CacheStorage':
                marker = index.tree(layout.join(entry['path'], 'index.txt'))
                site = bp.host_matches(_site_stores.cache_storage_host(marker['files']) if marker and marker.get('files')
                                       else None, sites)
            elif folder == 'storage/default':
                site = bp.host_matches(bp.firefox_folder_host(name), sites)
            if site:
                profile_plan.removals.append(Removal(scope=scope, store=folder, path=entry['path'], sites={site: 1},
                                                     originals=[_moved(entry)]))


def _manifest(layout: _layout.PlatformLayout, user_plan: UserPlan, entry_id: str, now: datetime.datetime) -> Manifest:
    items = []
    replaced, companions = [], []
    for removal in user_plan.removals:
        for original in removal.originals:
            stored = layout.join('items', stored_name(len(items), original['path'], layout.path))
            items.append(QuarantinedItem(original_path=original['path'], stored_as=stored, scope=removal.scope,
                                         type=original['type'], bytes=original['bytes'], files=original['files'],
                                         attributes=original['attributes']))
        if removal.edited_files is not None:
            # The store and its journal: the browser writes both again, so restore displaces them.
            replaced += [original['path'] for original in removal.originals]
            companions += [c for c in removal.companions if c not in replaced]
    return Manifest(id=entry_id, created=now.strftime('%Y-%m-%dT%H:%M:%SZ'), module=MODULE, reason=REASON,
                    user=user_plan.user, sid=user_plan.profile['sid'], platform=layout.name, items=tuple(items),
                    extra={'replaced': replaced, 'companions': companions}, entry_dir=user_plan.entry_dir or '',
                    profile_path=user_plan.profile['profile_path'])


def apply_operations(plans: list[UserPlan], layout: _layout.PlatformLayout, request: Request, entry_id: str,
                     now: datetime.datetime) -> list[dict[str, t.Any]]:
    operations: list[dict[str, t.Any]] = []
    for user_plan in plans:
        if not user_plan.removals:
            continue
        group = user_plan.profile['sid']
        anchor = user_anchor(layout, user_plan.profile)
        if user_plan.entry_dir:
            entry = entry_operations(_manifest(layout, user_plan, entry_id, now), group=group,
                                     owner_sid=user_plan.profile.get('owner_sid', group), anchor=anchor,
                                     path_module=layout.path)
            moves = [op for op in entry if op['op'] == 'move_path']
            operations += [op for op in entry if op['op'] != 'move_path']
        else:
            moves = [{'op': 'remove_path', 'group': group, 'path': o['path'], 'within': anchor(o['path'])}
                     for r in user_plan.removals for o in r.originals]
        # Each store's originals, then at once its edited copy: a failure part-way leaves every store
        # either as it was or edited, never missing (later operations of the user are skipped).
        for removal in user_plan.removals:
            operations += moves[:len(removal.originals)]
            moves = moves[len(removal.originals):]
            if removal.edited_files is not None:
                write = {'op': 'write_tree', 'group': group, 'path': removal.path, 'files': removal.edited_files,
                         'within': anchor(removal.path)}
                if removal.attributes:
                    write['attributes'] = dict(removal.attributes)
                operations.append(write)
    return operations


def stop_operations(plans: list[UserPlan], request: Request) -> list[dict[str, t.Any]]:
    operations = []
    for user_plan in plans:
        running = {p['pid']: p for pp in user_plan.profiles for p in pp.running if pp.skipped and pp.running}
        if running:
            operations.append(stop_operation(running.values(), user_plan.profile['sid'], request.stop_timeout))
    return operations


def _reconcile(plans: list[UserPlan], operations: list[dict[str, t.Any]] | None,
               results: list[dict[str, t.Any]] | None, quarantine: bool) -> None:
    """Set each removal's action from what the apply batch did (None: check mode, the plan itself)."""
    by_target: dict[tuple[str, str], dict[str, t.Any]] = {}
    for operation, result in zip(operations or (), results or ()):
        by_target[(operation['op'], operation.get('source') or operation.get('path') or '')] = result
    for user_plan in plans:
        for removal in user_plan.removals:
            removal.action = ('edited' if removal.edited_files is not None else
                              'quarantined' if quarantine else 'removed')
            if results is None:
                continue
            steps = [by_target.get(('move_path' if quarantine else 'remove_path', o['path'])) for o in removal.originals]
            if removal.edited_files is not None:
                steps.append(by_target.get(('write_tree', removal.path)))
            for step in steps:
                if step is None or step['status'] == 'skipped':
                    removal.action, removal.error = 'skipped', 'an earlier operation for this user failed'
                    break
                if step['status'] == 'error':
                    removal.action, removal.error = 'failed', step['error']
                    break


def user_results(plans: list[UserPlan]) -> list[dict[str, t.Any]]:
    users = []
    for user_plan in plans:
        errors = list(user_plan.errors)
        browsers = []
        for pp in user_plan.profiles:
            removed = [{'scope': r.scope, 'store': r.store, 'path': r.path, 'sites': r.sites,
                        'entries': sum(r.sites.values()), 'bytes': sum(o['bytes'] for o in r.originals),
                        'action': r.action, 'error': r.error} for r in pp.removals]
            skipped = [{k: v for k, v in s.items() if k != 'failed'} for s in pp.skipped]
            errors += [f"{pp.browser} {pp.directory}: {s['path']}: {s['reason']}" for s in pp.skipped if s.get('failed')]
            errors += [f"{pp.browser} {pp.directory}: {r['path']}: {r['error']}" for r in removed if r['action'] == 'failed']
            done = [r for r in removed if r['action'] in ('edited', 'quarantined', 'removed')]
            status = ('failed' if any(r['action'] == 'failed' for r in removed) or any(s.get('failed') for s in pp.skipped)
                      else 'skipped' if pp.skipped and not done else 'cleared' if done else 'clean')
            browsers.append({'browser': pp.browser, 'data_root': pp.data_root, 'profile': pp.directory, 'name': pp.name,
                             'path': pp.path, 'status': status, 'removed': removed, 'skipped': skipped})
        done_any = any(r['action'] in ('edited', 'quarantined', 'removed') for b in browsers for r in b['removed'])
        status = 'failed' if errors else 'cleared' if done_any else (
            'skipped' if any(b['status'] == 'skipped' for b in browsers) else 'clean')
        users.append({'user': user_plan.user, 'sid': user_plan.profile['sid'],
                      'profile_path': user_plan.profile['profile_path'], 'status': status, 'profiles': browsers,
                      'quarantine_path': user_plan.entry_dir if done_any else None, 'errors': errors})
    return users


def diff(users: list[dict[str, t.Any]]) -> dict[str, str]:
    before, after = [], []
    for user in users:
        for browser in user['profiles']:
            for removed in browser['removed']:
                sites = ', '.join(f'{site} ({count})' for site, count in sorted(removed['sites'].items()))
                line = f"{user['user']}: {browser['browser']} {browser['profile']}: {removed['path']} [{removed['scope']}: {sites}]"
                before.append(line)
                if removed['action'] not in ('edited', 'quarantined', 'removed'):
                    after.append(line)
    return {'before_header': 'Notion site data in browsers', 'after_header': 'Notion site data in browsers',
            'before': ''.join(f'{line}\n' for line in before), 'after': ''.join(f'{line}\n' for line in after)}


def run(host: Host, layout: _layout.PlatformLayout, params: dict[str, t.Any], *, check_mode: bool,
        now: datetime.datetime, entry_token: str) -> dict[str, t.Any]:
    """The whole rung; raises RequestError/HostError before any change."""
    request = Request.from_params(params)
    entry_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{entry_token}"
    probe = probe_operations(layout, request)
    probed = host.run_batch(probe, check_mode=True)
    plans = plan(layout, request, probed, entry_id)
    stopped: list[dict[str, t.Any]] = []
    if request.stop_browser and not check_mode:
        stops = stop_operations(plans, request)
        if stops:
            stopped = host.run_batch(stops, check_mode=False)['results']
            # The browser rewrote its stores on exit: read them again.
            plans = plan(layout, request, host.run_batch(probe, check_mode=True), entry_id)
    operations = [] if check_mode else apply_operations(plans, layout, request, entry_id, now)
    results = host.run_batch(operations, check_mode=False)['results'] if operations else []
    _reconcile(plans, operations, None if check_mode else results, request.quarantine)
    users = user_results(plans)
    stop_errors = [f"stop_processes: {r['error']}" for r in stopped if r['status'] == 'error']
    done = [r for u in users for b in u['profiles'] for r in b['removed']
            if r['action'] in ('edited', 'quarantined', 'removed')]
    result: dict[str, t.Any] = {
        'changed': bool(done) or any(r['status'] == 'ok' and r['data'].get('stopped') for r in stopped),
        'platform': layout.name, 'browsers': list(request.browsers), 'sites': list(request.sites),
        'scopes': list(request.scopes),
        'quarantine_id': entry_id if request.quarantine and done and not check_mode else None,
        'users': users,
        'skipped_profiles': skipped_profiles(operation_data(probed, 0)),
        'totals': {'users': sum(1 for u in users if u['status'] == 'cleared'),
                   'profiles': sum(1 for u in users for b in u['profiles'] if b['status'] == 'cleared'),
                   'entries': sum(r['entries'] for r in done), 'bytes': sum(r['bytes'] for r in done)},
        'manual_actions': [MANUAL_LOGOUT] if 'cookies' in request.scopes and done else [],
        'notes': [f'{scope}: {why}' for scope, why in bp.NOT_ATTRIBUTABLE.items() if scope in request.scopes]
        + [f"process {entry['pid']} ({entry['name']}) was not stopped: {entry['reason']}"
           for r in stopped if r['status'] == 'ok' for entry in r['data'].get('not_stopped', [])],
        'diff': diff(users),
    }
    failures = [f"{u['user']}: {e}" for u in users for e in u['errors']] + stop_errors
    if failures:
        result['failed'] = True
        result['msg'] = ("Some of Notion's browser data could not be cleared; what was done is listed per user: "
                         + '; '.join(failures))
    return result

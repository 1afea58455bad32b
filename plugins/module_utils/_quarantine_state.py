# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""List, restore and purge quarantine entries: the logic of the quarantine module.

Private to this collection. One probe batch reads every chosen user's
manifests and stats the places their items came from and went to; restore
and purge are then one apply batch. A restore never overwrites what the app
has recreated unless ``force`` is set, and then moves that data into a new
quarantine entry first, so nothing is lost either way.
"""
from __future__ import annotations

import datetime
import typing as t
from dataclasses import dataclass, field, replace

from ansible_collections.loopbreaker.notion.plugins.module_utils import _layout
from ansible_collections.loopbreaker.notion.plugins.module_utils._app_data import quarantine_root
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import substitute
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import (
    Host,
    RequestError,
    operation_data,
    owns,
    per_profile,
    select_profiles,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._quarantine import (
    ENTRY_ID_PATTERN,
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    QuarantinedItem,
    entry_operations,
    entry_time,
    parse_duration,
    parse_manifest,
    stored_name,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import check_quarantine

ARGUMENT_SPEC: dict[str, t.Any] = {
    'state': {'type': 'str', 'default': 'listed', 'choices': ['listed', 'restored', 'purged']},
    'id': {'type': 'str'},
    'older_than': {'type': 'str'},
    'force': {'type': 'bool', 'default': False},
    'users': {'type': 'list', 'elements': 'str'},
    'exclude_users': {'type': 'list', 'elements': 'str'},
    'profiles_root': {'type': 'path'},
    'stop_app': {'type': 'bool', 'default': True},
}
MUTUALLY_EXCLUSIVE: list[list[str]] = [['id', 'older_than'], ['users', 'exclude_users']]
REQUIRED_IF: list[t.Any] = [['state', 'restored', ['id']], ['state', 'purged', ['id', 'older_than'], True]]


@dataclass
class Entry:
    manifest: Manifest
    directory: str
    profile: dict[str, t.Any]
    stored_present: dict[str, bool] = field(default_factory=dict)
    original_present: dict[str, bool] = field(default_factory=dict)

    def describe(self) -> dict[str, t.Any]:
        m = self.manifest
        return {'id': m.id, 'user': m.user, 'sid': m.sid, 'created': m.created, 'module': m.module,
                'reason': m.reason, 'path': self.directory, 'restored': m.restored, 'bytes': m.bytes,
                'items': [{'original_path': i.original_path, 'scope': i.scope, 'type': i.type, 'bytes': i.bytes,
                           'files': i.files, 'in_quarantine': self.stored_present.get(i.stored_as, False),
                           'original_exists': self.original_present.get(i.original_path.lower(), False)}
                          for i in m.items]}


def probe_operations(layout: _layout.PlatformLayout) -> list[dict[str, t.Any]]:
    roots = layout.quarantine_roots()
    originals = [template for _scope, template in _layout.scope_patterns(layout, _layout.SCOPE_NAMES)]
    return [
        {'op': 'get_profiles', 'shell_folders': dict(layout.shell_folders)},
        {'op': 'read_files', 'each_profile': True, 'patterns': [layout.join(r, '*', MANIFEST_NAME) for r in roots]},
        {'op': 'stat_paths', 'each_profile': True,
         'patterns': [layout.join(r, '*', 'items', '*') for r in roots] + originals},
        {'op': 'list_processes', 'names': list(layout.process_names)},
    ]


def collect(layout: _layout.PlatformLayout, params: dict[str, t.Any],
            envelope: dict[str, t.Any]) -> tuple[list[Entry], list[dict[str, t.Any]], list[dict[str, t.Any]]]:
    """(entries, unreadable manifests, processes) of the chosen users."""
    profiles = operation_data(envelope, 0)['profiles']
    manifests, stats = per_profile(envelope, 1), per_profile(envelope, 2)
    chosen = select_profiles(profiles, params.get('users'), params.get('exclude_users'),
                             case_insensitive=layout.name != 'linux')
    entries, unreadable = [], []
    for profile in chosen:
        files = manifests[profile['sid']]
        if files['status'] != 'ok':
            unreadable.append({'user': profile['username'], 'path': None, 'error': files['error']})
            continue
        present = {e['path'].lower() for e in (stats[profile['sid']]['data'] or {}).get('entries', [])}
        for manifest_file in files['data']['files']:
            try:
                manifest = parse_manifest(manifest_file['content'], manifest_file['path'])
            except ManifestError as error:
                unreadable.append({'user': profile['username'], 'path': manifest_file['path'], 'error': str(error)})
                continue
            directory = layout.path.dirname(manifest_file['path'])
            entry = Entry(manifest=manifest, directory=directory, profile=profile)
            for item in manifest.items:
                entry.stored_present[item.stored_as] = layout.join(directory, item.stored_as).lower() in present
                entry.original_present[item.original_path.lower()] = item.original_path.lower() in present
            entries.append(entry)
    entries.sort(key=lambda e: (e.manifest.id, e.manifest.user))
    return entries, unreadable, operation_data(envelope, 3)['processes']


def _restore_operations(entry: Entry, layout: _layout.PlatformLayout, force: bool, displaced_id: str,
                        now: datetime.datetime) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]]]:
    """Operations restoring one entry, and the per-item outcome they will produce."""
    group = entry.profile['sid']
    operations: list[dict[str, t.Any]] = []
    outcomes: list[dict[str, t.Any]] = []
    restorable = [i for i in entry.manifest.items if entry.stored_present.get(i.stored_as)]
    conflicts = [i for i in restorable if entry.original_present.get(i.original_path.lower())]
    if conflicts and force:
        root = quarantine_root(layout, entry.profile, substitute(layout.data_root, {**entry.profile['folders']}))
        displaced_dir = layout.join(root, displaced_id)
        displaced = tuple(QuarantinedItem(original_path=i.original_path,
                                          stored_as=layout.join('items', stored_name(n, i.original_path, layout.path)),
                                          scope=i.scope, type=i.type, bytes=0, files=0)
                          for n, i in enumerate(conflicts))
        record = Manifest(id=displaced_id, created=now.strftime('%Y-%m-%dT%H:%M:%SZ'), module='quarantine',
                          reason=f'displaced by restoring {entry.manifest.id}', user=entry.manifest.user,
                          sid=entry.manifest.sid, platform=layout.name, items=displaced)
        operations += entry_operations(record, displaced_dir, group=group, owner_sid=group, path_module=layout.path)
    for item in entry.manifest.items:
        outcome = {'id': entry.manifest.id, 'user': entry.manifest.user, 'path': item.original_path,
                   'action': 'restored', 'displaced_to': None, 'error': None}
        if item not in restorable:
            outcome['action'] = 'not_in_quarantine'
        else:
            if item in conflicts:
                outcome['displaced_to'] = displaced_id
            operations.append({'op': 'move_path', 'group': group, 'source': layout.join(entry.directory, item.stored_as),
                               'destination': item.original_path})
        outcomes.append(outcome)
    tombstone = replace(entry.manifest, restored=now.strftime('%Y-%m-%dT%H:%M:%SZ'))
    operations.append({'op': 'write_file', 'group': group, 'path': layout.join(entry.directory, MANIFEST_NAME),
                       'content': tombstone.to_json()})
    return operations, outcomes


def _matches_id(entries: list[Entry], entry_id: str) -> list[Entry]:
    if not ENTRY_ID_PATTERN.fullmatch(entry_id):
        raise RequestError(f"id {entry_id!r} is not a quarantine entry id (like '20261129T141500Z-1a2b3c')")
    return [e for e in entries if e.manifest.id == entry_id]


def plan_restore(entries: list[Entry], processes: list[dict[str, t.Any]], layout: _layout.PlatformLayout,
                 params: dict[str, t.Any], displaced_id: str,
                 now: datetime.datetime) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]], list[Entry]]:
    chosen = _matches_id(entries, params['id'])
    if not chosen:
        raise RequestError(f"no quarantine entry {params['id']} for the chosen users; nothing was changed")
    pending = [e for e in chosen if not e.manifest.restored]
    conflicts = [f'{e.manifest.user}: {i.original_path}' for e in pending for i in e.manifest.items
                 if e.stored_present.get(i.stored_as) and e.original_present.get(i.original_path.lower())]
    if conflicts and not params['force']:
        raise RequestError('Notion has recreated data that restoring would overwrite: ' + '; '.join(conflicts)
                           + '. Nothing was changed. Set force: true to move that data into a new quarantine '
                           'entry and restore.')
    running = [p for p in processes if any(owns(e.profile, p) for e in pending)]
    if running and not params['stop_app']:
        raise RequestError('Notion is running for the users being restored (pid '
                           + ', '.join(str(p['pid']) for p in running) + '); nothing was changed.')
    operations: list[dict[str, t.Any]] = []
    outcomes = []
    for entry in pending:
        mine = [p['pid'] for p in running if owns(entry.profile, p)]
        if mine:
            # In the user's own group: if Notion cannot be stopped, nothing is moved under it.
            operations.append({'op': 'stop_processes', 'pids': mine, 'group': entry.profile['sid']})
        entry_ops, entry_outcomes = _restore_operations(entry, layout, params['force'], displaced_id, now)
        operations += entry_ops
        outcomes += entry_outcomes
    return operations, outcomes, pending


def plan_purge(entries: list[Entry], params: dict[str, t.Any], now: datetime.datetime) -> list[Entry]:
    if params.get('id'):
        return _matches_id(entries, params['id'])
    try:
        cutoff = now - parse_duration(params['older_than'])
    except ValueError as error:
        raise RequestError(str(error)) from None
    return [e for e in entries if entry_time(e.manifest.id) < cutoff]


def _reconcile(outcomes: list[dict[str, t.Any]], operations: list[dict[str, t.Any]],
               applied: list[dict[str, t.Any]]) -> None:
    """Turn planned outcomes into what happened: a move back that failed or was skipped says so."""
    moves_back = {op['destination'].lower(): result for op, result in zip(operations, applied)
                  if op['op'] == 'move_path' and op['source'].lower() != op['destination'].lower()}
    for outcome in outcomes:
        result = moves_back.get(outcome['path'].lower()) if outcome['action'] == 'restored' else None
        if result is not None and result['status'] != 'ok':
            outcome.update(action='failed' if result['status'] == 'error' else 'skipped', error=result['error'])


def run(host: Host, layout: _layout.PlatformLayout, params: dict[str, t.Any], *, check_mode: bool,
        now: datetime.datetime, entry_token: str) -> dict[str, t.Any]:
    check_quarantine(params, ARGUMENT_SPEC)
    entries, unreadable, processes = collect(layout, params, host.run_batch(probe_operations(layout), check_mode=True))
    result: dict[str, t.Any] = {'changed': False, 'state': params['state'], 'unreadable': unreadable,
                                'entries': [e.describe() for e in entries]}
    if params['state'] == 'listed':
        return result
    if params['state'] == 'restored':
        displaced_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{entry_token}"
        operations, outcomes, touched = plan_restore(entries, processes, layout, params, displaced_id, now)
        result['restored'] = outcomes
    else:
        touched = plan_purge(entries, params, now)
        operations = [{'op': 'remove_path', 'group': e.directory, 'path': e.directory} for e in touched]
        result['purged'] = [{'id': e.manifest.id, 'user': e.manifest.user, 'path': e.directory,
                             'bytes': e.manifest.bytes} for e in touched]
    result['changed'] = bool(operations)
    result['diff'] = {'before': ''.join(f'{e.manifest.user}: {e.manifest.id} ({"restored" if e.manifest.restored else "held"})\n'
                                        for e in touched),
                      'after': '' if params['state'] == 'purged' else ''.join(
                          f'{e.manifest.user}: {e.manifest.id} (restored)\n' for e in touched)}
    if operations and not check_mode:
        applied = host.run_batch(operations, check_mode=False)['results']
        if params['state'] == 'restored':
            _reconcile(result['restored'], operations, applied)
        errors = [f"{r['op']}: {r['error']}" for r in applied if r['status'] == 'error']
        skipped = sum(1 for r in applied if r['status'] == 'skipped')
        if errors:
            result.update(failed=True, msg=f'{len(errors)} operation(s) failed and {skipped} were skipped: '
                          + '; '.join(errors), operations=applied)
    return result

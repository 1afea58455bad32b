# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""List, restore and purge quarantine entries: the logic of the quarantine module.

Private to this collection. One probe batch reads the trusted records, every
chosen user's own copies of the manifests, and stats the places their items
came from and went to; restore and purge are then one apply batch. Only
trusted records are acted on, and only after every path in them is checked to
lie inside the user's profile and Notion data (a record's user copy that is
missing, forged or different is reported, never used). A restore never
overwrites what the app has recreated unless ``force`` is set, and then moves
that data into a new quarantine entry first, so nothing is lost either way.
"""
from __future__ import annotations

import datetime
import typing as t
from dataclasses import dataclass, field, replace

from ansible_collections.loopbreaker.notion.plugins.module_utils import _browser_profiles, _containment, _layout
from ansible_collections.loopbreaker.notion.plugins.module_utils._app_data import quarantine_root, user_anchor
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
from ansible_collections.loopbreaker.notion.plugins.module_utils._quarantine import (
    ENTRY_ID_PATTERN,
    MANIFEST_NAME,
    Manifest,
    RECORD_NAMESPACE,
    ManifestError,
    QuarantinedItem,
    entry_operations,
    entry_time,
    item_attributes,
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
    'state_dir': {'type': 'path'},
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
    original_present: dict[str, dict[str, t.Any] | None] = field(default_factory=dict)

    def describe(self) -> dict[str, t.Any]:
        m = self.manifest
        return {'id': m.id, 'user': m.user, 'sid': m.sid, 'created': m.created, 'module': m.module,
                'reason': m.reason, 'path': self.directory, 'restored': m.restored, 'bytes': m.bytes,
                'items': [{'original_path': i.original_path, 'scope': i.scope, 'type': i.type, 'bytes': i.bytes,
                           'files': i.files, 'in_quarantine': self.stored_present.get(i.stored_as, False),
                           'original_exists': self.original_present.get(i.original_path) is not None}
                          for i in m.items]}


def probe_operations(layout: _layout.PlatformLayout, users: list[str] | None = None,
                     exclude_users: list[str] | None = None) -> list[dict[str, t.Any]]:
    roots = layout.quarantine_roots()
    originals = [template for _scope, template in _layout.scope_patterns(layout, _layout.SCOPE_NAMES)]
    return [
        profiles_operation(layout.shell_folders, users, exclude_users),
        {'op': 'read_records', 'namespace': RECORD_NAMESPACE},
        {'op': 'read_files', 'each_profile': True, 'patterns': [layout.join(r, '*', MANIFEST_NAME) for r in roots]},
        {'op': 'stat_paths', 'each_profile': True,
         'patterns': [layout.join(r, '*', 'items', '*') for r in roots] + [layout.data_root] + originals
         + _browser_profiles.all_original_patterns(layout)},
        {'op': 'list_processes', 'names': list(layout.process_names)},
    ]


def _trusted_records(envelope: dict[str, t.Any]) -> tuple[dict[str, Manifest], list[dict[str, t.Any]]]:
    """Records by key, and those that could not be read (reported, never acted on)."""
    data = operation_data(envelope, 1)
    records: dict[str, Manifest] = {}
    unreadable = []
    for record in data['records']:
        where = f"{data['store']}: {record['key']}"
        try:
            if record.get('error'):
                raise ManifestError(f"{where}: {record['error']}")
            manifest = parse_manifest(record['content'], where)
            if manifest.record_key != record['key']:
                raise ManifestError(f'{where}: names entry {manifest.id} of {manifest.sid}')
        except ManifestError as error:
            unreadable.append({'user': None, 'path': where, 'error': str(error)})
            continue
        records[record['key']] = manifest
    return records, unreadable


def _check_record(layout: _layout.PlatformLayout, profile: dict[str, t.Any], manifest: Manifest,
                  profiles: list[dict[str, t.Any]]) -> None:
    """Raise ContainmentError unless every path of the record lies in this user's own quarantine and data."""
    if manifest.sid != profile['sid']:
        raise _containment.ContainmentError(f'the record belongs to {manifest.sid}, not {profile["sid"]}')
    foreign = _containment.foreign_folder(layout, profile, profiles)
    if foreign:
        raise _containment.ContainmentError(foreign)
    data_root = substitute(layout.data_root, {**profile['folders']})
    allowed = {_containment_key(layout, layout.join(root, manifest.id))
               for root in {quarantine_root(layout, profile, data_root)}
               | {substitute(r, {**profile['folders']}) for r in layout.quarantine_roots()}}
    if _containment_key(layout, manifest.entry_dir) not in allowed:
        raise _containment.ContainmentError(f'entry folder {manifest.entry_dir!r} is not this user\'s quarantine')
    for path in _stray_paths(manifest):
        if not _browser_profiles.holds(layout, profile, path):
            raise _containment.ContainmentError(f'{path!r} is not inside a browser\'s data of {profile["username"]}')
    for item in manifest.items:
        _containment.check_stored_as(item.stored_as)
        if not (manifest.module in ('browser_data', 'quarantine')
                and _browser_profiles.holds(layout, profile, item.original_path)):
            _containment.check_original(layout, profile, item.original_path)
        _containment.anchor_for(layout, profile, item.original_path, layout.join(manifest.entry_dir, item.stored_as))


def _containment_key(layout: _layout.PlatformLayout, path: str) -> str:
    normal = str(layout.path.normpath(path))
    return normal.lower() if layout.name == 'windows' else normal


def _user_copies(layout: _layout.PlatformLayout, profile: dict[str, t.Any], files: dict[str, t.Any],
                 trusted: dict[str, Manifest]) -> list[dict[str, t.Any]]:
    """The user's own manifest copies that are unreadable, have no trusted record, or disagree with it."""
    findings = []
    by_directory = {_containment_key(layout, m.entry_dir): m for m in trusted.values()}
    for copy in files['data']['files']:
        directory = layout.path.dirname(copy['path'])
        record = by_directory.get(_containment_key(layout, directory))
        problem = None
        if copy.get('error'):
            problem = f"unreadable ({copy['error']})"
        else:
            try:
                claimed = parse_manifest(copy['content'], copy['path'])
            except ManifestError as error:
                problem = str(error)
            else:
                if record is None:
                    problem = 'no trusted record: found only in the user\'s folder, so it is never acted on'
                elif replace(claimed, restored=record.restored) != record:
                    problem = 'differs from the trusted record; the trusted record is used'
        if problem:
            findings.append({'user': profile['username'], 'path': copy['path'], 'error': problem})
    return findings


def collect(layout: _layout.PlatformLayout, params: dict[str, t.Any],
            envelope: dict[str, t.Any]) -> tuple[list[Entry], list[dict[str, t.Any]], list[dict[str, t.Any]]]:
    """(entries with a trusted record, what was reported instead of used, processes) of the chosen users."""
    profiles_data = operation_data(envelope, 0)
    profiles = profiles_data['profiles']
    records, unreadable = _trusted_records(envelope)
    copies, stats = per_profile(envelope, 2), per_profile(envelope, 3)
    chosen = select_profiles(profiles, params.get('users'), params.get('exclude_users'),
                             case_insensitive=layout.name != 'linux', skipped=profiles_data.get('skipped'))
    unreadable = [u for u in unreadable if u['user'] is None]
    entries = []
    for profile in chosen:
        mine = {key: m for key, m in records.items() if m.sid == profile['sid']}
        files, stat = copies[profile['sid']], stats[profile['sid']]
        if files['status'] != 'ok' or stat['status'] != 'ok':
            unreadable.append({'user': profile['username'], 'path': None,
                               'error': files['error'] if files['status'] != 'ok' else stat['error']})
            continue
        unreadable += _user_copies(layout, profile, files, mine)
        present = {_containment_key(layout, e['path']): e for e in (stat['data'] or {}).get('entries', [])}
        for manifest in mine.values():
            try:
                _check_record(layout, profile, manifest, profiles)
            except _containment.ContainmentError as error:
                unreadable.append({'user': profile['username'], 'path': manifest.entry_dir,
                                   'error': f'trusted record {manifest.id} refused: {error}'})
                continue
            entry = Entry(manifest=manifest, directory=manifest.entry_dir, profile=profile)
            for item in manifest.items:
                entry.stored_present[item.stored_as] = _containment_key(
                    layout, layout.join(manifest.entry_dir, item.stored_as)) in present
                entry.original_present[item.original_path] = present.get(
                    _containment_key(layout, item.original_path))
            for path in _stray_paths(manifest):
                entry.original_present[path] = present.get(_containment_key(layout, path))
            entries.append(entry)
    # Records of users who have no profile here any more are listed for the administrator, untouched.
    known = {p['sid'] for p in profiles}
    unreadable += [{'user': m.user, 'path': m.entry_dir, 'error': 'trusted record of a user with no profile here'}
                   for m in records.values() if m.sid not in known and not params.get('users')]
    entries.sort(key=lambda e: (e.manifest.id, e.manifest.user))
    return entries, unreadable, operation_data(envelope, 4)['processes']


def _restore_operations(entry: Entry, layout: _layout.PlatformLayout, force: bool, displaced_id: str,
                        now: datetime.datetime) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]]]:
    """Operations restoring one entry, and the per-item outcome they will produce."""
    group = entry.profile['sid']
    anchor = user_anchor(layout, entry.profile)
    operations: list[dict[str, t.Any]] = []
    outcomes: list[dict[str, t.Any]] = []
    restorable = [i for i in entry.manifest.items if entry.stored_present.get(i.stored_as)]
    conflicts = [i for i in restorable if entry.original_present.get(i.original_path) is not None]
    # Stores browser_data edited in place: the copy there is ours, so it is displaced without force.
    replaced = _replaced(layout, entry.manifest)
    conflicts = [i for i in conflicts if force or _containment_key(layout, i.original_path) in replaced]
    # A journal or WAL the browser left beside an edited store would be replayed into the restored
    # original: it is displaced too, though the original had none.
    held = {_containment_key(layout, i.original_path) for i in entry.manifest.items}
    conflicts += [QuarantinedItem(original_path=path, stored_as='', scope='companion', type='file', bytes=0, files=1)
                  for path in _stray_paths(entry.manifest) if _containment_key(layout, path) not in held
                  and entry.original_present.get(path) is not None]
    if conflicts:
        root = quarantine_root(layout, entry.profile, substitute(layout.data_root, {**entry.profile['folders']}))
        displaced_dir = layout.join(root, displaced_id)
        displaced = tuple(QuarantinedItem(original_path=i.original_path,
                                          stored_as=layout.join('items', stored_name(n, i.original_path, layout.path)),
                                          scope=i.scope, type=entry.original_present[i.original_path]['type'],
                                          bytes=entry.original_present[i.original_path]['bytes'],
                                          files=entry.original_present[i.original_path]['files'],
                                          attributes=item_attributes(entry.original_present[i.original_path]))
                          for n, i in enumerate(conflicts))
        record = Manifest(id=displaced_id, created=now.strftime('%Y-%m-%dT%H:%M:%SZ'), module='quarantine',
                          reason=f'displaced by restoring {entry.manifest.id}', user=entry.manifest.user,
                          sid=entry.manifest.sid, platform=layout.name, items=displaced, entry_dir=displaced_dir,
                          profile_path=entry.profile['profile_path'])
        operations += entry_operations(record, group=group, owner_sid=entry.profile.get('owner_sid', group),
                                       anchor=anchor, path_module=layout.path)
    for item in entry.manifest.items:
        outcome = {'id': entry.manifest.id, 'user': entry.manifest.user, 'path': item.original_path,
                   'action': 'restored', 'displaced_to': None, 'error': None}
        if item not in restorable:
            outcome['action'] = 'not_in_quarantine'
        else:
            if item in conflicts:
                outcome['displaced_to'] = displaced_id
            source = layout.join(entry.directory, item.stored_as)
            move = {'op': 'move_path', 'group': group, 'source': source, 'destination': item.original_path,
                    'within': anchor(source, item.original_path)}
            if item.type in ('file', 'directory'):
                move['expect_type'] = item.type
            # A link's own owner and mode mean nothing; sent for a link, they would land on whatever
            # the user put in its place.
            if item.attributes and item.type in ('file', 'directory'):
                move['attributes'] = dict(item.attributes)
            operations.append(move)
        outcomes.append(outcome)
    # Marked restored only if, once these moves succeed, every item is back where it came from: an item
    # neither in the quarantine nor at its original path (an entry moved aside, a folder behind a link)
    # keeps the entry held, so it can still be restored once it is found again.
    if all(i in restorable or entry.original_present.get(i.original_path) is not None for i in entry.manifest.items):
        tombstone = replace(entry.manifest, restored=now.strftime('%Y-%m-%dT%H:%M:%SZ'))
        operations.append({'op': 'write_record', 'group': group, 'namespace': RECORD_NAMESPACE,
                           'key': tombstone.record_key, 'content': tombstone.to_json()})
    return operations, outcomes


def _stray_paths(manifest: Manifest) -> list[str]:
    paths = manifest.extra.get('companions') if manifest.module == 'browser_data' else None
    return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []


def _replaced(layout: _layout.PlatformLayout, manifest: Manifest) -> set[str]:
    paths = manifest.extra.get('replaced') if manifest.module == 'browser_data' else None
    return {_containment_key(layout, p) for p in paths if isinstance(p, str)} if isinstance(paths, list) else set()


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
                 if e.stored_present.get(i.stored_as) and e.original_present.get(i.original_path) is not None
                 and _containment_key(layout, i.original_path) not in _replaced(layout, e.manifest)]
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
        mine = [p for p in running if owns(entry.profile, p)]
        entry_ops, entry_outcomes = _restore_operations(entry, layout, params['force'], displaced_id, now)
        if mine and entry_ops:
            # In the user's own group: if Notion cannot be stopped, nothing is moved under it.
            operations.append(stop_operation(mine, entry.profile['sid']))
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
    moves_back = {op['destination']: result for op, result in zip(operations, applied)
                  if op['op'] == 'move_path' and op['source'] != op['destination']}
    for outcome in outcomes:
        result = moves_back.get(outcome['path']) if outcome['action'] == 'restored' else None
        if result is not None and result['status'] != 'ok':
            outcome.update(action='failed' if result['status'] == 'error' else 'skipped', error=result['error'])


def run(host: Host, layout: _layout.PlatformLayout, params: dict[str, t.Any], *, check_mode: bool,
        now: datetime.datetime, entry_token: str) -> dict[str, t.Any]:
    check_quarantine(params, ARGUMENT_SPEC)
    probe = host.run_batch(probe_operations(layout, params.get('users'), params.get('exclude_users')), check_mode=True)
    entries, unreadable, processes = collect(layout, params, probe)
    result: dict[str, t.Any] = {'changed': False, 'state': params['state'], 'unreadable': unreadable,
                                'skipped_profiles': skipped_profiles(operation_data(probe, 0)),
                                'entries': [e.describe() for e in entries]}
    if params['state'] == 'listed':
        return result
    if params['state'] == 'restored':
        displaced_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{entry_token}"
        operations, outcomes, touched = plan_restore(entries, processes, layout, params, displaced_id, now)
        result['restored'] = outcomes
    else:
        touched = plan_purge(entries, params, now)
        operations = [operation for e in touched for operation in (
            {'op': 'remove_path', 'group': e.directory, 'path': e.directory,
             'within': user_anchor(layout, e.profile)(e.directory)},
            {'op': 'remove_record', 'group': e.directory, 'namespace': RECORD_NAMESPACE, 'key': e.manifest.record_key})]
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

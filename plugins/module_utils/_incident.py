# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""incident: the host's memory of what the ladder tried for an incident, per user.

Private to this collection. One trusted record per incident in the
administrator-only store (namespace ``incidents``: Windows
``HKLM\\SOFTWARE\\loopbreaker\\notion\\records\\incidents``, POSIX
``<state_dir>/records/incidents``), never a file users can write. A record:

    {"format": 1, "id": ..., "opened": ts, "updated": ts, "state": opened|escalated|resolved,
     "users": {name: {"attempts": [{"rung", "at", "before": [codes], "after": [codes], "outcome"}]}}}

``expired`` is computed, not stored: a record not updated for ``expire_days``.
Opening an expired incident starts it again (the old attempts are kept under
``previous``). Recording the same rung twice for a user with the same outcome
changes nothing, so a retried ladder run is idempotent.
"""
from __future__ import annotations

import datetime
import json
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._diagnose import INCIDENT_ID, INCIDENT_NAMESPACE, RUNGS
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import Host, RequestError, operation_data
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import check_text_options

STATES = ('listed', 'opened', 'escalated', 'resolved')
ARGUMENT_SPEC: dict[str, t.Any] = {
    'id': {'type': 'str'},
    'state': {'type': 'str', 'default': 'listed', 'choices': list(STATES)},
    'rung': {'type': 'str', 'choices': list(RUNGS)},
    'users': {'type': 'list', 'elements': 'str', 'default': []},
    'before': {'type': 'list', 'elements': 'str', 'default': []},
    'after': {'type': 'list', 'elements': 'str', 'default': []},
    'expire_days': {'type': 'int', 'default': 7},
    'previous': {'type': 'str'},
    'profiles_root': {'type': 'path'},
    'state_dir': {'type': 'path'},
}
REQUIRED_IF: list[t.Any] = [['state', 'opened', ['id']], ['state', 'escalated', ['id', 'rung']],
                            ['state', 'resolved', ['id']]]
TIME_FORMAT = '%Y-%m-%dT%H:%M:%SZ'


MAX_EXPIRE_DAYS = 3650
# previous is a whole record (every user's attempts), not a short text: bounded apart.
MAX_PREVIOUS = 1_000_000


def validate(params: dict[str, t.Any]) -> None:
    check_text_options(params, {name: spec for name, spec in ARGUMENT_SPEC.items() if name != 'previous'})
    if params.get('previous') is not None and len(params['previous']) > MAX_PREVIOUS:
        raise RequestError(f"previous is too long: {len(params['previous'])} characters, at most {MAX_PREVIOUS}")
    if params.get('id') is not None and not INCIDENT_ID.fullmatch(params['id']):
        raise RequestError(f"id {params['id']!r} must be letters, digits, '.', '_' or '-' (at most 128, starting "
                           'with a letter or digit), such as a ticket number')
    if not 1 <= params['expire_days'] <= MAX_EXPIRE_DAYS:
        raise RequestError(f"expire_days must be between 1 and {MAX_EXPIRE_DAYS} (ten years), got {params['expire_days']}")
    if params['state'] in ('listed', 'opened') and (params.get('rung') or params['before'] or params['after']):
        raise RequestError(f"rung, before and after record an attempt: they apply to escalated and resolved, not "
                           f"{params['state']}")
    if params['state'] in ('escalated', 'resolved') and params.get('rung') and not params['users']:
        raise RequestError('an attempt needs the users it was applied to (users)')
    unknown = sorted({c for c in params['before'] + params['after'] if not c.replace('_', '').isalnum()})
    if unknown:
        raise RequestError(f'before and after are finding codes; not codes: {", ".join(unknown)}')


def effective_state(record: dict[str, t.Any], now: datetime.datetime, expire_days: int) -> str:
    updated = datetime.datetime.strptime(record['updated'], TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)
    if now - updated > datetime.timedelta(days=expire_days):
        return 'expired'
    return str(record['state'])


def tried_rungs(record: dict[str, t.Any] | None) -> list[str]:
    """Rungs applied for the incident (any user), in ladder order."""
    if not record:
        return []
    seen = {a['rung'] for user in record.get('users', {}).values() for a in user.get('attempts', [])}
    return [rung for rung in RUNGS if rung in seen]


def updated_record(record: dict[str, t.Any] | None, params: dict[str, t.Any],
                   now: datetime.datetime) -> dict[str, t.Any]:
    """The record after this call (a new dict); equal to record when nothing changes."""
    stamp = now.strftime(TIME_FORMAT)
    fresh = {'format': 1, 'id': params['id'], 'opened': stamp, 'updated': stamp, 'state': 'opened', 'users': {}}
    if record is None:
        new = fresh
    elif effective_state(record, now, params['expire_days']) == 'expired':
        new = {**fresh, 'previous': {k: record[k] for k in ('opened', 'updated', 'state', 'users')}}
    else:
        new = json.loads(json.dumps(record))
    if params['state'] == 'opened':
        return new
    changed = False
    if params.get('rung'):
        outcome = 'resolved' if params['state'] == 'resolved' else 'persists'
        for user in params['users']:
            attempts = new['users'].setdefault(user, {'attempts': []})['attempts']
            same = [a for a in attempts if a['rung'] == params['rung']]
            entry = {'rung': params['rung'], 'at': stamp, 'before': sorted(set(params['before'])),
                     'after': sorted(set(params['after'])), 'outcome': outcome}
            if same and all(same[-1][k] == entry[k] for k in ('after', 'outcome')):
                continue
            attempts.append(entry)
            changed = True
    if new['state'] != params['state']:
        new['state'] = params['state']
        changed = True
    if changed:
        new['updated'] = stamp
    return new


def run(host: Host, params: dict[str, t.Any], *, check_mode: bool, now: datetime.datetime) -> dict[str, t.Any]:
    validate(params)
    records: dict[str, dict[str, t.Any]] = {}
    unreadable: list[str] = []
    if params.get('previous') is not None and params['state'] != 'listed':
        # The record as this run's diagnose just read it from the host (the ladder passes it): the
        # same read one call earlier, so an attempt costs one bridge call, not two.
        try:
            known = json.loads(params['previous'])
        except ValueError:
            raise RequestError('previous must be the JSON of the incident record, or null') from None
        if known is not None:
            if not isinstance(known, dict) or known.get('id') != params['id'] or 'updated' not in known:
                raise RequestError(f"previous is not the record of incident {params['id']}")
            known.pop('tried', None)  # computed by this module's own result, never stored
            records[params['id']] = known
    else:
        envelope = host.run_batch([{'op': 'read_records', 'namespace': INCIDENT_NAMESPACE}], check_mode=True)
        for entry in operation_data(envelope, 0)['records']:
            try:
                records[entry['key']] = json.loads(entry['content'])
            except ValueError:
                unreadable.append(entry['key'])

    def shown(record: dict[str, t.Any]) -> dict[str, t.Any]:
        return {**record, 'state': effective_state(record, now, params['expire_days']), 'tried': tried_rungs(record)}
    if params['state'] == 'listed':
        chosen = [records[params['id']]] if params.get('id') in records else [] if params.get('id') else list(records.values())
        return {'changed': False, 'incidents': [shown(r) for r in chosen],
                'incident': shown(chosen[0]) if params.get('id') and chosen else None, 'unreadable': unreadable}
    if params['id'] in unreadable:
        raise RequestError(f"the record of incident {params['id']} is not valid JSON; nothing was changed")
    before = records.get(params['id'])
    after = updated_record(before, params, now)
    changed = after != before
    result = {'changed': changed, 'incident': shown(after),
              'diff': {'before': json.dumps(before, indent=1, sort_keys=True) + '\n' if before else '',
                       'after': json.dumps(after, indent=1, sort_keys=True) + '\n'}}
    if changed and not check_mode:
        write = host.run_batch([{'op': 'write_record', 'namespace': INCIDENT_NAMESPACE, 'key': params['id'],
                                 'content': json.dumps(after, sort_keys=True)}])
        operation_data(write, 0)
    return result

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report: rung results as outcomes named like Intune Remediations (controller-side, pure).

Internal to the collection. The callback ``loopbreaker.notion.fleet_report`` feeds every result
of a public module into a :class:`FleetReport`; the ``rung_outcome`` filter gives the role the
same outcome for ``set_stats``. Each module has one adapter turning its result into *subjects*
(a user, a proxy target) with a detection and a remediation state; a module without an adapter
(a future rung) gets the generic one, which reads ``users`` and ``status`` like the others return
them. ``diagnose`` and ``incident`` are no rungs: a host's first diagnosis is its state *before*, its
last one (the ladder's re-diagnosis) the state *after*, and the incident's record is kept beside them.
A ``ladder`` result (the whole climb in one task) is unpacked into those same results: its first and
last diagnosis, each step's rung module result, and each step's incident result; the relaunch of
Notion after a rung is part of that rung, not a rung of its own.
"""
from __future__ import annotations

import typing as t

SCHEMA = 'loopbreaker.notion/fleet-report'
SCHEMA_VERSION = 1
DETECTION = ('healthy', 'issue', 'error', 'not_applicable')
REMEDIATION = ('skipped', 'fixed', 'failed', 'pending')
# Worst first wins when subjects are rolled up into a rung and rungs into a host.
DETECTION_RANK = {'not_applicable': 0, 'healthy': 1, 'issue': 2, 'error': 3}
REMEDIATION_RANK = {'skipped': 0, 'fixed': 1, 'pending': 2, 'failed': 3}
# The ladder's order (_diagnose.RUNGS); rungs not listed (future ones) sort after these, in the order first seen.
LADDER = ('app_data', 'browser_data', 'sessions', 'proxy', 'restart', 'firewall', 'reinstall')
# Results that describe the host rather than change it.
OBSERVERS = ('diagnose', 'incident')
APP_RUNGS = {'restarted': 'restart', 'reinstalled': 'reinstall'}

Outcome = tuple[str, str]
FIXED: Outcome = ('issue', 'fixed')
HEALTHY: Outcome = ('healthy', 'skipped')
FAILED: Outcome = ('issue', 'failed')
STATUS_OUTCOMES: dict[str, Outcome] = {
    # app_data
    'cleared': FIXED, 'clean': HEALTHY,
    # proxy
    'changed': FIXED, 'unchanged': HEALTHY, 'not_configured': HEALTHY, 'unparsable': ('error', 'skipped'),
    # app
    'installed': FIXED, 'upgraded': FIXED, 'downgraded': FIXED, 'reinstalled': FIXED, 'removed': FIXED,
    'stopped': FIXED, 'restarted': FIXED, 'pending': ('issue', 'pending'),
    # every module
    'failed': FAILED,
}


class Subject(t.TypedDict):
    subject: str
    status: str
    detection: str
    remediation: str
    changes: list[str]
    moved: list[dict[str, t.Any]]
    restore: str | None
    note: str
    errors: list[str]


def rung_of(module: str, args: dict[str, t.Any], result: dict[str, t.Any]) -> str | None:
    """The rung a result of ``loopbreaker.notion.<module>`` belongs to; None for results that are no rung."""
    if module in ('win_bridge', *OBSERVERS) or (module == 'quarantine' and (args.get('state') or 'listed') == 'listed'):
        return None
    if module == 'app':
        state = args.get('state') or result.get('state') or ''
        return APP_RUNGS.get(state, 'app')
    return module


def worst(outcomes: t.Iterable[Outcome], default: Outcome = HEALTHY) -> Outcome:
    found = list(outcomes)
    if not found:
        return default
    return (max((o[0] for o in found), key=DETECTION_RANK.__getitem__),
            max((o[1] for o in found), key=REMEDIATION_RANK.__getitem__))


def _subject(name: str, status: str, outcome: Outcome, *, changes: list[str] | None = None,
             moved: list[dict[str, t.Any]] | None = None, restore: str | None = None, note: str = '',
             errors: list[str] | None = None) -> Subject:
    return {'subject': name, 'status': status, 'detection': outcome[0], 'remediation': outcome[1],
            'changes': changes or [], 'moved': moved or [], 'restore': restore, 'note': note, 'errors': errors or []}


def _status_outcome(status: str) -> Outcome:
    return STATUS_OUTCOMES.get(status, ('issue', 'pending'))


def _app_data(result: dict[str, t.Any]) -> list[Subject]:
    subjects = []
    for user in result.get('users') or []:
        moved = [{'from': i.get('path'), 'to': i.get('quarantine_path') if i['action'] == 'quarantined' else None,
                  'scope': i.get('scope'), 'bytes': i.get('bytes', 0)}
                 for i in user.get('items') or [] if i.get('action') in ('quarantined', 'removed')]
        restore = None
        if result.get('quarantine_id') and any(m['to'] for m in moved):
            restore = (f"loopbreaker.notion.quarantine state=restored id={result['quarantine_id']} users={user['user']}"
                       f" (held in {user.get('quarantine_path')})")
        changes = [f"{len(moved)} item(s), {user.get('bytes', 0)} bytes moved aside"] if moved else []
        stopped = user.get('processes_stopped') or []
        if stopped:
            changes.append(f'{len(stopped)} Notion process(es) stopped')
        status = user.get('status', '')
        subjects.append(_subject(user['user'], status, _status_outcome(status), changes=changes, moved=moved,
                                 restore=restore, errors=list(user.get('errors') or [])))
    return subjects


def _proxy(result: dict[str, t.Any]) -> list[Subject]:
    subjects = []
    for target in result.get('targets') or []:
        status = target.get('status', '')
        changed = status == 'changed'
        subjects.append(_subject(
            target.get('name') or '-', status, _status_outcome(status),
            changes=[f"{target.get('before')!s} -> {target.get('after')!s}"] if changed else [],
            restore='loopbreaker.notion.proxy mode=restore (the original settings are recorded on the host)' if changed else None,
            note='; '.join(target.get('notes') or []) if status not in ('failed', 'unparsable') else '',
            errors=list(target.get('notes') or []) if status in ('failed', 'unparsable') else []))
    return subjects


def _app(result: dict[str, t.Any]) -> list[Subject]:
    subjects = []
    for user in result.get('users') or []:
        status = user.get('status', '')
        reason = user.get('reason') or ''
        done = _status_outcome(status) == FIXED
        changes = [f"{status}: {user.get('version_before') or 'not installed'} -> {user.get('version_after') or 'not installed'}"] if done else []
        restore = None
        if user.get('quarantine_id'):
            restore = f"loopbreaker.notion.quarantine state=restored id={user['quarantine_id']} users={user['user']}"
        subjects.append(_subject(user['user'], status, _status_outcome(status), changes=changes, restore=restore,
                                 note='' if status == 'failed' else reason, errors=[reason] if status == 'failed' and reason else []))
    return subjects


FIREWALL_RESTORE = ('loopbreaker.notion.firewall state=restored puts recorded block rules back; '
                    'state=absent removes the allow rules')


def _firewall_program(program: dict[str, t.Any], handled: set[str]) -> Subject:
    name = f"{program.get('user') or 'machine'}: {program.get('path')}"
    if 'status_before' in program:  # macOS Application Firewall
        moved_on = program['status_before'] != program.get('status')
        outcome = FIXED if moved_on else (HEALTHY if program.get('status') == 'allowed' else ('issue', 'pending'))
        changes = [f"{program['status_before']} -> {program.get('status')}"] if moved_on else []
        return _subject(name, program.get('status', ''), outcome, changes=changes, restore=FIREWALL_RESTORE if changes else None)
    rules = program.get('rules') or []
    changes = [f"allow rule {r['name']} {r['status']}" for r in rules if r.get('status') in ('added', 'corrected', 'removed')]
    changes += [f'block rule {c} disabled or removed' for c in program.get('conflicts') or [] if c in handled]
    unhandled = [c for c in program.get('conflicts') or [] if c not in handled]
    if any(r.get('status') in ('failed', 'skipped') for r in rules):
        outcome, status = FAILED, 'failed'
    elif unhandled:
        outcome, status = ('issue', 'pending'), 'blocked'
    elif changes:
        outcome, status = FIXED, 'changed'
    else:
        outcome, status = HEALTHY, 'unchanged'
    errors = [f"allow rule {r['name']} {r['status']}" for r in rules if r.get('status') in ('failed', 'skipped')]
    return _subject(name, status, outcome, changes=changes, restore=FIREWALL_RESTORE if changes else None,
                    note='; '.join(f'block rule {c} still applies (conflicts=report)' for c in unhandled), errors=errors)


def _firewall(result: dict[str, t.Any]) -> list[Subject]:
    handled = {r.get('name') for key in ('disabled', 'removed') for r in result.get(key) or []}
    return [_firewall_program(p, handled) for p in result.get('programs') or [] if p.get('covered', True)]


def _generic(result: dict[str, t.Any]) -> list[Subject]:
    subjects = []
    for user in result.get('users') or result.get('targets') or []:
        if isinstance(user, dict) and 'status' in user:
            status = user['status']
            subjects.append(_subject(str(user.get('user') or user.get('name')), status, _status_outcome(status),
                                     errors=list(user.get('errors') or [])))
    return subjects


ADAPTERS: dict[str, t.Callable[[dict[str, t.Any]], list[Subject]]] = {
    'app_data': _app_data, 'sessions': _app_data, 'proxy': _proxy, 'app': _app, 'restart': _app, 'reinstall': _app,
    'firewall': _firewall,
}


def rung_record(rung: str, module: str, result: dict[str, t.Any], *, check_mode: bool, task: str = '') -> dict[str, t.Any]:
    """One rung of one host: outcome, subjects, manual actions, failures."""
    failed = bool(result.get('failed'))
    message = str(result.get('msg') or '')
    if result.get('not_applicable'):
        subjects: list[Subject] = []
        outcome: Outcome = ('not_applicable', 'skipped')
    else:
        subjects = ADAPTERS.get(rung, _generic)(result)
        if check_mode:
            for subject in subjects:
                if subject['remediation'] == 'fixed':
                    subject['remediation'] = 'pending'
        fallback = (FIXED if result.get('changed') else HEALTHY)
        outcome = worst(((s['detection'], s['remediation']) for s in subjects), default=fallback)
        if failed:
            outcome = worst([outcome, ('error', 'failed') if not subjects else FAILED])
        if check_mode and outcome[1] == 'fixed':
            outcome = (outcome[0], 'pending')
    failures = [{'subject': s['subject'], 'message': e} for s in subjects for e in s['errors'] if s['remediation'] == 'failed']
    if failed and (message or not failures):
        failures.append({'subject': None, 'message': message or 'the task failed'})
    return {
        'rung': rung, 'module': f'loopbreaker.notion.{module}', 'task': task, 'changed': bool(result.get('changed')),
        'check_mode': check_mode, 'detection': outcome[0], 'remediation': outcome[1],
        'message': message if (failed or result.get('not_applicable')) else '',
        'quarantine_id': result.get('quarantine_id'), 'quarantine_ids': quarantine_ids(result), 'subjects': subjects,
        # Only where they apply: a rung that found nothing to do hands nothing on to a person.
        'manual_actions': list(result.get('manual_actions') or []) if outcome[0] in ('issue', 'error') else [],
        'failures': failures,
    }


def quarantine_ids(result: dict[str, t.Any]) -> list[str]:
    """Every quarantine entry a result made: the run's id, and the per-user ids (app's removed user data)."""
    users = [user for user in result.get('users') or [] if isinstance(user, dict)]
    found = [result.get('quarantine_id')] + [user.get('quarantine_id') for user in users]
    return sorted({value for value in found if isinstance(value, str) and value})


def _rung_order(rung: str, seen: list[str]) -> tuple[int, int]:
    if rung in LADDER:
        return (0, LADDER.index(rung))
    return (1, seen.index(rung) if rung in seen else len(seen))


def diagnosis_state(result: dict[str, t.Any]) -> dict[str, t.Any]:
    """What a diagnose result says about the host: its verdict and each finding, for before/after."""
    findings = [{'code': f.get('code'), 'user': f.get('user'), 'rung': f.get('rung')}
                for f in result.get('findings') or [] if isinstance(f, dict)]
    return {'verdict': result.get('verdict'), 'codes': sorted({f['code'] for f in findings if f['code']}),
            'findings': findings}


class FleetReport:
    """Results in, report documents out. Hosts and rungs keep the order they were first seen in."""

    def __init__(self, *, run_id: str, started: str, check_mode: bool, collection_version: str,
                 ansible_core_version: str, incident_id: str | None = None, playbooks: list[str] | None = None) -> None:
        self.run = {'id': run_id, 'incident_id': incident_id, 'started': started, 'ended': None, 'check_mode': check_mode,
                    'playbooks': playbooks or [], 'collection_version': collection_version,
                    'ansible_core_version': ansible_core_version}
        self.hosts: dict[str, dict[str, t.Any]] = {}
        self._extra_rungs: list[str] = []

    def _host(self, host: str) -> dict[str, t.Any]:
        return self.hosts.setdefault(host, {'host': host, 'rungs': [], 'unreachable': None, 'before': None,
                                            'after': None, 'incident': None, 'observer_failures': []})

    def add_result(self, host: str, module: str, args: dict[str, t.Any], result: dict[str, t.Any], *,
                   check_mode: bool, task: str = '') -> dict[str, t.Any] | None:
        if module == 'ladder':
            self._add_ladder(host, result, check_mode=check_mode, task=task)
            return None
        if module in OBSERVERS and result.get('failed'):
            self._host(host)['observer_failures'].append({'rung': None, 'subject': module,
                                                          'message': str(result.get('msg') or 'the task failed')})
            return None
        if module == 'diagnose' and 'verdict' in result:
            record = self._host(host)
            record['after' if record['before'] is not None else 'before'] = diagnosis_state(result)
            return None
        if module == 'incident' and isinstance(result.get('incident'), dict):
            incident = result['incident']
            self._host(host)['incident'] = {'id': incident.get('id'), 'state': incident.get('state')}
            return None
        rung = rung_of(module, args, result)
        if rung is None:
            return None
        return self._add_rung(host, rung, module, result, check_mode=check_mode, task=task)

    def _add_rung(self, host: str, rung: str, module: str, result: dict[str, t.Any], *, check_mode: bool,
                  task: str) -> dict[str, t.Any]:
        if rung not in LADDER and rung not in self._extra_rungs:
            self._extra_rungs.append(rung)
        record = rung_record(rung, module, result, check_mode=check_mode, task=task)
        self._host(host)['rungs'].append(record)
        return record

    def _add_ladder(self, host: str, result: dict[str, t.Any], *, check_mode: bool, task: str) -> None:
        """The climb of loopbreaker.notion.ladder, as if each of its modules had been a task of its own."""
        diagnoses = result.get('diagnosis') if isinstance(result.get('diagnosis'), dict) else {}
        before, after = diagnoses.get('before'), diagnoses.get('after')
        self._host(host)
        if isinstance(before, dict):
            self.add_result(host, 'diagnose', {}, before, check_mode=check_mode, task=task)
        reported = False
        for step in result.get('steps') or []:
            if not isinstance(step, dict) or not step.get('rung') or not isinstance(step.get('result'), dict):
                continue
            module = str(step.get('module') or step['rung'])
            record = self._add_rung(host, str(step['rung']), module, step['result'], check_mode=check_mode,
                                    task=f"{task}: {step['rung']}" if task else str(step['rung']))
            reported = reported or bool(step['result'].get('failed'))
            relaunch = step.get('relaunch')
            if isinstance(relaunch, dict) and relaunch.get('failed'):
                record['failures'].append({'subject': None, 'message': 'relaunching Notion failed: '
                                           + str(relaunch.get('msg') or 'the task failed')})
                record['detection'], record['remediation'] = worst([(record['detection'], record['remediation']), FAILED])
                reported = True
            if isinstance(step.get('incident_result'), dict):
                reported = reported or bool(step['incident_result'].get('failed'))
                self.add_result(host, 'incident', {}, step['incident_result'], check_mode=check_mode, task=task)
        if isinstance(after, dict):
            self.add_result(host, 'diagnose', {}, after, check_mode=check_mode, task=task)
        if result.get('failed') and not reported:
            self._host(host)['observer_failures'].append({'rung': None, 'subject': 'ladder',
                                                          'message': str(result.get('msg') or 'the task failed')})

    def add_unreachable(self, host: str, message: str) -> None:
        self._host(host)['unreachable'] = message or 'unreachable'

    def rungs(self) -> list[str]:
        found = {r['rung'] for h in self.hosts.values() for r in h['rungs']}
        return sorted(found, key=lambda r: _rung_order(r, self._extra_rungs))

    def _host_document(self, host: dict[str, t.Any]) -> dict[str, t.Any]:
        rungs = sorted(host['rungs'], key=lambda r: _rung_order(r['rung'], self._extra_rungs))
        outcomes = [(r['detection'], r['remediation']) for r in rungs]
        if host['unreachable']:
            outcomes.append(('error', 'failed'))
        if host['observer_failures']:
            outcomes.append(('error', 'skipped'))
        before, after = host['before'], host['after']
        if before is not None:
            outcomes.append(('healthy' if before['verdict'] == 'healthy' else 'issue', 'skipped'))
        detection, remediation = worst(outcomes, default=('not_applicable', 'skipped'))
        if after is not None and after['verdict'] != 'healthy' and remediation in ('skipped', 'fixed'):
            remediation = 'pending'  # something is still found after the rungs: it is not fixed yet
        applied = [r['rung'] for r in rungs if r['detection'] != 'not_applicable']
        failures = [{'rung': r['rung'], **f} for r in rungs for f in r['failures']] + host['observer_failures']
        if host['unreachable']:
            failures.insert(0, {'rung': None, 'subject': None, 'message': f"unreachable: {host['unreachable']}"})
        manual = sorted({a for r in rungs for a in r['manual_actions']})
        return {'host': host['host'], 'rung_reached': applied[-1] if applied else None, 'detection': detection,
                'remediation': remediation, 'unreachable': bool(host['unreachable']), 'before': before, 'after': after,
                'incident': host['incident'], 'rungs': rungs, 'manual_actions': manual, 'failures': failures}

    def document(self, ended: str) -> dict[str, t.Any]:
        self.run['ended'] = ended
        hosts = [self._host_document(h) for h in self.hosts.values()]
        rungs = self.rungs()

        def counts(items: list[dict[str, t.Any]]) -> dict[str, dict[str, int]]:
            return {'detection': {s: sum(1 for i in items if i['detection'] == s) for s in DETECTION},
                    'remediation': {s: sum(1 for i in items if i['remediation'] == s) for s in REMEDIATION}}

        per_rung = {rung: counts([r for h in hosts for r in h['rungs'] if r['rung'] == rung]) for rung in rungs}
        return {'schema': SCHEMA, 'schema_version': SCHEMA_VERSION, 'run': dict(self.run),
                'states': {'detection': list(DETECTION), 'remediation': list(REMEDIATION)},
                'totals': {'hosts': len(hosts), **counts(hosts)}, 'rungs': rungs, 'per_rung': per_rung, 'hosts': hosts}


def stats_summary(document: dict[str, t.Any]) -> dict[str, t.Any]:
    """The small part of a report worth handing to AWX as artifacts."""
    return {'run_id': document['run']['id'], 'totals': document['totals'],
            'hosts': {h['host']: {'rung_reached': h['rung_reached'], 'detection': h['detection'],
                                  'remediation': h['remediation']} for h in document['hosts']}}

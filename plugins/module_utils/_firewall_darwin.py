# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall module on macOS: allow Notion.app through the Application Firewall.

Private to this collection. Profiles and apps are found with one LocalHost
probe (the same vocabulary as the Windows bridge); the firewall is read and
changed only through the commands declared in _socketfilterfw.py. The apps
this module added, and those it unblocked, are kept in a JSON record written
before the change, so ``absent`` removes only what we added and ``restored``
also blocks again what we unblocked.
"""
from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass, field

from ansible_collections.loopbreaker.notion.plugins.module_utils import _layout
from ansible_collections.loopbreaker.notion.plugins.module_utils import _socketfilterfw as sfw
from ansible_collections.loopbreaker.notion.plugins.module_utils._firewall import MACHINE, Program, Request
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import (
    Host,
    HostError,
    RequestError,
    operation_data,
    per_profile,
    select_profiles,
)

DARWIN_APP = '/Applications/Notion.app'
# The macOS record's own format: the Windows record moved to format 2 (complete rules), this one did not change.
RECORD_FORMAT = 1
DARWIN_USER_APP = '{ProfilePath}/Applications/Notion.app'
DARWIN_RECORD = '/Library/Application Support/loopbreaker/firewall-record.json'


class DarwinTools(t.Protocol):
    """What the macOS path needs from the host: run a command, keep the record file."""

    record_path: str

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        ...

    def read_record(self) -> str | None:
        ...

    def write_record(self, text: str) -> None:
        ...

    def delete_record(self) -> None:
        ...


@dataclass
class DarwinRecord:
    """Apps this module added to the Application Firewall, and apps it unblocked."""

    added: list[str] = field(default_factory=list)
    unblocked: list[str] = field(default_factory=list)
    exists: bool = False

    def to_json(self) -> str:
        return json.dumps({'format': RECORD_FORMAT, 'added': sorted(set(self.added)),
                           'unblocked': sorted(set(self.unblocked))}, sort_keys=True)

    @classmethod
    def parse(cls, text: str | None, path: str) -> DarwinRecord:
        if text is None:
            return cls()
        try:
            data = json.loads(text)
            paths = [p for key in ('added', 'unblocked') for p in data[key]]
            if data.get('format') != RECORD_FORMAT or not all(isinstance(p, str) for p in paths):
                raise ValueError('unknown format')
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise RequestError(f'the firewall record {path} cannot be read ({error}); nothing was changed. '
                               'Repair or delete it.') from None
        return cls(added=list(data['added']), unblocked=list(data['unblocked']), exists=True)


@dataclass
class DarwinChange:
    kind: str  # added | corrected | removed | restored
    app: str
    commands: tuple[str, ...]
    before: str
    after: str
    user: str | None
    reason: str
    error: str | None = None
    ran: list[str] = field(default_factory=list)


def probe_operations(layout: _layout.PlatformLayout, request: Request) -> list[dict[str, t.Any]]:
    return [
        {'op': 'get_profiles', 'shell_folders': dict(layout.shell_folders)},
        {'op': 'stat_paths', 'each_profile': True, 'patterns': [DARWIN_USER_APP]},
        {'op': 'stat_paths', 'patterns': [DARWIN_APP] + list(request.extra_programs)},
    ]


def discover_apps(request: Request, envelope: dict[str, t.Any]) -> tuple[list[Program], list[str], list[str]]:
    """(every Notion.app found, users without one, notices) from one LocalHost probe envelope."""
    profiles = operation_data(envelope, 0)['profiles']
    stats = per_profile(envelope, 1)
    machine = operation_data(envelope, 2)['entries']
    chosen = {p['sid'] for p in select_profiles(profiles, request.users, request.exclude_users, case_insensitive=True)}
    apps: dict[str, Program] = {}
    without, notices = [], []
    for profile in (p for p in profiles if not p['special']):
        stat = stats.get(profile['sid'])
        if stat is None or stat['status'] != 'ok':
            notices.append(f"{profile['username']}: could not look for Notion.app: {(stat or {}).get('error')}")
            continue
        found = [e['path'] for e in stat['data']['entries'] if e['type'] == 'directory']
        for path in found:
            apps.setdefault(path, Program(path, profile['username'], profile['sid'], 'profile', profile['sid'] in chosen))
        if profile['sid'] in chosen and not found:
            without.append(profile['username'])
    for entry in (e for e in machine if e['type'] == 'directory'):
        apps.setdefault(entry['path'], Program(entry['path'], MACHINE, None,
                                               'machine' if entry['pattern'] == DARWIN_APP else 'extra', True))
    notices += [f'extra_programs: {p} was not found' for p in request.extra_programs
                if not any(e['pattern'] == p and e['type'] == 'directory' for e in machine)]
    return list(apps.values()), without, notices


def _sfw(tools: DarwinTools, name: str, app: str | None = None) -> t.Any:
    """Run one declared query; HostError when it fails (nothing was changed by a query)."""
    rc, out, err = tools.run(sfw.argv(name, app))
    try:
        return sfw.parse(name, sfw.check_output(name, rc, out, err), app)
    except sfw.SocketFilterError as error:
        raise HostError(f'socketfilterfw: {error}') from None


class _AppStates:
    """Allowed / blocked / not_listed per app: --listapps first, --getappblocked for apps it does not name."""

    def __init__(self, tools: DarwinTools) -> None:
        self._tools = tools
        self.listed = {app.path: app.allowed for app in _sfw(tools, 'list_apps')}
        self._asked: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        if path in self.listed:
            return 'allowed' if self.listed[path] else 'blocked'
        if path not in self._asked:
            # Newer releases may list an app by bundle id; ask about the path itself.
            self._asked[path] = _sfw(self._tools, 'app_blocked', path)
        return self._asked[path]


@dataclass
class DarwinPlan:
    request: Request
    apps: list[Program]
    changes: list[DarwinChange] = field(default_factory=list)
    conflicts: list[dict[str, t.Any]] = field(default_factory=list)
    record: DarwinRecord = field(default_factory=DarwinRecord)
    record_after: DarwinRecord | None = None
    write_first: bool = False
    statuses: dict[str, str] = field(default_factory=dict)


def plan_darwin(request: Request, apps: list[Program], states: t.Callable[[str], str], record: DarwinRecord) -> DarwinPlan:
    plan = DarwinPlan(request, apps, record=record)
    covered = {app.path: app for app in apps if app.covered}
    for path in covered:
        plan.statuses[path] = states(path)
    if request.state == 'present':
        _plan_darwin_present(plan, covered)
        return plan
    known = {app.path for app in apps}

    def in_scope(path: str) -> bool:
        return path in covered or path not in known

    for path in [p for p in record.added if in_scope(p)]:
        status = plan.statuses.setdefault(path, states(path))
        if status != 'not_listed':
            plan.changes.append(DarwinChange('removed', path, ('remove',), status, 'not_listed', _user(covered, path),
                                             f'added by this module; state {request.state}'))
    if request.state == 'restored':
        for path in [p for p in record.unblocked if in_scope(p)]:
            status = plan.statuses.setdefault(path, states(path))
            if status != 'blocked':
                commands = ('block',) if status == 'allowed' else ('add', 'block')
                plan.changes.append(DarwinChange('restored', path, commands, status, 'blocked', _user(covered, path),
                                                 'was blocked before this module unblocked it'))
        plan.record_after = DarwinRecord([p for p in record.added if not in_scope(p)],
                                         [p for p in record.unblocked if not in_scope(p)], exists=True)
    else:
        removed = {c.app for c in plan.changes}
        plan.record_after = DarwinRecord([p for p in record.added if p not in removed], list(record.unblocked), exists=True)
        plan.conflicts = [_conflict(covered[p], 'left') for p, s in plan.statuses.items() if p in covered and s == 'blocked']
    return plan


def _conflict(app: Program, handling: str) -> dict[str, t.Any]:
    return {'program': app.path, 'matched_program': app.path, 'user': app.user, 'handling': handling}


def _user(covered: dict[str, Program], path: str) -> str | None:
    return covered[path].user if path in covered else None


def _plan_darwin_present(plan: DarwinPlan, covered: dict[str, Program]) -> None:
    added, unblocked = list(plan.record.added), list(plan.record.unblocked)
    for path, app in covered.items():
        status = plan.statuses[path]
        if status == 'not_listed':
            plan.changes.append(DarwinChange('added', path, ('add', 'unblock'), status, 'allowed', app.user, 'not listed'))
            added += [] if path in added else [path]
        elif status == 'blocked':
            handling = 'reported' if plan.request.conflicts == 'report' else 'unblocked'
            plan.conflicts.append(_conflict(app, handling))
            if handling == 'unblocked':
                plan.changes.append(DarwinChange('corrected', path, ('unblock',), status, 'allowed', app.user,
                                                 'blocked from incoming connections'))
                unblocked += [] if path in unblocked or path in added else [path]
    plan.record_after = DarwinRecord(added, unblocked, exists=True)
    plan.write_first = True


def apply_darwin(plan: DarwinPlan, tools: DarwinTools) -> bool:
    """Run the plan's commands; the record is written before anything it describes is changed.

    Afterwards the record is made to match what really happened. Returns whether the record file
    ends up different from how it was found.
    """
    initial = plan.record.to_json() if plan.record.exists else None
    current = initial
    planned = _record_after_run(plan)
    if plan.write_first and planned is not None and planned.to_json() != initial:
        current = planned.to_json()
        tools.write_record(current)
    for change in plan.changes:
        for command in change.commands:
            rc, out, err = tools.run(sfw.argv(command, change.app))
            try:
                sfw.check_output(command, rc, out, err)
            except sfw.SocketFilterError as error:
                change.error = str(error)
                break
            change.ran.append(command)
    final = _record_after_run(plan)
    wanted = None if final is None else final.to_json()
    if wanted != current:
        if wanted is None:
            tools.delete_record()
        else:
            tools.write_record(wanted)
    return wanted != initial


def _record_after_run(plan: DarwinPlan) -> DarwinRecord | None:
    """The record that describes what this run really did; None when nothing is left to record."""
    after = plan.record_after or plan.record
    added, unblocked = list(after.added), list(after.unblocked)
    for change in (c for c in plan.changes if c.error):
        if plan.request.state == 'present':
            if change.kind == 'added' and 'add' not in change.ran and change.app not in plan.record.added:
                added.remove(change.app)
            if change.kind == 'corrected' and change.app not in plan.record.unblocked:
                unblocked.remove(change.app)
        elif change.kind == 'removed' and change.app in plan.record.added:
            added += [change.app]
        elif change.kind == 'restored' and change.app in plan.record.unblocked:
            unblocked += [change.app]
    if not added and not unblocked and (plan.request.state != 'present' or not plan.record.exists):
        return None
    return DarwinRecord(added, unblocked, exists=True)


def record_touch_planned(plan: DarwinPlan) -> bool:
    """Whether a real run that succeeds would leave the record different (check mode's answer)."""
    final = _record_after_run(plan)
    return (None if final is None else final.to_json()) != (plan.record.to_json() if plan.record.exists else None)


def darwin_result(plan: DarwinPlan, state: sfw.GlobalState, verified: t.Callable[[str], str] | None,
                  tools: DarwinTools, without: list[str], notices: list[str], *, record_touched: bool) -> dict[str, t.Any]:
    errors = [f'{c.app}: {c.error}' for c in plan.changes if c.error]
    for change in plan.changes:
        if verified is not None and not change.error and verified(change.app) != change.after:
            change.error = f'expected {change.after} after the change, the firewall says {verified(change.app)}'
            errors.append(f'{change.app}: {change.error}')
    done = [c for c in plan.changes if not c.error]
    final = dict(plan.statuses)
    final.update({c.app: c.after for c in done})
    result: dict[str, t.Any] = {
        'changed': bool(done) or record_touched,
        'platform': 'darwin',
        'state': plan.request.state,
        'firewall': {'enabled': state.enabled, 'block_all': state.block_all, 'state': state.state},
        'programs': [{'path': a.path, 'user': a.user, 'sid': a.sid, 'source': a.source, 'covered': a.covered,
                      'status': final.get(a.path, 'unknown'), 'status_before': plan.statuses.get(a.path, 'unknown')}
                     for a in plan.apps],
        'users_without_notion': without,
        'conflicts': [{**c, 'handling': 'failed'} if any(x.app == c['program'] and x.error for x in plan.changes) else c
                      for c in plan.conflicts],
        'disabled': [],
        'record': {'path': tools.record_path, **json.loads((plan.record_after or plan.record).to_json())},
        'notices': notices + _darwin_notices(state),
        'diff': {'before_header': 'Application Firewall', 'after_header': 'Application Firewall',
                 'before': ''.join(f'{p}: {s}\n' for p, s in sorted(plan.statuses.items()) if s != 'not_listed'),
                 'after': ''.join(f'{p}: {s}\n' for p, s in sorted(final.items()) if s != 'not_listed')},
    }
    for kind in ('added', 'corrected', 'removed', 'restored'):
        result[kind] = [{'program': c.app, 'user': c.user, 'reason': c.reason, 'before': c.before, 'after': c.after,
                         'commands': [sfw.argv(cmd, c.app) for cmd in c.commands]} for c in done if c.kind == kind]
    if errors:
        result['failed'] = True
        result['msg'] = 'Some Application Firewall changes failed; what was done is listed: ' + '; '.join(errors)
    return result


def _darwin_notices(state: sfw.GlobalState) -> list[str]:
    if not state.enabled:
        return ['the Application Firewall is off; these rules take effect when it is turned on']
    if state.block_all:
        return ['the Application Firewall blocks all incoming connections, which overrides every per-app rule']
    return []


def run(host: Host, layout: _layout.PlatformLayout, params: dict[str, t.Any], *, check_mode: bool,
        tools: DarwinTools) -> dict[str, t.Any]:
    """The rung on macOS: one LocalHost probe, socketfilterfw queries, then (not in check mode) its changes."""
    request = Request.from_params(params, 'darwin')
    probe = host.run_batch(probe_operations(layout, request), check_mode=True)
    apps, without, notices = discover_apps(request, probe)
    state = _sfw(tools, 'global_state')
    record = DarwinRecord.parse(tools.read_record(), tools.record_path)
    plan = plan_darwin(request, apps, _AppStates(tools), record)
    verified = None
    if check_mode:
        touched = record_touch_planned(plan)
    else:
        touched = apply_darwin(plan, tools)
        if plan.changes:
            verified = _AppStates(tools)
    return darwin_result(plan, state, verified, tools, without, notices, record_touched=touched)

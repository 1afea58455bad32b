# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fix 4 of the runbook on Windows: each user's WinINET proxy, edited in their own hive.

Private to this collection. The Settings toggle only reaches the logged-on
user and WinRM runs as an administrator, so this reads and writes every
target user's ``Internet Settings`` through the bridge (logged-off users'
hives are loaded and always unloaded by the bridge). The blob logic is in
_inet_proxy; this module decides per user what to write, records the
original once, and puts it back on ``mode: restore``.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
import typing as t
from dataclasses import dataclass, field, replace

from ansible_collections.loopbreaker.notion.plugins.module_utils import _inet_proxy as blob
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import OPERATIONS
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import (
    Host,
    RequestError,
    operation_data,
    per_profile,
    profiles_operation,
    select_profiles,
    skipped_profiles,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import WINDOWS
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import check_common, shown

INTERNET_SETTINGS = 'Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings'
CONNECTIONS = INTERNET_SETTINGS + '\\Connections'
RECORD_KEY = 'Software\\loopbreaker\\notion\\proxy'
POLICY_KEY = 'SOFTWARE\\Policies\\Microsoft\\Windows\\CurrentVersion\\Internet Settings'
BLOB_NAMES = ('DefaultConnectionSettings', 'SavedLegacySettings')
LEGACY_TYPES = {'ProxyEnable': 'REG_DWORD', 'ProxyServer': 'REG_SZ', 'ProxyOverride': 'REG_SZ', 'AutoConfigURL': 'REG_SZ'}
WINHTTP_NAME = 'WinHttpSettings'
DISABLE_FLAGS = {'manual_proxy': blob.ProxyFlags.PROXY, 'pac': blob.ProxyFlags.AUTO_PROXY_URL,
                 'auto_detect': blob.ProxyFlags.AUTO_DETECT}

ARGUMENT_SPEC: dict[str, t.Any] = {
    'mode': {'type': 'str', 'required': True, 'choices': ['direct', 'bypass', 'restore']},
    'disable': {'type': 'list', 'elements': 'str', 'default': ['manual_proxy'],
                'choices': ['manual_proxy', 'pac', 'auto_detect']},
    'bypass_hosts': {'type': 'list', 'elements': 'str', 'no_log': False},
    'winhttp': {'type': 'str', 'default': 'keep', 'choices': ['keep', 'reset']},
    'users': {'type': 'list', 'elements': 'str'},
    'exclude_users': {'type': 'list', 'elements': 'str'},
    'services': {'type': 'list', 'elements': 'str'},
}
MUTUALLY_EXCLUSIVE: list[list[str]] = [['users', 'exclude_users']]
BYPASS_PATTERN = re.compile(r'[A-Za-z0-9.*:\[\]_-]+')


def validate(params: dict[str, t.Any]) -> None:
    """Checks the argument spec cannot express; raises RequestError."""
    check_common(params, ARGUMENT_SPEC)
    if params.get('services') is not None and not params['services']:
        raise RequestError('services must name at least one network service; leave it out to mean every enabled one')
    if any(not name.strip() for name in params.get('services') or ()):
        raise RequestError('services must not contain empty names')
    hosts = params.get('bypass_hosts')
    if hosts is not None and params['mode'] != 'bypass':
        raise RequestError(f"bypass_hosts only applies to mode bypass, not {params['mode']}")
    if hosts is not None and not [h for h in hosts if h.strip()]:
        raise RequestError('bypass_hosts must not be empty: leave it out to use the Notion hosts')
    for host in hosts or ():
        check_bypass_host(host)
    if params['mode'] != 'direct' and params['disable'] != ['manual_proxy']:
        raise RequestError('disable only applies to mode direct')
    if not params['disable']:
        raise RequestError('disable must name at least one of manual_proxy, pac, auto_detect')


def check_bypass_host(host: str) -> None:
    """One bypass_hosts entry: a single ASCII host pattern, as WinINET, networksetup and GNOME take it."""
    pattern = host.strip()
    if not pattern:
        raise RequestError('bypass_hosts must not contain empty entries')
    if re.search(r'[;,\s]', pattern):
        raise RequestError(f'bypass_hosts entries are single host patterns (no ";", "," or whitespace), got {shown(host)}')
    if not pattern.isascii():
        raise RequestError(f'bypass_hosts entries must be ASCII: write an internationalised name in its punycode '
                           f'form (xn--...), got {shown(host)}')
    if not pattern.strip('*.'):
        raise RequestError(f'bypass_hosts entry {shown(host)} would bypass the proxy for every host: use mode: direct '
                           'to turn the proxy off')
    if pattern not in ('<local>', '<-loopback>') and not BYPASS_PATTERN.fullmatch(pattern):
        raise RequestError(f'bypass_hosts entries are host names, addresses or patterns like *.example.com '
                           f'(letters, digits, ".", "-", "*", ":", "[]"), got {shown(host)}')


def bypass_hosts(params: dict[str, t.Any]) -> list[str]:
    return [h.strip() for h in params.get('bypass_hosts') or blob.NOTION_BYPASS_HOSTS if h.strip()]


@dataclass
class Target:
    """One place proxy settings live: a user's hive, or HKLM under the machine-wide policy."""

    label: str
    sid: str | None
    internet_settings: str
    connections: str
    record_key: str
    legacy: dict[str, t.Any] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    record: dict[str, t.Any] = field(default_factory=dict)
    error: str | None = None


def probe_operations(params: dict[str, t.Any] | None = None) -> list[dict[str, t.Any]]:
    user = {'sid': '{Sid}', 'each_profile': True}
    return [
        profiles_operation(WINDOWS.shell_folders, (params or {}).get('users'), (params or {}).get('exclude_users')),
        {'op': 'read_registry', 'key': INTERNET_SETTINGS, 'names': list(LEGACY_TYPES), **user},
        {'op': 'read_registry', 'key': CONNECTIONS, 'names': list(BLOB_NAMES), **user},
        {'op': 'read_registry', 'key': RECORD_KEY, **user},
        {'op': 'read_registry', 'key': POLICY_KEY, 'names': ['ProxySettingsPerUser']},
        {'op': 'read_registry', 'key': INTERNET_SETTINGS, 'names': list(LEGACY_TYPES)},
        {'op': 'read_registry', 'key': CONNECTIONS, 'names': list(BLOB_NAMES) + [WINHTTP_NAME]},
        {'op': 'read_registry', 'key': RECORD_KEY},
    ]


def _values(read: dict[str, t.Any]) -> dict[str, t.Any]:
    return read['values'] if read.get('exists') else {}


def _fill(target: Target, legacy: dict[str, t.Any], connections: dict[str, t.Any], record: dict[str, t.Any]) -> Target:
    target.legacy = {name: value['data'] for name, value in _values(legacy).items() if name in LEGACY_TYPES}
    for name in BLOB_NAMES:
        value = _values(connections).get(name)
        if value is not None:
            target.blobs[name] = base64.b64decode(value['data'])
    # WinHTTP's record shares the machine key but is restored on its own (plan_winhttp).
    target.record = {name: value['data'] for name, value in _values(record).items() if name != WINHTTP_NAME}
    return target


def collect_targets(params: dict[str, t.Any], envelope: dict[str, t.Any]) -> tuple[list[Target], bool, dict[str, t.Any]]:
    """(targets, machine_wide, HKLM Connections values) from one probe envelope."""
    policy = _values(operation_data(envelope, 4)).get('ProxySettingsPerUser')
    machine_wide = policy is not None and policy['data'] == 0
    machine_connections = operation_data(envelope, 6)
    if machine_wide:
        # Per-user settings are ignored under this policy; naming users would suggest otherwise.
        named = [option for option in ('users', 'exclude_users') if params.get(option)]
        if named:
            raise RequestError(f'{" and ".join(named)} cannot apply: ProxySettingsPerUser is 0 (machine-wide proxy '
                               'policy), so only the machine-wide settings matter; nothing was changed')
        machine = Target('(machine)', None, INTERNET_SETTINGS, CONNECTIONS, RECORD_KEY)
        return [_fill(machine, operation_data(envelope, 5), machine_connections, operation_data(envelope, 7))], \
            True, _values(machine_connections)
    profiles_data = operation_data(envelope, 0)
    profiles = profiles_data['profiles']
    reads = [per_profile(envelope, index) for index in (1, 2, 3)]
    targets = []
    for profile in select_profiles(profiles, params.get('users'), params.get('exclude_users'), case_insensitive=True,
                                   skipped=profiles_data.get('skipped')):
        target = Target(profile['username'], profile['sid'], INTERNET_SETTINGS, CONNECTIONS, RECORD_KEY)
        failed = [r[profile['sid']] for r in reads if r[profile['sid']]['status'] != 'ok']
        if failed:
            target.error = failed[0]['error']
        else:
            _fill(target, *(r[profile['sid']]['data'] for r in reads))
        targets.append(target)
    return targets, False, _values(machine_connections)


@dataclass
class TargetPlan:
    target: Target
    status: str
    before: dict[str, t.Any] | None = None
    after: dict[str, t.Any] | None = None
    operations: list[dict[str, t.Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _transform(settings: blob.ConnectionSettings, params: dict[str, t.Any]) -> blob.ConnectionSettings:
    if params['mode'] == 'direct':
        clear = 0
        for name in params['disable']:
            clear |= DISABLE_FLAGS[name]
        return blob.with_flags(settings, set=blob.ProxyFlags.DIRECT, clear=clear)
    if not settings.flags & blob.ProxyFlags.PROXY:
        return settings
    return blob.with_bypass_added(settings, bypass_hosts(params))


def _registry_values(blobs: dict[str, bytes]) -> dict[str, dict[str, t.Any]]:
    return {name: {'type': 'REG_BINARY', 'data': base64.b64encode(data).decode()} for name, data in blobs.items()}


def _legacy_operations(target: Target, wanted: dict[str, t.Any], group: str) -> list[dict[str, t.Any]]:
    writes = {name: {'type': LEGACY_TYPES[name], 'data': value} for name, value in wanted.items()
              if value is not None and target.legacy.get(name) != value}
    deletes = [name for name, value in wanted.items() if value is None and name in target.legacy]
    operations: list[dict[str, t.Any]] = []
    if writes:
        operations.append({'op': 'write_registry', 'key': target.internet_settings, 'values': writes, 'group': group})
    if deletes:
        operations.append({'op': 'delete_registry_values', 'key': target.internet_settings, 'names': deletes,
                           'group': group})
    return [_with_sid(op, target) for op in operations]


def _with_sid(operation: dict[str, t.Any], target: Target) -> dict[str, t.Any]:
    return {**operation, 'sid': target.sid} if target.sid else operation


def _record_operation(target: Target, now: datetime.datetime, mode: str, group: str) -> list[dict[str, t.Any]]:
    if target.record:
        return []
    values = _registry_values(target.blobs)
    legacy = json.dumps({n: target.legacy.get(n) for n in LEGACY_TYPES}, sort_keys=True)
    values['Legacy'] = {'type': 'REG_SZ', 'data': legacy}
    values['Mode'] = {'type': 'REG_SZ', 'data': mode}
    values['Recorded'] = {'type': 'REG_SZ', 'data': now.strftime('%Y-%m-%dT%H:%M:%SZ')}
    return [_with_sid({'op': 'write_registry', 'key': target.record_key, 'values': values, 'group': group}, target)]


def _parse_all(target: Target) -> dict[str, blob.ConnectionSettings]:
    return {name: blob.parse(data) for name, data in target.blobs.items()}


def plan_target(target: Target, params: dict[str, t.Any], now: datetime.datetime) -> TargetPlan:
    if target.error:
        return TargetPlan(target, 'failed', notes=[target.error])
    try:
        current = _parse_all(target)
    except blob.BlobFormatError as error:
        return TargetPlan(target, 'unparsable', notes=[f'left untouched: {error}'])
    before = blob.describe(current['DefaultConnectionSettings']) if 'DefaultConnectionSettings' in current else None
    if params['mode'] == 'restore':
        return _plan_restore(target, current, before)
    if before is None:
        return TargetPlan(target, 'not_configured', notes=['no DefaultConnectionSettings: WinINET uses no proxy'])
    group = target.sid or 'machine'
    changed = {name: _transform(settings, params) for name, settings in current.items()}
    primary = changed['DefaultConnectionSettings']
    # Decide on the blobs that exist: a missing SavedLegacySettings is only written alongside a real change.
    if all(changed[name] is current[name] for name in current):
        plan = TargetPlan(target, 'unchanged', before=before, after=before)
        if params['mode'] == 'bypass' and not primary.flags & blob.ProxyFlags.PROXY:
            plan.notes.append('no manual proxy in use: nothing to bypass'
                              + (' (a PAC script is in use: its own rules decide)' if primary.flags & blob.ProxyFlags.AUTO_PROXY_URL else ''))
        return plan
    changed.setdefault('SavedLegacySettings', primary)
    written = {name: blob.with_counter_incremented(settings) for name, settings in changed.items()}
    operations = _record_operation(target, now, params['mode'], group)
    operations.append(_with_sid({'op': 'write_registry', 'key': target.connections, 'group': group,
                                 'values': _registry_values({n: blob.build(s) for n, s in written.items()})}, target))
    operations += _legacy_operations(target, blob.legacy_values(written['DefaultConnectionSettings']), group)
    return TargetPlan(target, 'changed', before=before, after=blob.describe(written['DefaultConnectionSettings']),
                      operations=operations)


def _plan_restore(target: Target, current: dict[str, blob.ConnectionSettings],
                  before: dict[str, t.Any] | None) -> TargetPlan:
    if not target.record:
        return TargetPlan(target, 'unchanged', before=before, after=before, notes=['nothing recorded to restore'])
    group = target.sid or 'machine'
    try:
        recorded = {name: blob.parse(base64.b64decode(target.record[name])) for name in BLOB_NAMES if name in target.record}
        legacy = json.loads(target.record['Legacy'])
    except (blob.BlobFormatError, KeyError, ValueError, binascii.Error) as error:
        return TargetPlan(target, 'unparsable', before=before, notes=[f'the restore record is unreadable: {error}'])
    restored = {}
    for name, settings in recorded.items():
        counter = current[name].counter if name in current else settings.counter
        restored[name] = blob.with_counter_incremented(replace(settings, counter=counter))
    operations = []
    if restored:
        operations.append(_with_sid({'op': 'write_registry', 'key': target.connections, 'group': group,
                                     'values': _registry_values({n: blob.build(s) for n, s in restored.items()})}, target))
    missing = [name for name in BLOB_NAMES if name not in recorded and name in current]
    if missing:
        operations.append(_with_sid({'op': 'delete_registry_values', 'key': target.connections, 'names': missing,
                                     'group': group}, target))
    operations += _legacy_operations(target, legacy, group)
    operations.append(_with_sid({'op': 'delete_registry_values', 'key': target.record_key, 'group': group,
                                 'names': sorted(target.record)}, target))
    after = blob.describe(restored['DefaultConnectionSettings']) if 'DefaultConnectionSettings' in restored else None
    return TargetPlan(target, 'changed', before=before, after=after, operations=operations)


def plan_winhttp(machine_connections: dict[str, t.Any], machine_record: dict[str, t.Any], params: dict[str, t.Any],
                 now: datetime.datetime) -> tuple[dict[str, t.Any], list[dict[str, t.Any]]]:
    """WinHTTP's machine-wide proxy: reported always, reset or restored when asked."""
    value = machine_connections.get(WINHTTP_NAME)
    current = None
    report: dict[str, t.Any] = {'action': 'kept', 'before': None, 'after': None, 'error': None}
    if value is not None:
        try:
            current = blob.parse(base64.b64decode(value['data']))
            report['before'] = report['after'] = blob.describe(current)
        except blob.BlobFormatError as error:
            report['error'] = f'left untouched: {error}'
            return report, []
    recorded = machine_record.get(WINHTTP_NAME)
    if params['mode'] == 'restore' and recorded:
        report['action'] = 'restored'
        report['after'] = blob.describe(blob.parse(base64.b64decode(recorded)))
        return report, [{'op': 'write_registry', 'key': CONNECTIONS, 'group': 'winhttp',
                         'values': {WINHTTP_NAME: {'type': 'REG_BINARY', 'data': recorded}}},
                        {'op': 'delete_registry_values', 'key': RECORD_KEY, 'names': [WINHTTP_NAME], 'group': 'winhttp'}]
    if params['winhttp'] != 'reset' or current is None or params['mode'] == 'restore':
        return report, []
    direct = blob.ConnectionSettings(version=blob.VERSION_WINHTTP, counter=current.counter, flags=blob.ProxyFlags.DIRECT)
    if (current.flags, current.proxy_server, current.bypass_list) == (direct.flags, '', ''):
        return report, []
    reset = blob.with_counter_incremented(direct)
    report.update(action='reset', after=blob.describe(reset))
    operations = [] if recorded else [{'op': 'write_registry', 'key': RECORD_KEY, 'group': 'winhttp',
                                       'values': {WINHTTP_NAME: value}}]
    operations.append({'op': 'write_registry', 'key': CONNECTIONS, 'group': 'winhttp',
                       'values': {WINHTTP_NAME: {'type': 'REG_BINARY', 'data': base64.b64encode(blob.build(reset)).decode()}}})
    return report, operations


def _diff_line(plan: TargetPlan, side: str) -> str:
    state = plan.before if side == 'before' else plan.after
    if state is None:
        return f'{plan.target.label}: (no proxy settings)\n'
    return (f"{plan.target.label}: modes={','.join(state['modes']) or 'none'} proxy={state['proxy_server'] or '-'} "
            f"bypass={';'.join(state['bypass_list']) or '-'} pac={state['pac_url'] or '-'}\n")


def run(host: Host, params: dict[str, t.Any], *, check_mode: bool, now: datetime.datetime) -> dict[str, t.Any]:
    """The rung on Windows (the macOS and Linux paths are in the module, with _posix_proxy)."""
    validate(params)
    if params.get('services'):
        raise RequestError('services applies to macOS only; on Windows proxies are per user')
    envelope = host.run_batch(probe_operations(params), check_mode=True)
    targets, machine_wide, machine_connections = collect_targets(params, envelope)
    machine_record = {n: v['data'] for n, v in _values(operation_data(envelope, 7)).items()}
    plans = [plan_target(target, params, now) for target in targets]
    winhttp, winhttp_operations = plan_winhttp(machine_connections, machine_record, params, now)
    operations = [op for plan in plans for op in plan.operations] + winhttp_operations
    errors: list[str] = []
    # In check mode the plan is the answer; otherwise only writes that happened count.
    changed = bool(operations)
    if operations and not check_mode:
        results = host.run_batch(operations, check_mode=False)['results']
        changed = any(r['status'] == 'ok' and OPERATIONS[r['op']].mutates for r in results)
        failed_groups = {r['group'] for r in results if r['status'] != 'ok'}
        for plan in plans:
            if (plan.target.sid or 'machine') in failed_groups:
                plan.status = 'failed'
                plan.notes += [r['error'] for r in results if r['group'] == (plan.target.sid or 'machine') and r['error']]
        if 'winhttp' in failed_groups:
            winhttp.update(action='failed', after=winhttp['before'],
                           error='; '.join(r['error'] for r in results if r['group'] == 'winhttp' and r['error']))
        errors = [f"{r['op']}: {r['error']}" for r in results if r['status'] == 'error']
    errors += [f'{p.target.label}: {note}' for p in plans if p.status == 'failed' for note in p.notes
               if f'{p.target.label}: {note}' not in errors]
    result: dict[str, t.Any] = {
        'changed': changed,
        'platform': 'windows',
        'mode': params['mode'],
        'scope': 'machine' if machine_wide else 'user',
        'machine_wide_policy': machine_wide,
        'targets': [{'name': p.target.label, 'kind': 'user' if p.target.sid else 'machine', 'sid': p.target.sid,
                     'status': p.status, 'before': p.before, 'after': p.after, 'notes': p.notes} for p in plans],
        'winhttp': winhttp,
        'skipped_profiles': skipped_profiles(operation_data(envelope, 0)),
        'diff': {'before': ''.join(_diff_line(p, 'before') for p in plans),
                 'after': ''.join(_diff_line(p, 'after') for p in plans)},
    }
    if machine_wide:
        result['msg'] = ('ProxySettingsPerUser is 0 (machine-wide proxy policy): the machine-wide settings in HKLM '
                         'were used instead of each user\'s')
    if errors:
        result.update(failed=True, msg='; '.join(errors))
    return result

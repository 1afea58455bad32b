# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""diagnose: facts and a verdict for the connection loop, per user, and the rung each finding points to.

Private to this collection. Read-only on every path, so check mode gives the same
result. Two batches whatever the number of users: (1) local evidence — profiles,
each user's proxy settings, processes, block rules naming Notion.exe, installs and
their signatures, app-data sizes, bounded tails of the app's log and of LevelDB
``LOG`` files, the head of ``notion.db``, the incident record; (2) one
``probe_network`` of every endpoint through every distinct proxy setting, in
parallel on the host. ``evaluate`` turns the facts into findings (pure, tested by
tables); each finding has a stable code, the user, the evidence and its rung.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import json
import re
import time
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils import _inet_proxy as blob
from ansible_collections.loopbreaker.notion.plugins.module_utils import _diagnose_macos, _signature
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import (
    Host,
    RequestError,
    operation_data,
    per_profile,
    profiles_operation,
    select_profiles,
    skipped_profiles,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import LAYOUTS, PlatformLayout
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import check_common, shown

# The ladder, least disruptive first (design brief). browser_data's module lands in its own issue.
RUNGS: tuple[str, ...] = ('app_data', 'browser_data', 'sessions', 'proxy', 'restart', 'firewall', 'reinstall')

# code -> (rung it points to, what it means). Codes are stable: playbooks and reports key on them.
FINDINGS: dict[str, tuple[str | None, str]] = {
    'dns_failure': (None, "a Notion host does not resolve: a DNS or VPN problem outside the app (manual)"),
    'proxy_unreachable': ('proxy', "the user's proxy does not answer"),
    'notion_host_blocked': ('proxy', 'the route to a Notion host is refused (by the proxy, or at TCP)'),
    'tls_intercepted': ('proxy', "TLS to Notion is intercepted: the certificate comes from a CA that is not trusted"),
    'websocket_blocked': ('proxy', 'Engine.IO polling works but the WebSocket upgrade fails (the article\'s proxy cause)'),
    'http_error': ('proxy', 'a Notion host answers with an HTTP error'),
    'proxy_not_evaluated': (None, "the user's PAC file could not be evaluated here (no PAC engine on the host, or it "
                                  'names only SOCKS or HTTPS proxies, which the probes do not speak): the route the '
                                  'app takes is unknown, so the user is not reported healthy (manual)'),
    'block_rule': ('firewall', 'an enabled firewall block rule names the user\'s Notion.exe'),
    'install_missing': ('reinstall', 'the user has Notion data but no Notion install'),
    'install_unsigned': ('reinstall', 'Notion.exe is not validly signed by Notion Labs'),
    'renderer_crashed': ('restart', 'the app log reports a crashed renderer or child process since the cut-off'),
    'load_failed': ('app_data', 'the app log reports pages failing to load since the cut-off'),
    'cache_corrupt': ('app_data', 'notion.db or a LevelDB store is corrupt'),
    'user_unreadable': (None, "the user's profile or Notion data could not be read (access denied, a hive that could "
                              'not be loaded or unloaded, an unknown variable in a shell folder): nothing is known '
                              'about this user, so they are not healthy (manual)'),
}
# Notion's publisher as its Trusted Signing certificates name it, through Trusted Signing's CAs (docs/signatures.md).
NOTION_SIGNER = _signature.expectation()
SQLITE_HEADER = b'SQLite format 3\x00'
# Chromium net errors a proxy or TLS interception causes: a did-fail-load with one of them is a proxy matter.
PROXY_NET_ERRORS = {-106, -109, -111, -115, -118, -130, -131, -200, -202, -207, -336}

DEFAULT_ENDPOINTS: tuple[dict[str, t.Any], ...] = (
    {'name': 'www', 'host': 'www.notion.so', 'kind': 'https', 'path': '/'},
    {'name': 'app', 'host': 'app.notion.com', 'kind': 'https', 'path': '/'},
    {'name': 'msgstore-www', 'host': 'msgstore.www.notion.so', 'kind': 'engineio'},
    {'name': 'msgstore-001-www', 'host': 'msgstore-001.www.notion.so', 'kind': 'engineio'},
    {'name': 'msgstore-app', 'host': 'msgstore.app.notion.com', 'kind': 'engineio'},
)

ARGUMENT_SPEC: dict[str, t.Any] = {
    'users': {'type': 'list', 'elements': 'str'},
    'exclude_users': {'type': 'list', 'elements': 'str'},
    'endpoints': {'type': 'list', 'elements': 'dict', 'options': {
        'name': {'type': 'str'},
        'host': {'type': 'str', 'required': True},
        'port': {'type': 'int'},
        'kind': {'type': 'str', 'default': 'https', 'choices': ['https', 'engineio']},
        'path': {'type': 'str'},
    }},
    'port': {'type': 'int', 'default': 443},
    'resolve': {'type': 'dict'},
    'ca_bundle': {'type': 'str'},
    'timeout': {'type': 'int', 'default': 5},
    'since': {'type': 'str'},
    'log_window_minutes': {'type': 'int', 'default': 60},
    'proxy': {'type': 'str'},
    'no_proxy': {'type': 'str'},
    'network': {'type': 'bool', 'default': True},
    'incident': {'type': 'str'},
    'expect_proxies': {'type': 'list', 'elements': 'dict'},
    'profiles_root': {'type': 'path'},
    'state_dir': {'type': 'path'},
}
MUTUALLY_EXCLUSIVE: list[list[str]] = [['users', 'exclude_users']]
INCIDENT_NAMESPACE = 'incidents'
CONNECTIONS = 'Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\Connections'
POLICY_KEY = 'SOFTWARE\\Policies\\Microsoft\\Windows\\CurrentVersion\\Internet Settings'
LOG_LINE = re.compile(r'^\[(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.\d+)?\]')
INCIDENT_ID = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,127}')


MAX_LOG_WINDOW_MINUTES = 525600  # a year
HOST_NAME = re.compile(r'[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?')
URL_PATH = re.compile(r'/[\x21-\x7e]{0,2047}')


def validate(params: dict[str, t.Any]) -> None:
    check_common(params, ARGUMENT_SPEC)
    if not 1 <= params['timeout'] <= 60:
        raise RequestError('timeout must be between 1 and 60 seconds')
    if not 1 <= params['port'] <= 65535:
        raise RequestError('port must be between 1 and 65535')
    if not 1 <= params['log_window_minutes'] <= MAX_LOG_WINDOW_MINUTES:
        raise RequestError(f'log_window_minutes must be between 1 and {MAX_LOG_WINDOW_MINUTES} (a year), got '
                           f"{params['log_window_minutes']}")
    if params.get('since'):
        parse_time(params['since'])
    if params.get('incident') and not INCIDENT_ID.fullmatch(params['incident']):
        raise RequestError(f"incident {params['incident']!r} must be letters, digits, '.', '_' or '-' "
                           '(at most 128, starting with a letter or digit)')
    if params.get('endpoints') is not None and not params['endpoints']:
        raise RequestError('endpoints must not be empty: leave it out for Notion\'s hosts')
    for endpoint in params.get('endpoints') or []:
        check_endpoint(endpoint)
    for name, address in (params.get('resolve') or {}).items():
        if not isinstance(name, str) or not HOST_NAME.fullmatch(name) or len(name) > 253:
            raise RequestError(f'resolve keys must be host names, got {shown(name)}')
        try:
            ipaddress.ip_address(str(address))
        except ValueError:
            raise RequestError(f'resolve maps {name} to {shown(address)}, which is no IP address') from None
    for setting in params.get('expect_proxies') or []:
        check_proxy_setting(setting)


def check_endpoint(endpoint: dict[str, t.Any]) -> None:
    """An endpoints entry: a host name or IP address, a port, and a path that cannot smuggle a header in."""
    host = endpoint['host']
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not HOST_NAME.fullmatch(host) or len(host) > 253:
            raise RequestError(f'endpoints host must be a host name or an IP address, got {shown(host)}') from None
    if endpoint.get('port') is not None and not 1 <= endpoint['port'] <= 65535:
        raise RequestError(f"endpoints port must be between 1 and 65535, got {endpoint['port']}")
    if endpoint.get('path') is not None and not URL_PATH.fullmatch(endpoint['path']):
        raise RequestError(f"endpoints path must start with '/' and hold no spaces or control characters (at most "
                           f"2048), got {shown(endpoint['path'])}")


PROXY_MODES = ('direct', 'manual', 'pac', 'auto_detect')
PROXY_SETTING_KEYS = ('mode', 'server', 'bypass', 'pac_url')


def check_proxy_setting(setting: dict[str, t.Any]) -> None:
    """An expect_proxies entry: a proxy setting as facts.proxies of an earlier diagnosis lists it."""
    unknown = sorted(set(setting) - set(PROXY_SETTING_KEYS))
    if unknown:
        raise RequestError(f"expect_proxies entries take {', '.join(PROXY_SETTING_KEYS)}, not {', '.join(unknown)}")
    if setting.get('mode') not in PROXY_MODES:
        raise RequestError(f"expect_proxies mode must be one of {', '.join(PROXY_MODES)}, got {setting.get('mode')!r}")
    for key in PROXY_SETTING_KEYS[1:]:
        value = setting.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 2048 or any(
                ord(c) < 32 for c in value)):
            raise RequestError(f'expect_proxies {key} must be text without control characters, at most 2048 '
                               'characters')


def parse_time(text: str) -> datetime.datetime:
    try:
        value = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        raise RequestError(f'since must be an ISO 8601 time such as 2026-12-01T10:00:00Z, got {text!r}') from None
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def endpoints(params: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    chosen = params.get('endpoints') or [dict(e) for e in DEFAULT_ENDPOINTS]
    return [{'name': e.get('name') or e['host'], 'host': e['host'], 'port': e.get('port') or params['port'],
             'kind': e.get('kind') or 'https', **({'path': e['path']} if e.get('path') else {})} for e in chosen]


# ------------------------------------------------------------------ evidence
def user_paths(layout: PlatformLayout) -> dict[str, list[str]]:
    """Evidence files under every data root (on Windows the MSIX's virtualised AppData too, see _msix)."""
    join = layout.join
    roots = layout.data_roots()
    logs = [join(root, 'logs', 'log.log') for root in roots]
    if layout.name == 'darwin':
        logs.append('{ProfilePath}/Library/Logs/Notion/log.log')
    return {
        'logs': logs,
        'db': [join(root, 'notion.db') for root in roots],
        'leveldb': [path for root in roots for path in (
            join(root, 'Local Storage', 'leveldb', 'LOG'), join(root, 'IndexedDB', '*', 'LOG'),
            join(root, 'Partitions', '*', 'Local Storage', 'leveldb', 'LOG'),
            join(root, 'Partitions', '*', 'IndexedDB', '*', 'LOG'))],
    }


def probe_operations(layout: PlatformLayout, incident: str | None, users: list[str] | None = None,
                     exclude_users: list[str] | None = None) -> list[dict[str, t.Any]]:
    """Batch 1: everything local. Indexes are fixed (see collect)."""
    each = {'each_profile': True}
    paths = user_paths(layout)
    windows = layout.name == 'windows'
    operations: list[dict[str, t.Any]] = [
        profiles_operation(layout.shell_folders, users, exclude_users),
        {'op': 'stat_paths', 'patterns': list(layout.data_roots()), **each},
        {'op': 'read_file_tails', 'patterns': paths['logs'], 'max_bytes': 65536, **each},
        {'op': 'read_file_tails', 'patterns': paths['db'], 'max_bytes': 0, 'head_bytes': 100, **each},
        {'op': 'read_file_tails', 'patterns': paths['leveldb'], 'max_bytes': 8192, **each},
        # explorer.exe: a Windows user is logged on when they own one (the app module's rule too)
        {'op': 'list_processes', 'names': list(layout.process_names) + (['explorer.exe'] if windows else [])},
        {'op': 'read_records', 'namespace': INCIDENT_NAMESPACE} if incident else
        {'op': 'list_processes', 'names': []},
    ]
    if windows:
        operations += [
            {'op': 'read_registry', 'key': CONNECTIONS, 'names': ['DefaultConnectionSettings'], 'sid': '{Sid}', **each},
            {'op': 'read_registry', 'key': POLICY_KEY, 'names': ['ProxySettingsPerUser']},
            {'op': 'read_registry', 'key': CONNECTIONS, 'names': ['DefaultConnectionSettings']},
            {'op': 'list_firewall_rules', 'programs': ['*\\notion.exe']},
            {'op': 'get_file_info', 'paths': ['{Local AppData}\\Programs\\Notion\\Notion.exe'], **each},
            {'op': 'list_packages', 'names': ['*Notion*'], 'include_provisioned': True},
        ]
    return operations


def proxy_setting(data: bytes | None) -> dict[str, t.Any]:
    """WinINET's DefaultConnectionSettings as a probe_network proxy setting."""
    if not data:
        return {'mode': 'direct'}
    try:
        settings = blob.parse(data)
    except (blob.BlobFormatError, ValueError) as error:
        return {'mode': 'direct', 'error': f'unreadable DefaultConnectionSettings: {error}'}
    if settings.flags & blob.ProxyFlags.AUTO_PROXY_URL and settings.pac_url:
        return {'mode': 'pac', 'pac_url': settings.pac_url}
    if settings.flags & blob.ProxyFlags.PROXY and settings.proxy_server:
        return {'mode': 'manual', 'server': settings.proxy_server, 'bypass': settings.bypass_list}
    return {'mode': 'direct'}


def _registry_blob(read: dict[str, t.Any]) -> bytes | None:
    value = (read.get('values') or {}).get('DefaultConnectionSettings') if read.get('exists') else None
    if not value:
        return None
    try:
        return base64.b64decode(value['data'])
    except (binascii.Error, TypeError):
        return None


def _per(envelope: dict[str, t.Any], index: int, sid: str) -> t.Any:
    entry = per_profile(envelope, index).get(sid) or {}
    return entry.get('data') if entry.get('status') == 'ok' else None


def _failures(envelope: dict[str, t.Any], sid: str, indexes: tuple[int, ...]) -> list[str]:
    """Why the user's each_profile reads failed, operation by operation."""
    failed = []
    for index in indexes:
        entry = per_profile(envelope, index).get(sid) or {}
        if entry.get('status') == 'error':
            failed.append(f"{envelope['results'][index]['op']}: {entry.get('error')}")
    return failed


def collect(layout: PlatformLayout, params: dict[str, t.Any], envelope: dict[str, t.Any],
            posix_proxy: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """Facts per user from batch 1."""
    profiles_data = operation_data(envelope, 0)
    profiles = select_profiles(profiles_data['profiles'], params.get('users'), params.get('exclude_users'),
                               case_insensitive=layout.name == 'windows', skipped=profiles_data.get('skipped'))
    processes = operation_data(envelope, 5)['processes']
    incident = None
    if params.get('incident'):
        records = {r['key']: r['content'] for r in operation_data(envelope, 6)['records']}
        text = records.get(params['incident'])
        incident = json.loads(text) if text else None
    windows = layout.name == 'windows'
    machine_proxy = None
    rules: list[dict[str, t.Any]] = []
    packages: list[dict[str, t.Any]] = []
    provisioned: list[dict[str, t.Any]] = []
    if windows:
        policy = operation_data(envelope, 8)
        per_user = (policy.get('values') or {}).get('ProxySettingsPerUser') if policy.get('exists') else None
        if per_user is not None and per_user.get('data') == 0:
            machine_proxy = proxy_setting(_registry_blob(operation_data(envelope, 9)))
        rules = operation_data(envelope, 10)['rules']
        listed = operation_data(envelope, 12)
        packages = [p for p in listed['packages'] if 'calendar' not in p['name'].lower()]
        provisioned = [p for p in listed.get('provisioned', []) if 'calendar' not in p['display_name'].lower()]
    users = []
    for profile in profiles:
        sid = profile['sid']
        data = (_per(envelope, 1, sid) or {}).get('entries', [])
        fact: dict[str, t.Any] = {
            'user': profile['username'], 'sid': sid, 'profile_path': profile['profile_path'],
            'logged_on': any(p['owner_sid'] == profile.get('owner_sid', sid) and p['name'].lower() == 'explorer.exe'
                             for p in processes) if windows else bool(profile.get('loaded')),
            'notion_running': sorted(p['pid'] for p in processes if p['owner_sid'] == profile.get('owner_sid', sid)
                                     and p['name'].lower() != 'explorer.exe'),
            'data': {'exists': bool(data), 'bytes': sum(e.get('bytes') or 0 for e in data),
                     'roots': [e['path'] for e in data]},
            'logs': (_per(envelope, 2, sid) or {}).get('files', []),
            'db': (_per(envelope, 3, sid) or {}).get('files', []),
            'leveldb': (_per(envelope, 4, sid) or {}).get('files', []),
            # What could not be read is not "nothing there": such a user is never reported healthy.
            'errors': ([profile['error']] if profile.get('error') else []) + _failures(envelope, sid, (1, 2, 3, 4)),
        }
        if windows:
            fact['proxy'] = machine_proxy or proxy_setting(_registry_blob(_per(envelope, 7, sid) or {}))
            fact['proxy_scope'] = 'machine' if machine_proxy else 'user'
            exe = ((_per(envelope, 11, sid) or {}).get('files') or [{}])[0]
            msix = [p for p in packages if sid in (p.get('user_sids') or [])]
            # A provisioned package is registered for a user at their next logon: Notion is on its way.
            fact['install'] = {'nsis': exe if exe.get('exists') else None,
                               'msix': [{**{k: p.get(k) for k in ('name', 'version', 'install_location',
                                                                  'family_name', 'publisher')},
                                         'state': (p.get('user_states') or {}).get(sid, 'Installed')} for p in msix],
                               'provisioned': [{k: p.get(k) for k in ('display_name', 'family_name', 'version',
                                                                      'install_location')} for p in provisioned]}
            exe_path = (exe.get('path') or '').lower()
            fact['block_rules'] = [r for r in rules if r.get('action') == 'block' and r.get('enabled')
                                   and (r.get('program') or '').lower() == exe_path and exe_path]
        else:
            fact['proxy'] = posix_proxy or {'mode': 'direct'}
            fact['proxy_scope'] = 'host'
        users.append(fact)
    for fact in users:
        fact['logged_on'] = bool(fact['logged_on'])
    return {'users': users, 'incident': incident, 'skipped_profiles': skipped_profiles(profiles_data)}


def network_operations(params: dict[str, t.Any], users: list[dict[str, t.Any]]) -> tuple[list[dict[str, t.Any]], list[str]]:
    """Batch 2 and the distinct proxy settings it probes (as JSON keys, in order)."""
    keys: list[str] = []
    for fact in users:
        key = json.dumps({k: v for k, v in fact['proxy'].items() if k != 'error'}, sort_keys=True)
        fact['proxy_key'] = key
        if key not in keys:
            keys.append(key)
    return [network_operation(params, [json.loads(k) for k in keys])], keys


def network_operation(params: dict[str, t.Any], proxies: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    operation: dict[str, t.Any] = {'op': 'probe_network', 'endpoints': endpoints(params), 'proxies': proxies,
                                   'timeout_seconds': params['timeout']}
    if params.get('resolve'):
        operation['resolve'] = {str(k): str(v) for k, v in params['resolve'].items()}
    if params.get('ca_bundle'):
        operation['ca_bundle'] = params['ca_bundle']
    return operation


def early_probes(envelope: dict[str, t.Any], index: int, expected: list[dict[str, t.Any]],
                 keys: list[str]) -> tuple[list[dict[str, t.Any]], int] | None:
    """The first batch's probes, renumbered to keys, when they cover every setting the users have now.

    None when a user's setting was not among the expected ones (a proxy rung changed it) or the probe
    failed: then the second batch probes what the users have.
    """
    expected_keys = [json.dumps(setting, sort_keys=True) for setting in expected]
    if not set(keys) <= set(expected_keys):
        return None
    result = envelope['results'][index]
    if result['status'] != 'ok':
        return None
    probes = []
    for probe in result['data']['results']:
        key = expected_keys[probe['proxy_index']]
        if key in keys:
            probes.append({**probe, 'proxy_index': keys.index(key)})
    return probes, result['data']['elapsed_ms']


# ------------------------------------------------------------------ verdict
def _finding(code: str, user: str, evidence: list[str]) -> dict[str, t.Any]:
    rung, meaning = FINDINGS[code]
    return {'code': code, 'user': user, 'rung': rung, 'meaning': meaning, 'evidence': evidence}


def log_events(tail: str, cutoff: datetime.datetime | None) -> list[tuple[str, str]]:
    """(kind, line) of the crash and load-failure lines newer than cutoff, oldest first."""
    events = []
    stamp: datetime.datetime | None = None
    for line in tail.splitlines():
        match = LOG_LINE.match(line)
        if match:
            stamp = datetime.datetime.fromisoformat(f'{match.group(1)}T{match.group(2)}+00:00')
        if cutoff is not None and (stamp is None or stamp < cutoff):
            continue
        if 'render-process-gone' in line or 'child-process-gone' in line:
            events.append(('crash', line.strip()))
        elif 'did-fail-load' in line or 'did-fail-provisional-load' in line:
            events.append(('load', line.strip()))
    return events


def _net_code(line: str) -> int | None:
    match = re.search(r'(?:errorCode|code)[=: ]+(-\d+)', line) or re.search(r'\s(-\d{1,4})\s', line)
    return int(match.group(1)) if match else None


def local_findings(fact: dict[str, t.Any], cutoff: datetime.datetime | None, platform: str) -> list[dict[str, t.Any]]:
    user = fact['user']
    found = []
    crashes, loads = [], []
    for log in fact['logs']:
        for kind, line in log_events(log.get('tail') or '', cutoff):
            (crashes if kind == 'crash' else loads).append(f"{log['path']}: {line[:200]}")
    if crashes:
        found.append(_finding('renderer_crashed', user, crashes[-3:]))
    if loads:
        finding = _finding('load_failed', user, loads[-3:])
        codes = {_net_code(line) for line in loads}
        if codes & PROXY_NET_ERRORS:
            finding['rung'] = 'proxy'
        found.append(finding)
    corrupt = []
    for db in fact['db']:
        head = base64.b64decode(db.get('head') or '')
        if db.get('bytes') and not head.startswith(SQLITE_HEADER):
            corrupt.append(f"{db['path']}: no SQLite header ({head[:16]!r})")
        if db.get('quick_check') not in (None, 'ok'):
            corrupt.append(f"{db['path']}: PRAGMA quick_check: {db['quick_check']}")
    for log in fact['leveldb']:
        lines = [line for line in (log.get('tail') or '').splitlines() if 'Corruption' in line]
        if lines:
            corrupt.append(f"{log['path']}: {lines[-1].strip()[:200]}")
    if corrupt:
        found.append(_finding('cache_corrupt', user, corrupt))
    if platform == 'darwin':
        found += [_finding(code, user, evidence) for code, evidence in _diagnose_macos.install_findings(fact)]
    if platform == 'windows':
        for rule in fact.get('block_rules') or []:
            found.append(_finding('block_rule', user, [f"rule {rule['name']} ({rule.get('display_name')}) blocks "
                                                       f"{rule['direction']} for {rule['program']}"]))
        install = fact.get('install') or {}
        nsis = install.get('nsis')
        if fact['data']['exists'] and not nsis and not install.get('msix') and not install.get('provisioned'):
            found.append(_finding('install_missing', user, ['no Notion.exe under Local AppData\\Programs\\Notion, '
                                                            'no MSIX package for the user and none provisioned']))
        if nsis:
            problem = _signature.signature_problem(nsis['path'], nsis.get('signature'), NOTION_SIGNER)
            if problem is not None:
                found.append(_finding('install_unsigned', user, [problem]))
    return found


def network_findings(fact: dict[str, t.Any], probes: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    user = fact['user']
    by_code: dict[str, list[str]] = {}

    def add(code: str, text: str) -> None:
        by_code.setdefault(code, []).append(text)
    for probe in probes:
        if probe['ok']:
            continue
        step, steps, where = probe['failed_step'], probe['steps'], f"{probe['host']}:{probe['port']}"
        via = f" via {probe['proxy']}" if probe.get('proxy') else ' direct'
        pac = probe.get('pac') or {}
        if pac.get('entry'):
            via += f" (PAC {pac['url']}: {pac['entry']})"
        elif pac.get('error') and step != 'pac':
            via += f" (PAC {pac['url']} not used: {pac['error']})"
        if step == 'pac':
            add('proxy_not_evaluated', f'{where}: PAC {pac.get("url")}: {probe["error"]}')
        elif step == 'dns':
            add('dns_failure', f'{where}{via}: {probe["error"]}')
        elif step == 'proxy':
            add('proxy_unreachable', f'{where}{via}: {probe["error"]}')
        elif step in ('connect', 'tcp'):
            add('notion_host_blocked', f'{where}{via}: {probe["error"]}')
        elif step == 'tls':
            issuer = steps.get('tls', {}).get('issuer')
            if issuer:
                add('tls_intercepted', f'{where}{via}: certificate issued by {issuer!r}, not trusted')
            else:
                add('notion_host_blocked', f'{where}{via}: {probe["error"]}')
            behind = steps.get('behind_interception') or {}
            if behind.get('polling') and not behind.get('websocket'):
                add('websocket_blocked', f'{where}{via}: behind the interception, Engine.IO polling works and the '
                                         f'WebSocket upgrade fails ({behind.get("error")})')
        elif step == 'websocket':
            add('websocket_blocked', f'{where}{via}: Engine.IO polling works, {probe["error"]}')
        else:
            add('http_error', f'{where}{via}: {probe["error"]}')
    found = [_finding(code, user, evidence) for code, evidence in by_code.items()]
    for finding in found:
        if finding['code'] in ('notion_host_blocked', 'http_error') and fact['proxy'].get('mode') == 'direct':
            finding['rung'] = 'firewall' if finding['code'] == 'notion_host_blocked' else None
    return found


def evaluate(facts: dict[str, t.Any], probes: list[dict[str, t.Any]], keys: list[str], *,
             cutoff: datetime.datetime | None, platform: str) -> dict[str, t.Any]:
    """Findings per user and the verdict; pure."""
    users = []
    findings: list[dict[str, t.Any]] = []
    for fact in facts['users']:
        index = keys.index(fact['proxy_key']) if fact.get('proxy_key') in keys else None
        mine = [p for p in probes if p['proxy_index'] == index]
        if fact.get('errors'):
            found = [_finding('user_unreadable', fact['user'], list(fact['errors']))]
            users.append({'user': fact['user'], 'verdict': 'unhealthy', 'findings': found,
                          'logged_on': fact['logged_on'], 'notion_running': bool(fact['notion_running'])})
            findings += found
            continue
        install = fact.get('install', {})
        has_notion = fact['data']['exists'] or any(bool(install.get(kind)) for kind in ('nsis', 'msix', 'bundles'))
        if not has_notion:
            users.append({'user': fact['user'], 'verdict': 'not_applicable', 'findings': [],
                          'logged_on': fact['logged_on']})
            continue
        found = network_findings(fact, mine) + local_findings(fact, cutoff, platform)
        users.append({'user': fact['user'], 'verdict': 'unhealthy' if found else 'healthy', 'findings': found,
                      'logged_on': fact['logged_on'], 'notion_running': bool(fact['notion_running'])})
        findings += found
    rungs = sorted({f['rung'] for f in findings if f['rung']}, key=RUNGS.index)
    return {'verdict': 'unhealthy' if findings else 'healthy', 'findings': findings, 'users': users,
            'rungs': rungs, 'manual_actions': sorted({f['meaning'] for f in findings if not f['rung']})}


def cutoff_for(params: dict[str, t.Any], now: datetime.datetime) -> datetime.datetime:
    window = now - datetime.timedelta(minutes=params['log_window_minutes'])
    since = parse_time(params['since']) if params.get('since') else None
    return max(window, since) if since else window


def run(host: Host, params: dict[str, t.Any], *, platform: str, now: datetime.datetime,
        posix_proxy: dict[str, t.Any] | None = None,
        annotate: t.Callable[[dict[str, t.Any]], None] | None = None) -> dict[str, t.Any]:
    """The whole module on any host: at most two batches, both read-only."""
    validate(params)
    started = time.monotonic()
    layout = LAYOUTS[platform]
    local = probe_operations(layout, params.get('incident'), params.get('users'), params.get('exclude_users'))
    expected = [{k: v for k, v in setting.items() if v is not None} for setting in params.get('expect_proxies') or []]
    early = params['network'] and bool(expected)
    if early:
        # The settings an earlier diagnosis found, probed in the same batch: a re-diagnosis after a
        # rung that left them alone costs one bridge call instead of two.
        local.append(network_operation(params, expected))
    first = host.run_batch(local, check_mode=True)
    facts = collect(layout, params, first, posix_proxy)
    if annotate is not None:
        annotate(facts)
    calls = 1
    probes: list[dict[str, t.Any]] = []
    keys: list[str] = []
    elapsed_network = 0
    if params['network'] and facts['users']:
        operations, keys = network_operations(params, facts['users'])
        reused = early_probes(first, len(local) - 1, expected, keys) if early else None
        if reused is not None:
            probes, elapsed_network = reused
        else:
            second = host.run_batch(operations, check_mode=True)
            calls += 1
            data = operation_data(second, 0)
            probes, elapsed_network = data['results'], data['elapsed_ms']
    cutoff = cutoff_for(params, now)
    last = last_attempt(facts['incident'])
    if last is not None and last > cutoff:
        cutoff = last  # evidence older than the incident's last rung says nothing about its effect
    verdict = evaluate(facts, probes, keys, cutoff=cutoff, platform=platform)
    for fact in facts['users']:
        fact.pop('proxy_key', None)
    return {
        'changed': False, 'platform': platform, **verdict,
        'facts': {'users': facts['users'], 'probes': probes, 'proxies': [json.loads(k) for k in keys],
                  'log_cutoff': cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')},
        'skipped_profiles': facts['skipped_profiles'], 'incident': facts['incident'], 'bridge_calls': calls,
        'elapsed_ms': int((time.monotonic() - started) * 1000), 'network_ms': elapsed_network,
    }


PAC_OPTION = re.compile(r'pac\+((?:https?|file)://\S+)', re.IGNORECASE)


def posix_proxy_from(params: dict[str, t.Any], environ: t.Mapping[str, str],
                     system_pac: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    """On macOS/Linux: the proxy option (host:port, or pac+URL), else the system's PAC setting
    (_posix_proxy.read_pac_setting), else https_proxy of the environment, else direct."""
    option = params.get('proxy') or ''
    pac = PAC_OPTION.fullmatch(option.strip())
    if pac:
        return {'mode': 'pac', 'pac_url': pac.group(1)}
    if option.lower().startswith('pac+'):
        raise RequestError(f'proxy {option!r}: a PAC file is given as pac+http://, pac+https:// or pac+file:// '
                           'and a URL')
    if not option and system_pac:
        return dict(system_pac)
    server = option or environ.get('https_proxy') or environ.get('HTTPS_PROXY') or ''
    bypass = params.get('no_proxy') if params.get('no_proxy') is not None else (
        environ.get('no_proxy') or environ.get('NO_PROXY') or '')
    if not server:
        return {'mode': 'direct'}
    return {'mode': 'manual', 'server': server.split('://', 1)[-1].rstrip('/'),
            'bypass': ';'.join(p if p.startswith('*') or not p.startswith('.') else '*' + p
                               for p in re.split(r'[,;\s]+', bypass) if p)}


def last_attempt(record: dict[str, t.Any] | None) -> datetime.datetime | None:
    stamps = [a['at'] for user in (record or {}).get('users', {}).values() for a in user.get('attempts', [])]
    return parse_time(max(stamps)) if stamps else None

"""The table of malformed arguments for every public module, on the simulated Windows host and Linux.

Generated from each module's ARGUMENT_SPEC (wrong types, unknown choices, NUL bytes, huge values,
numbers the spec cannot hold) plus hand-written rows for what only a person knows is wrong (empty
lists, path traversal, UNC paths, unicode names, conflicting options, the bugs of issue 7 item 7).
Every row says which options its message must name and the exact message per host.
test_bad_input.py runs the whole table in one ansible-playbook run per host.
"""
from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ansible_collections.loopbreaker.notion.plugins.module_utils import (
    _app,
    _app_data,
    _firewall,
    _proxy,
    _quarantine_state,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import (
    MAX_ENTRIES,
    MAX_INT_DIGITS,
    shown,
)

HOSTS = ('win', 'posix')
MODULES = ('app_data', 'quarantine', 'proxy', 'firewall', 'app')
SPECS: dict[str, dict[str, t.Any]] = {
    'app_data': _app_data.ARGUMENT_SPEC, 'quarantine': _quarantine_state.ARGUMENT_SPEC, 'proxy': _proxy.ARGUMENT_SPEC,
    'firewall': _firewall.ARGUMENT_SPEC, 'app': _app.ARGUMENT_SPEC,
}
# The least each module needs to get past the spec's required options.
BASE: dict[str, dict[str, t.Any]] = {'app_data': {}, 'quarantine': {}, 'proxy': {'mode': 'bypass'}, 'firewall': {},
                                     'app': {'state': 'stopped'}}
# Modules whose native side takes profiles_root (the sandboxed homes are passed on POSIX).
SANDBOXED = ('app_data', 'quarantine', 'firewall', 'app')
MAXIMUM_SECONDS = {('app_data', 'stop_timeout'): 3600, ('app', 'stop_timeout'): 3600, ('app', 'timeout'): 86400}
PROFILES = 'profiles on this host: alice, bob, carol'
SECRET = 's3cr3t-Pa55'
HUGE = 'x' * 5000
WINDOWS_PROFILES_ROOT = ("profiles_root applies to macOS and Linux hosts; on Windows the profiles come from the "
                         "host's ProfileList")
WINDOWS_STATE_DIR = ('state_dir applies to macOS and Linux hosts; on Windows trusted records are kept in '
                     'HKLM\\SOFTWARE\\loopbreaker\\notion')
WINDOWS_ONLY_MESSAGE = {'profiles_root': WINDOWS_PROFILES_ROOT, 'state_dir': WINDOWS_STATE_DIR}


@dataclass(frozen=True)
class Case:
    module: str
    name: str
    args: dict[str, t.Any]
    msg: str | dict[str, str]          # exact message, or one per host
    options: tuple[str, ...]           # the options the message must name
    hosts: tuple[str, ...] = HOSTS
    prefix: bool = False               # msg is a prefix (Ansible lists valid booleans in set order)
    secrets: tuple[str, ...] = field(default=())   # must appear nowhere in the result
    spec_only: bool = False            # refused by Ansible's own argument spec validation (see for_host)

    @property
    def key(self) -> str:
        return f'{self.module}: {self.name}'

    def message(self, host: str) -> str:
        return self.msg[host] if isinstance(self.msg, dict) else self.msg


def _choices(option_spec: dict[str, t.Any]) -> str:
    return ', '.join(option_spec['choices'])


def generated() -> list[Case]:
    """One row per option and kind of malformation the spec itself tells us about."""
    cases = []
    for module in MODULES:
        for option, spec in SPECS[module].items():
            kind = spec.get('type', 'str')
            base = BASE[module]
            if kind == 'int':
                cases.append(Case(module, f'{option} not a number', {**base, option: 'soon'},
                                  f"argument '{option}' is of type str and we were unable to convert to int: "
                                  "\"'soon'\" cannot be converted to an int", (option,), spec_only=True))
                for value in ('inf', '-Infinity', '1e400'):
                    cases.append(Case(module, f'{option} {value}', {**base, option: value},
                                      f'{option} must be a whole number of at most {MAX_INT_DIGITS} digits, got '
                                      f'{value!r}', (option,)))
                cases.append(Case(module, f'{option} zero', {**base, option: 0},
                                  f'{option} must be at least 1 second, got 0', (option,)))
                maximum = MAXIMUM_SECONDS[(module, option)]
                cases.append(Case(module, f'{option} huge', {**base, option: 10 ** 20},
                                  f'{option} must be at most {maximum} seconds, got {10 ** 20}', (option,)))
            elif kind == 'bool':
                cases.append(Case(module, f'{option} not a boolean', {**base, option: 'maybe'},
                                  f"argument '{option}' is of type str and we were unable to convert to bool: "
                                  "The value 'maybe' is not a valid boolean.", (option,), prefix=True, spec_only=True))
            elif kind == 'list':
                cases.append(Case(module, f'{option} a mapping', {**base, option: {'a': 1}},
                                  f"argument '{option}' is of type dict and we were unable to convert to list: "
                                  "<class 'dict'> cannot be converted to a list", (option,), spec_only=True))
            if 'choices' in spec:
                value = ['bogus'] if kind == 'list' else 'bogus'
                message = (f'value of {option} must be one or more of: {_choices(spec)}. Got no match for: bogus'
                           if kind == 'list' else f'value of {option} must be one of: {_choices(spec)}, got: bogus')
                cases.append(Case(module, f'{option} unknown choice', {**base, option: value}, message, (option,),
                                  spec_only=True))
                continue
            if kind in ('str', 'path') or (kind == 'list' and spec.get('elements') == 'str'):
                nul = 'a\x00b'
                value = [nul] if kind == 'list' else nul
                huge = [HUGE] if kind == 'list' else HUGE
                nul_message = f'{option} must not contain NUL characters, got {shown(nul)}'
                huge_message = f'{option} is too long: {len(HUGE)} characters, at most 4096'
                if option in WINDOWS_ONLY_MESSAGE and module != 'app':
                    # Refused on Windows before anything else; checked first of all natively.
                    nul_message = {'win': WINDOWS_ONLY_MESSAGE[option], 'posix': f'{option} must not contain NUL characters'}
                    huge_message = {'win': WINDOWS_ONLY_MESSAGE[option],
                                    'posix': f'{option} is too long: {len(HUGE)} characters, at most 4096'}
                cases.append(Case(module, f'{option} with a NUL byte', {**base, option: value}, nul_message, (option,)))
                cases.append(Case(module, f'{option} huge', {**base, option: huge}, huge_message, (option,)))
                if kind == 'list':
                    control = ['line\nbreak']
                    cases.append(Case(module, f'{option} with a control character', {**base, option: control},
                                      f"{option} must not contain control characters, got {shown(control[0])}",
                                      (option,)))
    return cases


def _users_cases(module: str) -> list[Case]:
    base = BASE[module]
    cases = [
        Case(module, 'users empty list', {**base, 'users': []},
             'users must name at least one user; leave it out to mean every user', ('users',)),
        Case(module, 'users empty name', {**base, 'users': ['']}, 'users must not contain empty names', ('users',)),
        Case(module, 'exclude_users blank name', {**base, 'exclude_users': ['alice', ' ']},
             'exclude_users must not contain empty names', ('exclude_users',)),
        Case(module, 'users path traversal', {**base, 'users': ['../root']},
             "users must hold profile names, not paths, got '../root'", ('users',)),
        Case(module, 'users UNC path', {**base, 'users': ['\\\\server\\alice']},
             "users must hold profile names, not paths, got '\\\\\\\\server\\\\alice'", ('users',)),
        Case(module, 'users too many', {**base, 'users': ['u'] * (MAX_ENTRIES + 1)},
             f'users has {MAX_ENTRIES + 1} entries, at most {MAX_ENTRIES}', ('users',)),
        Case(module, 'users and exclude_users', {**base, 'users': ['alice'], 'exclude_users': ['bob']},
             'parameters are mutually exclusive: users|exclude_users', ('users', 'exclude_users'), spec_only=True),
    ]
    unknown = {'win': f'users lists unknown user(s): mallory, jürgen; {PROFILES}'}
    unicode_hosts: tuple[str, ...] = ('win',)
    if module in ('app_data', 'quarantine'):
        unknown['posix'] = unknown['win']
        unicode_hosts = HOSTS
    elif module == 'proxy':
        unknown['posix'] = ('users and exclude_users apply to Windows; on macOS proxies are per network service '
                            '(see services) and on Linux per desktop session')
        unicode_hosts = HOSTS
    # app and firewall have nothing to act on for Linux users: a valid name is not an error there.
    cases.append(Case(module, 'unknown and unicode user names', {**base, 'users': ['alice', 'mallory', 'jürgen']},
                      unknown, ('users',), hosts=unicode_hosts))
    return cases


def handwritten() -> list[Case]:
    cases: list[Case] = []
    for module in MODULES:
        cases += _users_cases(module)
        cases.append(Case(module, 'unsupported option', {**BASE[module], 'colour': 'blue'},
                          f'Unsupported parameters for (loopbreaker.notion.{module}) module: colour. Supported '
                          f'parameters include: {", ".join(sorted(SPECS[module]))}.', ('colour',), spec_only=True))
    for module in ('app_data', 'quarantine', 'firewall'):
        base = BASE[module]
        cases += [
            Case(module, 'profiles_root path traversal', {**base, 'profiles_root': '{homes}/../homes'},
                 {'win': WINDOWS_PROFILES_ROOT,
                  'posix': "profiles_root must not contain '..' components, got '{homes}/../homes'"},
                 ('profiles_root',)),
            Case(module, 'profiles_root UNC path', {**base, 'profiles_root': '\\\\server\\homes'},
                 {'win': WINDOWS_PROFILES_ROOT,
                  'posix': "profiles_root must be an absolute path, got '\\\\\\\\server\\\\homes'"},
                 ('profiles_root',)),
        ]
    cases += [
        # app_data
        Case('app_data', 'scopes empty list', {'scopes': []},
             'scopes must name at least one of: all, cache, service_workers, storage, cookies', ('scopes',)),
        Case('app_data', 'scopes unicode', {'scopes': ['caché']},
             'value of scopes must be one or more of: all, cache, service_workers, storage, cookies. Got no match '
             'for: caché', ('scopes',)),
        Case('app_data', 'Notion running and stop_app false', {'stop_app': False},
             'Notion is running for alice (pid {pid}): nothing was changed. Let the module stop it (stop_app: true) '
             'or close Notion first.', ('stop_app',)),
        # quarantine
        Case('quarantine', 'restore without id', {'state': 'restored'},
             'state is restored but all of the following are missing: id', ('id',)),
        Case('quarantine', 'purge without selector', {'state': 'purged'},
             'state is purged but any of the following are missing: id, older_than', ('id', 'older_than')),
        Case('quarantine', 'purge with id null', {'state': 'purged', 'id': None},
             'state is purged but any of the following are missing: id, older_than', ('id', 'older_than')),
        Case('quarantine', 'purge with id empty', {'state': 'purged', 'id': ''},
             "id '' is not a quarantine entry id (like '20261129T141500Z-1a2b3c')", ('id',)),
        Case('quarantine', 'restore with id null', {'state': 'restored', 'id': None},
             'state is restored but all of the following are missing: id', ('id',)),
        Case('quarantine', 'id path traversal', {'state': 'restored', 'id': '../../etc'},
             "id '../../etc' is not a quarantine entry id (like '20261129T141500Z-1a2b3c')", ('id',)),
        Case('quarantine', 'older_than malformed', {'state': 'purged', 'older_than': 'a while'},
             "older_than must look like '7d', '12h', '30m', '2w' or '45s', got 'a while'", ('older_than',)),
        Case('quarantine', 'older_than overflows a date', {'state': 'purged', 'older_than': '3000000d'},
             "older_than must be at most 36500d (100 years), got '3000000d'", ('older_than',)),
        Case('quarantine', 'older_than overflows a timedelta', {'state': 'purged', 'older_than': '9' * 30 + 'w'},
             f"older_than must be at most 36500d (100 years), got '{'9' * 30}w'", ('older_than',)),
        Case('quarantine', 'id and older_than', {'state': 'purged', 'id': '20261129T141500Z-1a2b3c',
                                                 'older_than': '1d'},
             'parameters are mutually exclusive: id|older_than', ('id', 'older_than')),
        Case('quarantine', 'id with state listed', {'id': '20261129T141500Z-1a2b3c'},
             'id only applies to state restored or purged, not listed', ('id',)),
        Case('quarantine', 'older_than with state restored', {'state': 'restored', 'id': '20261129T141500Z-1a2b3c',
                                                              'older_than': '1d'},
             'parameters are mutually exclusive: id|older_than', ('id', 'older_than')),
        Case('quarantine', 'force with state purged', {'state': 'purged', 'older_than': '1d', 'force': True},
             'force only applies to state restored, not purged', ('force',)),
        # proxy
        Case('proxy', 'bypass_hosts empty list', {'mode': 'bypass', 'bypass_hosts': []},
             'bypass_hosts must not be empty: leave it out to use the Notion hosts', ('bypass_hosts',)),
        Case('proxy', 'bypass_hosts an empty entry', {'mode': 'bypass', 'bypass_hosts': ['*.notion.so', '']},
             'bypass_hosts must not contain empty entries', ('bypass_hosts',)),
        Case('proxy', 'bypass_hosts star alone', {'mode': 'bypass', 'bypass_hosts': ['*.notion.so', '*']},
             "bypass_hosts entry '*' would bypass the proxy for every host: use mode: direct to turn the proxy off",
             ('bypass_hosts',)),
        Case('proxy', 'bypass_hosts unicode', {'mode': 'bypass', 'bypass_hosts': ['*.bücher.example']},
             'bypass_hosts entries must be ASCII: write an internationalised name in its punycode form (xn--...), '
             "got '*.bücher.example'", ('bypass_hosts',)),
        Case('proxy', 'bypass_hosts separators', {'mode': 'bypass', 'bypass_hosts': ['a.example,b.example']},
             'bypass_hosts entries are single host patterns (no ";", "," or whitespace), got \'a.example,b.example\'',
             ('bypass_hosts',)),
        Case('proxy', 'bypass_hosts a URL', {'mode': 'bypass', 'bypass_hosts': ['https://www.notion.so/']},
             'bypass_hosts entries are host names, addresses or patterns like *.example.com (letters, digits, ".", '
             "\"-\", \"*\", \":\", \"[]\"), got 'https://www.notion.so/'", ('bypass_hosts',)),
        Case('proxy', 'bypass_hosts with mode direct', {'mode': 'direct', 'bypass_hosts': ['*.notion.so']},
             'bypass_hosts only applies to mode bypass, not direct', ('bypass_hosts',)),
        Case('proxy', 'disable with mode bypass', {'mode': 'bypass', 'disable': ['pac']},
             'disable only applies to mode direct', ('disable',)),
        Case('proxy', 'disable empty list', {'mode': 'direct', 'disable': []},
             'disable must name at least one of manual_proxy, pac, auto_detect', ('disable',)),
        Case('proxy', 'services empty list', {'mode': 'bypass', 'services': []},
             'services must name at least one network service; leave it out to mean every enabled one', ('services',)),
        Case('proxy', 'services off macOS', {'mode': 'bypass', 'services': ['Wi-Fi']},
             {'win': 'services applies to macOS only; on Windows proxies are per user',
              'posix': 'services applies to macOS only'}, ('services',)),
        Case('proxy', 'mode missing', {}, 'missing required arguments: mode', ('mode',), spec_only=True),
        # firewall
        Case('firewall', 'directions empty list', {'directions': []},
             'directions must name at least one of inbound, outbound', ('directions',)),
        Case('firewall', 'profiles empty list', {'profiles': []},
             'profiles must name at least one of domain, private, public', ('profiles',)),
        Case('firewall', 'extra_programs wildcard', {'extra_programs': ['C:\\Apps\\*\\Notion.exe']},
             "extra_programs must be exact paths, without wildcards: 'C:\\\\Apps\\\\*\\\\Notion.exe'",
             ('extra_programs',), hosts=('win',)),
        Case('firewall', 'extra_programs relative', {'extra_programs': ['Notion.exe']},
             "extra_programs on Windows must be absolute paths to an .exe (like 'D:\\Apps\\Notion\\Notion.exe'), "
             "got 'Notion.exe'", ('extra_programs',), hosts=('win',)),
        Case('firewall', 'extra_programs UNC path', {'extra_programs': ['\\\\server\\share\\Notion.exe']},
             "extra_programs on Windows must be on a local drive, not a UNC path: '\\\\\\\\server\\\\share\\\\Notion.exe'",
             ('extra_programs',), hosts=('win',)),
        Case('firewall', 'extra_programs path traversal', {'extra_programs': ['C:\\Apps\\..\\..\\Windows\\notepad.exe']},
             "extra_programs must not contain '..' components: 'C:\\\\Apps\\\\..\\\\..\\\\Windows\\\\notepad.exe'",
             ('extra_programs',), hosts=('win',)),
        # app
        Case('app', 'state missing', {}, 'missing required arguments: state', ('state',), spec_only=True),
        Case('app', 'reinstalled without installer', {'state': 'reinstalled'},
             'state is reinstalled but any of the following are missing: installer, use_homebrew',
             ('installer', 'use_homebrew')),
        Case('app', 'reinstalled with installer null', {'state': 'reinstalled', 'installer': None},
             'state is reinstalled but any of the following are missing: installer, use_homebrew',
             ('installer', 'use_homebrew')),
        Case('app', 'present with use_homebrew false', {'state': 'present', 'use_homebrew': False},
             'state is present but any of the following are missing: installer, use_homebrew',
             ('installer', 'use_homebrew')),
        Case('app', 'installer empty', {'state': 'reinstalled', 'installer': ''}, 'installer must not be empty',
             ('installer',)),
        Case('app', 'installer relative', {'state': 'present', 'installer': 'Notion Setup.exe'},
             {'win': "installer must be an absolute path (like 'C:\\Installers\\Notion Setup.exe') or an http(s) URL, "
                     "got 'Notion Setup.exe'",
              'posix': "installer must be an absolute path or an http(s) URL, got 'Notion Setup.exe'"}, ('installer',)),
        Case('app', 'installer UNC path', {'state': 'present', 'installer': '\\\\server\\share\\Notion Setup.exe'},
             {'win': 'installer must be on a local drive or an http(s) URL, not a UNC path (the task runs as the '
                     "user and cannot reach network shares with your credentials): "
                     "'\\\\\\\\server\\\\share\\\\Notion Setup.exe'",
              'posix': "installer must be an absolute path or an http(s) URL, got "
                       "'\\\\\\\\server\\\\share\\\\Notion Setup.exe'"}, ('installer',)),
        Case('app', 'installer path traversal', {'state': 'present', 'installer': 'C:\\Installers\\..\\Windows\\x.exe'},
             "installer must not contain '..' components: 'C:\\\\Installers\\\\..\\\\Windows\\\\x.exe'", ('installer',),
             hosts=('win',)),
        Case('app', 'installer path traversal', {'state': 'present', 'installer': '/srv/installers/../../etc/x.dmg'},
             "installer must not contain '..' components: '/srv/installers/../../etc/x.dmg'", ('installer',),
             hosts=('posix',)),
        Case('app', 'installer URL without host', {'state': 'present', 'installer': 'https:///Notion.exe'},
             "installer URL has no host: 'https:///Notion.exe'", ('installer',)),
        Case('app', 'installer with credentials and another scheme',
             {'state': 'present', 'installer': f'ftp://deploy:{SECRET}@files.example/Notion Setup 7.36.0.exe'},
             "installer must be a path on the host or an http(s) URL, not a ftp URL: "
             "'ftp://********@files.example/Notion Setup 7.36.0.exe'", ('installer',), secrets=(SECRET,)),
        Case('app', 'installer with credentials and a bad checksum',
             {'state': 'present', 'installer': f'https://deploy:{SECRET}@files.example/Notion Setup 7.36.0.exe',
              'checksum': 'abc'},
             "checksum must be a SHA-256 (64 hex digits), got 'abc'", ('checksum',), secrets=(SECRET,)),
        Case('app', 'installer with state stopped', {'state': 'stopped', 'installer': 'C:\\Installers\\Notion.exe'},
             'installer only applies to state present or reinstalled, not stopped', ('installer',)),
        Case('app', 'installer and use_homebrew', {'state': 'present', 'installer': 'C:\\x.exe', 'use_homebrew': True},
             'parameters are mutually exclusive: installer|use_homebrew', ('installer', 'use_homebrew')),
        Case('app', 'remove_user_data with state present',
             {'state': 'present', 'installer': 'C:\\Installers\\Notion Setup 7.36.0.exe', 'remove_user_data': True},
             'remove_user_data only applies to state absent', ('remove_user_data',), hosts=('win',)),
        Case('app', 'checksum empty', {'state': 'present', 'installer': 'https://files.example/x.exe', 'checksum': ''},
             'checksum must not be empty; leave it out instead', ('checksum',)),
        Case('app', 'signer blank', {'state': 'stopped', 'signer': '  '},
             'signer must not be empty: every installer is checked against a signer', ('signer',)),
        Case('app', 'signer_issuers empty', {'state': 'stopped', 'signer_issuers': []},
             "signer_issuers must name at least one certificate authority, and no empty one: every signer's "
             'certificate is checked against them', ('signer_issuers',)),
        Case('app', 'profiles_root off macOS', {'state': 'stopped', 'profiles_root': '/Users'},
             'profiles_root applies to macOS hosts only', ('profiles_root',), hosts=('win',)),
        Case('app', 'app_path off macOS', {'state': 'stopped', 'app_path': '/Applications/Notion.app'},
             'app_path applies to macOS hosts only', ('app_path',), hosts=('win',)),
    ]
    return cases


def table() -> list[Case]:
    cases = generated() + handwritten()
    keys = [case.key + '/' + ','.join(case.hosts) for case in cases]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    assert not duplicates, f'duplicate rows: {duplicates}'
    return cases


def for_host(host: str, homes: str, pids: str) -> list[Case]:
    """The rows that run on host, with {homes} and {pid} filled in and the sandbox passed on POSIX.

    Rows the argument spec refuses run for every module on Windows, where the action plugin does
    what AnsibleModule would; natively AnsibleModule itself refuses them, so there they run for
    app_data only (one native module is enough to show it, and each native row costs a process).
    """
    rows = []
    for case in table():
        if host not in case.hosts or (host == 'posix' and case.spec_only and case.module != 'app_data'):
            continue
        args = {name: _fill(value, homes) for name, value in case.args.items()}
        if host == 'posix' and case.module in SANDBOXED and 'profiles_root' not in args:
            args['profiles_root'] = homes
        message = case.message(host).replace('{homes}', homes).replace('{pid}', pids)
        rows.append(Case(case.module, case.name, args, message, case.options, (host,), case.prefix, case.secrets,
                         case.spec_only))
    return rows


def _fill(value: t.Any, homes: str) -> t.Any:
    return value.replace('{homes}', homes) if isinstance(value, str) else value

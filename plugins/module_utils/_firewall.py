# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The "pages never sync" fix: let every Notion install through the host firewall.

Private to this collection. Windows: probe (one bridge batch) -> plan (pure)
-> apply (one more batch, never in check mode) -> result, against Windows
Defender Firewall. Our rules carry a name derived from the program path, so a
rule is found again and corrected in place, never duplicated. Block rules that
name a Notion.exe are disabled, removed or only reported; each one is copied
into a record in HKLM *before* it is changed, so ``state: restored`` can put
it back exactly. The macOS path (_firewall_darwin.py) shares the request and
the result vocabulary; Linux has nothing to do.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import ntpath
import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.loopbreaker.notion.plugins.module_utils import _layout
from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import FIREWALL_RULE_DEFAULTS
from ansible_collections.loopbreaker.notion.plugins.module_utils._containment import foreign_folder
from ansible_collections.loopbreaker.notion.plugins.module_utils._firewall_programs import (
    MSIX_NAME,
    expand,
    installed_by_windows,
    is_msix_path,
    msix_operations,
    msix_packages,
    notion_packages,
    service_path,
    user_variables,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import (
    Host,
    RequestError,
    operation_data,
    per_profile,
    profiles_operation,
    select_profiles,
)
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import check_common

STATES: tuple[str, ...] = ('present', 'absent', 'restored')
DIRECTION_CHOICES: tuple[str, ...] = ('inbound', 'outbound')
PROFILE_CHOICES: tuple[str, ...] = ('domain', 'private', 'public')
CONFLICT_CHOICES: tuple[str, ...] = ('remove', 'disable', 'report')

ARGUMENT_SPEC: dict[str, t.Any] = {
    'state': {'type': 'str', 'default': 'present', 'choices': list(STATES)},
    'directions': {'type': 'list', 'elements': 'str', 'default': list(DIRECTION_CHOICES),
                   'choices': list(DIRECTION_CHOICES)},
    'profiles': {'type': 'list', 'elements': 'str', 'default': ['private', 'public'], 'choices': list(PROFILE_CHOICES)},
    'conflicts': {'type': 'str', 'default': 'disable', 'choices': list(CONFLICT_CHOICES)},
    'users': {'type': 'list', 'elements': 'str'},
    'exclude_users': {'type': 'list', 'elements': 'str'},
    'extra_programs': {'type': 'list', 'elements': 'str'},
    'profiles_root': {'type': 'path'},
}
MUTUALLY_EXCLUSIVE: list[list[str]] = [['users', 'exclude_users']]

RULE_PREFIX = 'loopbreaker.notion-'
_OUR_NAME = re.compile(r'^loopbreaker\.notion-([0-9a-f]{8})-(in|out)$', re.IGNORECASE)
DISPLAY_PREFIX = 'Notion (loopbreaker.notion)'
CORE_KEYS: tuple[str, ...] = ('name', 'display_name', 'direction', 'action', 'profiles', 'program', 'enabled',
                              'description')
# A complete rule: everything needed to put a rule back exactly as it was.
RULE_KEYS: tuple[str, ...] = CORE_KEYS + tuple(FIREWALL_RULE_DEFAULTS)
LOCAL_STORE = 'local'
STORE_LABELS: dict[str, str] = {'group_policy': 'Group Policy', 'mdm': 'MDM (Intune Firewall CSP)'}
DIRECTION_CODES: dict[str, str] = {'inbound': 'in', 'outbound': 'out'}
DIRECTION_NAMES: dict[str, str] = {code: name for name, code in DIRECTION_CODES.items()}
RECORD_KEY = 'SOFTWARE\\loopbreaker\\notion\\firewall'
RECORD_VALUE = 'record'
RECORD_FORMAT = 2
# Format 1 recorded only the eight core fields; its entries are read with the others at "any".
RECORD_FORMATS: tuple[int, ...] = (1, 2)
PROFILE_EXE = '{Local AppData}\\Programs\\Notion\\Notion.exe'
MACHINE_EXES: tuple[str, ...] = ('C:\\Program Files\\Notion\\Notion.exe', 'C:\\Program Files (x86)\\Notion\\Notion.exe')
RULE_PROGRAMS = '*\\notion.exe'
CONFLICTS_GROUP = 'conflicts'
PACKAGES_INDEX = 5  # list_packages in probe_operations
MACHINE = 'machine'
LINUX_MSG = ('Notion has no firewall integration on Linux: there is no per-application firewall that the '
             'desktop app registers with (distribution firewalls filter ports, and Notion only connects out), '
             'so there is nothing to allow.')

Rule = dict[str, t.Any]


# ------------------------------------------------------------------ request


@dataclass(frozen=True)
class Request:
    state: str
    directions: tuple[str, ...]
    profiles: tuple[str, ...]
    conflicts: str
    users: list[str] | None
    exclude_users: list[str] | None
    extra_programs: tuple[str, ...]

    @classmethod
    def from_params(cls, params: dict[str, t.Any], platform: str) -> Request:
        for option in ('directions', 'profiles'):
            if not params[option]:
                raise RequestError(f'{option} must name at least one of {", ".join(ARGUMENT_SPEC[option]["choices"])}')
        check_common(params, ARGUMENT_SPEC)
        extras = tuple(dict.fromkeys(params.get('extra_programs') or ()))
        for path in extras:
            _check_extra_program(path, platform)
        return cls(state=params['state'],
                   directions=tuple(DIRECTION_CODES[d] for d in DIRECTION_CHOICES if d in params['directions']),
                   profiles=tuple(p for p in PROFILE_CHOICES if p in params['profiles']),
                   conflicts=params['conflicts'], users=params.get('users'), exclude_users=params.get('exclude_users'),
                   extra_programs=extras)


def _check_extra_program(path: str, platform: str) -> None:
    if '*' in path or '?' in path:
        raise RequestError(f'extra_programs must be exact paths, without wildcards: {path!r}')
    if platform == 'windows':
        drive, rest = ntpath.splitdrive(path)
        if path.startswith(('\\\\', '//')):
            raise RequestError(f'extra_programs on Windows must be on a local drive, not a UNC path: {path!r}')
        if not drive or not rest.startswith(('\\', '/')) or not path.lower().endswith('.exe'):
            raise RequestError(f'extra_programs on Windows must be absolute paths to an .exe (like '
                               f"'D:\\Apps\\Notion\\Notion.exe'), got {path!r}")
        if '..' in re.split(r'[\\/]', rest):
            raise RequestError(f"extra_programs must not contain '..' components: {path!r}")
    elif platform == 'darwin':
        if not path.startswith('/') or not path.rstrip('/').endswith('.app'):
            raise RequestError(f"extra_programs on macOS must be absolute paths to an application bundle (like "
                               f"'/Users/Shared/Notion.app'), got {path!r}")
        if '..' in path.split('/'):
            raise RequestError(f"extra_programs must not contain '..' components: {path!r}")


# ------------------------------------------------------------ rule naming


def rule_name(program: str, direction: str) -> str:
    """Our rule's unique name: stable for a program path (case-insensitive) and direction."""
    digest = hashlib.sha256(ntpath.normpath(program).lower().encode('utf-8')).hexdigest()[:8]
    return f'{RULE_PREFIX}{digest}-{direction}'


def is_ours(name: str) -> bool:
    return name.lower().startswith(RULE_PREFIX)


def wanted_rule(program: Program, direction: str, profiles: tuple[str, ...]) -> Rule:
    return {
        'name': rule_name(program.path, direction),
        'display_name': f'{DISPLAY_PREFIX} - {program.user} - {DIRECTION_NAMES[direction]}',
        'direction': direction,
        'action': 'allow',
        'profiles': sorted(profiles),
        'program': program.path,
        'enabled': True,
        'description': (f'Lets Notion sync through Windows Defender Firewall ({program.user}). Managed by '
                        f'loopbreaker.notion.firewall; program: {program.path}'),
        **FIREWALL_RULE_DEFAULTS,
    }


def normalized(rule: Rule) -> Rule:
    """The comparable form of a listed rule: every field (absent = "any"), lists of sets sorted, and its store."""
    picked = {key: rule.get(key) for key in CORE_KEYS}
    for key, default in FIREWALL_RULE_DEFAULTS.items():
        value = rule.get(key)
        picked[key] = default if value is None else value
        if isinstance(default, list):
            picked[key] = [str(item) for item in picked[key]]
    picked['profiles'] = sorted(picked['profiles'] or [])
    picked['interface_types'] = sorted(picked['interface_types'])
    picked['description'] = picked['description'] or ''
    picked['enabled'] = bool(picked['enabled'])
    picked['store'] = rule.get('store') or LOCAL_STORE
    return picked


def complete_rule(rule: Rule) -> Rule:
    """The rule as recorded and replayed: every field, no store (a restored rule is always local)."""
    return {key: normalized(rule)[key] for key in RULE_KEYS}


def is_local(rule: Rule) -> bool:
    return (rule.get('store') or LOCAL_STORE) == LOCAL_STORE


def differences(current: Rule, wanted: Rule) -> dict[str, dict[str, t.Any]]:
    """Fields of ``current`` that differ from ``wanted`` (program compared as Windows compares paths)."""
    now = normalized(current)
    changed = {}
    for key in RULE_KEYS[1:]:
        same = _norm(now[key]) == _norm(wanted[key]) if key == 'program' else now[key] == wanted[key]
        if not same:
            changed[key] = {'before': now[key], 'after': wanted[key]}
    return changed


def _norm(path: str | None) -> str:
    return ntpath.normcase(ntpath.normpath(path)) if path else ''


# -------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Program:
    path: str
    user: str
    sid: str | None
    source: str
    covered: bool
    profile: dict[str, t.Any] | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return _norm(self.path)

    def matches(self, rule_program: str | None) -> bool:
        path = service_path(rule_program)
        return path is not None and _norm(path) == self.key


@dataclass
class Record:
    """Block rules this module changed, each with its original as it was first found."""

    entries: dict[str, dict[str, t.Any]] = field(default_factory=dict)
    exists: bool = False
    error: str | None = None

    def to_json(self) -> str:
        ordered = [self.entries[name] for name in sorted(self.entries)]
        return json.dumps({'format': RECORD_FORMAT, 'rules': ordered}, sort_keys=True)

    @classmethod
    def parse(cls, text: str | None) -> Record:
        if text is None:
            return cls()
        try:
            data = json.loads(text)
            if data.get('format') not in RECORD_FORMATS:
                raise ValueError(f"unknown format {data.get('format')!r}")
            required = CORE_KEYS if data['format'] == 1 else RULE_KEYS
            entries = {}
            for entry in data['rules']:
                rule = entry['rule']
                missing = [key for key in required if key not in rule]
                if missing or entry.get('handled') not in ('disabled', 'removed'):
                    raise ValueError(f'malformed entry {rule.get("name")!r}')
                entries[rule['name'].lower()] = {**entry, 'rule': complete_rule(rule)}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return cls(exists=True, error=str(error))
        return cls(entries=entries, exists=True)


@dataclass
class Discovery:
    programs: list[Program]
    rules: list[Rule]
    record: Record
    unknown_roots: list[str]
    errors: list[str]
    notices: list[str]
    users_without_notion: list[str]
    local_rules_apply: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(PROFILE_CHOICES, True))

    def program_of(self, rule_program: str | None) -> Program | None:
        for program in self.programs:
            if program.matches(rule_program):
                return program
        return None

    def unknown(self, rule_program: str | None) -> bool:
        """Whether a program lies in a profile that could not be searched (so it may still exist)."""
        key = _norm(rule_program)
        return any(key.startswith(root + '\\') for root in self.unknown_roots)


def probe_operations(layout: _layout.PlatformLayout, request: Request) -> list[dict[str, t.Any]]:
    return [
        # Only the selected users' hives are loaded; the others' Notion.exe are not searched, so their
        # rules count as programs that may still exist and are left alone.
        profiles_operation(layout.shell_folders, request.users, request.exclude_users),
        {'op': 'stat_paths', 'each_profile': True, 'patterns': [PROFILE_EXE]},
        {'op': 'stat_paths', 'patterns': list(MACHINE_EXES) + list(request.extra_programs)},
        {'op': 'list_firewall_rules', 'programs': [RULE_PROGRAMS] + list(request.extra_programs)},
        {'op': 'read_registry', 'key': RECORD_KEY, 'names': [RECORD_VALUE]},
        {'op': 'list_packages', 'names': [MSIX_NAME]},
    ]


def _msix_programs(packages: list[dict[str, t.Any]], stats: dict[str, t.Any] | None,
                   chosen: set[str]) -> tuple[list[Program], list[str]]:
    programs, errors = [], []
    for index, package in enumerate(packages):
        result = (stats or {}).get('results', [])[index] if stats else None
        if result is None or result['status'] != 'ok':
            errors.append(f"MSIX {package['package_full_name']}: could not look for Notion.exe: "
                          f"{(result or {}).get('error') or 'not searched'}")
            continue
        files = sorted((e['path'] for e in result['data']['entries'] if e['type'] == 'file'), key=len)
        if not files:
            errors.append(f"MSIX {package['package_full_name']}: no Notion.exe in {package['install_location']}")
            continue
        sids = set(package.get('user_sids') or [])
        # Provisioned but installed for nobody yet: it is every future user's, so it is covered.
        programs.append(Program(files[0], MACHINE, None, 'msix', not sids or bool(sids & chosen)))
    return programs, errors


def discover(request: Request, envelope: dict[str, t.Any], msix_stats: dict[str, t.Any] | None = None) -> Discovery:
    """Every Notion.exe, the rules naming one, and our record, from the probe envelope (and the MSIX stats)."""
    profiles = operation_data(envelope, 0)['profiles']
    stats = per_profile(envelope, 1)
    machine = operation_data(envelope, 2)['entries']
    listing = operation_data(envelope, 3)
    rules = listing['rules']
    registry = operation_data(envelope, 4)
    chosen = {p['sid'] for p in select_profiles(profiles, request.users, request.exclude_users, case_insensitive=True)}
    found: dict[str, Program] = {}
    unknown_roots, errors, without = [], [], []
    for profile in (p for p in profiles if not p['special']):
        stat = stats.get(profile['sid'])
        covered = profile['sid'] in chosen
        foreign = foreign_folder(_layout.WINDOWS, profile, profiles)
        if foreign is not None:
            # The user's own hive points a folder into another profile: what is found there is that user's
            # Notion, never this one's to allow or unblock. Rules in this profile are kept, not judged.
            unknown_roots.append(_norm(profile['profile_path']))
            if covered:
                errors.append(f"{profile['username']}: not searched for Notion.exe: {foreign}")
            continue
        if stat is None or stat['status'] != 'ok':
            unknown_roots.append(_norm(profile['folders'].get('Local AppData') or profile['profile_path']))
            if covered:
                errors.append(f"{profile['username']}: could not look for Notion.exe: "
                              f"{(stat or {}).get('error') or 'the profile could not be read'}")
            continue
        files = [e for e in stat['data']['entries'] if e['type'] == 'file']
        for entry in files:
            found.setdefault(_norm(entry['path']), Program(entry['path'], profile['username'], profile['sid'],
                                                           'profile', covered, profile))
        if covered and not files:
            without.append(profile['username'])
    notices = []
    for pattern in request.extra_programs:
        if not any(e['pattern'] == pattern and e['type'] == 'file' for e in machine):
            notices.append(f'extra_programs: {pattern} was not found')
    for entry in (e for e in machine if e['type'] == 'file'):
        owner = _owner(entry['path'], profiles)
        source = 'machine' if entry['pattern'] in MACHINE_EXES else 'extra'
        found.setdefault(_norm(entry['path']), Program(entry['path'], owner['username'] if owner else MACHINE,
                                                       owner['sid'] if owner else None, source, True, owner))
    packages = msix_packages(envelope, PACKAGES_INDEX)
    msix, msix_errors = _msix_programs(packages, msix_stats, chosen)
    for program in msix:
        found.setdefault(program.key, program)
    msix_sids = {sid for package in packages for sid in (package.get('user_sids') or [])}
    msix_users = {p['username'] for p in profiles if p['sid'] in msix_sids}
    notices += [f"MSIX {p['package_full_name']} is registered from {p['install_location']}, not from "
                'C:\\Program Files\\WindowsApps (a developer-mode registration, or a package moved to another '
                'volume): its files are not trusted, so it gets no rule'
                for p in notion_packages(envelope, PACKAGES_INDEX) if not installed_by_windows(p)]
    without = [name for name in without if name not in msix_users]
    value = registry['values'].get(RECORD_VALUE) if registry['exists'] else None
    record = Record.parse(None if value is None else str(value.get('data')))
    applies = listing.get('local_rules_apply') or {}
    return Discovery(programs=list(found.values()), rules=[normalized(r) for r in rules], record=record,
                     unknown_roots=unknown_roots, errors=errors + msix_errors, notices=notices,
                     users_without_notion=without,
                     local_rules_apply={p: applies.get(p) is not False for p in PROFILE_CHOICES})


def _owner(path: str, profiles: list[dict[str, t.Any]]) -> dict[str, t.Any] | None:
    key = _norm(path)
    for profile in profiles:
        if not profile['special'] and key.startswith(_norm(profile['profile_path']) + '\\'):
            return profile
    return None


# ---------------------------------------------------------------- planning


@dataclass
class Change:
    kind: str  # added | corrected | removed | disabled | restored
    name: str
    before: Rule | None
    after: Rule | None
    user: str | None
    reason: str
    conflict: bool = False
    fields: dict[str, dict[str, t.Any]] = field(default_factory=dict)

    def operation(self) -> dict[str, t.Any]:
        group = {'group': CONFLICTS_GROUP} if self.conflict else {}
        if self.after is None:
            return {'op': 'remove_firewall_rule', 'name': self.name, **group}
        return {'op': 'set_firewall_rule', **complete_rule(self.after), **group}


@dataclass
class Plan:
    request: Request
    discovery: Discovery
    changes: list[Change] = field(default_factory=list)
    conflicts: list[dict[str, t.Any]] = field(default_factory=list)
    unchanged: list[Rule] = field(default_factory=list)
    kept: list[Rule] = field(default_factory=list)
    manual_actions: list[str] = field(default_factory=list)
    record_after: str | None = None
    record_delete: bool = False

    @property
    def record_before(self) -> str | None:
        record = self.discovery.record
        return record.to_json() if record.exists and not record.error else None

    def steps(self) -> list[tuple[dict[str, t.Any], Change | None]]:
        """The apply batch: the record is written before any conflict is changed, deleted after all are restored."""
        steps: list[tuple[dict[str, t.Any], Change | None]] = []
        record_write = ({'op': 'write_registry', 'key': RECORD_KEY, 'group': CONFLICTS_GROUP,
                         'values': {RECORD_VALUE: {'type': 'REG_SZ', 'data': self.record_after}}}
                        if self.record_after is not None and self.record_after != self.record_before else None)
        if record_write and self.request.state == 'present':
            steps.append((record_write, None))
        steps += [(change.operation(), change) for change in self.changes]
        if self.record_delete:
            steps.append(({'op': 'delete_registry_values', 'key': RECORD_KEY, 'names': [RECORD_VALUE],
                           'group': CONFLICTS_GROUP}, None))
        elif record_write and self.request.state != 'present':
            steps.append((record_write, None))
        return steps


def _our_rule_fate(discovery: Discovery, rule: Rule, request: Request, *, removing: bool) -> str | None:
    """Why an existing rule of ours (not one this run wants) goes, or None to keep it."""
    program = discovery.program_of(rule['program'])
    if program is None and is_msix_path(rule['program']):
        return 'MSIX package version no longer installed'
    if program is None:
        return None if discovery.unknown(rule['program']) else 'program not found'
    if not program.covered:
        return None
    if removing:
        return f'state {request.state}'
    match = _OUR_NAME.match(rule['name'])
    if match and match.group(2).lower() not in request.directions:
        return 'direction not requested'
    return 'duplicate of the rule named for this program'


def _is_conflict(discovery: Discovery, rule: Rule, request: Request) -> Program | None:
    if is_ours(rule['name']) or rule['action'] != 'block' or not rule['enabled']:
        return None
    if rule['direction'] not in request.directions or not set(rule['profiles'] or PROFILE_CHOICES) & set(request.profiles):
        return None
    program = discovery.program_of(rule['program'])
    return program if program and program.covered else None


def _conflict_entry(rule: Rule, program: Program, handling: str) -> dict[str, t.Any]:
    if not is_local(rule) and handling in ('disabled', 'removed', 'reported'):
        handling = 'not_locally_changeable'
    return {**_public(rule), 'user': program.user, 'matched_program': program.path, 'handling': handling}


def _policy_action(rule: Rule, program: Program) -> str:
    return (f"{rule['name']} ({rule['display_name']}) is a {STORE_LABELS.get(rule['store'], rule['store'])} rule that "
            f"blocks {program.path}; it cannot be changed on the host (a local change would only add a local "
            'copy while the policy rule keeps applying): change or remove it in the policy that sets it.')


def _policy_allows(discovery: Discovery, program: Program, direction: str, profile: str) -> bool:
    return any(not is_local(rule) and rule['action'] == 'allow' and rule['enabled'] and rule['direction'] == direction
               and profile in rule['profiles'] and program.matches(rule['program']) for rule in discovery.rules)


def effective_profiles(plan: Plan) -> tuple[str, ...]:
    """The requested profiles where local rules take effect; in the others an allow rule of ours could not apply."""
    applies = plan.discovery.local_rules_apply
    off = [p for p in plan.request.profiles if not applies.get(p, True)]
    # Only programs the policy does not already allow there need the policy owner.
    needing = sorted({program.path for program in plan.discovery.programs if program.covered
                      for direction in plan.request.directions for profile in off
                      if not _policy_allows(plan.discovery, program, direction, profile)})
    if needing:
        plan.manual_actions.append(
            f"Local firewall rules do not apply in the {', '.join(off)} profile(s): Group Policy or MDM sets "
            '"apply local firewall rules: no" (AllowLocalPolicyMerge 0), so no allow rule was added there. Ask the '
            f"policy owner to allow these programs in that policy: {', '.join(needing)}.")
    return tuple(p for p in plan.request.profiles if p not in off)


def plan_present(request: Request, discovery: Discovery, stamp: str) -> Plan:
    plan = Plan(request, discovery)
    ours = {r['name'].lower(): r for r in discovery.rules if is_ours(r['name']) and is_local(r)}
    wanted_names = set()
    profiles = effective_profiles(plan)
    for program in (p for p in discovery.programs if p.covered):
        for direction in request.directions:
            wanted = wanted_rule(program, direction, profiles)
            wanted_names.add(wanted['name'])
            current = ours.get(wanted['name'])
            if not profiles:
                if current is not None:
                    plan.kept.append(current)
                continue
            if current is None:
                plan.changes.append(Change('added', wanted['name'], None, wanted, program.user, 'missing'))
            elif differences(current, wanted):
                fields = differences(current, wanted)
                plan.changes.append(Change('corrected', current['name'], current, {**wanted, 'name': current['name']},
                                           program.user, 'settings differ: ' + ', '.join(fields), fields=fields))
            else:
                plan.unchanged.append(current)
    for name, rule in ours.items():
        if name not in wanted_names:
            _remove_or_keep(plan, rule, removing=False)
    _plan_conflicts(plan, stamp)
    return plan


def _remove_or_keep(plan: Plan, rule: Rule, *, removing: bool) -> None:
    reason = _our_rule_fate(plan.discovery, rule, plan.request, removing=removing)
    if reason is None:
        plan.kept.append(rule)
        return
    program = plan.discovery.program_of(rule['program'])
    plan.changes.append(Change('removed', rule['name'], rule, None, program.user if program else None, reason))


def _plan_conflicts(plan: Plan, stamp: str) -> None:
    """Handle block rules naming a covered program; their changes go first, right after the record write."""
    request, record = plan.request, plan.discovery.record
    entries = dict(record.entries)
    handling = {'disable': 'disabled', 'remove': 'removed', 'report': 'reported'}[request.conflicts]
    changes = []
    for rule in plan.discovery.rules:
        program = _is_conflict(plan.discovery, rule, request)
        if program is None:
            continue
        plan.conflicts.append(_conflict_entry(rule, program, handling))
        if not is_local(rule):
            # Never sent: Windows would add a local duplicate and the policy rule would keep blocking.
            plan.manual_actions.append(_policy_action(rule, program))
            continue
        if handling == 'reported':
            continue
        after = None if handling == 'removed' else {**rule, 'enabled': False}
        changes.append(Change(handling, rule['name'], rule, after, program.user, 'blocks ' + program.path, conflict=True))
        previous = entries.get(rule['name'].lower())
        # The first original wins: a rule changed again is still restored to how we first found it.
        entries[rule['name'].lower()] = ({**previous, 'handled': handling} if previous else
                                         {'rule': complete_rule(rule), 'handled': handling, 'recorded': stamp})
    if not changes:
        return
    if record.error:
        raise RequestError(f'the record of changed firewall rules (HKLM\\{RECORD_KEY}\\{RECORD_VALUE}) cannot '
                           f'be read: {record.error}. Nothing was changed; repair or delete that value, or use '
                           'conflicts: report.')
    plan.changes[:0] = changes
    plan.record_after = Record(entries=entries, exists=True).to_json()


def plan_absent(request: Request, discovery: Discovery, stamp: str) -> Plan:
    plan = Plan(request, discovery)
    for rule in (r for r in discovery.rules if is_ours(r['name']) and is_local(r)):
        _remove_or_keep(plan, rule, removing=True)
    for rule in discovery.rules:
        program = _is_conflict(discovery, rule, request)
        if program is not None:
            plan.conflicts.append(_conflict_entry(rule, program, 'left'))
    return plan


def plan_restored(request: Request, discovery: Discovery, stamp: str) -> Plan:
    plan = plan_absent(request, discovery, stamp)
    record = discovery.record
    if not record.exists:
        return plan
    if record.error:
        raise RequestError(f'the record of changed firewall rules (HKLM\\{RECORD_KEY}\\{RECORD_VALUE}) cannot be '
                           f'read: {record.error}. Nothing was changed.')
    current = {r['name'].lower(): r for r in discovery.rules if is_local(r)}
    remaining = {}
    for name, entry in record.entries.items():
        original = normalized(entry['rule'])
        program = discovery.program_of(original['program'])
        in_scope = program.covered if program else not discovery.unknown(original['program'])
        if not in_scope:
            remaining[name] = entry
            continue
        before = current.get(name)
        if before is None or complete_rule(before) != complete_rule(original):
            plan.changes.append(Change('restored', original['name'], before, original,
                                       program.user if program else None, f"was {entry['handled']}", conflict=True))
    if remaining:
        plan.record_after = Record(entries=remaining, exists=True).to_json()
    else:
        plan.record_delete = True
    return plan


PLANNERS: dict[str, t.Callable[[Request, Discovery, str], Plan]] = {
    'present': plan_present, 'absent': plan_absent, 'restored': plan_restored,
}


# ------------------------------------------------------------------ result


def _public(rule: Rule) -> dict[str, t.Any]:
    full = normalized(rule)
    return {**full, 'direction': DIRECTION_NAMES.get(full['direction'], full['direction'])}


def ineffective_rules(discovery: Discovery) -> list[dict[str, t.Any]]:
    """Rules naming a covered user's Notion.exe only through per-user variables: they match nothing."""
    found = []
    users = [p for p in discovery.programs if p.covered and p.profile is not None and p.source == 'profile']
    for rule in discovery.rules:
        if is_ours(rule['name']) or not rule['program'] or service_path(rule['program']) is not None:
            continue
        expanded = []
        for program in users:
            path = expand(str(rule['program']), user_variables(t.cast(dict, program.profile)))
            if path is not None and _norm(path) == program.key:
                expanded.append({'user': program.user, 'path': program.path})
        if expanded:
            found.append({**_public(rule), 'expanded': expanded})
    return found


def rule_line(rule: Rule) -> str:
    state = 'enabled' if rule['enabled'] else 'disabled'
    return (f"{rule['name']}: {rule['action']} {DIRECTION_NAMES.get(rule['direction'], rule['direction'])} "
            f"[{', '.join(rule['profiles'])}] {state} {rule['program']}")


def _outcome(change: Change, result: dict[str, t.Any] | None) -> tuple[str, str | None]:
    """('done' | 'failed' | 'skipped' | 'vanished', error) of one change; result None means check mode."""
    if result is None:
        return 'done', None
    if result['status'] == 'skipped':
        return 'skipped', 'skipped after an earlier failure in its group'
    if result['status'] != 'ok':
        return 'failed', result['error']
    data = result['data'] or {}
    if change.after is None and data.get('missing') and change.conflict:
        return 'failed', ('the rule is not in the local firewall store (group policy?) or is already gone; '
                          'change the policy that sets it')
    if change.after is None and data.get('missing'):
        return 'vanished', None
    if change.kind == 'disabled' and data.get('created'):
        return 'failed', ('the rule is not in the local firewall store (group policy?): a disabled copy was '
                          'created instead of disabling it; remove that copy and change the policy')
    return 'done', None


def _outcomes(plan: Plan, results: list[dict[str, t.Any]] | None) -> tuple[list[Change], dict[str, str], bool, list[str]]:
    """(changes done, name -> failed/skipped, whether a record step succeeded, errors) of the apply batch."""
    done: list[Change] = []
    failed: dict[str, str] = {}
    record_done = False
    errors: list[str] = []
    for index, (operation, change) in enumerate(plan.steps()):
        result = None if results is None else results[index]
        if change is None:
            if result is None or result['status'] == 'ok':
                record_done = True
            else:
                errors.append(f"{operation['op']} HKLM\\{RECORD_KEY}: {result['error'] or result['status']}")
            continue
        status, error = _outcome(change, result)
        if status == 'done':
            done.append(change)
        elif status in ('failed', 'skipped'):
            failed[change.name.lower()] = status
            errors.append(f'{change.name}: {error}')
    return done, failed, record_done, errors


def build_result(plan: Plan, results: list[dict[str, t.Any]] | None) -> dict[str, t.Any]:
    """The module result; ``results`` None means nothing was applied (check mode, or nothing to do)."""
    done, failed, record_done, errors = _outcomes(plan, results)
    errors = plan.discovery.errors + errors
    result: dict[str, t.Any] = {
        'changed': bool(done) or record_done,
        'platform': 'windows',
        'state': plan.request.state,
        'programs': _programs(plan, done, failed),
        'users_without_notion': plan.discovery.users_without_notion,
    }
    for kind in ('added', 'corrected', 'removed', 'disabled', 'restored'):
        result[kind] = [_change_entry(c) for c in done if c.kind == kind]
    result['conflicts'] = [{**entry, 'handling': 'failed'} if entry['name'].lower() in failed else entry
                           for entry in plan.conflicts]
    result['record'] = _record_summary(plan, record_done)
    result['local_rules_apply'] = dict(plan.discovery.local_rules_apply)
    result['manual_actions'] = list(plan.manual_actions)
    result['ineffective_rules'] = ineffective_rules(plan.discovery)
    kept = [f"kept {r['name']}: its program {r['program']} could not be checked"
            for r in plan.kept if plan.discovery.unknown(r['program'])]
    ineffective = [f"{r['name']} ({r['display_name']}) names {r['program']}: the firewall service expands no per-user "
                   f"variables, so it matches no program (for {', '.join(e['user'] for e in r['expanded'])} it would "
                   'mean their Notion.exe); left as it is' for r in result['ineffective_rules']]
    result['notices'] = plan.discovery.notices + kept + ineffective
    result['diff'] = _diff(plan, done)
    if errors:
        result['failed'] = True
        result['msg'] = 'Some firewall rules could not be changed; what was done is listed: ' + '; '.join(errors)
    return result


def _change_entry(change: Change) -> dict[str, t.Any]:
    rule = change.after or change.before or {}
    entry = {**_public(rule), 'user': change.user, 'reason': change.reason}
    if change.fields:
        entry['fields'] = change.fields
    return entry


def _programs(plan: Plan, done: list[Change], failed: dict[str, str]) -> list[dict[str, t.Any]]:
    by_name = {c.name.lower(): c.kind for c in done}
    programs = []
    for program in plan.discovery.programs:
        rules: list[dict[str, t.Any]] = []
        for rule in plan.discovery.rules + [c.after for c in plan.changes if c.kind == 'added' and c.after]:
            name = rule['name'].lower()
            if is_ours(rule['name']) and program.matches(rule['program']) and rule['name'] not in [r['name'] for r in rules]:
                status = failed.get(name) or by_name.get(name) or 'unchanged'
                rules.append({'name': rule['name'], 'direction': DIRECTION_NAMES.get(rule['direction'], rule['direction']),
                              'status': status})
        programs.append({'path': program.path, 'user': program.user, 'sid': program.sid, 'source': program.source,
                         'covered': program.covered, 'rules': rules,
                         'conflicts': [c['name'] for c in plan.conflicts if c['matched_program'] == program.path]})
    return programs


def _record_summary(plan: Plan, applied: bool) -> dict[str, t.Any]:
    text = plan.record_before
    if applied and plan.record_delete:
        text = None
    elif applied and plan.record_after is not None:
        text = plan.record_after
    names = sorted(entry['rule']['name'] for entry in Record.parse(text).entries.values()) if text else []
    return {'key': f'HKLM\\{RECORD_KEY}', 'value': RECORD_VALUE, 'rules': names}


def _diff(plan: Plan, done: list[Change]) -> dict[str, str]:
    touched = {c.name.lower() for c in plan.changes}
    relevant = {r['name'].lower(): r for r in plan.discovery.rules
                if is_ours(r['name']) or r['name'].lower() in touched
                or any(c['name'] == r['name'] for c in plan.conflicts)}
    after = dict(relevant)
    for change in done:
        if change.after is None:
            after.pop(change.name.lower(), None)
        else:
            after[change.name.lower()] = change.after
    return {'before_header': 'firewall rules', 'after_header': 'firewall rules',
            'before': ''.join(f'{rule_line(relevant[k])}\n' for k in sorted(relevant)),
            'after': ''.join(f'{rule_line(after[k])}\n' for k in sorted(after))}


def run(host: Host, layout: _layout.PlatformLayout, params: dict[str, t.Any], *, check_mode: bool,
        now: datetime.datetime, entry_token: str) -> dict[str, t.Any]:
    """The whole rung on Windows. Returns the module result; raises RequestError/HostError before any change."""
    request = Request.from_params(params, layout.name)
    probe = host.run_batch(probe_operations(layout, request), check_mode=True)
    packages = msix_packages(probe, PACKAGES_INDEX)
    # Only with an MSIX Notion: its folder is known from the probe, and the exe inside is looked for, not assumed.
    msix_stats = host.run_batch(msix_operations(packages), check_mode=True) if packages else None
    discovery = discover(request, probe, msix_stats)
    plan = PLANNERS[request.state](request, discovery, f"{now.strftime('%Y-%m-%dT%H:%M:%SZ')} ({entry_token})")
    operations = [operation for operation, _change in plan.steps()]
    results = None
    if operations and not check_mode:
        results = host.run_batch(operations, check_mode=False)['results']
    return build_result(plan, results)


# -------------------------------------------------------------------- Linux


def not_applicable(params: dict[str, t.Any]) -> dict[str, t.Any]:
    """Linux: validate the request like everywhere else, then say there is nothing to do."""
    request = Request.from_params(params, 'linux')
    return {'changed': False, 'not_applicable': True, 'platform': 'linux', 'state': request.state, 'msg': LINUX_MSG,
            'programs': [], 'added': [], 'corrected': [], 'removed': [], 'disabled': [], 'restored': [],
            'conflicts': [], 'notices': [], 'manual_actions': [], 'ineffective_rules': []}

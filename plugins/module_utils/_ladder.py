# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which rung the ladder applies next: pure, controller-side, tested by tables.

Private to this collection. Rules (issue 11, the article's "start with Step 1 and
proceed only if the loop persists"):

* A finding that names a rung goes there first: the lowest rung the findings point
  to that has not been tried for this incident.
* When every rung the findings point to was tried and they persist, climb to the
  next untried rung above the highest tried one.
* With an incident and no finding (a cache problem can be invisible to probes),
  the first run applies the lowest available rung; once anything was tried, a
  healthy host means nothing to do.
* ``escalate`` applies exactly the next rung above the highest tried one.
* Without an incident only findings lead to a rung.
* Unavailable rungs (none now; ``browser_data`` was one until its module existed), skipped rungs
  and rungs above ``max_rung`` are never chosen, and the plan says why.
"""
from __future__ import annotations

import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._diagnose import RUNGS

# Options of loopbreaker.notion.diagnose the ladder hands through (``diagnose:``); users, incident, since,
# expect_proxies, profiles_root and state_dir are the ladder's own to set.
DIAGNOSE_OPTIONS = ('endpoints', 'port', 'resolve', 'ca_bundle', 'timeout', 'log_window_minutes', 'proxy', 'no_proxy',
                    'network')
MAX_STEPS = 100
MAX_SETTLE_SECONDS = 3600
# The loopbreaker.notion.ladder action (the role's variables without the ladder_ prefix).
ARGUMENT_SPEC: dict[str, t.Any] = {
    'incident': {'type': 'str'},
    'escalate': {'type': 'bool', 'default': False},
    'max_rung': {'type': 'str', 'choices': list(RUNGS)},
    'skip': {'type': 'list', 'elements': 'str', 'default': [], 'choices': list(RUNGS)},
    'users': {'type': 'list', 'elements': 'str', 'default': []},
    'max_steps': {'type': 'int', 'default': 3},
    'settle_seconds': {'type': 'int', 'default': 10},
    'diagnose': {'type': 'dict', 'default': {}},
    'app_data_scopes': {'type': 'list', 'elements': 'str', 'default': ['cache', 'service_workers', 'storage'],
                        'choices': ['all', 'cache', 'service_workers', 'storage', 'cookies']},
    'proxy_mode': {'type': 'str', 'default': 'bypass', 'choices': ['direct', 'bypass']},
    'proxy_bypass_hosts': {'type': 'list', 'elements': 'str', 'default': [], 'no_log': False},
    'firewall_conflicts': {'type': 'str', 'default': 'disable', 'choices': ['remove', 'disable', 'report']},
    'browser_stop': {'type': 'bool', 'default': False},
    'app_installer': {'type': 'str'},
    'app_checksum': {'type': 'str'},
    'profiles_root': {'type': 'path'},
    'state_dir': {'type': 'path'},
}
# rung -> the module that applies it
RUNG_MODULES: dict[str, str] = {'app_data': 'app_data', 'browser_data': 'browser_data', 'sessions': 'app_data',
                                'proxy': 'proxy', 'restart': 'app', 'firewall': 'firewall', 'reinstall': 'app'}

# Rungs the collection cannot apply yet, and why (none today: browser_data has its module now).
UNAVAILABLE: dict[str, str] = {}


def available_rungs(skip: t.Iterable[str] = (), max_rung: str | None = None) -> tuple[list[str], list[str]]:
    """(rungs that may be applied, notes on the others), in ladder order."""
    skip = set(skip)
    unknown = sorted(skip - set(RUNGS) | ({max_rung} - set(RUNGS) if max_rung else set()))
    if unknown:
        raise ValueError(f'unknown rung(s): {", ".join(unknown)}; the ladder is {", ".join(RUNGS)}')
    top = RUNGS.index(max_rung) if max_rung else len(RUNGS) - 1
    usable, notes = [], []
    for index, rung in enumerate(RUNGS):
        if rung in UNAVAILABLE:
            notes.append(UNAVAILABLE[rung])
        elif rung in skip:
            notes.append(f'{rung}: skipped (ladder_skip)')
        elif index > top:
            notes.append(f'{rung}: above ladder_max_rung ({max_rung})')
        else:
            usable.append(rung)
    return usable, notes


def plan(diagnosis: dict[str, t.Any], tried: list[str], *, incident: str | None = None, escalate: bool = False,
         skip: t.Iterable[str] = (), max_rung: str | None = None, resolved: bool = False) -> dict[str, t.Any]:
    """{rung (or None), reason, climb (the rungs it would go through, in order), notes, users}."""
    usable, notes = available_rungs(skip, max_rung)
    findings = diagnosis.get('findings') or []
    pointed = [rung for rung in RUNGS if any(f.get('rung') == rung for f in findings)]
    highest = max((RUNGS.index(r) for r in tried), default=-1)
    above = [r for r in usable if RUNGS.index(r) > highest and r not in tried]
    untried = [r for r in usable if r not in tried]

    def users_for(rung: str | None) -> list[str]:
        named = sorted({f['user'] for f in findings if f.get('rung') == rung})
        return named or sorted(u['user'] for u in diagnosis.get('users') or [] if u.get('verdict') != 'not_applicable')

    def result(rung: str | None, reason: str, climb: list[str]) -> dict[str, t.Any]:
        return {'rung': rung, 'reason': reason, 'climb': climb, 'notes': notes, 'users': users_for(rung) if rung else [],
                'tried': list(tried), 'findings': [f['code'] for f in findings]}
    if escalate:
        if not incident:
            raise ValueError('ladder_escalate needs an incident (ladder_incident): escalating means the rung after '
                             'the ones tried for it')
        if not above:
            return result(None, 'escalate: no rung left above ' + (tried[-1] if tried else 'the bottom'), [])
        return result(above[0], f'escalate: the next rung after {", ".join(tried) or "none tried"}', above[:1])
    wanted = [r for r in pointed if r in usable and r not in tried]
    blocked = [r for r in pointed if r not in usable]
    if wanted:
        climb = wanted + [r for r in untried if RUNGS.index(r) > RUNGS.index(wanted[-1])]
        codes = sorted({f['code'] for f in findings if f.get('rung') == wanted[0]})
        return result(wanted[0], f'findings point to {wanted[0]}: {", ".join(codes)}', climb)
    if pointed and not blocked and incident and above:
        return result(above[0], f'{", ".join(pointed)} already tried and the findings persist: climbing', above)
    if pointed:
        why = ', '.join(blocked) + ' not available here' if blocked else 'every rung they point to was tried'
        return result(None, f'findings point to {", ".join(pointed)} but {why}', [])
    if findings:
        return result(None, 'only manual actions: ' + '; '.join(sorted({f['meaning'] for f in findings})), [])
    if incident and not tried and not resolved and usable:
        return result(usable[0], 'incident with no finding (a cache problem can be invisible to probes): the lowest '
                                 'rung not yet tried', untried)
    if incident and tried:
        return result(None, f'healthy; incident {incident} already tried {", ".join(tried)}', [])
    return result(None, 'healthy: no finding', [])


def validate(params: dict[str, t.Any]) -> None:
    """Refuse what the spec cannot say is wrong, before anything runs (raises ValueError)."""
    if not 1 <= params['max_steps'] <= MAX_STEPS:
        raise ValueError(f'max_steps (the role\'s ladder_max_steps) must be at least 1 (and at most {MAX_STEPS}), '
                         f'not {params["max_steps"]}')
    if not 0 <= params['settle_seconds'] <= MAX_SETTLE_SECONDS:
        raise ValueError(f'settle_seconds (the role\'s ladder_settle_seconds) must be between 0 and {MAX_SETTLE_SECONDS}, '
                         f'not {params["settle_seconds"]}')
    if params['escalate'] and not params.get('incident'):
        raise ValueError('escalate needs incident (the role\'s ladder_escalate needs ladder_incident): escalating '
                         'means the rung after the ones tried for it')
    unknown = sorted(set(params.get('diagnose') or {}) - set(DIAGNOSE_OPTIONS))
    if unknown:
        raise ValueError(f'diagnose: unsupported option(s) {", ".join(unknown)}; '
                         f'supported: {", ".join(DIAGNOSE_OPTIONS)}')
    available_rungs(effective_skip(params), params.get('max_rung'))


def effective_skip(params: dict[str, t.Any]) -> list[str]:
    """ladder_skip, and reinstall when there is no installer to reinstall from."""
    return list(params.get('skip') or []) + ([] if params.get('app_installer') else ['reinstall'])


def verdict(diagnosis: dict[str, t.Any]) -> dict[str, t.Any]:
    """A diagnose result condensed for reports: verdict, codes, and per user verdict and codes."""
    return {'verdict': diagnosis['verdict'],
            'codes': sorted({f['code'] for f in diagnosis['findings']}),
            'users': [{'user': u['user'], 'verdict': u['verdict'], 'codes': sorted({f['code'] for f in u['findings']})}
                      for u in diagnosis.get('users') or []]}


def finding_codes(diagnosis: dict[str, t.Any]) -> list[str]:
    """Codes in the order first found, each once (what the incident records as before/after)."""
    return list(dict.fromkeys(f['code'] for f in diagnosis.get('findings') or []))


def diagnose_args(params: dict[str, t.Any], *, since: str | None = None,
                  previous: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    """Arguments of one diagnosis; a re-diagnosis (``since``) probes the settings the last one found."""
    args = {k: v for k, v in (params.get('diagnose') or {}).items() if v is not None}
    if params.get('users'):
        args['users'] = params['users']
    for option in ('incident', 'profiles_root', 'state_dir'):
        if params.get(option):
            args[option] = params[option]
    if since:
        args['since'] = since
        if previous is not None and (previous.get('facts') or {}).get('proxies') is not None:
            args['expect_proxies'] = previous['facts']['proxies']
    return args


def rung_args(rung: str, params: dict[str, t.Any], users: list[str], diagnosis: dict[str, t.Any]) -> dict[str, t.Any]:
    """The arguments of the module that applies ``rung`` to ``users``, from the ladder's options."""
    sandbox = {o: params[o] for o in ('profiles_root', 'state_dir') if params.get(o)}
    named = {'users': users} if users else {}
    if rung in ('app_data', 'sessions'):
        return {'scopes': list(params['app_data_scopes']) if rung == 'app_data' else ['cookies'], **named, **sandbox}
    if rung == 'browser_data':
        # What DevTools' "Clear site data" does for Notion's origins; a running browser is skipped and reported
        # unless browser_stop, since it holds its databases and rewrites them on exit.
        return {'stop_browser': bool(params['browser_stop']), **named, **sandbox}
    if rung == 'proxy':
        args: dict[str, t.Any] = {'mode': params['proxy_mode']}
        if params['proxy_bypass_hosts'] and params['proxy_mode'] == 'bypass':
            args['bypass_hosts'] = list(params['proxy_bypass_hosts'])
        machine = any(u.get('proxy_scope') == 'machine' for u in (diagnosis.get('facts') or {}).get('users') or [])
        # Per user on Windows, unless the machine-wide policy applies; macOS and Linux are not per profile.
        if diagnosis.get('platform') == 'windows' and not machine:
            args.update(named)
        return args
    if rung in ('restart', 'reinstall'):
        args = {'state': 'restarted' if rung == 'restart' else 'reinstalled', **named}
        if rung == 'reinstall':
            args['installer'] = params.get('app_installer')
            if params.get('app_checksum'):
                args['checksum'] = params['app_checksum']
        return args
    if rung == 'firewall':
        return {'state': 'present', 'conflicts': params['firewall_conflicts'], **named,
                **{o: params[o] for o in ('profiles_root',) if params.get(o)}}
    raise ValueError(f'the ladder cannot apply {rung} yet')


def relaunch_users(rung: str, diagnosis: dict[str, t.Any], users: list[str]) -> list[str]:
    """Logged-on users whose Notion the rung stopped (app_data and sessions stop it; Windows only)."""
    if rung not in ('app_data', 'sessions') or diagnosis.get('platform') != 'windows':
        return []
    return [u['user'] for u in diagnosis.get('users') or []
            if u.get('logged_on') and u.get('notion_running') and u['user'] in users]


def stopped_at(steps: list[dict[str, t.Any]]) -> str | None:
    applied = [s['rung'] for s in steps if s.get('rung')]
    return applied[-1] if applied else None

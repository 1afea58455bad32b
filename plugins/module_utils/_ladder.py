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
* Unavailable rungs (``browser_data`` until its module exists), skipped rungs
  and rungs above ``max_rung`` are never chosen, and the plan says why.
"""
from __future__ import annotations

import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._diagnose import RUNGS

# Rungs the collection cannot apply yet, and why.
UNAVAILABLE: dict[str, str] = {
    'browser_data': 'browser_data: skipped, the browser_data module is not in this version yet',
}


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

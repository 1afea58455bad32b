# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""diagnose's install evidence on macOS: each Notion.app, its version and its code signature.

Private to this collection. The native diagnose module runs only the read-only commands that
``_macos_app.COMMANDS`` declares (``defaults read`` for the version, ``codesign -dv`` for the
team and ``codesign --verify --deep --strict``), so everything diagnose may run on a Mac is
listed in one place with the app module's. ``install_facts`` adds the evidence to each user's
facts; ``install_findings`` turns it into ``install_missing``/``install_unsigned``.
"""
from __future__ import annotations

import posixpath
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._macos_app import (
    BUNDLE_NAME,
    DEFAULT_APP_PATH,
    NOTION_TEAM_ID,
    MacAppError,
    Runner,
    Shell,
    parse_signature,
    parse_version,
)


def bundle_evidence(shell: Shell, path: str, exists: t.Callable[[str], bool]) -> dict[str, t.Any]:
    """One Notion.app: whether it is there, its version, team and whether its signature verifies."""
    if not exists(path):
        return {'path': path, 'exists': False}
    evidence: dict[str, t.Any] = {'path': path, 'exists': True, 'version': None, 'team_id': None,
                                  'valid': False, 'error': None}
    rc, out, _err = shell.run('bundle_version', path)
    if rc == 0:
        try:
            evidence['version'] = parse_version(out)
        except MacAppError:
            evidence['version'] = None
    rc, _out, err = shell.run('signature', path)
    if rc == 0:
        try:
            evidence['team_id'] = parse_signature(err)['team_id']
        except MacAppError as error:
            evidence['error'] = str(error)
    else:
        evidence['error'] = (err or 'codesign -dv failed').strip()[:300]
    rc, _out, err = shell.run('verify_signature', path)
    evidence['valid'] = rc == 0
    if rc != 0 and not evidence['error']:
        evidence['error'] = (err or 'codesign --verify failed').strip()[:300]
    return evidence


def install_facts(facts: dict[str, t.Any], runner: Runner, exists: t.Callable[[str], bool]) -> None:
    """Add ``install.bundles`` to each user's facts: /Applications/Notion.app and their ~/Applications one."""
    shell = Shell(runner, check_mode=True)
    machine = bundle_evidence(shell, DEFAULT_APP_PATH, exists)
    for fact in facts['users']:
        own = bundle_evidence(shell, posixpath.join(fact['profile_path'], 'Applications', BUNDLE_NAME), exists)
        fact['install'] = {'bundles': [b for b in (own, machine) if b['exists']]}


def install_findings(fact: dict[str, t.Any]) -> list[tuple[str, list[str]]]:
    """(code, evidence) for a user's Notion.app: missing while there is Notion data, or not Notion's signature."""
    bundles = (fact.get('install') or {}).get('bundles')
    if bundles is None:
        return []
    if not bundles:
        return [('install_missing', [f'no {BUNDLE_NAME} in /Applications or ~/Applications'])] if fact['data']['exists'] \
            else []
    found = []
    for bundle in bundles:
        if not bundle['valid']:
            found.append(f"{bundle['path']}: the code signature does not verify ({bundle.get('error')})")
        elif bundle.get('team_id') != NOTION_TEAM_ID:
            found.append(f"{bundle['path']}: signed by team {bundle.get('team_id')!r}, not Notion Labs' "
                         f'{NOTION_TEAM_ID}')
    return [('install_unsigned', found)] if found else []

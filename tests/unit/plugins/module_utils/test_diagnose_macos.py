"""diagnose's Notion.app evidence on macOS: the commands it runs and the findings they lead to."""
from __future__ import annotations

import datetime
import typing as t

import pytest

from ansible_collections.loopbreaker.notion.plugins.module_utils import _diagnose, _diagnose_macos
from ansible_collections.loopbreaker.notion.plugins.module_utils._macos_app import READ_ONLY

HOME = '/Users/ann'
OWN = f'{HOME}/Applications/Notion.app'
MACHINE = '/Applications/Notion.app'
NOTION = 'Executable=x\nIdentifier=notion.id\nAuthority=Developer ID Application: Notion Labs, Inc (LBQJ96FQ8D)\n' \
         'TeamIdentifier=LBQJ96FQ8D\n'
OTHER = NOTION.replace('LBQJ96FQ8D', 'ZZZZZZZZZZ')


def fake(bundles: dict[str, tuple[str, int]]) -> tuple[t.Callable[[list[str]], tuple[int, str, str]], list[list[str]]]:
    """A runner for codesign/defaults: bundle path -> (codesign -dv stderr, codesign --verify rc)."""
    calls: list[list[str]] = []

    def runner(argv: list[str]) -> tuple[int, str, str]:
        calls.append(argv)
        path = argv[-1] if argv[0] == '/usr/bin/codesign' else argv[2].rsplit('/Contents/', 1)[0]
        signature, verify = bundles[path]
        if argv[0] == '/usr/bin/defaults':
            return 0, '7.40.0\n', ''
        if '--verify' in argv:
            return verify, '', '' if verify == 0 else f'{path}: a sealed resource is missing or invalid'
        return (0, '', signature) if signature else (1, '', f'{path}: code object is not signed at all')
    return runner, calls


def facts(data: bool = True) -> dict[str, t.Any]:
    return {'users': [{'user': 'ann', 'sid': 'uid:501/ann', 'profile_path': HOME, 'logged_on': True,
                       'notion_running': [], 'data': {'exists': data, 'bytes': 1, 'roots': []}, 'logs': [], 'db': [],
                       'leveldb': [], 'errors': [], 'proxy': {'mode': 'direct'}, 'proxy_scope': 'host'}]}


@pytest.mark.parametrize('bundles, codes, evidence', [
    ({MACHINE: (NOTION, 0)}, [], None),
    ({OWN: (NOTION, 0), MACHINE: (NOTION, 0)}, [], None),
    ({MACHINE: (OTHER, 0)}, ['install_unsigned'], "signed by team 'ZZZZZZZZZZ', not Notion Labs' LBQJ96FQ8D"),
    ({MACHINE: (NOTION, 1)}, ['install_unsigned'], 'the code signature does not verify'),
    ({MACHINE: ('', 1)}, ['install_unsigned'], 'code object is not signed at all'),
    ({OWN: (OTHER, 0), MACHINE: (NOTION, 0)}, ['install_unsigned'], OWN),
    ({}, ['install_missing'], 'no Notion.app in /Applications or ~/Applications'),
])
def test_each_notion_app_is_checked_for_notions_signature(bundles: dict[str, tuple[str, int]], codes: list[str],
                                                          evidence: str | None) -> None:
    runner, calls = fake(bundles)
    found = facts()
    _diagnose_macos.install_facts(found, runner, lambda path: path in bundles)
    verdict = _diagnose.evaluate(found, [], [], cutoff=None, platform='darwin')
    assert [f['code'] for f in verdict['findings']] == codes
    if evidence:
        assert evidence in verdict['findings'][0]['evidence'][0]
        assert verdict['rungs'] == ['reinstall']
    # only the read-only commands the app module declares, and nothing for a bundle that is not there
    assert all(argv[0] in ('/usr/bin/codesign', '/usr/bin/defaults') for argv in calls)
    assert len(calls) == 3 * len(bundles)
    assert {'bundle_version', 'signature', 'verify_signature'} <= READ_ONLY


def test_no_bundle_and_no_data_is_not_a_finding() -> None:
    runner, _calls = fake({})
    found = facts(data=False)
    _diagnose_macos.install_facts(found, runner, lambda path: False)
    verdict = _diagnose.evaluate(found, [], [], cutoff=datetime.datetime.now(datetime.timezone.utc), platform='darwin')
    assert verdict['findings'] == [] and verdict['users'][0]['verdict'] == 'not_applicable'


def test_linux_hosts_have_no_bundle_evidence_and_no_install_findings() -> None:
    verdict = _diagnose.evaluate(facts(), [], [], cutoff=None, platform='linux')
    assert verdict['findings'] == []

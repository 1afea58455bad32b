# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_firewall_darwin.py: the Application Firewall path, socketfilterfw faked.

Homes are tmp directories read by LocalHost (the module's own probe); the fake firewall keeps an
ordered app table and answers in the wordings the parsers were written from.
"""
from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _firewall, _firewall_darwin
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import HostError, RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import DARWIN
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost

TOOL = '/usr/libexec/ApplicationFirewall/socketfilterfw'
MUTATING = {'--add', '--unblockapp', '--blockapp', '--remove'}
MANAGED = 'Firewall settings cannot be modified from command line on managed Mac computers.\n'


class FakeFirewall:
    """socketfilterfw and the record file, in memory; ``events`` logs commands and record writes in order."""

    def __init__(self, record_path: Path, apps: dict[str, bool] | None = None, *, state: int = 1,
                 managed: bool = False) -> None:
        self.record_path = str(record_path)
        self.apps = dict(apps or {})
        self.state = state
        self.managed = managed
        self.events: list[tuple[str, ...]] = []

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        assert argv[0] == TOOL
        flag, app = argv[1], (argv[2] if len(argv) > 2 else None)
        self.events.append((flag,) + ((app,) if app else ()))
        if flag in MUTATING and self.managed:
            return 0, MANAGED, ''
        if flag == '--getglobalstate':
            return 0, f"Firewall is {'enabled' if self.state else 'disabled'}. (State = {self.state})\n", ''
        if flag == '--listapps':
            lines = [f'ALF: total number of apps = {len(self.apps)} \n']
            for index, (path, allowed) in enumerate(self.apps.items(), start=1):
                lines.append(f"\n{index} :  {path} \n \t ( {'Allow' if allowed else 'Block'} incoming connections ) \n")
            return 0, ''.join(lines), ''
        assert app is not None
        if flag == '--getappblocked':
            if app not in self.apps:
                return 0, 'The application is not part of the firewall\n', ''
            verdict = 'is permitted to receive' if self.apps[app] else 'is blocked from receiving'
            return 0, f'The application {app} {verdict} incoming connections\n', ''
        if flag == '--add':
            if app in self.apps:
                return 0, 'The application is already a part of the firewall\n', ''
            self.apps[app] = True
            return 0, f'Application at path ( {app} ) added to firewall \n', ''
        if flag in ('--unblockapp', '--blockapp'):
            self.apps[app] = flag == '--unblockapp'
            return 0, f"Incoming connection to the application is {'permitted' if self.apps[app] else 'blocked'}\n", ''
        if flag == '--remove':
            self.apps.pop(app, None)
            return 0, f'Application at path ( {app} ) removed from firewall \n', ''
        return 64, '', f'unknown option {flag}'

    def read_record(self) -> str | None:
        path = Path(self.record_path)
        return path.read_text() if path.exists() else None

    def write_record(self, text: str) -> None:
        self.events.append(('write_record',))
        Path(self.record_path).write_text(text)

    def delete_record(self) -> None:
        self.events.append(('delete_record',))
        Path(self.record_path).unlink()

    def record(self) -> dict[str, t.Any] | None:
        text = self.read_record()
        return None if text is None else json.loads(text)

    def mutations(self) -> list[tuple[str, ...]]:
        return [e for e in self.events if e[0] in MUTATING or e[0].endswith('_record')]


@pytest.fixture
def mac(tmp_path: Path) -> dict[str, t.Any]:
    """Homes alice (with ~/Applications/Notion.app), bob (with one) and carol (none), and a shared app."""
    homes = tmp_path / 'Users'
    for user in ('alice', 'bob', 'carol'):
        (homes / user).mkdir(parents=True)
    for user in ('alice', 'bob'):
        (homes / user / 'Applications' / 'Notion.app' / 'Contents').mkdir(parents=True)
    shared = tmp_path / 'Applications' / 'Notion.app'
    (shared / 'Contents').mkdir(parents=True)
    return {'homes': homes, 'shared': str(shared), 'alice': str(homes / 'alice/Applications/Notion.app'),
            'bob': str(homes / 'bob/Applications/Notion.app'), 'record': tmp_path / 'firewall-record.json'}


def run(mac: dict[str, t.Any], firewall: FakeFirewall, *, check_mode: bool = False, **args: t.Any) -> dict[str, t.Any]:
    args.setdefault('extra_programs', [mac['shared']])
    validated = ArgumentSpecValidator(_firewall.ARGUMENT_SPEC, mutually_exclusive=_firewall.MUTUALLY_EXCLUSIVE).validate(args)
    assert not validated.error_messages
    host = LocalHost(str(mac['homes']), 'darwin')
    return _firewall_darwin.run(host, DARWIN, validated.validated_parameters, check_mode=check_mode, tools=firewall)


def test_present_adds_every_notion_app_and_records_it_first(mac: dict[str, t.Any]) -> None:
    firewall = FakeFirewall(mac['record'], {'/usr/libexec/sshd-keygen-wrapper': True})
    result = run(mac, firewall)
    assert result['changed'] is True
    assert sorted(a['program'] for a in result['added']) == sorted([mac['alice'], mac['bob'], mac['shared']])
    assert firewall.apps == {'/usr/libexec/sshd-keygen-wrapper': True, mac['alice']: True, mac['bob']: True,
                             mac['shared']: True}
    assert firewall.mutations()[0] == ('write_record',)
    assert firewall.record() == {'format': 1, 'added': sorted([mac['alice'], mac['bob'], mac['shared']]), 'unblocked': []}
    assert [a['commands'] for a in result['added'] if a['program'] == mac['alice']] == \
        [[[TOOL, '--add', mac['alice']], [TOOL, '--unblockapp', mac['alice']]]]
    assert [(p['user'], p['source'], p['status_before'], p['status']) for p in result['programs']] == [
        ('alice', 'profile', 'not_listed', 'allowed'), ('bob', 'profile', 'not_listed', 'allowed'),
        ('machine', 'extra', 'not_listed', 'allowed')]
    assert result['users_without_notion'] == ['carol']
    assert result['firewall'] == {'enabled': True, 'block_all': False, 'state': 1}


def test_second_run_changes_nothing(mac: dict[str, t.Any]) -> None:
    firewall = FakeFirewall(mac['record'])
    run(mac, firewall)
    firewall.events.clear()
    again = run(mac, firewall)
    assert again['changed'] is False
    assert firewall.mutations() == []
    assert again['added'] == again['corrected'] == again['removed'] == []


@pytest.mark.parametrize(('conflicts', 'handling', 'allowed'),
                         [('disable', 'unblocked', True), ('remove', 'unblocked', True), ('report', 'reported', False)])
def test_blocked_notion_app(mac: dict[str, t.Any], conflicts: str, handling: str, allowed: bool) -> None:
    firewall = FakeFirewall(mac['record'], {mac['bob']: False})
    result = run(mac, firewall, conflicts=conflicts)
    assert [(c['program'], c['user'], c['handling']) for c in result['conflicts']] == [(mac['bob'], 'bob', handling)]
    assert firewall.apps[mac['bob']] is allowed
    assert [c['program'] for c in result['corrected']] == ([mac['bob']] if allowed else [])
    assert firewall.record()['unblocked'] == ([mac['bob']] if allowed else [])


def test_check_mode_runs_only_queries(mac: dict[str, t.Any]) -> None:
    firewall = FakeFirewall(mac['record'], {mac['bob']: False})
    planned = run(mac, firewall, check_mode=True)
    assert firewall.mutations() == [] and firewall.record() is None
    assert firewall.apps == {mac['bob']: False}
    applied = run(mac, FakeFirewall(mac['record'], {mac['bob']: False}))
    for key in ('changed', 'added', 'corrected', 'conflicts', 'programs', 'diff'):
        assert planned[key] == applied[key], key


def test_absent_removes_only_apps_we_added(mac: dict[str, t.Any]) -> None:
    firewall = FakeFirewall(mac['record'], {mac['bob']: False, '/Applications/Zoom.us.app': True})
    run(mac, firewall)
    result = run(mac, firewall, state='absent')
    assert sorted(r['program'] for r in result['removed']) == sorted([mac['alice'], mac['shared']])
    assert firewall.apps == {mac['bob']: True, '/Applications/Zoom.us.app': True}
    assert firewall.record() == {'format': 1, 'added': [], 'unblocked': [mac['bob']]}
    assert run(mac, firewall, state='absent')['changed'] is False


def test_restored_returns_the_firewall_to_how_it_was(mac: dict[str, t.Any]) -> None:
    initial = {mac['bob']: False, '/Applications/Zoom.us.app': True}
    firewall = FakeFirewall(mac['record'], initial)
    run(mac, firewall)
    result = run(mac, firewall, state='restored')
    assert [r['program'] for r in result['restored']] == [mac['bob']]
    assert firewall.apps == initial
    assert firewall.record() is None
    again = run(mac, firewall, state='restored')
    assert again['changed'] is False and firewall.mutations()[-1] == ('delete_record',)


def test_a_managed_firewall_refuses_and_the_task_fails(mac: dict[str, t.Any]) -> None:
    firewall = FakeFirewall(mac['record'], managed=True)
    result = run(mac, firewall, users=['alice'], extra_programs=[])
    assert result['failed'] is True and 'configuration profile (MDM)' in result['msg']
    assert result['added'] == [] and result['changed'] is False
    assert firewall.mutations() == [('write_record',), ('--add', mac['alice']), ('delete_record',)], \
        'recorded before the attempt, and the record put right after the refusal'
    assert firewall.record() is None
    assert firewall.apps == {}


def test_firewall_off_or_blocking_everything_is_noticed(mac: dict[str, t.Any]) -> None:
    assert run(mac, FakeFirewall(mac['record'], state=0))['notices'] == \
        ['the Application Firewall is off; these rules take effect when it is turned on']
    blocking = run(mac, FakeFirewall(mac['record'], state=2))
    assert blocking['firewall']['block_all'] is True and 'overrides every per-app rule' in blocking['notices'][0]


def test_an_unreadable_record_stops_before_any_change(mac: dict[str, t.Any]) -> None:
    mac['record'].write_text('not json')
    firewall = FakeFirewall(mac['record'])
    with pytest.raises(RequestError, match='firewall record .* cannot be read'):
        run(mac, firewall)
    assert firewall.mutations() == []


def test_socketfilterfw_that_cannot_be_read_is_a_host_error(mac: dict[str, t.Any]) -> None:
    class Broken(FakeFirewall):
        def run(self, argv: list[str]) -> tuple[int, str, str]:
            return (0, 'garbage\n', '') if argv[1] == '--listapps' else super().run(argv)

    with pytest.raises(HostError, match='cannot read the application list'):
        run(mac, Broken(mac['record']))


def test_bad_extra_program_on_macos(mac: dict[str, t.Any]) -> None:
    with pytest.raises(RequestError, match='extra_programs on macOS must be absolute paths to an application bundle'):
        run(mac, FakeFirewall(mac['record']), extra_programs=['Notion.app'])


def test_a_failed_restore_keeps_what_it_could_not_undo_recorded(mac: dict[str, t.Any]) -> None:
    firewall = FakeFirewall(mac['record'], {mac['bob']: False})
    run(mac, firewall)
    recorded = firewall.record()
    firewall.managed = True
    result = run(mac, firewall, state='restored')
    assert result['failed'] is True and result['restored'] == [] and result['removed'] == []
    assert firewall.record() == recorded and result['changed'] is False
    firewall.managed = False
    assert run(mac, firewall, state='restored')['changed'] is True
    assert firewall.apps == {mac['bob']: False} and firewall.record() is None

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes and scheduled tasks on the twin (_simulated_processes.py), and the bridge's side of them.

PID reuse: Windows gives an exited process's id to the next process at once, so a pid
from the probe may name another user's or another program's process by the time the
apply batch runs. Scheduled tasks: Task Scheduler's default priority 7 starts a program
below normal; a principal given by name fails for renamed, unresolvable and Entra ID
accounts, one given by SID does not.
"""
from __future__ import annotations

import datetime
import re
import typing as t

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _app
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_windows_user
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state
from ansible_collections.loopbreaker.notion.tests.unit import bridge_ps1
from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed import (
    TwinEnv,
    notion_exe,
    sid,
)


ALICE = 'S-1-5-21-100-200-300-1001'
BOB = 'S-1-5-21-100-200-300-1002'
ENTRA = 'S-1-12-1-2043906341-1303311890-2137426088-2917354612'
EXE = 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe'


@pytest.fixture
def twin() -> SimulatedWindows:
    machine = SimulatedWindows(empty_state('WS01'))
    machine.add_profile('alice', ALICE, loaded=True)
    machine.add_profile('bob', BOB, loaded=True)
    machine.write(EXE, 'MZ Notion', meta={'kind': 'notion_exe', 'version': '7.40.0'})
    return machine


def listed(machine: SimulatedWindows, name: str = 'Notion.exe') -> list[dict[str, t.Any]]:
    envelope = machine.run_batch([{'op': 'list_processes', 'names': [name]}], check_mode=True)
    return t.cast(list[dict[str, t.Any]], envelope['results'][0]['data']['processes'])


def running(machine: SimulatedWindows) -> list[tuple[int, str, str]]:
    return [(p['pid'], p['name'], p['owner_sid']) for p in machine.state['processes']]


# ------------------------------------------------------------------ PID reuse

def test_list_processes_reports_each_process_start_time(twin: SimulatedWindows) -> None:
    first = twin.add_process('Notion.exe', EXE, ALICE)
    second = twin.add_process('Notion.exe', EXE, ALICE)
    times = {p['pid']: p['started'] for p in listed(twin)}
    assert set(times) == {first, second}
    assert all(re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z', value) for value in times.values())
    assert times[first] < times[second]


@pytest.mark.parametrize('replacement, reason', [
    (('Notion.exe', EXE, BOB), 'now belongs to ' + BOB),
    (('backup.exe', 'C:\\Tools\\backup.exe', ALICE), "is now 'backup.exe', not 'Notion.exe'"),
    (('Notion.exe', EXE, ALICE), 'the listed process exited and its id was reused'),
], ids=['another user', 'another program', 'a new Notion of the same user'])
def test_a_reused_pid_is_not_stopped(twin: SimulatedWindows, replacement: tuple[str, str, str], reason: str) -> None:
    pid = twin.add_process('Notion.exe', EXE, ALICE)
    [probed] = listed(twin)
    name, path, owner = replacement
    twin.state['faults'].append({'during_op': 'stop_processes',
                                 'reuse_pid': {'pid': pid, 'name': name, 'path': path, 'owner_sid': owner}})
    [result] = twin.run_batch([{'op': 'stop_processes', 'processes': [probed]}])['results']
    assert result['status'] == 'ok'
    assert (result['data']['stopped'], result['data']['already_gone']) == ([], [])
    [refused] = result['data']['not_stopped']
    assert (refused['pid'], refused['name']) == (pid, 'Notion.exe') and reason in refused['reason']
    assert (pid, name, owner) in running(twin), 'the process that took the pid is still running'


def test_stop_processes_stops_the_listed_process_and_reports_the_gone(twin: SimulatedWindows) -> None:
    pid = twin.add_process('Notion.exe', EXE, ALICE)
    [probed] = listed(twin)
    gone = dict(probed, pid=99999)
    [result] = twin.run_batch([{'op': 'stop_processes', 'processes': [probed, gone]}])['results']
    assert result['data'] == {'stopped': [pid], 'already_gone': [99999], 'not_stopped': []}
    assert pid not in [p for p, _name, _owner in running(twin)]


def test_a_process_without_a_start_time_is_never_stopped(twin: SimulatedWindows) -> None:
    pid = twin.add_process('Notion.exe', EXE, ALICE)
    [probed] = listed(twin)
    [result] = twin.run_batch([{'op': 'stop_processes', 'processes': [dict(probed, started=None)]}])['results']
    assert result['data']['stopped'] == [] and 'no start time' in result['data']['not_stopped'][0]['reason']
    assert pid in [p for p, _name, _owner in running(twin)]


def test_app_data_kills_nothing_else_when_the_pid_is_reused_between_probe_and_apply() -> None:
    env = TwinEnv(['alice', 'bob'])
    pid = env.add_notion_process('alice')
    env.machine.state['faults'].append({'during_op': 'stop_processes', 'reuse_pid': {
        'pid': pid, 'name': 'Notion.exe', 'path': notion_exe('bob'), 'owner_sid': sid(2)}})
    result = env.app_data(users=['alice'], scopes=['cache'])
    assert env.running(pid), "bob's Notion, which took alice's pid, is still running"
    [alice] = result['users']
    assert alice['processes_stopped'] == []
    assert [p['pid'] for p in alice['processes_not_stopped']] == [pid]


def test_app_stops_nothing_else_when_a_pid_is_reused_between_probe_and_apply() -> None:
    machine = SimulatedWindows(empty_state('WS01'))
    seed_windows_user(machine, 'alice', ALICE, loaded=True, running=True)
    seed_windows_user(machine, 'bob', BOB, loaded=True)
    first, *others = [p['pid'] for p in machine.state['processes'] if p['name'] == 'Notion.exe']
    bob_exe = 'C:\\Users\\bob\\AppData\\Local\\Programs\\Notion\\Notion.exe'
    machine.state['faults'].append({'during_op': 'stop_processes', 'reuse_pid': {
        'pid': first, 'name': 'Notion.exe', 'path': bob_exe, 'owner_sid': BOB}})
    validated = ArgumentSpecValidator(_app.ARGUMENT_SPEC).validate({'state': 'stopped', 'users': ['alice']})
    result = _app.run(machine, validated.validated_parameters, check_mode=False,
                      now=datetime.datetime(2026, 3, 4, tzinfo=datetime.UTC), entry_token='a1b2c3')
    [alice] = result['users']
    assert alice['processes_stopped'] == others
    assert [(p['pid'], 'exited and its id was reused' in p['reason'] or 'belongs to' in p['reason'])
            for p in alice['processes_not_stopped']] == [(first, True)]
    assert (first, 'Notion.exe', BOB) in running(machine), "bob's Notion, which took the pid, is still running"


# ------------------------------------------------------------- task priority

def test_programs_run_through_a_task_get_normal_priority(twin: SimulatedWindows) -> None:
    envelope = twin.run_batch([
        {'op': 'run_as_user', 'sid': ALICE, 'executable': EXE, 'arguments': []},
        {'op': 'start_as_user', 'sid': ALICE, 'executable': EXE},
    ])
    assert [r['status'] for r in envelope['results']] == ['ok', 'ok']
    assert twin.state['tasks_run'][-1]['priority'] == 'Normal'
    [started] = twin.state['tasks_started']
    assert started['priority'] == 'Normal'
    assert [p['priority'] for p in twin.state['processes'] if p['pid'] == envelope['results'][1]['data']['pid']] == [
        'Normal']


def test_the_bridge_registers_its_tasks_at_normal_priority_by_sid() -> None:
    text = bridge_ps1.bridge_text()
    body = bridge_ps1.function_text(text, 'Register-BridgeUserTask')
    assert re.search(r'^\$TaskPriority = 4\b', text, re.MULTILINE)
    assert re.search(r'\.Settings\.Priority = \$TaskPriority\b', body)
    # The COM definition keeps the SID as given; New-ScheduledTaskPrincipal would translate it to a name.
    assert re.search(r'\.Principal\.UserId = \$User\.Sid\b', body)
    code = '\n'.join(line.split('#', 1)[0] for line in body.splitlines())
    assert 'New-ScheduledTaskPrincipal' not in code and 'UserId' not in bridge_ps1.function_text(
        text, 'Resolve-BridgeInteractiveUser')


# ------------------------------------------------------------ principals by SID

@pytest.mark.parametrize('user, account', [
    (ALICE, {'renamed_to': 'alice.smith', 'account': 'WS01\\alice.smith'}),
    (ALICE, {'account_resolves': False}),
    (ENTRA, {'account': 'AzureAD\\AliceSmith'}),
], ids=['renamed account', 'account that no longer resolves', 'Entra ID account'])
def test_a_task_principal_by_name_fails_where_one_by_sid_does_not(user: str, account: dict[str, t.Any]) -> None:
    machine = SimulatedWindows(empty_state('WS01'))
    profile = machine.add_profile('alice', user, loaded=True, logged_on=True)
    profile.update(account)
    machine.write(EXE, 'MZ Notion', meta={'kind': 'notion_exe', 'version': '7.40.0'})
    with pytest.raises(BridgeOperationError, match='No mapping between account names and security IDs'):
        machine._register_task(profile, by='name')
    [result] = machine.run_batch([{'op': 'run_as_user', 'sid': user, 'executable': EXE, 'arguments': []}])['results']
    assert result['status'] == 'ok'
    assert machine.state['tasks_run'][-1]['principal'] == user

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulated Windows host's processes and scheduled tasks (a mixin of SimulatedWindows).

Private to this collection. Processes carry a start time (``started``, UTC, in the
round-trip form .NET gives ``Win32_Process.CreationDate``), and Windows reuses process
ids as soon as the last handle to an exited process is closed, so a pid from an earlier
bridge call names whatever has it now. The fault ``reuse_pid: {pid, name, path,
owner_sid}`` models that: just before the operation it names, the process behind the
pid exits and another one (another user's, another program) gets the same number.
``stop_processes`` therefore takes each process as the probe saw it and stops it only
while its name, owner and start time are still those.

Scheduled tasks (``run_as_user``, ``start_as_user``): the principal is registered by
SID. A name is what Windows would have to translate back at registration, and that
fails for a renamed account whose profile folder keeps the old name, for an account
that no longer resolves (a domain controller out of reach, a deleted user whose
profile remains) and is fragile for Entra ID users (``AzureAD\\<name>``); the twin
refuses a by-name principal in each of those cases, as Task Scheduler would. Each
task's process runs at the priority the task asks for: Task Scheduler's default is 7
(BELOW_NORMAL_PRIORITY_CLASS), the bridge registers 4 (NORMAL_PRIORITY_CLASS).
"""
from __future__ import annotations

import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError

# Task Scheduler's priority levels and the priority class a task's process gets (TaskSettings.Priority).
TASK_PRIORITY_CLASSES = {0: 'Realtime', 1: 'High', 2: 'AboveNormal', 3: 'AboveNormal', 4: 'Normal', 5: 'Normal',
                         6: 'Normal', 7: 'BelowNormal', 8: 'BelowNormal', 9: 'Idle', 10: 'Idle'}
TASK_SCHEDULER_DEFAULT_PRIORITY = 7
# What Register-BridgeUserTask sets: a program the user works with, not a background job.
BRIDGE_TASK_PRIORITY = 4
PROCESS_FIELDS = ('pid', 'name', 'path', 'owner_sid', 'session_id', 'started')
BASE_DATE = '2026-01-01'


def _start_time(tick: int) -> str:
    """A distinct, ordered start time per process, in .NET's round-trip ('o') UTC form."""
    minutes, seconds = divmod(tick, 60)
    return f'{BASE_DATE}T08:{minutes % 60:02d}:{seconds:02d}.{tick % 10_000_000:07d}Z'


def identity_mismatch(expected: dict[str, t.Any], current: dict[str, t.Any]) -> str | None:
    """Why the process now behind expected['pid'] is not the one the probe listed (None: it is)."""
    for field, what in (('name', 'image name'), ('owner_sid', 'owner'), ('started', 'start time')):
        if expected.get(field) is None:
            return f'the probe reported no {what} for it, so it cannot be told apart from a later process'
    if str(current.get('name', '')).lower() != str(expected['name']).lower():
        return f"pid {expected['pid']} is now {current.get('name')!r}, not {expected['name']!r}"
    if current.get('owner_sid') != expected['owner_sid']:
        return f"pid {expected['pid']} now belongs to {current.get('owner_sid')}, not {expected['owner_sid']}"
    if current.get('started') != expected['started']:
        return (f"pid {expected['pid']} was started at {current.get('started')}, not {expected['started']}: "
                'the listed process exited and its id was reused')
    return None


class SimulatedProcesses:
    """Processes, PID reuse and the scheduled-task principal for SimulatedWindows."""

    state: dict[str, t.Any]

    # ------------------------------------------------------------------ seeding
    def _next_tick(self) -> int:
        self.state['clock'] = self.state.get('clock', 0) + 1
        return int(self.state['clock'])

    def add_process(self, name: str, path: str, owner_sid: str, *, session_id: int = 1,
                    unkillable: bool = False, priority: str = 'Normal') -> int:
        pid = 1000 + 4 * len(self.state['processes']) + 4 * len(self.state['calls'])
        while any(p['pid'] == pid for p in self.state['processes']):
            pid += 4
        self._spawn(pid, name, path, owner_sid, session_id=session_id, unkillable=unkillable, priority=priority)
        return pid

    def _spawn(self, pid: int, name: str, path: str, owner_sid: str, *, session_id: int = 1,
               unkillable: bool = False, priority: str = 'Normal') -> dict[str, t.Any]:
        process = {'pid': pid, 'name': name, 'path': path, 'owner_sid': owner_sid, 'session_id': session_id,
                   'unkillable': unkillable, 'started': _start_time(self._next_tick()), 'priority': priority}
        self.state['processes'].append(process)
        return process

    def reuse_pid(self, pid: int, name: str, path: str, owner_sid: str, *, session_id: int = 1) -> None:
        """The process behind pid exits and another one is given the same id (Windows reuses them at once)."""
        self.state['processes'] = [p for p in self.state['processes'] if p['pid'] != pid]
        self._spawn(pid, name, path, owner_sid, session_id=session_id)

    def _apply_process_fault(self, fault: dict[str, t.Any]) -> None:
        reuse = fault.get('reuse_pid')
        if reuse and not fault.get('fired'):
            fault['fired'] = True
            self.reuse_pid(int(reuse['pid']), reuse['name'], reuse['path'], reuse['owner_sid'],
                           session_id=int(reuse.get('session_id', 1)))

    # --------------------------------------------------------------- operations
    def op_list_processes(self, names: list[str]) -> dict[str, t.Any]:
        wanted = {n.lower() for n in names}
        return {'processes': [{k: p.get(k) for k in PROCESS_FIELDS}
                              for p in self.state['processes'] if p['name'].lower() in wanted]}

    def op_stop_processes(self, processes: list[dict[str, t.Any]], timeout_seconds: int = 30) -> dict[str, t.Any]:
        running = {p['pid']: p for p in self.state['processes']}
        stopped: list[int] = []
        stuck: list[int] = []
        gone: list[int] = []
        not_stopped: list[dict[str, t.Any]] = []
        for expected in processes:
            pid = int(expected['pid'])
            current = running.get(pid)
            if current is None:
                gone.append(pid)
                continue
            reason = identity_mismatch(expected, current)
            if reason is not None:
                not_stopped.append({'pid': pid, 'name': expected.get('name'), 'reason': reason})
            elif current.get('unkillable'):
                stuck.append(pid)
            else:
                stopped.append(pid)
        self.state['processes'] = [p for p in self.state['processes'] if p['pid'] not in stopped]
        if stuck:
            raise BridgeOperationError(f'Processes still running after {timeout_seconds} s: '
                                       f'{", ".join(map(str, stuck))}')
        return {'stopped': stopped, 'already_gone': gone, 'not_stopped': not_stopped}

    # ------------------------------------------------------------ scheduled tasks
    def _register_task(self, profile: dict[str, t.Any], *, by: str = 'sid') -> dict[str, t.Any]:
        """The principal and settings of a one-shot task for this user, as Task Scheduler would register them.

        ``by='name'`` is the older registration (DOMAIN\\user translated from the SID): kept so the tests can show
        what it did on the machines it failed on.
        """
        if by == 'name':
            account = profile.get('account')
            if profile.get('account_resolves') is False or not account:
                raise BridgeOperationError(f"No mapping between account names and security IDs was done: "
                                           f"'{profile['sid']}' has no account name to register a task for.")
            if profile.get('renamed_to') or str(account).lower().startswith('azuread\\'):
                # The folder name is not the account name, and an AzureAD\ name only resolves while the user's
                # Entra ID sign-in is cached: Task Scheduler refuses the principal.
                raise BridgeOperationError(f"No mapping between account names and security IDs was done: "
                                           f"'{account}'.")
            user_id = str(account)
        else:
            user_id = profile['sid']
        return {'user_id': user_id, 'logon_type': 'Interactive', 'run_level': 'Limited',
                'priority': BRIDGE_TASK_PRIORITY}

    def _task_process_priority(self, task: dict[str, t.Any]) -> str:
        return TASK_PRIORITY_CLASSES[int(task.get('priority', TASK_SCHEDULER_DEFAULT_PRIORITY))]

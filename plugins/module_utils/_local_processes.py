# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes on a macOS or Linux host: listing Notion's and stopping them (a mixin of LocalHost).

Private to this collection. A Linux process carries ``home``, its ``HOME``, so it is matched to
the profile whose home it works in (_host.owns), not to every home of its uid. Stopping goes
through a pidfd where the kernel has them, and each process is given as it was listed (pid, name,
owner, start time): it is signalled only while they are still those, so a reused pid is never
somebody else's. The start time is Linux's (clock ticks since boot); macOS has none to compare,
so there name and owner must match.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError


class LocalProcesses:
    """op_list_processes and op_stop_processes for LocalHost."""

    platform: str
    profiles_root: str

    def op_list_processes(self, names: list[str]) -> dict[str, t.Any]:
        wanted = {name.lower() for name in names}
        processes = [p for p in self._processes() if p['name'].lower() in wanted]
        for process in processes:
            process['started'] = _start_time(process['pid'])
        return {'processes': processes}

    def _processes(self) -> list[dict[str, t.Any]]:
        if self.platform == 'darwin':
            output = subprocess.run(['ps', '-axo', 'pid=,uid=,comm='], capture_output=True, text=True, errors='replace',
                                    check=True)
            rows = [row for row in (line.split(None, 2) for line in output.stdout.splitlines())
                    if len(row) == 3 and row[0].isdigit() and row[1].isdigit()]
            return [{'pid': int(pid), 'name': os.path.basename(comm), 'path': comm, 'owner_sid': f'uid:{uid}',
                     'session_id': None} for pid, uid, comm in rows]
        processes = []
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                # Any user names their processes (prctl, /proc/self/comm) with any bytes: never fail on them.
                with open(f'/proc/{entry}/comm', encoding='utf-8', errors='replace') as handle:
                    name = handle.read().strip()
                owner = os.stat(f'/proc/{entry}').st_uid
                path = os.readlink(f'/proc/{entry}/exe') if os.access(f'/proc/{entry}/exe', os.R_OK) else ''
            except OSError:
                continue
            if _is_zombie(int(entry)):
                continue  # exited, not yet reaped: nothing to stop, and no HOME to tell whose it is
            processes.append({'pid': int(entry), 'name': name, 'path': path, 'owner_sid': f'uid:{owner}',
                              'session_id': None, 'home': self._home_of(entry)})
        return processes

    def _home_of(self, pid: str) -> str | None:
        """A process's HOME, spelt below profiles_root when it resolves to a place there."""
        home = _environment_home(pid)
        if home is None:
            return None
        real, root = os.path.realpath(home), os.path.realpath(self.profiles_root)
        relative = os.path.relpath(real, root)
        if relative == '.' or relative.startswith('..'):
            return real
        return os.path.join(self.profiles_root, relative)

    def op_stop_processes(self, processes: list[dict[str, t.Any]], timeout_seconds: int = 30) -> dict[str, t.Any]:
        current = {p['pid']: p for p in self._processes()}
        handles: dict[int, int | None] = {}
        gone: list[int] = []
        not_stopped: list[dict[str, t.Any]] = []
        try:
            for expected in processes:
                pid = int(expected['pid'])
                if pid not in current:
                    gone.append(pid)
                    continue
                handle = _pidfd(pid)  # from here on the number cannot be taken by another process
                reason = _mismatch(expected, current[pid], _start_time(pid), needs_start=self.platform != 'darwin')
                if reason is not None:
                    if handle is not None:
                        os.close(handle)
                    not_stopped.append({'pid': pid, 'name': expected.get('name'), 'reason': reason})
                    continue
                handles[pid] = handle
            targets = list(handles)
            for pid in targets:
                _signal(pid, signal.SIGTERM, handles[pid])
            deadline = time.monotonic() + timeout_seconds
            remaining = _alive(targets, handles)
            while remaining and time.monotonic() < deadline:
                time.sleep(0.1)
                remaining = _alive(remaining, handles)
            for pid in remaining:
                _signal(pid, signal.SIGKILL, handles[pid])
            time.sleep(0.2 if remaining else 0)
            stuck = _alive(remaining, handles)
        finally:
            for handle in handles.values():
                if handle is not None:
                    os.close(handle)
        if stuck:
            raise BridgeOperationError(f'Processes still running after {timeout_seconds} s: {", ".join(map(str, stuck))}')
        return {'stopped': targets, 'already_gone': gone, 'not_stopped': not_stopped}


def _mismatch(expected: dict[str, t.Any], current: dict[str, t.Any], started: str | None, *,
              needs_start: bool) -> str | None:
    """Why the process now behind expected['pid'] is not the listed one (None: it is)."""
    pid = expected['pid']
    missing_start = needs_start and not expected.get('started')
    if expected.get('name') is None or expected.get('owner_sid') is None or missing_start:
        return ('the probe did not report its name, owner and start time, so it cannot be told apart from a later '
                'process')
    if str(current['name']).lower() != str(expected['name']).lower():
        return f"pid {pid} is now {current['name']!r}, not {expected['name']!r}"
    if current['owner_sid'] != expected['owner_sid']:
        return f"pid {pid} now belongs to {current['owner_sid']}, not {expected['owner_sid']}"
    if started != expected.get('started'):
        return (f"pid {pid} was started at {started}, not {expected.get('started')}: the listed process exited and "
                'its id was reused')
    return None


def _environment_home(pid: str) -> str | None:
    """HOME of a Linux process, None when its environment cannot be read (another user's, gone)."""
    try:
        with open(f'/proc/{pid}/environ', 'rb') as handle:
            environment = handle.read()
    except OSError:
        return None
    for variable in environment.split(b'\0'):
        if variable.startswith(b'HOME=') and len(variable) > 5:
            return os.path.normpath(variable[5:].decode('utf-8', 'surrogateescape'))
    return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc; None elsewhere): with the pid, its identity."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as handle:
            return handle.read().rsplit(b') ', 1)[-1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _pidfd(pid: int) -> int | None:
    """A descriptor for the process itself (Linux 5.3+), so a signal can never reach a later owner of its pid."""
    opener = getattr(os, 'pidfd_open', None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def _signal(pid: int, signum: int, handle: int | None = None) -> None:
    try:
        if handle is not None:
            signal.pidfd_send_signal(handle, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _alive(pids: list[int], handles: dict[int, int | None] | None = None) -> list[int]:
    alive = []
    for pid in pids:
        handle = (handles or {}).get(pid)
        if handle is not None:
            # A pidfd becomes readable when its process has exited (a zombie not yet reaped included).
            poller = select.poll()
            poller.register(handle, select.POLLIN)
            if not poller.poll(0):
                alive.append(pid)
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        if not _is_zombie(pid):
            alive.append(pid)
    return alive


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped still answers kill(0); /proc says it is gone (Linux only)."""
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8', errors='replace') as handle:
            return handle.read().rsplit(') ', 1)[-1].startswith('Z')
    except OSError:
        return False

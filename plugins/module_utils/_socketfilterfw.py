# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The macOS Application Firewall command line, declared in one place.

Private to this collection. ``COMMANDS`` is the whole contract the firewall
module has with ``socketfilterfw``: which flags it runs, whether a command
changes anything, and how its output is read. The wording of the output has
changed between macOS releases, so the parsers accept every wording found in
public captures and raise ``SocketFilterError`` for anything else rather than
guess. Nothing here runs a process: callers pass the output in.
"""
from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

SOCKETFILTERFW = '/usr/libexec/ApplicationFirewall/socketfilterfw'
MANAGED_REFUSAL = 'cannot be modified from command line on managed mac'


class SocketFilterError(Exception):
    """socketfilterfw failed or printed something this module cannot read."""


@dataclass(frozen=True)
class GlobalState:
    state: int

    @property
    def enabled(self) -> bool:
        return self.state != 0

    @property
    def block_all(self) -> bool:
        return self.state == 2


@dataclass(frozen=True)
class ListedApp:
    path: str
    allowed: bool


@dataclass(frozen=True)
class Command:
    flag: str
    takes_app: bool
    mutates: bool


COMMANDS: dict[str, Command] = {
    'global_state': Command('--getglobalstate', takes_app=False, mutates=False),
    'list_apps': Command('--listapps', takes_app=False, mutates=False),
    'app_blocked': Command('--getappblocked', takes_app=True, mutates=False),
    'add': Command('--add', takes_app=True, mutates=True),
    'unblock': Command('--unblockapp', takes_app=True, mutates=True),
    'block': Command('--blockapp', takes_app=True, mutates=True),
    'remove': Command('--remove', takes_app=True, mutates=True),
}


def argv(name: str, app: str | None = None) -> list[str]:
    """The argument vector of one declared command; raises ValueError for misuse."""
    command = COMMANDS.get(name)
    if command is None:
        raise ValueError(f'unknown socketfilterfw command {name!r}')
    if command.takes_app != (app is not None):
        raise ValueError(f'socketfilterfw {command.flag} {"needs" if command.takes_app else "takes no"} application path')
    if app is not None and not app.startswith('/'):
        raise ValueError(f'socketfilterfw needs an absolute application path, got {app!r}')
    return [SOCKETFILTERFW, command.flag] + ([app] if app is not None else [])


def check_output(name: str, rc: int, out: str, err: str) -> str:
    """The output of a command that ran; raises SocketFilterError if it failed or was refused."""
    text = f'{out}\n{err}'.strip()
    if MANAGED_REFUSAL in text.lower():
        raise SocketFilterError(f'{COMMANDS[name].flag}: the firewall is managed by a configuration profile (MDM) '
                                f'and refuses changes from the command line: {text}')
    if rc != 0:
        raise SocketFilterError(f'{COMMANDS[name].flag} exited with {rc}: {text or "no output"}')
    return out


_STATE = re.compile(r'\(state\s*=\s*(\d+)\)')


def parse_global_state(text: str) -> GlobalState:
    """``--getglobalstate``: 0 off, 1 on, 2 on and blocking all incoming connections."""
    first = text.strip().splitlines()[0].strip().lower() if text.strip() else ''
    match = _STATE.search(first)
    if match:
        state = int(match.group(1))
        if state not in (0, 1, 2):
            raise SocketFilterError(f'unknown firewall state in {first!r}')
        return GlobalState(state)
    if first.startswith('firewall is enabled'):
        return GlobalState(1)
    if first.startswith('firewall is disabled'):
        return GlobalState(0)
    raise SocketFilterError(f'cannot read the firewall state from {text.strip()!r}')


_HEADER = re.compile(r'^ALF: total number of apps = (\d+)\s*$')
_ENTRY = re.compile(r'^\s*(\d+)\s*:\s+(.*?)\s*$')
_VERDICT = re.compile(r'^\s*\(\s*(Allow|Block) incoming connections\s*\)\s*$')
_INLINE = re.compile(r'^(.*?)\s*\(\s*(Allow|Block) incoming connections\s*\)$')


def parse_list_apps(text: str) -> list[ListedApp]:
    """``--listapps``: every application with a rule, in order.

    Each entry is ``N :  <path>`` followed by ``( Allow|Block incoming connections )`` on the
    next line (some releases print both on one line). The count in the header must match.
    """
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines or not _HEADER.match(lines[0].strip()):
        raise SocketFilterError(f'cannot read the application list: {text.strip()[:200]!r}')
    expected = int(_HEADER.match(lines[0].strip()).group(1))  # type: ignore[union-attr]
    apps: list[ListedApp] = []
    pending: str | None = None
    for line in lines[1:]:
        entry = _ENTRY.match(line)
        verdict = _VERDICT.match(line)
        if entry and pending is None:
            inline = _INLINE.match(entry.group(2))
            if inline:
                apps.append(ListedApp(inline.group(1), inline.group(2) == 'Allow'))
            else:
                pending = entry.group(2)
        elif verdict and pending is not None:
            apps.append(ListedApp(pending, verdict.group(1) == 'Allow'))
            pending = None
        else:
            raise SocketFilterError(f'unexpected line in the application list: {line.strip()!r}')
    if pending is not None or len(apps) != expected:
        raise SocketFilterError(f'the application list announces {expected} apps but lists {len(apps)}')
    return apps


def parse_app_blocked(text: str, app: str) -> str:
    """``--getappblocked <app>``: ``allowed``, ``blocked`` or ``not_listed``.

    The path is taken out of the text first, so a path containing "blocked" says nothing.
    """
    lowered = ' '.join(text.replace(app, '<app>').lower().split())
    if not lowered:
        raise SocketFilterError(f'--getappblocked printed nothing for {app}')
    if 'not part of the firewall' in lowered:
        return 'not_listed'
    allowed = 'permitted' in lowered or 'is allowed' in lowered or 'not blocked' in lowered
    blocked = re.search(r'(?<!not )\bblock(ed|ing)\b', lowered) is not None
    if allowed == blocked:
        raise SocketFilterError(f'cannot tell whether {app} is blocked from {text.strip()!r}')
    return 'allowed' if allowed else 'blocked'


def parse(name: str, out: str, app: str | None = None) -> t.Any:
    """Read the output of a declared query command."""
    if name == 'global_state':
        return parse_global_state(out)
    if name == 'list_apps':
        return parse_list_apps(out)
    if name == 'app_blocked' and app is not None:
        return parse_app_blocked(out, app)
    raise ValueError(f'socketfilterfw command {name!r} has no output to read')

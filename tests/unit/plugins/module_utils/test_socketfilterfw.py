# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_socketfilterfw.py: the macOS firewall command contract.

Argument vectors are tables of input -> expected argv. Output samples are the wordings published in
public repositories that capture or parse socketfilterfw on several macOS releases (no Mac runs
these tests); each parser must read every one of them and refuse anything else.
"""
from __future__ import annotations

import re

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils import _socketfilterfw as sfw

TOOL = '/usr/libexec/ApplicationFirewall/socketfilterfw'
APP = '/Applications/Notion.app'
SPACED = '/Users/alice/Applications/Notion Beta.app'


def test_the_tool_lives_where_apple_puts_it() -> None:
    assert sfw.SOCKETFILTERFW == TOOL


@pytest.mark.parametrize(
    ('name', 'app', 'expected'),
    [
        ('global_state', None, [TOOL, '--getglobalstate']),
        ('list_apps', None, [TOOL, '--listapps']),
        ('app_blocked', APP, [TOOL, '--getappblocked', APP]),
        ('add', APP, [TOOL, '--add', APP]),
        ('unblock', APP, [TOOL, '--unblockapp', APP]),
        ('block', APP, [TOOL, '--blockapp', APP]),
        ('remove', APP, [TOOL, '--remove', APP]),
        ('add', SPACED, [TOOL, '--add', SPACED]),
        ('unblock', '/Users/o\'brien/Applications/Notion.app', [TOOL, '--unblockapp', '/Users/o\'brien/Applications/Notion.app']),
    ],
)
def test_argv(name: str, app: str | None, expected: list[str]) -> None:
    assert sfw.argv(name, app) == expected


def test_only_the_change_commands_mutate() -> None:
    assert {name for name, command in sfw.COMMANDS.items() if command.mutates} == {'add', 'unblock', 'block', 'remove'}
    assert {name for name, command in sfw.COMMANDS.items() if command.takes_app} == \
        {'app_blocked', 'add', 'unblock', 'block', 'remove'}


@pytest.mark.parametrize(
    ('name', 'app', 'message'),
    [
        ('setglobalstate', None, "unknown socketfilterfw command 'setglobalstate'"),
        ('add', None, 'socketfilterfw --add needs application path'),
        ('list_apps', APP, 'socketfilterfw --listapps takes no application path'),
        ('remove', 'Applications/Notion.app', "socketfilterfw needs an absolute application path, got 'Applications/Notion.app'"),
    ],
)
def test_argv_misuse(name: str, app: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=f'^{re.escape(message)}$'):
        sfw.argv(name, app)


# ------------------------------------------------------------- global state


@pytest.mark.parametrize(
    ('text', 'state'),
    [
        ('Firewall is enabled. (State = 1)\n', 1),
        ('Firewall is disabled. (State = 0)\n', 0),
        ('Firewall is disabled. (State = 0)', 0),
        ('Firewall is enabled. (State = 2)\n', 2),
        ('Firewall is blocking all non-essential connections. (State = 2)\n', 2),
        ('Firewall is enabled. (State = 1)\nFirewall stealth mode is on\n', 1),
        ('Firewall is enabled.\n', 1),
        ('Firewall is disabled.\nStealth mode disabled\n', 0),
    ],
)
def test_parse_global_state(text: str, state: int) -> None:
    parsed = sfw.parse_global_state(text)
    assert (parsed.state, parsed.enabled, parsed.block_all) == (state, state != 0, state == 2)


@pytest.mark.parametrize('text', ['', 'Segmentation fault\n', 'Firewall is enabled. (State = 7)\n',
                                  "socketfilterfw: unrecognized option `--getglobalstate'\n"])
def test_parse_global_state_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(sfw.SocketFilterError):
        sfw.parse_global_state(text)


# -------------------------------------------------------------- listapps


LISTAPPS_TWO = ('ALF: total number of apps = 2 \n\n1 :  /Applications/Foo.app \n \t ( Allow incoming connections ) \n\n'
                '2 :  /usr/local/bin/bar \n \t ( Block incoming connections ) \n')
LISTAPPS_THREE = ('ALF: total number of apps = 3\n\n1 :  /Applications/Music.app\n \t ( Allow incoming connections )\n\n'
                  '2 :  /app/bin/xray\n \t ( Block incoming connections )\n\n'
                  '3 :  /usr/local/bin/nhub\n \t ( Allow incoming connections )\n')


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        pytest.param(LISTAPPS_TWO, [('/Applications/Foo.app', True), ('/usr/local/bin/bar', False)], id='trailing-spaces'),
        pytest.param(LISTAPPS_THREE, [('/Applications/Music.app', True), ('/app/bin/xray', False),
                                      ('/usr/local/bin/nhub', True)], id='three'),
        pytest.param('ALF: total number of apps = 1\n1 : /Applications/Adas Trail.app ( Allow incoming connections )\n',
                     [('/Applications/Adas Trail.app', True)], id='one-line-entry'),
        pytest.param('ALF: total number of apps = 0\n', [], id='empty'),
        pytest.param('ALF: total number of apps = 1 \n\n1 :  /Users/service/Library/Application Support/x/bin/d \n'
                     ' \t ( Block incoming connections ) \n', [('/Users/service/Library/Application Support/x/bin/d', False)],
                     id='spaces-in-path'),
    ],
)
def test_parse_list_apps(text: str, expected: list[tuple[str, bool]]) -> None:
    assert [(app.path, app.allowed) for app in sfw.parse_list_apps(text)] == expected


@pytest.mark.parametrize(
    'text',
    [
        pytest.param('', id='empty'),
        pytest.param('1 :  /Applications/Foo.app\n ( Allow incoming connections )\n', id='no-header'),
        pytest.param('ALF: total number of apps = 2\n\n1 :  /Applications/Foo.app\n ( Allow incoming connections )\n',
                     id='count-mismatch'),
        pytest.param('ALF: total number of apps = 1\n\n1 :  /Applications/Foo.app\n', id='no-verdict'),
        pytest.param('ALF: total number of apps = 1\n\n1 :  /Applications/Foo.app\n ( Ask incoming connections )\n',
                     id='unknown-verdict'),
    ],
)
def test_parse_list_apps_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(sfw.SocketFilterError):
        sfw.parse_list_apps(text)


# ---------------------------------------------------------- getappblocked


@pytest.mark.parametrize(
    ('text', 'app', 'expected'),
    [
        ('The application {} is permitted to receive incoming connections\n', APP, 'allowed'),
        ('The application {} is blocked from receiving incoming connections\n', APP, 'blocked'),
        ('The application {} is permitted\n', APP, 'allowed'),
        ('The application {} is blocked\n', APP, 'blocked'),
        ('The application {} is not part of the firewall\n', APP, 'not_listed'),
        ('The application at path ( {} ) is not part of the firewall\n', APP, 'not_listed'),
        ('The application is not part of the firewall\n', APP, 'not_listed'),
        ('Incoming connection to the application is permitted\n', APP, 'allowed'),
        ('Incoming connection to the application is blocked\n', APP, 'blocked'),
        ('Incoming connection to {} is permitted.\n', APP, 'allowed'),
        ('Incoming connection to the application is allowed\n', APP, 'allowed'),
        ('The application at path ( {} ) is not blocked from accepting incoming connections.', APP, 'allowed'),
        ('Application at path ( {} ) is blocked from accepting incoming connections.', APP, 'blocked'),
        ('The application {} is blocking incoming connections\n', APP, 'blocked'),
        ('The application {} is permitted\n', '/Users/dev/blocked/Notion.app', 'allowed'),
        ('The application {} is blocked\n', '/Users/dev/permitted/Notion.app', 'blocked'),
    ],
)
def test_parse_app_blocked(text: str, app: str, expected: str) -> None:
    assert sfw.parse_app_blocked(text.replace('{}', app), app) == expected


@pytest.mark.parametrize('text', ['', 'usage: socketfilterfw ...\n', 'The application {} is permitted and blocked\n'])
def test_parse_app_blocked_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(sfw.SocketFilterError):
        sfw.parse_app_blocked(text.replace('{}', APP), APP)


# ------------------------------------------------------------- exit checks


@pytest.mark.parametrize('rc', [0, 1, 255])
def test_managed_mac_refusal_is_an_error_whatever_the_exit_status(rc: int) -> None:
    with pytest.raises(sfw.SocketFilterError, match='managed by a configuration profile'):
        sfw.check_output('add', rc, 'Firewall settings cannot be modified from command line on managed Mac computers.\n', '')


def test_a_failing_command_is_an_error_with_its_output() -> None:
    with pytest.raises(sfw.SocketFilterError, match=r'^--remove exited with 1: no such app$'):
        sfw.check_output('remove', 1, '', 'no such app\n')
    with pytest.raises(sfw.SocketFilterError, match=r'^--listapps exited with 2: no output$'):
        sfw.check_output('list_apps', 2, '', '')


def test_a_successful_command_returns_its_output() -> None:
    assert sfw.check_output('unblock', 0, 'Incoming connection to the application is permitted\n', '') == \
        'Incoming connection to the application is permitted\n'


@pytest.mark.parametrize(
    ('name', 'out', 'app', 'expected'),
    [
        ('global_state', 'Firewall is enabled. (State = 1)\n', None, sfw.GlobalState(1)),
        ('list_apps', 'ALF: total number of apps = 0\n', None, []),
        ('app_blocked', f'The application {APP} is blocked\n', APP, 'blocked'),
    ],
)
def test_parse_dispatches_to_the_declared_reader(name: str, out: str, app: str | None, expected: object) -> None:
    assert sfw.parse(name, out, app) == expected


@pytest.mark.parametrize('name', ['add', 'unblock', 'block', 'remove'])
def test_change_commands_have_no_output_to_read(name: str) -> None:
    with pytest.raises(ValueError, match='has no output to read'):
        sfw.parse(name, '', APP)

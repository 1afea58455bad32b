"""How a module's cost grows with the number of users (and firewall rules): bridge calls must not; time is reported.

The time includes the simulated host executing the operations (its pattern matching is a linear
scan of the machine's files), so it overstates the controller's own share.

Run with `make bench` for the numbers (pytest-benchmark's table); in `make test` the same code runs
once per size with timing disabled, and the call counts are asserted, never the seconds.
"""
from __future__ import annotations

import datetime
import typing as t

import pytest

from ansible_collections.loopbreaker.notion.plugins.module_utils import _app_data, _firewall, _proxy
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import WINDOWS
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_user_proxy, seed_windows_user
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.timezone.utc)
APP_DATA = {'scopes': ['all'], 'users': None, 'exclude_users': None, 'profiles_root': None, 'stop_app': True,
            'stop_timeout': 30, 'quarantine': True}
FIREWALL = {'state': 'present', 'directions': ['inbound', 'outbound'], 'profiles': ['private', 'public'],
            'conflicts': 'disable', 'users': None, 'exclude_users': None, 'extra_programs': None, 'profiles_root': None}
PROXY = {'mode': 'bypass', 'disable': ['manual_proxy'], 'bypass_hosts': None, 'winhttp': 'keep', 'users': None,
         'exclude_users': None, 'services': None}


def machine(users: int) -> SimulatedWindows:
    twin = SimulatedWindows(empty_state())
    for number in range(users):
        sid = f'S-1-5-21-1-2-3-{1000 + number}'
        seed_windows_user(twin, f'user{number:03d}', sid, loaded=number % 2 == 0, running=number % 3 == 0)
        seed_user_proxy(twin, sid, proxy_server='proxy.corp.example:8080', bypass='<local>')
    return twin


def clear_everyone(twin: SimulatedWindows) -> SimulatedWindows:
    _app_data.run(twin, WINDOWS, dict(APP_DATA), check_mode=False, now=NOW, entry_token='abcdef')
    return twin


def bypass_everyone(twin: SimulatedWindows) -> SimulatedWindows:
    _proxy.run(twin, dict(PROXY), check_mode=False, now=NOW)
    return twin


def fresh(users: int) -> t.Callable[[], tuple[tuple[SimulatedWindows], dict[str, t.Any]]]:
    """pytest-benchmark setup: a newly seeded machine per round, not timed."""
    return lambda: ((machine(users),), {})


@pytest.mark.benchmark(group='app_data: clear every user')
@pytest.mark.parametrize('users', [1, 10, 50])
def test_app_data_cost_is_two_calls_whatever_the_users(benchmark: t.Any, users: int) -> None:
    twin = benchmark.pedantic(clear_everyone, setup=fresh(users), rounds=3, iterations=1)
    assert len(twin.state['calls']) == 2
    assert sum(len(call['operations']) for call in twin.state['calls'][:1]) == 3, 'the probe is 3 operations'


@pytest.mark.benchmark(group='proxy: bypass for every user')
@pytest.mark.parametrize('users', [1, 10, 50])
def test_proxy_cost_is_two_calls_whatever_the_users(benchmark: t.Any, users: int) -> None:
    twin = benchmark.pedantic(bypass_everyone, setup=fresh(users), rounds=3, iterations=1)
    assert len(twin.state['calls']) == 2
    assert twin.state['mounted_hives'] == []


def firewall_machine(rules: int) -> SimulatedWindows:
    """Ten users with Notion on a machine with ``rules`` unrelated firewall rules (real fleets have thousands)."""
    twin = machine(10)
    twin.state['firewall_rules'] = [
        {'name': f'{{rule-{number:05d}}}', 'display_name': f'App {number}', 'direction': 'in', 'action': 'allow',
         'profiles': ['domain'], 'program': f'C:\\Program Files\\App{number}\\app.exe', 'enabled': True,
         'description': '', 'protocol': 'tcp', 'local_ports': [str(1024 + number % 60000)]} for number in range(rules)]
    return twin


def allow_everyone(twin: SimulatedWindows) -> SimulatedWindows:
    _firewall.run(twin, WINDOWS, dict(FIREWALL), check_mode=False, now=NOW, entry_token='abcdef')
    return twin


@pytest.mark.benchmark(group='firewall: allow every user, N rules on the machine')
@pytest.mark.parametrize('rules', [100, 1000, 5000])
def test_firewall_reads_every_rule_once_whatever_their_number(benchmark: t.Any, rules: int) -> None:
    twin = benchmark.pedantic(allow_everyone, setup=lambda: ((firewall_machine(rules),), {}), rounds=3, iterations=1)
    assert len(twin.state['calls']) == 2
    assert [call.get('firewall_rule_reads', 0) for call in twin.state['calls']] == [rules, 0], \
        'one pass over the stores in the probe; the changes are made by name, reading no other rule'

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loopback only: the simulated host and every test run never reach beyond this machine."""
from __future__ import annotations

import socket

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils import _netprobe

ENDPOINT = {'name': 'www', 'host': 'www.notion.so', 'port': 443, 'kind': 'https'}


def _no_network(*_args: object, **_kwargs: object) -> None:
    raise AssertionError('a loopback-only probe touched the network')


@pytest.fixture(autouse=True)
def forbid_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, 'getaddrinfo', _no_network)


@pytest.mark.parametrize(('resolve', 'proxies', 'error'), [
    ({}, [{'mode': 'direct'}], 'www.notion.so is not among the names given to resolve: not probed here'),
    ({'www.notion.so': '203.0.113.7'}, [{'mode': 'direct'}],
     'www.notion.so resolves to 203.0.113.7, not a loopback address: not probed here'),
    ({}, [{'mode': 'manual', 'server': 'proxy.corp.example:3128'}],
     'not probed here: proxy proxy.corp.example:3128 is not on a loopback address'),
])
def test_nothing_off_loopback_is_looked_up_or_connected(resolve, proxies, error: str) -> None:
    outcome = _netprobe.probe_all([ENDPOINT], proxies, resolve=resolve, timeout_seconds=1,
                                  proxy_for=_netprobe.proxy_for, loopback_only=True)
    [result] = outcome['results']
    assert (result['ok'], result['error']) == (False, error)


@pytest.mark.parametrize('pac_url', ['http://wpad.corp.example/proxy.pac', 'https://203.0.113.7/proxy.pac'])
def test_the_environment_alone_keeps_the_pac_url_on_loopback(monkeypatch: pytest.MonkeyPatch, pac_url: str) -> None:
    monkeypatch.setenv(_netprobe.LOOPBACK_ONLY_VARIABLE, '1')
    outcome = _netprobe.probe_all([ENDPOINT], [{'mode': 'pac', 'pac_url': pac_url}], resolve={}, timeout_seconds=1,
                                  proxy_for=_netprobe.proxy_for)
    [result] = outcome['results']
    assert result['pac']['evaluated'] is False and 'not fetched' in result['pac']['error']
    assert result['error'] == 'www.notion.so is not among the names given to resolve: not probed here'

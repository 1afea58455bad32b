"""diagnose against the lab's real services: each finding code produced by a real fault."""
from __future__ import annotations

import datetime
import typing as t
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.loopbreaker.notion.plugins.module_utils import _diagnose
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost
from ansible_collections.loopbreaker.notion.plugins.plugin_utils import _lab
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._ladder_lab import (
    EXPECTED,
    diagnose_options,
    seed_ladder_lab,
    seed_linux_lab,
)
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab_services import LabServices
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

pytestmark = pytest.mark.integration
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


@pytest.fixture(scope='module')
def services(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[dict[str, t.Any]]:
    lab = LabServices(tmp_path_factory.mktemp('services'))
    info = lab.start()
    yield info
    lab.stop()


def params(info: dict[str, t.Any], **changes: t.Any) -> dict[str, t.Any]:
    validated = ArgumentSpecValidator(_diagnose.ARGUMENT_SPEC).validate({**diagnose_options(info), **changes})
    assert not validated.error_messages
    return validated.validated_parameters


def by_user(result: dict[str, t.Any]) -> dict[str, set[str]]:
    return {u['user']: {f['code'] for f in u['findings']} for u in result['users']}


@pytest.mark.parametrize('host', [h for h in EXPECTED if h.startswith('ws-win')])
def test_each_lab_workstation_shows_its_fault(services: dict[str, t.Any], host: str) -> None:
    twin = SimulatedWindows(seed_ladder_lab(services, NOW)[host])
    result = _diagnose.run(twin, params(services), platform='windows', now=NOW)
    _fault, rung, codes = EXPECTED[host]
    assert {f['code'] for f in result['findings']} == set(codes)
    assert result['rungs'] == [rung]
    assert result['bridge_calls'] == 2 and len(twin.state['calls']) == 2
    assert all(not call['operations'] or call['check_mode'] for call in twin.state['calls'])


def test_network_faults_per_user_proxy(services: dict[str, t.Any]) -> None:
    twin = SimulatedWindows(empty_state())
    users = {'direct': None, 'squid': services['squid_proxy'], 'inspect': services['intercepting_proxy'],
             'dead': '127.0.0.1:9', 'bypassed': services['squid_proxy']}
    for index, (name, proxy) in enumerate(users.items()):
        sid = f'S-1-5-21-9-9-9-{1000 + index}'
        _lab.seed_windows_user(twin, name, sid, loaded=index % 2 == 0)
        if proxy:
            _lab.seed_user_proxy(twin, sid, proxy_server=proxy,
                                 bypass='*.notion.so;*.notion.com' if name == 'bypassed' else '')
    result = _diagnose.run(twin, params(services), platform='windows', now=NOW)
    assert by_user(result) == {'direct': set(), 'bypassed': set(), 'squid': {'notion_host_blocked'},
                               'inspect': {'tls_intercepted', 'websocket_blocked'}, 'dead': {'proxy_unreachable'}}
    inspect = next(f for f in result['findings'] if f['code'] == 'tls_intercepted')
    assert 'Contoso SSL Inspection CA' in inspect['evidence'][0]
    squid = next(f for f in result['findings'] if f['code'] == 'notion_host_blocked')
    assert all('msgstore' in line and 'HTTP 403' in line for line in squid['evidence'])
    # users sharing a proxy setting share its probes: four distinct settings, one batch
    assert len(result['facts']['proxies']) == 5 and result['bridge_calls'] == 2


def test_dns_failure_and_the_untrusted_lab_ca(services: dict[str, t.Any]) -> None:
    twin = SimulatedWindows(empty_state())
    _lab.seed_windows_user(twin, 'alice', 'S-1-5-21-1-1-1-1001', loaded=True)
    endpoints = [{'host': 'www.notion.so', 'kind': 'https'}, {'host': 'msgstore.notion-lab.invalid', 'kind': 'engineio'}]
    result = _diagnose.run(twin, params(services, endpoints=endpoints), platform='windows', now=NOW)
    assert by_user(result) == {'alice': {'dns_failure'}}
    assert result['manual_actions'] and result['rungs'] == []
    untrusted = _diagnose.run(twin, params(services, ca_bundle=None), platform='windows', now=NOW)
    # without the lab CA the stand-in's own certificate is an unknown issuer
    assert by_user(untrusted) == {'alice': {'tls_intercepted'}}


def test_local_evidence_codes(services: dict[str, t.Any]) -> None:
    twin = SimulatedWindows(empty_state())
    root = _lab.seed_windows_user(twin, 'ann', 'S-1-5-21-2-2-2-1001', loaded=True)
    stamp = (NOW - datetime.timedelta(minutes=2)).strftime('%Y-%m-%d %H:%M:%S')
    twin.write(root + '\\logs\\log.log', f'[{stamp}.000] [warn] did-fail-load errorCode=-3 url=https://www.notion.so/\n')
    twin.write(root + '\\Local Storage\\leveldb\\LOG', '2026/12/01-09:00:00 Corruption: block checksum mismatch\n')
    twin.write('C:\\Users\\ben\\AppData\\Roaming\\Notion\\Preferences', '{}')
    twin.add_profile('ben', 'S-1-5-21-2-2-2-1002')
    result = _diagnose.run(twin, params(services), platform='windows', now=NOW)
    assert by_user(result) == {'ann': {'load_failed', 'cache_corrupt'}, 'ben': {'install_missing'}}


def test_the_linux_workstation_natively(services: dict[str, t.Any], tmp_path: Path) -> None:
    homes = tmp_path / 'home'
    seed_linux_lab(str(homes))
    host = LocalHost(str(homes), 'linux', str(tmp_path / 'state'))
    result = _diagnose.run(host, params(services), platform='linux', now=NOW,
                           posix_proxy=_diagnose.posix_proxy_from({'proxy': None, 'no_proxy': None}, {}))
    assert by_user(result) == {'grace': {'cache_corrupt'}}
    through_squid = _diagnose.run(host, params(services, network=True), platform='linux', now=NOW,
                                  posix_proxy={'mode': 'manual', 'server': services['squid_proxy']})
    assert by_user(through_squid) == {'grace': {'cache_corrupt', 'notion_host_blocked'}}


def test_a_re_diagnosis_with_the_settings_it_expects_costs_one_call_and_says_the_same(
        services: dict[str, t.Any]) -> None:
    twin = SimulatedWindows(seed_ladder_lab(services, NOW)['ws-win-01'])
    first = _diagnose.run(twin, params(services), platform='windows', now=NOW)
    again = _diagnose.run(twin, params(services, expect_proxies=first['facts']['proxies']), platform='windows', now=NOW)
    assert again['bridge_calls'] == 1 and len(twin.state['calls']) == 3
    assert twin.state['calls'][-1]['operations'][-1] == 'probe_network'
    assert by_user(again) == by_user(first) and again['facts']['proxies'] == first['facts']['proxies']
    assert [p['proxy_index'] for p in again['facts']['probes']] == [p['proxy_index'] for p in first['facts']['probes']]


def test_a_re_diagnosis_after_the_proxy_changed_probes_what_the_users_have_now(services: dict[str, t.Any]) -> None:
    twin = SimulatedWindows(seed_ladder_lab(services, NOW)['ws-win-01'])
    first = _diagnose.run(twin, params(services), platform='windows', now=NOW)
    # alice's proxy now lets Notion's hosts bypass it, as the proxy rung leaves it
    _lab.seed_user_proxy(twin, 'S-1-5-21-3004336348-1177238915-682003330-1001', proxy_server=services['squid_proxy'],
                         bypass='<local>;*.notion.so;*.notion.com')
    again = _diagnose.run(twin, params(services, expect_proxies=first['facts']['proxies']), platform='windows', now=NOW)
    assert again['bridge_calls'] == 2
    assert by_user(again)['alice'] == set() and by_user(again)['bob'] == by_user(first)['bob']


@pytest.mark.parametrize('setting, message', [
    ({'mode': 'socks'}, 'expect_proxies mode must be one of direct, manual, pac, auto_detect'),
    ({'mode': 'manual', 'server': 'p:8080', 'user': 'x'}, 'expect_proxies entries take mode, server, bypass, pac_url'),
    ({'mode': 'manual', 'server': 'p:8080\r\nX-Injected: 1'}, 'expect_proxies server must be text without control'),
])
def test_expect_proxies_is_checked_before_the_host_is_read(
        services: dict[str, t.Any], setting: dict[str, t.Any], message: str) -> None:
    twin = SimulatedWindows(seed_ladder_lab(services, NOW)['ws-win-01'])
    with pytest.raises(_diagnose.RequestError, match=message.replace('(', r'\(')):
        _diagnose.run(twin, params(services, expect_proxies=[setting]), platform='windows', now=NOW)
    assert twin.state['calls'] == []


# ------------------------------------------------------------------ PAC, evaluated as the OS would
def test_a_pac_user_finds_the_msgstore_hosts_refused_through_the_pac_file(services: dict[str, t.Any]) -> None:
    pytest.importorskip('pypac')
    twin = SimulatedWindows(empty_state())
    _lab.seed_windows_user(twin, 'carol', 'S-1-5-21-7-7-7-1001', loaded=True)
    _lab.seed_user_proxy(twin, 'S-1-5-21-7-7-7-1001', pac_url=services['pac_url'])
    result = _diagnose.run(twin, params(services), platform='windows', now=NOW)
    assert result['facts']['proxies'] == [{'mode': 'pac', 'pac_url': services['pac_url']}]
    assert by_user(result) == {'carol': {'notion_host_blocked'}} and result['rungs'] == ['proxy']
    [finding] = result['findings']
    squid = services['squid_proxy']
    assert all('msgstore' in line and f'(PAC {services["pac_url"]}: PROXY {squid})' in line and 'HTTP 403' in line
               for line in finding['evidence'])
    entries = {p['host']: (p['proxy'], p['pac']['entry']) for p in result['facts']['probes']}
    assert entries['www.notion.so'] == (None, 'DIRECT') and entries['msgstore.www.notion.so'] == (squid, f'PROXY {squid}')
    assert result['bridge_calls'] == 2


def test_the_linux_workstation_through_a_pac_option(services: dict[str, t.Any], tmp_path: Path) -> None:
    pytest.importorskip('pypac')
    homes = tmp_path / 'home'
    seed_linux_lab(str(homes))
    host = LocalHost(str(homes), 'linux', str(tmp_path / 'state'))
    setting = _diagnose.posix_proxy_from({'proxy': f'pac+{services["pac_url"]}', 'no_proxy': None}, {})
    assert setting == {'mode': 'pac', 'pac_url': services['pac_url']}
    result = _diagnose.run(host, params(services), platform='linux', now=NOW, posix_proxy=setting)
    assert by_user(result) == {'grace': {'cache_corrupt', 'notion_host_blocked'}}
    assert all(p['pac']['evaluated'] for p in result['facts']['probes'])


def test_a_pac_file_winhttp_would_not_read_is_probed_direct_and_says_so(
        services: dict[str, t.Any], tmp_path: Path) -> None:
    pytest.importorskip('pypac')
    pac = tmp_path / 'local.pac'
    pac.write_text('function FindProxyForURL(url, host) { return "PROXY 127.0.0.1:9"; }')
    twin = SimulatedWindows(empty_state())
    _lab.seed_windows_user(twin, 'carol', 'S-1-5-21-7-7-7-1001', loaded=True)
    # WinHTTP reads no file:// PAC (KB 4025058): the app goes direct, and so does the probe.
    _lab.seed_user_proxy(twin, 'S-1-5-21-7-7-7-1001', pac_url=f'file://{pac}')
    result = _diagnose.run(twin, params(services), platform='windows', now=NOW)
    assert by_user(result) == {'carol': set()}
    assert all('WinHTTP reads PAC files over http and https only' in p['note'] and p['proxy'] is None
               for p in result['facts']['probes'])


def test_without_a_pac_engine_the_user_is_not_reported_healthy(
        services: dict[str, t.Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible_collections.loopbreaker.notion.plugins.module_utils import _pac
    monkeypatch.setattr(_pac, 'ENGINE_PROGRAM', _pac.ENGINE_PROGRAM.replace('from pypac.parser', 'from pypac_gone.parser'))
    twin = SimulatedWindows(empty_state())
    _lab.seed_windows_user(twin, 'carol', 'S-1-5-21-7-7-7-1001', loaded=True)
    _lab.seed_user_proxy(twin, 'S-1-5-21-7-7-7-1001', pac_url=services['pac_url'])
    result = _diagnose.run(twin, params(services), platform='windows', now=NOW)
    assert by_user(result) == {'carol': {'proxy_not_evaluated'}}
    assert result['rungs'] == [] and result['manual_actions']
    assert all('no PAC engine' in line for line in result['findings'][0]['evidence'])


def test_a_pac_option_that_names_no_url_is_refused() -> None:
    with pytest.raises(_diagnose.RequestError, match='pac\\+http://'):
        _diagnose.posix_proxy_from({'proxy': 'pac+wpad.corp.example', 'no_proxy': None}, {})

"""The verdict: tables of evidence -> finding codes and rungs; proxy choice; input checks."""
from __future__ import annotations

import base64
import datetime
import typing as t

import pytest

from ansible_collections.loopbreaker.notion.plugins.module_utils import _diagnose
from ansible_collections.loopbreaker.notion.plugins.module_utils import _inet_proxy as blob
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._netprobe import proxy_for

NOW = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.timezone.utc)
# As get_file_info reports Notion's own Notion.exe: signed through Azure Trusted Signing.
NOTION_SIGNATURE = {'status': 'Valid', 'signer': 'Notion Labs, Inc.', 'issuer': 'Microsoft ID Verified CS AOC CA 03',
                    'subject': 'CN="Notion Labs, Inc.", O="Notion Labs, Inc.", L=San Francisco, S=California, C=US',
                    'ekus': ['1.3.6.1.5.5.7.3.3', '1.3.6.1.4.1.311.97.1.0']}
SQLITE = base64.b64encode(b'SQLite format 3\x00' + b'x' * 20).decode()


def fact(**changes: t.Any) -> dict[str, t.Any]:
    base: dict[str, t.Any] = {
        'user': 'alice', 'sid': 'S-1', 'logged_on': True, 'notion_running': [], 'proxy': {'mode': 'direct'},
        'proxy_key': '{"mode": "direct"}', 'data': {'exists': True, 'bytes': 10}, 'logs': [],
        'db': [{'path': 'notion.db', 'bytes': 36, 'head': SQLITE}], 'leveldb': [], 'block_rules': [],
        'install': {'nsis': {'path': 'C:\\N\\Notion.exe', 'exists': True,
                             'signature': NOTION_SIGNATURE}, 'msix': []}}
    base.update(changes)
    return base


def probe(ok: bool = True, step: str | None = None, **steps: t.Any) -> dict[str, t.Any]:
    return {'proxy_index': 0, 'host': 'msgstore.www.notion.so', 'port': 443, 'proxy': None, 'ok': ok,
            'failed_step': step, 'error': f'{step} failed' if step else None, 'steps': steps}


def codes(user: dict[str, t.Any], probes: list[dict[str, t.Any]] = ()) -> dict[str, str | None]:
    verdict = _diagnose.evaluate({'users': [user]}, list(probes), ['{"mode": "direct"}'],
                                 cutoff=NOW - datetime.timedelta(hours=1), platform='windows')
    return {f['code']: f['rung'] for f in verdict['findings']}


LOG_OLD = '[2026-12-01 08:00:00.000] [error] render-process-gone crashed\n'
LOG_NEW = '[2026-12-01 09:59:00.000] [error] render-process-gone {"reason":"crashed"}\n'
LOAD = '[2026-12-01 09:58:00.000] [warn] did-fail-load errorCode=-3 url=https://www.notion.so/\n'
LOAD_PROXY = '[2026-12-01 09:58:00.000] [warn] did-fail-load errorCode=-130 url=https://www.notion.so/\n'


@pytest.mark.parametrize('changes, probes, expected', [
    ({}, [probe()], {}),
    ({}, [probe(False, 'websocket', polling={'ok': True})], {'websocket_blocked': 'proxy'}),
    ({}, [probe(False, 'tls', tls={'issuer': 'Contoso SSL Inspection CA'},
                behind_interception={'polling': True, 'websocket': False})],
     {'tls_intercepted': 'proxy', 'websocket_blocked': 'proxy'}),
    ({}, [probe(False, 'dns')], {'dns_failure': None}),
    ({}, [probe(False, 'proxy')], {'proxy_unreachable': 'proxy'}),
    ({'proxy': {'mode': 'manual', 'server': 'p:1'}}, [probe(False, 'connect')], {'notion_host_blocked': 'proxy'}),
    ({}, [probe(False, 'tcp')], {'notion_host_blocked': 'firewall'}),
    ({'logs': [{'path': 'log.log', 'tail': LOG_OLD}]}, [], {}),
    ({'logs': [{'path': 'log.log', 'tail': LOG_OLD + LOG_NEW}]}, [], {'renderer_crashed': 'restart'}),
    ({'logs': [{'path': 'log.log', 'tail': LOAD}]}, [], {'load_failed': 'app_data'}),
    ({'logs': [{'path': 'log.log', 'tail': LOAD_PROXY}]}, [], {'load_failed': 'proxy'}),
    ({'db': [{'path': 'notion.db', 'bytes': 10, 'head': base64.b64encode(b'\0' * 10).decode()}]}, [],
     {'cache_corrupt': 'app_data'}),
    ({'db': [{'path': 'notion.db', 'bytes': 36, 'head': SQLITE, 'quick_check': 'database disk image is malformed'}]},
     [], {'cache_corrupt': 'app_data'}),
    ({'leveldb': [{'path': 'LOG', 'tail': '2026/12/01-09:00 Corruption: bad block\n'}]}, [], {'cache_corrupt': 'app_data'}),
    ({'block_rules': [{'name': 'b', 'display_name': 'B', 'direction': 'out', 'program': 'C:\\N\\Notion.exe'}]}, [],
     {'block_rule': 'firewall'}),
    ({'install': {'nsis': None, 'msix': []}}, [], {'install_missing': 'reinstall'}),
    ({'install': {'nsis': None, 'msix': [{'name': 'com.notion.app.desktop.notion'}]}}, [], {}),
    ({'install': {'nsis': {'path': 'x', 'signature': {'status': 'NotSigned', 'signer': None}}, 'msix': []}}, [],
     {'install_unsigned': 'reinstall'}),
])
def test_findings(changes: dict[str, t.Any], probes: list[dict[str, t.Any]], expected: dict[str, str | None]) -> None:
    assert codes(fact(**changes), probes) == expected


def test_a_user_without_notion_is_not_applicable_and_the_host_healthy() -> None:
    user = fact(data={'exists': False, 'bytes': 0}, install={'nsis': None, 'msix': []}, db=[])
    verdict = _diagnose.evaluate({'users': [user]}, [], [], cutoff=None, platform='windows')
    assert verdict['verdict'] == 'healthy'
    assert verdict['users'][0]['verdict'] == 'not_applicable'


def test_rungs_come_in_ladder_order() -> None:
    user = fact(logs=[{'path': 'l', 'tail': LOG_NEW}], db=[{'path': 'd', 'bytes': 1, 'head': ''}])
    verdict = _diagnose.evaluate({'users': [user]}, [probe(False, 'websocket')], ['{"mode": "direct"}'],
                                 cutoff=NOW - datetime.timedelta(hours=1), platform='windows')
    assert verdict['rungs'] == ['app_data', 'proxy', 'restart']


@pytest.mark.parametrize('setting, url, expected', [
    ({'mode': 'direct'}, 'https://www.notion.so/', None),
    ({'mode': 'manual', 'server': 'proxy:3128'}, 'https://www.notion.so/', 'proxy:3128'),
    ({'mode': 'manual', 'server': 'http=a:1;https=b:2'}, 'https://www.notion.so/', 'b:2'),
    ({'mode': 'manual', 'server': 'p:1', 'bypass': '*.notion.so;<local>'}, 'https://msgstore.www.notion.so/', None),
    ({'mode': 'manual', 'server': 'p:1', 'bypass': '<local>'}, 'https://intranet/', None),
    ({'mode': 'manual', 'server': 'p:1', 'bypass': '<local>'}, 'https://app.notion.com/', 'p:1'),
    ({'mode': 'pac', 'pac_url': 'http://wpad/proxy.pac'}, 'https://www.notion.so/', None),
])
def test_proxy_for_a_url(setting: dict[str, t.Any], url: str, expected: str | None) -> None:
    assert proxy_for(setting, url) == expected


def test_proxy_settings_from_the_blob() -> None:
    def settings(flags: int, **kw: t.Any) -> bytes:
        return blob.build(blob.ConnectionSettings(version=blob.VERSION_IE7, counter=1, flags=blob.ProxyFlags(flags),
                                                  trailing=bytes(32), **kw))
    assert _diagnose.proxy_setting(None) == {'mode': 'direct'}
    assert _diagnose.proxy_setting(settings(3, proxy_server='p:1', bypass_list='<local>')) == \
        {'mode': 'manual', 'server': 'p:1', 'bypass': '<local>'}
    assert _diagnose.proxy_setting(settings(5, pac_url='http://w/p.pac'))['mode'] == 'pac'
    assert 'unreadable' in _diagnose.proxy_setting(b'\x01\x02')['error']


def test_posix_proxy_from_the_environment() -> None:
    params = {'proxy': None, 'no_proxy': None}
    assert _diagnose.posix_proxy_from(params, {}) == {'mode': 'direct'}
    assert _diagnose.posix_proxy_from(params, {'https_proxy': 'http://p:3128/', 'no_proxy': '.notion.so,localhost'}) == \
        {'mode': 'manual', 'server': 'p:3128', 'bypass': '*.notion.so;localhost'}


def test_posix_proxy_the_option_then_the_system_pac_then_the_environment() -> None:
    system = {'mode': 'pac', 'pac_url': 'http://wpad.corp.example/proxy.pac'}
    environ = {'https_proxy': 'http://p:3128/'}
    assert _diagnose.posix_proxy_from({'proxy': 'pac+file:///etc/proxy.pac', 'no_proxy': None}, environ, system) == \
        {'mode': 'pac', 'pac_url': 'file:///etc/proxy.pac'}
    assert _diagnose.posix_proxy_from({'proxy': 'q:8080', 'no_proxy': None}, environ, system)['server'] == 'q:8080'
    assert _diagnose.posix_proxy_from({'proxy': None, 'no_proxy': None}, environ, system) == system
    assert _diagnose.posix_proxy_from({'proxy': None, 'no_proxy': None}, environ, None)['server'] == 'p:3128'
    with pytest.raises(_diagnose.RequestError, match='pac\\+http://'):
        _diagnose.posix_proxy_from({'proxy': 'pac+ftp://x/p.pac', 'no_proxy': None}, {}, None)


@pytest.mark.parametrize('changes, message', [
    ({'timeout': 0}, 'timeout must be between 1 and 60'),
    ({'port': 70000}, 'port must be between'),
    ({'since': 'yesterday'}, 'since must be an ISO 8601 time'),
    ({'incident': '../etc'}, 'incident'),
    ({'endpoints': []}, 'endpoints must not be empty'),
    ({'log_window_minutes': 0}, 'log_window_minutes must be between 1 and 525600'),
    # a minute count beyond any date ended in an OverflowError traceback
    ({'log_window_minutes': 10 ** 12}, 'log_window_minutes must be between 1 and 525600'),
    ({'users': ['a\x00b']}, 'users must not contain NUL characters'),
    ({'ca_bundle': 'a\x00b'}, 'ca_bundle must not contain NUL characters'),
    ({'ca_bundle': 'x' * 5000}, 'ca_bundle is too long'),
    ({'endpoints': [{'host': 'a\x00b', 'port': None, 'path': None}]}, 'endpoints host must be a host name or an IP'),
    ({'endpoints': [{'host': 'evil.example/x', 'port': None, 'path': None}]}, 'endpoints host must be a host name'),
    # a path with CR/LF would have written a header of its own into the probe's request
    ({'endpoints': [{'host': '127.0.0.1', 'port': None, 'path': '/\r\nX-Injected: 1'}]}, 'endpoints path must start'),
    ({'endpoints': [{'host': '127.0.0.1', 'port': None, 'path': 'no-slash'}]}, 'endpoints path must start'),
    ({'endpoints': [{'host': '127.0.0.1', 'port': 70000, 'path': None}]}, 'endpoints port must be between 1 and 65535'),
    ({'resolve': {'www.notion.so': 'not an ip'}}, 'resolve maps www.notion.so to .not an ip., which is no IP'),
    ({'resolve': {'a b': '127.0.0.1'}}, 'resolve keys must be host names'),
])
def test_bad_input(changes: dict[str, t.Any], message: str) -> None:
    params = {'timeout': 5, 'port': 443, 'log_window_minutes': 60, 'since': None, 'incident': None, 'endpoints': None}
    with pytest.raises(RequestError, match=message):
        _diagnose.validate({**params, **changes})

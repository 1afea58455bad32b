# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PAC files: the entry the probes follow, the engine in its child process, and what is never read."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils import _netprobe, _pac

pytest.importorskip('pypac')

ENDPOINTS = [{'name': 'www', 'host': 'www.notion.so', 'port': 9, 'kind': 'https'},
             {'name': 'msgstore', 'host': 'msgstore.www.notion.so', 'port': 9, 'kind': 'engineio'}]


@pytest.mark.parametrize(('value', 'entry', 'proxy', 'skipped', 'fallbacks'), [
    ('DIRECT', 'DIRECT', None, [], []),
    ('PROXY p.corp:8080; DIRECT', 'PROXY p.corp:8080', 'p.corp:8080', [], ['DIRECT']),
    ('proxy p:1;proxy q:2', 'proxy p:1', 'p:1', [], ['proxy q:2']),
    ('SOCKS s:1080; PROXY p:3128', 'PROXY p:3128', 'p:3128', ['SOCKS s:1080'], []),
    ('HTTPS h:443; SOCKS5 s:1; DIRECT', 'DIRECT', None, ['HTTPS h:443', 'SOCKS5 s:1'], []),
    ('SOCKS5 s:1080', None, None, ['SOCKS5 s:1080'], []),
    ('PROXY', None, None, ['PROXY'], []),
    ('', None, None, [], []),
])
def test_the_first_entry_the_probes_can_follow(value, entry, proxy, skipped, fallbacks) -> None:
    assert _pac.choose(value) == {'entry': entry, 'proxy': proxy, 'skipped': skipped, 'fallbacks': fallbacks}


def test_the_engine_uses_the_resolve_map_and_looks_nothing_else_up() -> None:
    script = ('function FindProxyForURL(url, host) {\n'
              '  if (isInNet(dnsResolve(host), "127.0.0.0", "255.0.0.0")) return "PROXY 127.0.0.1:3128";\n'
              '  return "DIRECT; " + dnsResolve(host) + isResolvable("example.com");\n}\n')
    engine, answers = _pac.evaluate(script, [('https://www.notion.so/', 'www.notion.so'),
                                             ('https://example.com/', 'example.com')],
                                    resolve={'www.notion.so': '127.0.0.1'}, loopback_only=True, timeout=5)
    assert engine.startswith('pypac ') and 'dukpy' in engine
    assert [a['value'] for a in answers] == ['PROXY 127.0.0.1:3128', 'DIRECT; false']


@pytest.mark.parametrize(('script', 'message'), [
    # killed at its CPU limit, or, on a busy machine, at the wall-clock limit first
    ('function FindProxyForURL(url, host) { while (true) {} }', 'the PAC engine was stopped'),
    ('this is not javascript', 'not a usable PAC file'),
    ('var x = 1;', 'not a usable PAC file'),
])
def test_a_hostile_or_broken_pac_file_is_an_error_in_bounded_time(script: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(_pac.PacError, match=message):
        _pac.evaluate(script, [('https://www.notion.so/', 'www.notion.so')], resolve={}, loopback_only=True,
                      timeout=1)
    assert time.monotonic() - started < 1 + 5 + 10  # the wall-clock kill, and slack for a loaded machine


def test_what_the_script_prints_never_reaches_the_answer() -> None:
    script = ('function FindProxyForURL(url, host) {'
              ' for (var i = 0; i < 20000; i++) console.log("x".repeat(1000)); return "DIRECT"; }')
    _engine, answers = _pac.evaluate(script, [('https://a/', 'a')], resolve={}, loopback_only=True, timeout=5)
    assert answers == [{'value': 'DIRECT', 'error': None}]


def test_a_runtime_error_or_a_non_string_is_reported_per_url() -> None:
    script = ('function FindProxyForURL(url, host) {'
              ' if (host == "a") throw "boom"; if (host == "b") return 7; return "DIRECT"; }')
    _engine, answers = _pac.evaluate(script, [('https://a/', 'a'), ('https://b/', 'b')], resolve={},
                                     loopback_only=True, timeout=5)
    assert [a['value'] for a in answers] == [None, None]
    assert 'boom' in answers[0]['error'] and 'returned' in answers[1]['error']


def test_without_the_engine_the_setting_is_not_evaluated_and_nothing_is_probed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_pac, 'ENGINE_PROGRAM',
                        _pac.ENGINE_PROGRAM.replace('from pypac.parser', 'from pypac_gone.parser'))
    pac = tmp_path / 'proxy.pac'
    pac.write_text('function FindProxyForURL(url, host) { return "DIRECT"; }')
    outcome = _netprobe.probe_all(ENDPOINTS, [{'mode': 'pac', 'pac_url': f'file://{pac}'}], resolve={},
                                  timeout_seconds=2, proxy_for=_netprobe.proxy_for, loopback_only=True)
    for result in outcome['results']:
        assert result['failed_step'] == 'pac' and result['steps'] == {'pac': result['steps']['pac']}
        assert 'no PAC engine (pip install pypac)' in result['error']
        assert result['pac']['evaluated'] is False


def test_the_probe_says_which_entry_it_followed(tmp_path: Path) -> None:
    pac = tmp_path / 'proxy.pac'
    pac.write_text('function FindProxyForURL(url, host) {\n'
                   '  if (shExpMatch(host, "msgstore*")) return "SOCKS 127.0.0.1:1; PROXY 127.0.0.1:9; DIRECT";\n'
                   '  return "DIRECT";\n}\n')
    outcome = _netprobe.probe_all(ENDPOINTS, [{'mode': 'pac', 'pac_url': f'file://{pac}'}],
                                  resolve={'www.notion.so': '127.0.0.1', 'msgstore.www.notion.so': '127.0.0.1'},
                                  timeout_seconds=2, proxy_for=_netprobe.proxy_for, loopback_only=True)
    www, msgstore = outcome['results']
    assert (www['proxy'], www['pac']['entry'], www['pac']['evaluated']) == (None, 'DIRECT', True)
    assert (msgstore['proxy'], msgstore['failed_step']) == ('127.0.0.1:9', 'proxy')
    assert msgstore['pac'] == {'url': f'file://{pac}', 'evaluated': True, 'engine': msgstore['pac']['engine'],
                               'returned': 'SOCKS 127.0.0.1:1; PROXY 127.0.0.1:9; DIRECT', 'entry': 'PROXY 127.0.0.1:9',
                               'skipped': ['SOCKS 127.0.0.1:1'], 'fallbacks': ['DIRECT']}


@pytest.mark.parametrize(('url', 'rules', 'error'), [
    ('http://wpad.corp.example/proxy.pac', 'posix', 'wpad.corp.example is not among the names given to resolve'),
    ('http://203.0.113.9/proxy.pac', 'posix', '203.0.113.9 is not a loopback address: not fetched here'),
    ('https://[2001:db8::1]/proxy.pac', 'posix', 'is not a loopback address: not fetched here'),
    ('ftp://127.0.0.1/proxy.pac', 'posix', 'ftp scheme is not read'),
    ('file:///etc/hostname', 'winhttp', 'WinHTTP reads PAC files over http and https only'),
    ('file://relative.pac', 'posix', 'must name an absolute path'),
])
def test_pac_urls_that_are_never_fetched(url: str, rules: str, error: str) -> None:
    with pytest.raises(_pac.PacError, match=error.replace('[', r'\[').replace('.', r'\.')):
        _pac.fetch(url, resolve={}, cafile=None, timeout=1, loopback_only=True, rules=rules)


def test_a_local_pac_file_is_a_bounded_regular_file_never_a_link(tmp_path: Path) -> None:
    target = tmp_path / 'real.pac'
    target.write_text('function FindProxyForURL(u, h) { return "DIRECT"; }')
    (tmp_path / 'link.pac').symlink_to(target)
    with pytest.raises(_pac.PacError, match='not read'):
        _pac.fetch(f'file://{tmp_path}/link.pac', resolve={}, cafile=None, timeout=1, loopback_only=True, rules='posix')
    with pytest.raises(_pac.PacError, match='not a regular file'):
        _pac.fetch(f'file://{tmp_path}', resolve={}, cafile=None, timeout=1, loopback_only=True, rules='posix')
    big = tmp_path / 'big.pac'
    with open(big, 'wb') as handle:
        handle.truncate(_pac.PAC_MAX_BYTES + 1)
    with pytest.raises(_pac.PacError, match='larger than'):
        _pac.fetch(f'file://{big}', resolve={}, cafile=None, timeout=1, loopback_only=True, rules='posix')
    fifo = tmp_path / 'fifo.pac'
    os.mkfifo(fifo)
    with pytest.raises(_pac.PacError, match='not a regular file'):
        _pac.fetch(f'file://{fifo}', resolve={}, cafile=None, timeout=1, loopback_only=True, rules='posix')

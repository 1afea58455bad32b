# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_posix_proxy.py: the macOS networksetup and GNOME gsettings contract.

Tables of input -> expected argv for every COMMANDS entry, of real tool output
-> parsed state, and of state + mode -> commands; plan_native is driven by a
fake runner (argv -> (rc, stdout, stderr)) that fails on any command it was not
told about, so the tests also pin down which commands are run at all.

Where the sample outputs come from (copied verbatim, whitespace included):
* ``networksetup -listallnetworkservices`` with a disabled ``*Bluetooth PAN``:
  https://cloudstreet-dev.github.io/macOS-and-Unix/part9-networking/network-services.html
* ``-getwebproxy`` / ``-getsecurewebproxy`` (``Enabled: No`` / ``Server: `` with a trailing
  space / ``Port: 0`` / ``Authenticated Proxy Enabled: 0``), ``-getproxybypassdomains``
  (the macOS defaults ``*.local`` and ``169.254/16``) and ``-getproxyautodiscovery``
  (``Auto Proxy Discovery: Off``): a public "Debug Wi-Fi - not establishing network
  connection" transcript of networksetup 1.8.4 (found with the code search); the default
  bypass list is explained at
  https://super-unix.com/askdifferent/macos-network-proxy-local-169-254-16-bypass
* ``-getautoproxyurl`` (``URL: (null)`` then ``Enabled: No``) and the empty bypass sentence
  ``There aren't any bypass domains set on Wi-Fi.``: the same strings as parsed by several
  independent public networksetup wrappers (code search for the exact sentence).
* gsettings: captured on this build machine (gsettings 2.74.6, gsettings-desktop-schemas):
  ``'none'``, ``['localhost', '127.0.0.0/8', '::1']`` (the schema default), ``@as []`` for an
  empty list, and ``No such schema \u201c...\u201d`` on stderr with rc 1.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import typing as t

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils import _posix_proxy as pp
from ansible_collections.loopbreaker.notion.plugins.module_utils._inet_proxy import NOTION_BYPASS_HOSTS

NS = '/usr/sbin/networksetup'
NOTION = list(NOTION_BYPASS_HOSTS)

# ============================================================== command table

# name -> (arguments, expected argv). Every COMMANDS entry must appear here.
ARGV_CASES: list[tuple[str, tuple[t.Any, ...], list[str]]] = [
    ('list_services', (), [NS, '-listallnetworkservices']),
    ('get_web', ('Wi-Fi',), [NS, '-getwebproxy', 'Wi-Fi']),
    ('get_secure_web', ('USB 10/100/1000 LAN',), [NS, '-getsecurewebproxy', 'USB 10/100/1000 LAN']),
    ('get_auto_url', ('Wi-Fi',), [NS, '-getautoproxyurl', 'Wi-Fi']),
    ('get_auto_discovery', ('Thunderbolt Bridge',), [NS, '-getproxyautodiscovery', 'Thunderbolt Bridge']),
    ('get_bypass', ('Wi-Fi',), [NS, '-getproxybypassdomains', 'Wi-Fi']),
    ('set_web_state', ('Wi-Fi', True), [NS, '-setwebproxystate', 'Wi-Fi', 'on']),
    ('set_web_state', ('Wi-Fi', False), [NS, '-setwebproxystate', 'Wi-Fi', 'off']),
    ('set_secure_web_state', ('Wi-Fi', True), [NS, '-setsecurewebproxystate', 'Wi-Fi', 'on']),
    ('set_secure_web_state', ('Wi-Fi', False), [NS, '-setsecurewebproxystate', 'Wi-Fi', 'off']),
    ('set_auto_url_state', ('Wi-Fi', True), [NS, '-setautoproxystate', 'Wi-Fi', 'on']),
    ('set_auto_url_state', ('Wi-Fi', False), [NS, '-setautoproxystate', 'Wi-Fi', 'off']),
    ('set_auto_discovery', ('Wi-Fi', True), [NS, '-setproxyautodiscovery', 'Wi-Fi', 'on']),
    ('set_auto_discovery', ('Wi-Fi', False), [NS, '-setproxyautodiscovery', 'Wi-Fi', 'off']),
    ('set_bypass', ('Wi-Fi', ['*.local', '169.254/16', '*.notion.so']),
     [NS, '-setproxybypassdomains', 'Wi-Fi', '*.local', '169.254/16', '*.notion.so']),
    ('set_bypass', ('Wi-Fi', []), [NS, '-setproxybypassdomains', 'Wi-Fi', 'Empty']),
    ('gnome_schemas', (), ['gsettings', 'list-schemas']),
    ('gnome_get', ('mode',), ['gsettings', 'get', 'org.gnome.system.proxy', 'mode']),
    ('gnome_get', ('ignore-hosts',), ['gsettings', 'get', 'org.gnome.system.proxy', 'ignore-hosts']),
    ('gnome_set_mode', ('none',), ['gsettings', 'set', 'org.gnome.system.proxy', 'mode', 'none']),
    ('gnome_set_ignore_hosts', (['localhost', '127.0.0.0/8', '::1', '*.notion.so'],),
     ['gsettings', 'set', 'org.gnome.system.proxy', 'ignore-hosts', "['localhost', '127.0.0.0/8', '::1', '*.notion.so']"]),
    ('gnome_set_ignore_hosts', ([],), ['gsettings', 'set', 'org.gnome.system.proxy', 'ignore-hosts', '[]']),
]


@pytest.mark.parametrize(('name', 'args', 'argv'), ARGV_CASES, ids=[f'{c[0]}-{i}' for i, c in enumerate(ARGV_CASES)])
def test_every_command_builds_the_expected_argv(name: str, args: tuple[t.Any, ...], argv: list[str]) -> None:
    assert pp.COMMANDS[name](*args) == argv


def test_the_table_covers_every_declared_command() -> None:
    assert {case[0] for case in ARGV_CASES} == set(pp.COMMANDS)


# ==================================================================== parsers

LIST_SERVICES = ('An asterisk (*) denotes that a network service is disabled.\n'
                 'Wi-Fi\nUSB 10/100/1000 LAN\nThunderbolt Bridge\niPhone USB\n*Bluetooth PAN\n')
PROXY_OFF = 'Enabled: No\nServer: \nPort: 0\nAuthenticated Proxy Enabled: 0\n'
PROXY_ON = 'Enabled: Yes\nServer: proxy.corp.example\nPort: 8080\nAuthenticated Proxy Enabled: 0\n'
AUTO_URL_OFF = 'URL: (null)\nEnabled: No\n'
AUTO_URL_ON = 'URL: http://wpad.corp.example:8082/proxy.pac\nEnabled: Yes\n'
DISCOVERY_OFF = 'Auto Proxy Discovery: Off\n'
DISCOVERY_ON = 'Auto Proxy Discovery: On\n'
BYPASS_DEFAULT = '*.local\n169.254/16\n'
BYPASS_NONE = "There aren't any bypass domains set on Wi-Fi.\n"
NS_ERROR = '** Error: The parameters were not valid.\n'

PARSER_CASES: list[tuple[str, t.Callable[[str], t.Any], str, t.Any]] = [
    ('services', pp.parse_services, LIST_SERVICES, [
        {'name': 'Wi-Fi', 'enabled': True}, {'name': 'USB 10/100/1000 LAN', 'enabled': True},
        {'name': 'Thunderbolt Bridge', 'enabled': True}, {'name': 'iPhone USB', 'enabled': True},
        {'name': 'Bluetooth PAN', 'enabled': False}]),
    ('services-header-only', pp.parse_services,
     'An asterisk (*) denotes that a network service is disabled.\n', []),
    ('proxy-off', pp.parse_proxy, PROXY_OFF, {'enabled': False, 'server': '', 'port': '0'}),
    ('proxy-on', pp.parse_proxy, PROXY_ON, {'enabled': True, 'server': 'proxy.corp.example', 'port': '8080'}),
    ('proxy-on-no-newline', pp.parse_proxy, 'Enabled: Yes\nServer: 127.0.0.1\nPort: 9090\nAuthenticated Proxy Enabled: 0',
     {'enabled': True, 'server': '127.0.0.1', 'port': '9090'}),
    ('auto-url-off', pp.parse_auto_url, AUTO_URL_OFF, {'enabled': False, 'url': ''}),
    ('auto-url-on', pp.parse_auto_url, AUTO_URL_ON, {'enabled': True, 'url': 'http://wpad.corp.example:8082/proxy.pac'}),
    ('auto-url-set-but-off', pp.parse_auto_url, 'URL: http://wpad.corp.example/proxy.pac\nEnabled: No\n',
     {'enabled': False, 'url': 'http://wpad.corp.example/proxy.pac'}),
    ('discovery-off', pp.parse_auto_discovery, DISCOVERY_OFF, False),
    ('discovery-on', pp.parse_auto_discovery, DISCOVERY_ON, True),
    ('bypass-default', pp.parse_bypass, BYPASS_DEFAULT, ['*.local', '169.254/16']),
    ('bypass-none', pp.parse_bypass, BYPASS_NONE, []),
    ('bypass-empty-output', pp.parse_bypass, '', []),
    ('gnome-mode', pp.parse_gnome_value, "'none'\n", 'none'),
    ('gnome-mode-manual', pp.parse_gnome_value, "'manual'\n", 'manual'),
    ('gnome-ignore-default', pp.parse_gnome_value, "['localhost', '127.0.0.0/8', '::1']\n",
     ['localhost', '127.0.0.0/8', '::1']),
    ('gnome-ignore-empty', pp.parse_gnome_value, '@as []\n', []),
    ('gnome-empty-string', pp.parse_gnome_value, "''\n", ''),
]


@pytest.mark.parametrize(('parser', 'output', 'expected'), [c[1:] for c in PARSER_CASES], ids=[c[0] for c in PARSER_CASES])
def test_parsers_read_real_tool_output(parser: t.Callable[[str], t.Any], output: str, expected: t.Any) -> None:
    assert parser(output) == expected


BAD_OUTPUT_CASES: list[tuple[str, t.Callable[[str], t.Any], str, str]] = [
    ('services-error', pp.parse_services, NS_ERROR, 'unexpected networksetup -listallnetworkservices output'),
    ('services-empty', pp.parse_services, '', 'unexpected networksetup -listallnetworkservices output'),
    ('proxy-error', pp.parse_proxy, 'Wi-Fi is not a recognized network service.\n' + NS_ERROR,
     'unexpected networksetup proxy output'),
    ('auto-url-error', pp.parse_auto_url, NS_ERROR, 'unexpected networksetup -getautoproxyurl output'),
    ('discovery-error', pp.parse_auto_discovery, NS_ERROR, 'unexpected networksetup -getproxyautodiscovery output'),
    ('gnome-no-schema', pp.parse_gnome_value, 'No such schema \u201corg.gnome.system.proxy\u201d\n', 'unexpected gsettings output'),
]


@pytest.mark.parametrize(('parser', 'output', 'message'), [c[1:] for c in BAD_OUTPUT_CASES],
                         ids=[c[0] for c in BAD_OUTPUT_CASES])
def test_unrecognised_output_is_an_error_not_a_guess(parser: t.Callable[[str], t.Any], output: str, message: str) -> None:
    with pytest.raises(pp.CommandOutputError, match=message):
        parser(output)


# =============================================================== plan_service


def service_state(*, web: bool = False, secure: bool = False, auto_url: bool = False, discovery: bool = False,
                  bypass: tuple[str, ...] = ('*.local', '169.254/16')) -> dict[str, t.Any]:
    return {'web': {'enabled': web, 'server': 'proxy.corp.example' if web else '', 'port': '8080' if web else '0'},
            'secure_web': {'enabled': secure, 'server': 'proxy.corp.example' if secure else '',
                           'port': '8080' if secure else '0'},
            'auto_url': {'enabled': auto_url, 'url': 'http://wpad.corp.example/proxy.pac' if auto_url else ''},
            'auto_discovery': discovery, 'bypass': list(bypass)}


EVERYTHING_ON = service_state(web=True, secure=True, auto_url=True, discovery=True)
WEB_OFF = [NS, '-setwebproxystate', 'Wi-Fi', 'off']
SECURE_OFF = [NS, '-setsecurewebproxystate', 'Wi-Fi', 'off']
AUTO_URL_STATE_OFF = [NS, '-setautoproxystate', 'Wi-Fi', 'off']
DISCOVERY_STATE_OFF = [NS, '-setproxyautodiscovery', 'Wi-Fi', 'off']

SERVICE_CASES: list[tuple[str, dict[str, t.Any], str, list[str], list[str], t.Any, list[list[str]]]] = [
    # id, state, mode, disable, hosts, record, expected commands
    ('direct-manual', EVERYTHING_ON, 'direct', ['manual_proxy'], NOTION, None, [WEB_OFF, SECURE_OFF]),
    ('direct-manual-only-https-on', service_state(secure=True), 'direct', ['manual_proxy'], NOTION, None, [SECURE_OFF]),
    ('direct-pac', EVERYTHING_ON, 'direct', ['pac'], NOTION, None, [AUTO_URL_STATE_OFF]),
    ('direct-auto-detect', EVERYTHING_ON, 'direct', ['auto_detect'], NOTION, None, [DISCOVERY_STATE_OFF]),
    ('direct-manual-pac', EVERYTHING_ON, 'direct', ['manual_proxy', 'pac'], NOTION, None,
     [WEB_OFF, SECURE_OFF, AUTO_URL_STATE_OFF]),
    ('direct-all', EVERYTHING_ON, 'direct', ['manual_proxy', 'pac', 'auto_detect'], NOTION, None,
     [WEB_OFF, SECURE_OFF, AUTO_URL_STATE_OFF, DISCOVERY_STATE_OFF]),
    ('direct-all-already-off', service_state(), 'direct', ['manual_proxy', 'pac', 'auto_detect'], NOTION, None, []),
    ('direct-manual-leaves-pac', service_state(auto_url=True, discovery=True), 'direct', ['manual_proxy'], NOTION,
     None, []),
    ('bypass-adds-after-existing', service_state(web=True, secure=True), 'bypass', [], NOTION, None,
     [[NS, '-setproxybypassdomains', 'Wi-Fi', '*.local', '169.254/16', *NOTION]]),
    ('bypass-https-only-proxy', service_state(secure=True, bypass=()), 'bypass', [], ['*.notion.so'], None,
     [[NS, '-setproxybypassdomains', 'Wi-Fi', '*.notion.so']]),
    ('bypass-adds-only-missing', service_state(web=True, bypass=('*.NOTION.so', 'intranet.corp.example')), 'bypass',
     [], ['*.notion.so', 'notion.so'], None,
     [[NS, '-setproxybypassdomains', 'Wi-Fi', '*.NOTION.so', 'intranet.corp.example', 'notion.so']]),
    ('bypass-nothing-missing', service_state(web=True, bypass=('*.local', *NOTION)), 'bypass', [], NOTION, None, []),
    ('bypass-no-manual-proxy', service_state(auto_url=True, discovery=True), 'bypass', [], NOTION, None, []),
    ('restore-no-record', service_state(), 'restore', [], NOTION, None, []),
    ('restore-same-as-record', EVERYTHING_ON, 'restore', [], NOTION, EVERYTHING_ON, []),
    ('restore-after-direct-all', service_state(), 'restore', [], NOTION, EVERYTHING_ON,
     [[NS, '-setwebproxystate', 'Wi-Fi', 'on'], [NS, '-setsecurewebproxystate', 'Wi-Fi', 'on'],
      [NS, '-setautoproxystate', 'Wi-Fi', 'on'], [NS, '-setproxyautodiscovery', 'Wi-Fi', 'on']]),
    ('restore-after-bypass', service_state(web=True, bypass=('*.local', '169.254/16', *NOTION)), 'restore', [],
     NOTION, service_state(web=True), [[NS, '-setproxybypassdomains', 'Wi-Fi', '*.local', '169.254/16']]),
    ('restore-empty-bypass', service_state(web=True, bypass=tuple(NOTION)), 'restore', [], NOTION,
     service_state(web=True, bypass=()), [[NS, '-setproxybypassdomains', 'Wi-Fi', 'Empty']]),
    ('restore-turns-off-what-was-off', service_state(web=True, secure=True), 'restore', [], NOTION,
     service_state(secure=True), [WEB_OFF]),
]


@pytest.mark.parametrize(('state', 'mode', 'disable', 'hosts', 'record', 'expected'), [c[1:] for c in SERVICE_CASES],
                         ids=[c[0] for c in SERVICE_CASES])
def test_plan_service(state: dict[str, t.Any], mode: str, disable: list[str], hosts: list[str], record: t.Any,
                      expected: list[list[str]]) -> None:
    assert pp.plan_service('Wi-Fi', state, mode, disable, hosts, record) == expected


def test_plan_service_bypass_does_not_modify_the_state_it_was_given() -> None:
    state = service_state(web=True)
    pp.plan_service('Wi-Fi', state, 'bypass', [], NOTION, None)
    assert state['bypass'] == ['*.local', '169.254/16']


# ================================================================= plan_gnome


def gnome(mode: str, hosts: tuple[str, ...] = ('localhost', '127.0.0.0/8', '::1')) -> dict[str, t.Any]:
    return {'mode': mode, 'ignore_hosts': list(hosts)}


def set_mode(mode: str) -> list[str]:
    return ['gsettings', 'set', 'org.gnome.system.proxy', 'mode', mode]


def set_ignore(hosts: list[str]) -> list[str]:
    return ['gsettings', 'set', 'org.gnome.system.proxy', 'ignore-hosts', str(hosts)]


GNOME_CASES: list[tuple[str, dict[str, t.Any], str, list[str], list[str], t.Any, list[list[str]]]] = [
    ('direct-manual-on-manual', gnome('manual'), 'direct', ['manual_proxy'], NOTION, None, [set_mode('none')]),
    ('direct-manual-on-auto', gnome('auto'), 'direct', ['manual_proxy'], NOTION, None, []),
    ('direct-pac-on-auto', gnome('auto'), 'direct', ['pac'], NOTION, None, [set_mode('none')]),
    ('direct-auto-detect-on-auto', gnome('auto'), 'direct', ['auto_detect'], NOTION, None, [set_mode('none')]),
    ('direct-pac-on-manual', gnome('manual'), 'direct', ['pac'], NOTION, None, []),
    ('direct-all-on-manual', gnome('manual'), 'direct', ['manual_proxy', 'pac', 'auto_detect'], NOTION, None,
     [set_mode('none')]),
    ('direct-all-on-none', gnome('none'), 'direct', ['manual_proxy', 'pac', 'auto_detect'], NOTION, None, []),
    ('bypass-manual', gnome('manual'), 'bypass', [], NOTION, None,
     [set_ignore(['localhost', '127.0.0.0/8', '::1', *NOTION])]),
    ('bypass-adds-only-missing', gnome('manual', ('localhost', 'NOTION.so')), 'bypass', [], ['notion.so', '*.notion.so'],
     None, [set_ignore(['localhost', 'NOTION.so', '*.notion.so'])]),
    ('bypass-nothing-missing', gnome('manual', ('localhost', *NOTION)), 'bypass', [], NOTION, None, []),
    ('bypass-auto', gnome('auto'), 'bypass', [], NOTION, None, []),
    ('bypass-none', gnome('none'), 'bypass', [], NOTION, None, []),
    ('restore-no-record', gnome('none'), 'restore', [], NOTION, None, []),
    ('restore-same', gnome('manual'), 'restore', [], NOTION, gnome('manual'), []),
    ('restore-mode', gnome('none'), 'restore', [], NOTION, gnome('manual'), [set_mode('manual')]),
    ('restore-mode-and-hosts', gnome('none', ('localhost', *NOTION)), 'restore', [], NOTION, gnome('auto', ()),
     [set_mode('auto'), set_ignore([])]),
]


@pytest.mark.parametrize(('state', 'mode', 'disable', 'hosts', 'record', 'expected'), [c[1:] for c in GNOME_CASES],
                         ids=[c[0] for c in GNOME_CASES])
def test_plan_gnome(state: dict[str, t.Any], mode: str, disable: list[str], hosts: list[str], record: t.Any,
                    expected: list[list[str]]) -> None:
    assert pp.plan_gnome(state, mode, disable, hosts, record) == expected


# ================================================================ plan_native


class FakeRunner:
    """argv -> (rc, stdout, stderr); an argv nobody declared fails the test."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(list(argv))
        key = tuple(argv)
        if key not in self.answers:
            pytest.fail(f'unexpected command: {argv}')
        return self.answers[key]


def mac_runner(services: dict[str, dict[str, str]], listing: str | None = None) -> FakeRunner:
    answers: dict[tuple[str, ...], tuple[int, str, str]] = {
        (NS, '-listallnetworkservices'): (0, listing or LIST_SERVICES, ''),
    }
    for name, outputs in services.items():
        for command, output in outputs.items():
            answers[(NS, command, name)] = (0, output, '')
    return FakeRunner(answers)


def mac_outputs(*, web: str = PROXY_OFF, secure: str = PROXY_OFF, auto_url: str = AUTO_URL_OFF,
                discovery: str = DISCOVERY_OFF, bypass: str = BYPASS_DEFAULT) -> dict[str, str]:
    return {'-getwebproxy': web, '-getsecurewebproxy': secure, '-getautoproxyurl': auto_url,
            '-getproxyautodiscovery': discovery, '-getproxybypassdomains': bypass}


ENABLED = ['Wi-Fi', 'USB 10/100/1000 LAN', 'Thunderbolt Bridge', 'iPhone USB']


def native_params(**args: t.Any) -> dict[str, t.Any]:
    return {'mode': 'bypass', 'disable': ['manual_proxy'], 'services': None, **args}


def test_darwin_reads_and_plans_only_the_enabled_services() -> None:
    services = {name: mac_outputs() for name in ENABLED}
    services['Wi-Fi'] = mac_outputs(web=PROXY_ON, secure=PROXY_ON)
    runner = mac_runner(services)
    plan = pp.plan_native('darwin', runner, native_params(), NOTION, None, has_session_bus=False)
    assert plan['scope'] == 'machine'
    assert list(plan['targets']) == ENABLED
    assert not [argv for argv in runner.calls if 'Bluetooth PAN' in argv], 'a disabled service is never read'
    assert plan['targets']['Wi-Fi']['web'] == {'enabled': True, 'server': 'proxy.corp.example', 'port': '8080'}
    assert plan['commands'] == {
        'Wi-Fi': [[NS, '-setproxybypassdomains', 'Wi-Fi', '*.local', '169.254/16', *NOTION]],
        'USB 10/100/1000 LAN': [], 'Thunderbolt Bridge': [], 'iPhone USB': []}
    assert not [argv for argv in runner.calls if argv[1].startswith('-set')], 'planning never changes anything'


def test_darwin_services_narrows_the_services_read() -> None:
    runner = mac_runner({'iPhone USB': mac_outputs(auto_url=AUTO_URL_ON, discovery=DISCOVERY_ON)})
    plan = pp.plan_native('darwin', runner, native_params(mode='direct', disable=['pac', 'auto_detect'],
                                                          services=['iPhone USB']), NOTION, None, False)
    assert plan['commands'] == {'iPhone USB': [[NS, '-setautoproxystate', 'iPhone USB', 'off'],
                                               [NS, '-setproxyautodiscovery', 'iPhone USB', 'off']]}


def test_darwin_service_names_match_case_insensitively_like_networksetup() -> None:
    runner = mac_runner({'Wi-Fi': mac_outputs(web=PROXY_ON)})
    plan = pp.plan_native('darwin', runner, native_params(services=['wi-fi', 'WI-FI']), NOTION, None, False)
    assert list(plan['targets']) == ['Wi-Fi'], 'named once, in the spelling networksetup lists'
    assert plan['commands']['Wi-Fi'] == [[NS, '-setproxybypassdomains', 'Wi-Fi', '*.local', '169.254/16', *NOTION]]


@pytest.mark.parametrize('services', [['Wi-Fi', 'Bluetooth PAN'], ['Ethernet', 'Wi-Fi', 'FireWire']])
def test_darwin_unknown_or_disabled_service_is_an_error(services: list[str]) -> None:
    runner = mac_runner({})
    unknown = [name for name in services if name not in ENABLED]
    with pytest.raises(pp.NativeProxyError) as caught:
        pp.plan_native('darwin', runner, native_params(services=services), NOTION, None, False)
    assert str(caught.value) == (f'unknown network service(s): {", ".join(unknown)}; '
                                 'enabled services: Wi-Fi, USB 10/100/1000 LAN, Thunderbolt Bridge, iPhone USB')
    assert runner.calls == [[NS, '-listallnetworkservices']], 'nothing is read before the services are known'


def test_darwin_restore_uses_the_record_per_service() -> None:
    record = {'Wi-Fi': service_state(web=True, secure=True)}
    runner = mac_runner({'Wi-Fi': mac_outputs(bypass=BYPASS_NONE)})
    plan = pp.plan_native('darwin', runner, native_params(mode='restore', services=['Wi-Fi']), NOTION, record, False)
    assert plan['commands'] == {'Wi-Fi': [[NS, '-setwebproxystate', 'Wi-Fi', 'on'],
                                          [NS, '-setsecurewebproxystate', 'Wi-Fi', 'on'],
                                          [NS, '-setproxybypassdomains', 'Wi-Fi', '*.local', '169.254/16']]}


def test_darwin_a_failing_command_names_itself_and_its_output() -> None:
    runner = mac_runner({})
    runner.answers[(NS, '-getwebproxy', 'Wi-Fi')] = (4, '', 'Wi-Fi is not a recognized network service.\n' + NS_ERROR)
    with pytest.raises(pp.NativeProxyError) as caught:
        pp.plan_native('darwin', runner, native_params(services=['Wi-Fi']), NOTION, None, False)
    assert str(caught.value) == ('/usr/sbin/networksetup -getwebproxy Wi-Fi failed (rc=4): Wi-Fi is not a recognized '
                                 'network service.\n** Error: The parameters were not valid.')


def test_darwin_unexpected_listing_is_reported() -> None:
    runner = mac_runner({}, listing='You must run this tool as root.\n')
    with pytest.raises(pp.CommandOutputError, match='unexpected networksetup -listallnetworkservices output'):
        pp.plan_native('darwin', runner, native_params(), NOTION, None, False)


def gnome_runner(schemas: tuple[int, str, str], mode: str = "'manual'\n",
                 hosts: str = "['localhost', '127.0.0.0/8', '::1']\n") -> FakeRunner:
    return FakeRunner({
        ('gsettings', 'list-schemas'): schemas,
        ('gsettings', 'get', 'org.gnome.system.proxy', 'mode'): (0, mode, ''),
        ('gsettings', 'get', 'org.gnome.system.proxy', 'ignore-hosts'): (0, hosts, ''),
    })


SCHEMAS = (0, 'org.gnome.desktop.a11y\norg.gnome.system.proxy\norg.gnome.system.proxy.ftp\n'
              'org.gnome.system.proxy.http\norg.gnome.system.proxy.https\n', '')


def test_linux_without_a_session_bus_is_not_applicable_and_runs_nothing() -> None:
    runner = gnome_runner(SCHEMAS)
    plan = pp.plan_native('linux', runner, native_params(), NOTION, None, has_session_bus=False)
    assert plan == {'not_applicable': "GNOME proxy settings need the user's D-Bus session (DBUS_SESSION_BUS_ADDRESS "
                                      "is not set); on Linux, Notion follows the desktop session's proxy"}
    assert runner.calls == []


@pytest.mark.parametrize('schemas', [
    (0, 'org.gnome.desktop.a11y\norg.gnome.system.proxy.http\n', ''),   # only a sub-schema: not the proxy schema
    (0, '', ''),
    (1, '', 'gsettings: command not usable\n'),
], ids=['sub-schema-only', 'no-schemas', 'list-fails'])
def test_linux_without_the_gnome_schema_is_not_applicable(schemas: tuple[int, str, str]) -> None:
    runner = gnome_runner(schemas)
    plan = pp.plan_native('linux', runner, native_params(), NOTION, None, has_session_bus=True)
    assert plan == {'not_applicable': 'no org.gnome.system.proxy schema: this Linux host has no GNOME proxy settings '
                                      'to change'}
    assert runner.calls == [['gsettings', 'list-schemas']]


def test_linux_manual_mode_gets_commands() -> None:
    runner = gnome_runner(SCHEMAS)
    plan = pp.plan_native('linux', runner, native_params(), NOTION, None, has_session_bus=True)
    assert plan['scope'] == 'user'
    assert plan['targets'] == {'gnome': {'mode': 'manual', 'ignore_hosts': ['localhost', '127.0.0.0/8', '::1']}}
    assert plan['commands'] == {'gnome': [set_ignore(['localhost', '127.0.0.0/8', '::1', *NOTION])]}


def test_linux_direct_and_restore_from_the_gnome_record() -> None:
    runner = gnome_runner(SCHEMAS, mode="'manual'\n", hosts='@as []\n')
    direct = pp.plan_native('linux', runner, native_params(mode='direct'), NOTION, None, True)
    assert direct['commands'] == {'gnome': [set_mode('none')]}
    runner = gnome_runner(SCHEMAS, mode="'none'\n", hosts='@as []\n')
    restore = pp.plan_native('linux', runner, native_params(mode='restore'), NOTION,
                             {'gnome': gnome('manual', ('localhost',))}, True)
    assert restore['commands'] == {'gnome': [set_mode('manual'), set_ignore(['localhost'])]}


# ================================================== the argv against real gsettings


def _has_gnome_schema() -> bool:
    if not shutil.which('gsettings'):
        return False
    listing = subprocess.run(['gsettings', 'list-schemas'], capture_output=True, text=True, check=False)
    return pp.GNOME_SCHEMA in listing.stdout.split()


@pytest.mark.skipif(not _has_gnome_schema(), reason='needs gsettings with org.gnome.system.proxy')
def test_real_gsettings_accepts_the_commands_and_converges(tmp_path) -> None:
    """The argv COMMANDS builds, run by the real gsettings on a private keyfile backend."""
    env = {**os.environ, 'GSETTINGS_BACKEND': 'keyfile', 'XDG_CONFIG_HOME': str(tmp_path)}
    env.pop('DBUS_SESSION_BUS_ADDRESS', None)

    def runner(argv: list[str]) -> tuple[int, str, str]:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        return done.returncode, done.stdout, done.stderr

    pp.run_checked(runner, pp.COMMANDS['gnome_set_mode']('manual'))
    original = pp.read_gnome(runner)
    assert original == {'mode': 'manual', 'ignore_hosts': ['localhost', '127.0.0.0/8', '::1']}
    plan = pp.plan_native('linux', runner, native_params(), NOTION, None, has_session_bus=True)
    for argv in plan['commands']['gnome']:
        pp.run_checked(runner, argv)
    assert pp.read_gnome(runner)['ignore_hosts'] == ['localhost', '127.0.0.0/8', '::1', *NOTION]
    again = pp.plan_native('linux', runner, native_params(), NOTION, None, has_session_bus=True)
    assert again['commands'] == {'gnome': []}
    direct = pp.plan_native('linux', runner, native_params(mode='direct'), NOTION, None, has_session_bus=True)
    for argv in direct['commands']['gnome']:
        pp.run_checked(runner, argv)
    assert pp.read_gnome(runner)['mode'] == 'none'
    restore = pp.plan_native('linux', runner, native_params(mode='restore'), NOTION, {'gnome': original}, True)
    for argv in restore['commands']['gnome']:
        pp.run_checked(runner, argv)
    assert pp.read_gnome(runner) == original


# ============================================================ read_pac_setting (diagnose)
PAC = 'http://wpad.corp.example:8082/proxy.pac'


def test_darwin_pac_is_the_first_enabled_service_with_an_auto_url() -> None:
    runner = mac_runner({'Wi-Fi': {'-getautoproxyurl': AUTO_URL_OFF},
                         'USB 10/100/1000 LAN': {'-getautoproxyurl': AUTO_URL_ON}})
    assert pp.read_pac_setting('darwin', runner, False) == (
        {'mode': 'pac', 'pac_url': PAC}, 'networksetup -getautoproxyurl USB 10/100/1000 LAN')
    assert [call[1] for call in runner.calls] == ['-listallnetworkservices', '-getautoproxyurl', '-getautoproxyurl']


def test_darwin_without_an_auto_url_or_with_odd_output_gives_none() -> None:
    runner = mac_runner({name: {'-getautoproxyurl': 'URL: http://x/p.pac\nEnabled: No\n'} for name in ENABLED})
    assert pp.read_pac_setting('darwin', runner, False) == (
        None, 'no network service has an automatic proxy configuration URL')
    odd = mac_runner({}, listing='You must run this tool as root.\n')
    setting, why = pp.read_pac_setting('darwin', odd, False)
    assert setting is None and why.startswith('proxy settings not read: unexpected networksetup')


def gnome_pac_runner(mode: str, url: str) -> FakeRunner:
    return FakeRunner({
        ('gsettings', 'list-schemas'): SCHEMAS,
        ('gsettings', 'get', 'org.gnome.system.proxy', 'mode'): (0, mode, ''),
        ('gsettings', 'get', 'org.gnome.system.proxy', 'autoconfig-url'): (0, url, ''),
    })


@pytest.mark.parametrize(('mode', 'url', 'bus', 'expected', 'why'), [
    ("'auto'\n", f"'{PAC}'\n", True, {'mode': 'pac', 'pac_url': PAC}, 'gsettings org.gnome.system.proxy autoconfig-url'),
    ("'auto'\n", "''\n", True, None, 'org.gnome.system.proxy mode is auto without an autoconfig-url (WPAD is not evaluated)'),
    ("'manual'\n", f"'{PAC}'\n", True, None, 'org.gnome.system.proxy mode is not auto'),
    ("'auto'\n", f"'{PAC}'\n", False, None,
     "GNOME proxy settings need the user's D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set)"),
])
def test_gnome_pac_needs_mode_auto_a_url_and_the_session(mode: str, url: str, bus: bool, expected: t.Any,
                                                         why: str) -> None:
    runner = gnome_pac_runner(mode, url)
    assert pp.read_pac_setting('linux', runner, bus) == (expected, why)
    if not bus:
        assert runner.calls == []

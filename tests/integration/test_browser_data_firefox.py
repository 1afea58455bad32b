# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""browser_data against a profile that a real Firefox (Debian's firefox-esr) wrote, checked by reopening it.

A local plain-HTTP server answers as ``www.notion.so`` and as ``other.example``; the profile's ``user.js``
sends every host name to loopback (``network.dns.forceResolve``), turns off the HSTS preload list
(notion.so is on it) and HTTPS-First, and makes both hosts secure contexts (``dom.securecontext.allowlist``)
so service workers, Cache Storage and OPFS work over HTTP without a test CA in an NSS database. The page
(shared with the Chromium test) sets a cookie, localStorage, IndexedDB, Cache Storage, a service worker
(Firefox keeps its registration in ``serviceworker.txt``) and an OPFS file on both origins. Firefox is
quit through Marionette (``Marionette:Quit``), so it writes its stores as on a normal exit; that is the
test driving its own throw-away profile, the module never uses remote control. Then: the real module
through ansible-playbook (check, apply, idempotency), Firefox reopens the profile and the pages report
what they find; ``quarantine state=restored``; the pages again. Every Firefox session is bounded (30 s).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.tests.integration.conftest import Lab, assert_ok
from ansible_collections.loopbreaker.notion.tests.integration.page_server import PageServer, own_browser_home
from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._browser_seed import profiles_ini

pytestmark = pytest.mark.integration
FIREFOX = shutil.which('firefox-esr') or shutil.which('firefox')
SESSION_SECONDS = 30
HOSTS = ('www.notion.so', 'other.example')
PREFERENCES = {
    'network.dns.forceResolve': '127.0.0.1',
    'network.proxy.type': 0,
    'network.stricttransportsecurity.preloadlist': False,
    'dom.security.https_first': False,
    'dom.security.https_only_mode': False,
    'dom.securecontext.allowlist': ','.join(HOSTS),
    'dom.serviceWorkers.testing.enabled': True,
    'marionette.port': 0,  # any free port; Firefox writes it to MarionetteActivePort in the profile
    'browser.shell.checkDefaultBrowser': False,
    'browser.startup.homepage_override.mstone': 'ignore',
    'browser.sessionstore.resume_from_crash': False,
    'datareporting.policy.dataSubmissionEnabled': False,
    'toolkit.telemetry.reportingpolicy.firstRun': False,
    'app.update.enabled': False,
}


def _marionette_quit(profile: Path, deadline: float) -> None:
    """Quit Firefox the way its own Quit does, over Marionette's length-prefixed JSON protocol."""
    port_file = profile / 'MarionetteActivePort'
    while not port_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    with socket.create_connection(('127.0.0.1', int(port_file.read_text())), timeout=SESSION_SECONDS) as sock:
        reader = sock.makefile('rb')

        def receive() -> t.Any:
            length = b''
            while not length.endswith(b':'):
                byte = reader.read(1)
                if not byte:
                    raise EOFError('marionette closed the connection')
                length += byte
            return json.loads(reader.read(int(length[:-1])))

        def send(message_id: int, command: str) -> t.Any:
            data = json.dumps([0, message_id, command, {}]).encode()
            sock.sendall(str(len(data)).encode() + b':' + data)
            return receive()
        receive()  # the server's hello
        send(1, 'WebDriver:NewSession')
        send(2, 'Marionette:Quit')


def browse(server: PageServer, profile: Path, mode: str) -> dict[str, dict[str, t.Any]]:
    """One Firefox session over both origins; what each page reported. Quits Firefox cleanly."""
    (profile / 'MarionetteActivePort').unlink(missing_ok=True)
    url = server.url(HOSTS[0], mode, server.url(HOSTS[1], mode))
    command = [str(FIREFOX), '--headless', '--no-remote', '--marionette', '--profile', str(profile), url]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, 'MOZ_CRASHREPORTER_DISABLE': '1'})
    found: dict[str, dict[str, t.Any]] = {}
    try:
        deadline = time.monotonic() + SESSION_SECONDS
        while len(found) < 2 and time.monotonic() < deadline:
            try:
                host, report = server.reports.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            found[host] = report
        _marionette_quit(profile, deadline)
        child.wait(timeout=SESSION_SECONDS)
    except (OSError, ValueError, EOFError, subprocess.TimeoutExpired):
        pass  # the test checks what the pages reported; a Firefox that did not quit is killed below
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return found


@pytest.fixture
def server() -> t.Iterator[PageServer]:
    if FIREFOX is None:
        pytest.skip("firefox-esr is not installed (scripts/ensure-browsers, run by make unit, installs Debian's)")
    made = PageServer()
    yield made
    made.close()


def test_a_real_firefox_profile_loses_notion_data_only_and_gets_it_back(lab: Lab, server: PageServer) -> None:
    firefox = lab.homes / 'alice' / '.mozilla' / 'firefox'
    profile = firefox / 'lbtest.default-esr'
    profile.mkdir(parents=True)
    (firefox / 'profiles.ini').write_text(profiles_ini(['lbtest.default-esr']))
    (profile / 'user.js').write_text(''.join(f'user_pref({json.dumps(k)}, {json.dumps(v)});\n'
                                             for k, v in PREFERENCES.items()))
    written = browse(server, profile, 'write')
    if set(written) != set(HOSTS):
        pytest.skip(f'firefox did not start or did not load the pages here: {written}')
    for host, report in written.items():
        assert report.get('error') is None and report['localStorage'] == host and report['serviceWorker'] == 1, report
    registrations = (profile / 'serviceworker.txt').read_text()
    assert all(f'http://{host}:{server.port}/' in registrations for host in HOSTS)
    own_browser_home(lab.homes / 'alice')

    completed, runs = lab.play('browser_data_runs', 'posix', {'browsers': ['firefox']})
    assert_ok(completed)
    assert runs['preview']['changed'] and runs['cleared']['changed'] and not runs['again']['changed']
    [alice] = runs['cleared']['users']
    [default] = alice['profiles']
    assert default['status'] == 'cleared', default
    stores = {r['store'] for r in default['removed']}
    assert {'firefox_cookies', 'firefox_service_workers', 'storage/default'} <= stores, stores
    assert all(set(r['sites']) == {'notion.so'} for r in default['removed'])
    registrations = (profile / 'serviceworker.txt').read_text()
    assert 'www.notion.so' not in registrations and f'http://other.example:{server.port}/' in registrations

    after = browse(server, profile, 'read')
    assert after['www.notion.so'] == {'cookie': '', 'localStorage': None, 'indexedDB': None, 'cacheStorage': None,
                                      'serviceWorker': 0, 'opfs': None}
    assert after['other.example'] == written['other.example']

    # Reading the pages let Firefox create an empty storage/default folder for Notion's origin again;
    # force moves that aside (into a new quarantine entry) so the original comes back.
    completed, restored = lab.play('restore', 'posix', {'quarantine_id': runs['cleared']['quarantine_id'],
                                                        'force': True})
    assert_ok(completed)
    assert restored['apply']['changed'] and not restored['apply'].get('failed'), restored['apply']
    assert not restored['again']['changed']

    back = browse(server, profile, 'read')
    assert back == written

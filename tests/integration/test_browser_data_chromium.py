# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""browser_data against a profile that a real Chromium wrote, checked by reopening it in Chromium.

A local HTTPS server answers as ``www.notion.so`` and as ``other.example`` (``--host-resolver-rules``
maps both to loopback; notion.so is HSTS-preloaded, so plain HTTP is not an option). The certificate
is a throw-away self-signed one for both names and Chromium runs with ``--ignore-certificate-errors``
(simpler than a test CA in an NSS database, and the origins are still secure contexts, so service
workers, Cache Storage and OPFS work). The page sets a cookie, localStorage, IndexedDB, Cache Storage,
a service worker and an OPFS file on both origins. Chromium is quit through ``Browser.close`` on
``--remote-debugging-pipe`` so it flushes its stores as on a normal exit; that is the test driving its
own throw-away profile, the module never uses DevTools. Then: the real module through ansible-playbook
(check, apply, idempotency), Chromium reopens the profile and the pages report what they find;
``quarantine state=restored``; the pages again. Every Chromium run is bounded (30 s).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.tests.integration.conftest import Lab, assert_ok
from ansible_collections.loopbreaker.notion.tests.integration.page_server import PageServer, own_browser_home

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
SESSION_SECONDS = 30
EVERYTHING = {'cookie', 'localStorage', 'indexedDB', 'cacheStorage', 'serviceWorker', 'opfs'}


def browse(server: PageServer, user_data_dir: Path, mode: str) -> dict[str, dict[str, t.Any]]:
    """One Chromium session over both origins; what each page reported. Quits Chromium cleanly."""
    url = server.url('www.notion.so', mode, server.url('other.example', mode))
    commands_read, commands_write = os.pipe()
    replies_read, replies_write = os.pipe()

    def pipes() -> None:
        os.dup2(commands_read, 3)
        os.dup2(replies_write, 4)

    child = subprocess.Popen(  # pylint: disable=subprocess-popen-preexec-fn
        [str(CHROMIUM), '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
         '--ignore-certificate-errors', '--remote-debugging-pipe', f'--user-data-dir={user_data_dir}',
         '--host-resolver-rules=MAP www.notion.so 127.0.0.1, MAP other.example 127.0.0.1', url],
        pass_fds=(3, 4), preexec_fn=pipes, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(commands_read)
    os.close(replies_write)
    found: dict[str, dict[str, t.Any]] = {}
    try:
        deadline = time.monotonic() + SESSION_SECONDS
        while len(found) < 2 and time.monotonic() < deadline:
            try:
                host, report = server.reports.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            found[host] = report
        os.write(commands_write, json.dumps({'id': 1, 'method': 'Browser.close'}).encode() + b'\0')
        child.wait(timeout=SESSION_SECONDS)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(commands_write)
        os.close(replies_read)
    return found


@pytest.fixture
def server(tmp_path: Path) -> t.Iterator[PageServer]:
    if CHROMIUM is None or shutil.which('openssl') is None:
        pytest.skip('chromium or openssl is not installed (the .ci/run installs Debian\'s chromium)')
    made = PageServer(tmp_path)
    yield made
    made.close()


def test_a_real_chromium_profile_loses_notion_data_only_and_gets_it_back(lab: Lab, server: PageServer) -> None:
    profile = lab.homes / 'alice' / '.config' / 'chromium'
    profile.mkdir(parents=True)
    written = browse(server, profile, 'write')
    if set(written) != {'www.notion.so', 'other.example'}:
        pytest.skip(f'chromium did not start or did not load the pages here: {written}')
    for host, report in written.items():
        assert report.get('error') is None and report['localStorage'] == host and report['opfs'] == host, report
    own_browser_home(lab.homes / 'alice')

    completed, runs = lab.play('browser_data_runs', 'posix', {'browsers': ['chromium']})
    assert_ok(completed)
    assert runs['preview']['changed'] and runs['cleared']['changed'] and not runs['again']['changed']
    [alice] = runs['cleared']['users']
    [default] = alice['profiles']
    assert default['status'] == 'cleared', default
    assert {r['store'] for r in default['removed']} == {
        'chromium_cookies', 'local_storage', 'service_worker_database', 'file_system_origins', 'IndexedDB',
        'File System', 'Service Worker/CacheStorage'}
    assert all(set(r['sites']) == {'notion.so'} for r in default['removed'])

    after = browse(server, profile, 'read')
    assert after['www.notion.so'] == {'cookie': '', 'localStorage': None, 'indexedDB': None, 'cacheStorage': None,
                                      'serviceWorker': 0, 'opfs': None}
    assert after['other.example'] == written['other.example']

    completed, restored = lab.play('restore', 'posix', {'quarantine_id': runs['cleared']['quarantine_id']})
    assert_ok(completed)
    assert restored['apply']['changed'] and not restored['apply'].get('failed'), restored['apply']
    assert not restored['again']['changed']

    back = browse(server, profile, 'read')
    assert back == {host: {**report, 'cookie': report['cookie']} for host, report in written.items()}

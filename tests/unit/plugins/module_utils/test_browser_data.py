# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""browser_data: Notion's site data out of Chromium and Firefox profiles, nothing else, and back again.

Chromium and Firefox profiles are laid out as the browsers lay them out, with real SQLite and LevelDB
stores (see _browser_seed); the Linux runs go through LocalHost over sandboxed homes, the Windows run
through the simulated Windows host.
"""
from __future__ import annotations

import base64
import datetime
import ntpath
import os
import shutil
import subprocess
import tempfile
import threading
import time
import typing as t
from pathlib import Path

import pytest
from ansible_collections.loopbreaker.notion.plugins.module_utils import _browser_data, _browser_profiles, _site_stores
from ansible_collections.loopbreaker.notion.plugins.module_utils import _quarantine_state
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import LINUX, WINDOWS
from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils import _browser_seed as seed
from ansible_collections.loopbreaker.notion.tests.unit.plugins.module_utils._notion_seed import (
    IS_ROOT,
    CountingLocalHost,
    file_tree,
    next_uid,
    sid,
    twin,
    validated,
)

NOW = datetime.datetime(2026, 12, 1, 9, 0, 0, tzinfo=datetime.timezone.utc)
ENTRY_ID = '20261201T090000Z-b0b0b0'
NOTION_HOSTS = {'www.notion.so', 'app.notion.com', 'msgstore.www.notion.so'}
OTHER_HOSTS = {'evilnotion.so', 'example.org'}


def run(host: t.Any, layout: t.Any, *, check_mode: bool = False, token: str = 'b0b0b0', **args: t.Any) -> dict[str, t.Any]:
    params = validated(_browser_data.ARGUMENT_SPEC, args, mutually_exclusive=_browser_data.MUTUALLY_EXCLUSIVE)
    return _browser_data.run(host, layout, params, check_mode=check_mode, now=NOW, entry_token=token)


def restore(host: t.Any, layout: t.Any, entry_id: str = ENTRY_ID, **args: t.Any) -> dict[str, t.Any]:
    params = validated(_quarantine_state.ARGUMENT_SPEC, {'state': 'restored', 'id': entry_id, **args},
                       mutually_exclusive=_quarantine_state.MUTUALLY_EXCLUSIVE, required_if=_quarantine_state.REQUIRED_IF)
    return _quarantine_state.run(host, layout, params, check_mode=False, now=NOW + datetime.timedelta(minutes=5),
                                 entry_token='c0c0c0')


# ------------------------------------------------------------------ pure parts

def test_sites_match_by_registrable_domain_only() -> None:
    sites = _browser_profiles.validate_sites(['Notion.so', 'notion.com'])
    for host in ('notion.so', '.notion.so', 'www.notion.so', 'msgstore-001.www.notion.so', 'app.notion.com',
                 'file.notion.so', 'WWW.NOTION.SO'):
        assert _browser_profiles.host_matches(host, sites), host
    for host in ('evilnotion.so', 'notion.so.evil.com', 'notion.social', 'example.org', '', None):
        assert not _browser_profiles.host_matches(host, sites), host


@pytest.mark.parametrize('name, spelled, host', [
    ('origin', 'https://www.notion.so:8443/', 'www.notion.so'),
    ('partitioned', 'https://app.notion.com/^0https://example.org', 'app.notion.com'),
    ('identifier', 'https_www.notion.so_0.indexeddb.leveldb', 'www.notion.so'),
    ('firefox folder', 'https+++www.notion.so+8443^userContextId=1', 'www.notion.so'),
    ('firefox key', 'os.noiton.www.:https:443', 'www.notion.so'),
])
def test_origin_spellings(name: str, spelled: str, host: str) -> None:
    parse = {'origin': _browser_profiles.origin_host, 'partitioned': _browser_profiles.origin_host,
             'identifier': _browser_profiles.chromium_identifier_host,
             'firefox folder': _browser_profiles.firefox_folder_host,
             'firefox key': _browser_profiles.firefox_origin_key_host}[name]
    assert parse(spelled) == host


@pytest.mark.parametrize('args, message', [
    ({'browsers': ['safari']}, 'unknown browser'),
    ({'scopes': ['history']}, 'unknown scope'),
    ({'sites': ['https://notion.so']}, 'not a host name'),
    ({'sites': ['10.0.0.1']}, 'not a host name'),
    ({'sites': ['notion.so/path']}, 'not a host name'),
    ({'stop_timeout': 0}, 'stop_timeout'),
    ({'stop_timeout': 10 ** 20}, 'stop_timeout must be at most 3600 seconds'),
    ({'users': ['a\x00b']}, 'users must not contain NUL characters'),
    ({'users': []}, 'users must name at least one user'),
    ({'exclude_users': [' ']}, 'exclude_users must not contain empty names'),
])
def test_bad_input_is_refused_before_anything_is_read(args: dict[str, t.Any], message: str) -> None:
    params = {name: spec.get('default') for name, spec in _browser_data.ARGUMENT_SPEC.items()}
    params.update(args)
    with pytest.raises(RequestError, match=message):
        _browser_data.Request.from_params(params)


def test_a_corrupt_sqlite_store_raises_store_error() -> None:
    files = [{'name': '', 'mode': 0o600, 'data': base64.b64encode(b'SQLite format 3\x00' + b'\xff' * 500).decode()}]
    with pytest.raises(_site_stores.StoreError):
        _site_stores.edit('chromium_cookies', files, {}, ('notion.so',))
    with pytest.raises(_site_stores.StoreError, match='unknown format'):
        _site_stores.edit('local_storage', [{'name': 'x', 'mode': 0o600, 'data': ''}], {}, ('notion.so',))


def _service_workers(text: str) -> t.Any:
    data = base64.b64encode(text.encode()).decode()
    return _site_stores.edit('firefox_service_workers', [{'name': '', 'mode': 0o600, 'data': data}], {},
                             ('notion.so', 'notion.com'))


def test_firefox_service_worker_registrations_lose_notion_records_only_byte_for_byte() -> None:
    original = seed.service_worker_registrations(seed.NOTION + seed.OTHERS).decode()
    result = _service_workers(original)
    assert result.removed == {'notion.so': 2, 'notion.com': 1}
    [edited] = result.files
    kept = seed.service_worker_registration('https://evilnotion.so/') + seed.service_worker_registration(
        'https://example.org/')
    assert base64.b64decode(edited['data']).decode() == '9\n' + kept
    # An older registrar version (2) keeps the principal's spec before the scope; records are still whole.
    old = '2\n' + ''.join(f'\nhttps://{h}/\nhttps://{h}/\nhttps://{h}/sw.js\ntrue\ncache\n#\n'
                          for h in ('www.notion.so', 'example.org'))
    result = _service_workers(old)
    assert result.removed == {'notion.so': 1}
    assert base64.b64decode(result.files[0]['data']).decode() == (
        '2\n\nhttps://example.org/\nhttps://example.org/\nhttps://example.org/sw.js\ntrue\ncache\n#\n')
    assert _service_workers('9\n' + kept).files is None  # nothing of Notion's: nothing rewritten
    # Version 12 (Firefox 153) adds fields after the header value; a page may set that header to '#'.
    hostile = ('\nhttps://example.org/\nhttps://example.org/sw.js\ntrue\n{c}\n0\n1\n2\n3\n1\n#\n'
               '0\n1\n0\n-1\n0\n#\n')
    notion = ('\nhttps://www.notion.so/\nhttps://www.notion.so/sw.js\ntrue\n{c}\n0\n1\n2\n3\n0\ntrue\n'
              '0\n1\n0\n-1\n0\n#\n')
    result = _service_workers('12\n' + hostile + notion)
    assert result.removed == {'notion.so': 1}
    assert base64.b64decode(result.files[0]['data']).decode() == '12\n' + hostile


@pytest.mark.parametrize('text, message', [
    ('', 'no registrar version'),
    ('x\n#\n', 'version'),
    ('9\n\nhttps://www.notion.so/\nsw.js\n', 'not terminated'),
    ('9\n#\n', 'too short'),
    ('9\n\nnot a url\n#\n', 'scope'),
])
def test_a_service_worker_file_of_unknown_format_is_left_untouched(text: str, message: str) -> None:
    with pytest.raises(_site_stores.StoreError, match=message):
        _service_workers(text)


# ------------------------------------------------------------- Linux, natively

class Homes:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / 'homes'
        self.root.mkdir()
        os.chmod(tmp, 0o755)
        os.chmod(self.root, 0o755)
        self.home = self.root / 'alice'
        self.uid = next_uid() if IS_ROOT else os.getuid()
        self.chrome = self.home / '.config' / 'google-chrome'
        self.firefox = self.home / '.mozilla' / 'firefox'
        for name in ('Default', 'Profile 1'):
            seed.chromium_profile(self.chrome / name)
        (self.chrome / 'Local State').write_text(seed.local_state(['Default', 'Profile 1']))
        seed.firefox_profile(self.firefox / 'abcd.default-release')
        (self.firefox / 'profiles.ini').write_text(seed.profiles_ini(['abcd.default-release']))
        (self.root / 'bob').mkdir()
        if IS_ROOT:
            for directory, subdirs, files in os.walk(self.root):
                for name in [directory] + [os.path.join(directory, n) for n in subdirs + files]:
                    os.lchown(name, self.uid, self.uid)
        self.host = CountingLocalHost(str(self.root), str(tmp / 'state'))

    def browser_trees(self) -> dict[str, str]:
        return file_tree(self.home / '.config') | {'ff/' + k: v for k, v in file_tree(self.home / '.mozilla').items()}


@pytest.fixture
def homes(tmp_path: Path) -> t.Iterator[Homes]:
    made = Homes(tmp_path)
    yield made
    made.host.release()


def _hosts(path: Path, query: str) -> set[str]:
    return {h.lstrip('.') for h in seed.sqlite_column(path, query)}


def _leveldb_origins(path: Path) -> set[str]:
    found = set()
    for key in seed.leveldb_keys(path):
        text = key.decode('latin-1')
        for origin in seed.NOTION + seed.OTHERS:
            if origin in text or seed.identifier(origin) in text:
                found.add(origin.split('://')[1])
    return found


def assert_only_others_left(homes: Homes) -> None:
    for name in ('Default', 'Profile 1'):
        profile = homes.chrome / name
        assert _hosts(profile / 'Cookies', 'SELECT host_key FROM cookies') == OTHER_HOSTS
        for store in ('Local Storage/leveldb', 'Session Storage', 'Service Worker/Database', 'File System/Origins'):
            assert _leveldb_origins(profile / store) == OTHER_HOSTS, store
        assert {p.name for p in (profile / 'IndexedDB').iterdir()} == {
            'https_evilnotion.so_0.indexeddb.leveldb', 'https_example.org_0.indexeddb.leveldb'}
        assert sorted(p.name for p in (profile / 'File System').iterdir()) == ['003', '004', 'Origins']
        assert len(list((profile / 'Service Worker' / 'CacheStorage').iterdir())) == 2
        # Chromium purges the scripts of the removed registrations' resources at its next start.
        purgeable = {k for k in seed.leveldb_keys(profile / 'Service Worker' / 'Database') if k.startswith(b'PRES:')}
        assert purgeable == {b'PRES:100', b'PRES:101', b'PRES:102'}
    firefox = homes.firefox / 'abcd.default-release'
    assert _hosts(firefox / 'cookies.sqlite', 'SELECT host FROM moz_cookies') == OTHER_HOSTS
    for archive in ('webappsstore.sqlite', 'storage/ls-archive.sqlite'):
        assert {k.split(':')[0][::-1].strip('.') for k in seed.sqlite_column(
            firefox / archive, 'SELECT originKey FROM webappsstore2')} == OTHER_HOSTS, archive
    assert (firefox / 'serviceworker.txt').read_bytes() == seed.service_worker_registrations(seed.OTHERS)
    assert {p.name for p in (firefox / 'storage' / 'default').iterdir()} == {'https+++evilnotion.so', 'https+++example.org'}


def test_linux_clears_notion_only_then_nothing_then_restores_byte_identical(homes: Homes) -> None:
    before = homes.browser_trees()
    preview = run(homes.host, LINUX, check_mode=True, profiles_root=str(homes.root))
    assert preview['changed'] and homes.browser_trees() == before
    assert preview['diff']['before'] and not preview['diff']['after']
    result = run(homes.host, LINUX, profiles_root=str(homes.root))
    assert result['changed'] and not result.get('failed'), result.get('msg')
    assert result['quarantine_id'] == ENTRY_ID
    [alice] = result['users']
    assert alice['status'] == 'cleared' and [u['user'] for u in result['users']] == ['alice']
    statuses = {(p['browser'], p['profile']): p['status'] for p in alice['profiles']}
    assert statuses == {('chrome', 'Default'): 'cleared', ('chrome', 'Profile 1'): 'cleared',
                        ('firefox', 'abcd.default-release'): 'cleared'}
    default = next(p for p in alice['profiles'] if p['profile'] == 'Default')
    cookies = next(r for r in default['removed'] if r['store'] == 'chromium_cookies')
    assert cookies['sites'] == {'notion.so': 4, 'notion.com': 2} and cookies['action'] == 'edited'
    assert preview['totals']['entries'] == result['totals']['entries']
    assert_only_others_left(homes)
    assert (homes.chrome / 'Default' / 'Preferences').exists()
    if IS_ROOT:
        assert (homes.chrome / 'Default' / 'Cookies').stat().st_uid == homes.uid
        assert (homes.chrome / 'Default' / 'Local Storage' / 'leveldb' / 'CURRENT').stat().st_uid == homes.uid
    assert homes.host.calls == [True, True, False]  # check mode: one call; a run: two

    again = run(homes.host, LINUX, profiles_root=str(homes.root), token='d0d0d0')
    assert not again['changed'] and again['users'][0]['status'] == 'clean'

    restored = restore(homes.host, LINUX, profiles_root=str(homes.root))
    assert restored['changed'] and not restored.get('failed'), restored.get('msg')
    assert homes.browser_trees() == before


def test_a_running_browser_is_skipped_or_stopped(homes: Homes) -> None:
    if not IS_ROOT:
        pytest.skip('needs root to run a process as the user')
    directory = tempfile.mkdtemp(prefix='lb-chrome-')
    os.chmod(directory, 0o755)
    shutil.copy('/bin/sleep', os.path.join(directory, 'chrome'))
    # A browser runs in its user's session: HOME is their home (processes are matched to a profile by it).
    child = subprocess.Popen([os.path.join(directory, 'chrome'), '60'], user=homes.uid, group=homes.uid,
                             env={'HOME': str(homes.home), 'PATH': '/usr/bin:/bin'})
    # Reap the child as soon as the module stops it, as its real parent would: a zombie still lists.
    reaper = threading.Thread(target=child.wait, daemon=True)
    reaper.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and Path(f'/proc/{child.pid}/comm').read_text().strip() != 'chrome':
            time.sleep(0.01)
        before = homes.browser_trees()
        result = run(homes.host, LINUX, profiles_root=str(homes.root), browsers=['chrome'])
        assert not result['changed'] and not result.get('failed')
        assert {p['status'] for p in result['users'][0]['profiles']} == {'skipped'}
        assert 'is running' in result['users'][0]['profiles'][0]['skipped'][0]['reason']
        assert homes.browser_trees() == before
        stopped = run(homes.host, LINUX, profiles_root=str(homes.root), browsers=['chrome'], stop_browser=True,
                      stop_timeout=5)
        reaper.join(timeout=5)
        assert stopped['changed'] and child.poll() is not None
        assert {p['status'] for p in stopped['users'][0]['profiles']} == {'cleared'}
        assert homes.host.calls[-4:] == [True, False, True, False]
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        shutil.rmtree(directory)


def test_a_corrupt_database_is_reported_and_left_untouched(homes: Homes) -> None:
    cookies = homes.chrome / 'Default' / 'Cookies'
    cookies.write_bytes(b'SQLite format 3\x00' + b'\x13' * 4000)
    damaged = cookies.read_bytes()
    result = run(homes.host, LINUX, profiles_root=str(homes.root), browsers=['chrome'])
    assert result['failed'] and 'Cookies' in result['msg'] and 'left untouched' in result['msg']
    assert cookies.read_bytes() == damaged
    default = next(p for p in result['users'][0]['profiles'] if p['profile'] == 'Default')
    assert default['status'] == 'failed'
    assert {r['store'] for r in default['removed']} >= {'local_storage', 'IndexedDB'}  # the rest was cleared


def test_without_plyvel_leveldb_stores_are_skipped_and_the_rest_cleared(homes: Homes,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_site_stores, 'plyvel', None)
    result = run(homes.host, LINUX, profiles_root=str(homes.root), browsers=['chrome'], users=['alice'])
    assert not result.get('failed'), result.get('msg')
    default = next(p for p in result['users'][0]['profiles'] if p['profile'] == 'Default')
    reasons = {s['store']: s['reason'] for s in default['skipped']}
    assert set(reasons) == {'local_storage', 'session_storage', 'service_worker_database', 'file_system_origins'}
    assert all('plyvel' in reason for reason in reasons.values())
    assert {r['store'] for r in default['removed']} == {'chromium_cookies', 'IndexedDB', 'Service Worker/CacheStorage'}


def test_scopes_and_browsers_narrow_the_run(homes: Homes) -> None:
    result = run(homes.host, LINUX, profiles_root=str(homes.root), browsers=['firefox'], scopes=['cookies'])
    [firefox] = result['users'][0]['profiles']
    assert [r['store'] for r in firefox['removed']] == ['firefox_cookies']
    assert (homes.firefox / 'abcd.default-release' / 'storage' / 'default' / 'https+++www.notion.so').exists()
    assert _hosts(homes.chrome / 'Default' / 'Cookies', 'SELECT host_key FROM cookies') == NOTION_HOSTS | OTHER_HOSTS


# ------------------------------------------------------- Windows, through the twin

CHROME_WINDOWS = 'C:\\Users\\alice\\AppData\\Local\\Google\\Chrome\\User Data'


def test_windows_twin_edits_on_the_controller_in_two_calls_and_restores() -> None:
    machine = twin(['alice', 'bob'])
    for relative, data in seed.built(seed.chromium_profile).items():
        machine.write(ntpath.join(CHROME_WINDOWS, 'Default', relative.replace('/', '\\')), data)
    machine.write(ntpath.join(CHROME_WINDOWS, 'Local State'), seed.local_state(['Default']))
    before = machine.tree_snapshot(CHROME_WINDOWS)
    calls = len(machine.state['calls'])
    result = run(machine, WINDOWS)
    assert result['changed'] and not result.get('failed'), result.get('msg')
    assert len(machine.state['calls']) - calls == 2
    assert [u['user'] for u in result['users'] if u['status'] == 'cleared'] == ['alice']
    work = Path(tempfile.mkdtemp(prefix='lb-twin-'))
    try:
        (work / 'Cookies').write_bytes(machine.read(ntpath.join(CHROME_WINDOWS, 'Default', 'Cookies')))
        assert _hosts(work / 'Cookies', 'SELECT host_key FROM cookies') == OTHER_HOSTS
    finally:
        shutil.rmtree(work)
    assert not machine.exists(ntpath.join(CHROME_WINDOWS, 'Default', 'IndexedDB',
                                          'https_www.notion.so_0.indexeddb.leveldb'))
    assert machine.exists(ntpath.join(CHROME_WINDOWS, 'Default', 'IndexedDB', 'https_example.org_0.indexeddb.leveldb'))
    assert not run(machine, WINDOWS, token='d0d0d0')['changed']
    restored = restore(machine, WINDOWS)
    assert restored['changed'] and not restored.get('failed'), restored.get('msg')
    assert machine.tree_snapshot(CHROME_WINDOWS) == before
    assert sid(1)  # alice's SID is the one the record is kept under


FIREFOX_WINDOWS = 'C:\\Users\\alice\\AppData\\Roaming\\Mozilla\\Firefox'


def test_windows_twin_clears_firefox_registrations_and_archive_and_restores() -> None:
    machine = twin(['alice'])
    profile = ntpath.join(FIREFOX_WINDOWS, 'Profiles', 'x1y2.default-release')
    for relative, data in seed.built(seed.firefox_profile).items():
        machine.write(ntpath.join(profile, relative.replace('/', '\\')), data)
    machine.write(ntpath.join(FIREFOX_WINDOWS, 'profiles.ini'), seed.profiles_ini(['Profiles/x1y2.default-release']))
    before = machine.tree_snapshot(FIREFOX_WINDOWS)
    result = run(machine, WINDOWS, browsers=['firefox'])
    assert result['changed'] and not result.get('failed'), result.get('msg')
    [firefox] = result['users'][0]['profiles']
    assert {r['store'] for r in firefox['removed']} == {
        'firefox_cookies', 'firefox_webappsstore', 'firefox_ls_archive', 'firefox_service_workers', 'storage/default'}
    assert machine.read(ntpath.join(profile, 'serviceworker.txt')) == seed.service_worker_registrations(seed.OTHERS)
    work = Path(tempfile.mkdtemp(prefix='lb-twin-'))
    try:
        (work / 'archive').write_bytes(machine.read(ntpath.join(profile, 'storage', 'ls-archive.sqlite')))
        assert {k.split(':')[0][::-1].strip('.') for k in seed.sqlite_column(
            work / 'archive', 'SELECT originKey FROM webappsstore2')} == OTHER_HOSTS
    finally:
        shutil.rmtree(work)
    assert not run(machine, WINDOWS, browsers=['firefox'], token='d0d0d0')['changed']
    restored = restore(machine, WINDOWS)
    assert restored['changed'] and not restored.get('failed'), restored.get('msg')
    assert machine.tree_snapshot(FIREFOX_WINDOWS) == before


# ------------------------------------------------------------ macOS paths, natively

def test_macos_paths_chrome_and_firefox_profiles_under_application_support(tmp_path: Path) -> None:
    from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import DARWIN
    root = tmp_path / 'Users'
    support = root / 'alice' / 'Library' / 'Application Support'
    seed.chromium_profile(support / 'Google' / 'Chrome' / 'Default')
    (support / 'Google' / 'Chrome' / 'Local State').write_text(seed.local_state(['Default']))
    seed.firefox_profile(support / 'Firefox' / 'Profiles' / 'x1y2.default-release')
    (support / 'Firefox' / 'profiles.ini').write_text(seed.profiles_ini(['Profiles/x1y2.default-release']))
    host = CountingLocalHost(str(root), str(tmp_path / 'state'))
    host.platform = 'darwin'
    try:
        result = run(host, DARWIN)
        assert result['changed'] and not result.get('failed'), result.get('msg')
        profiles = {(p['browser'], p['profile']): p for p in result['users'][0]['profiles']}
        assert set(profiles) == {('chrome', 'Default'), ('firefox', 'Profiles/x1y2.default-release')}
        assert all(p['status'] == 'cleared' for p in profiles.values())
        assert result['users'][0]['quarantine_path'].startswith(str(support / 'loopbreaker' / 'quarantine'))
        assert _hosts(support / 'Google' / 'Chrome' / 'Default' / 'Cookies', 'SELECT host_key FROM cookies') == OTHER_HOSTS
        assert _hosts(support / 'Firefox' / 'Profiles' / 'x1y2.default-release' / 'cookies.sqlite',
                      'SELECT host FROM moz_cookies') == OTHER_HOSTS
    finally:
        host.release()


def test_windows_a_locked_store_fails_that_user_and_leaves_every_store_whole() -> None:
    machine = twin(['alice', 'bob'])
    for user in ('alice', 'bob'):
        user_data = f'C:\\Users\\{user}\\AppData\\Local\\Google\\Chrome\\User Data'
        for relative, data in seed.built(seed.chromium_profile).items():
            machine.write(ntpath.join(user_data, 'Default', relative.replace('/', '\\')), data)
        machine.write(ntpath.join(user_data, 'Local State'), seed.local_state(['Default']))
    holder = machine.add_process('backup.exe', 'C:\\Tools\\backup.exe', sid(1))
    locked = ntpath.join(CHROME_WINDOWS, 'Default', 'Local Storage', 'leveldb', 'CURRENT')
    machine.state['files'][locked.lower()]['locked_by'] = holder
    result = run(machine, WINDOWS)
    assert result['failed'] and 'alice' in result['msg'] and 'being used by another process' in result['msg']
    users = {u['user']: u for u in result['users']}
    assert users['bob']['status'] == 'cleared' and users['alice']['status'] == 'failed'
    actions = [r['action'] for r in users['alice']['profiles'][0]['removed']]
    assert actions[0] == 'edited' and actions[1] == 'failed' and set(actions[2:]) == {'skipped'}
    # Cookies was replaced by its edited copy, Local Storage is still the original: nothing is missing.
    assert machine.exists(ntpath.join(CHROME_WINDOWS, 'Default', 'Cookies'))
    assert machine.exists(locked)


def test_a_linked_store_is_never_read_and_reported(homes: Homes, tmp_path: Path) -> None:
    secret = tmp_path / 'root-only.sqlite'
    shutil.copy(homes.chrome / 'Default' / 'Cookies', secret)
    (homes.chrome / 'Default' / 'Cookies').unlink()
    os.symlink(secret, homes.chrome / 'Default' / 'Cookies')
    result = run(homes.host, LINUX, profiles_root=str(homes.root), browsers=['chrome'])
    assert result['failed'] and 'link; not followed' in result['msg']
    assert (homes.chrome / 'Default' / 'Cookies').is_symlink()
    assert _hosts(secret, 'SELECT host_key FROM cookies') == NOTION_HOSTS | OTHER_HOSTS


def test_without_quarantine_the_originals_are_deleted(homes: Homes) -> None:
    result = run(homes.host, LINUX, profiles_root=str(homes.root), browsers=['chrome'], quarantine=False)
    assert result['changed'] and not result.get('failed') and result['quarantine_id'] is None
    assert not (homes.home / '.local' / 'share' / 'loopbreaker').exists()
    assert _hosts(homes.chrome / 'Default' / 'Cookies', 'SELECT host_key FROM cookies') == OTHER_HOSTS


def test_quarantine_refuses_a_browser_record_outside_browser_data(homes: Homes) -> None:
    result = run(homes.host, LINUX, profiles_root=str(homes.root), browsers=['chrome'])
    key = next(iter((Path(str(homes.host.state_dir)) / 'records' / 'quarantine').iterdir()))
    record = key.read_text().replace(str(homes.chrome / 'Default' / 'Cookies'), str(homes.home / '.ssh' / 'authorized_keys'))
    key.write_text(record)
    with pytest.raises(RequestError, match='no quarantine entry'):
        restore(homes.host, LINUX, entry_id=result['quarantine_id'], profiles_root=str(homes.root))
    params = validated(_quarantine_state.ARGUMENT_SPEC, {'profiles_root': str(homes.root)})
    listed = _quarantine_state.run(homes.host, LINUX, params, check_mode=True, now=NOW, entry_token='c0c0c0')
    assert 'refused' in str(listed['unreadable']) and '.ssh' in str(listed['unreadable'])
    assert not (homes.home / '.ssh').exists()

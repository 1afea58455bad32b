# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seeds for the bundled lab and the tests: realistic Notion userData trees.

Private to this collection. The same tree is written into a simulated Windows
profile or a sandboxed POSIX home, so both paths can be compared.
"""
from __future__ import annotations

import base64
import hashlib
import ntpath
import os
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils import _inet_proxy as blob
from ansible_collections.loopbreaker.notion.plugins.module_utils._msix import NOTION_IDENTITY, NOTION_PUBLISHER
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_packages import msix_meta
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_signatures import trusted_signing
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

# relative path under userData -> content; kept small but shaped like a real profile.
NOTION_TREE: dict[str, str] = {
    'Cache/Cache_Data/index': 'i' * 64,
    'Cache/Cache_Data/data_0': 'c' * 2048,
    'Code Cache/js/index': 'j' * 128,
    'GPUCache/data_1': 'g' * 512,
    'DawnCache/data_0': 'd' * 256,
    'notionAssetCache-v2/assets.json': '{"version": 2}',
    'Local Storage/leveldb/000003.log': 'l' * 300,
    'IndexedDB/https_www.notion.so_0.indexeddb.leveldb/CURRENT': 'MANIFEST-000001\n',
    'Session Storage/000003.log': 's' * 40,
    'notion.db': 'SQLite format 3\x00' + 'n' * 4000,
    'notion.db-wal': 'w' * 100,
    'Partitions/notion/Cache/Cache_Data/data_0': 'p' * 1024,
    'Partitions/notion/Code Cache/js/index': 'q' * 64,
    'Partitions/notion/Service Worker/ScriptCache/index': 'v' * 200,
    'Partitions/notion/Network/Cookies': 'SQLite format 3\x00token_v2',
    'Partitions/notion/Network/Cookies-journal': '',
    'Partitions/notion/Local Storage/leveldb/000005.ldb': 'k' * 90,
    'Partitions/notion/IndexedDB/https_www.notion.so_0.indexeddb.leveldb/000004.log': 'x' * 700,
    'Partitions/notion/File System/000/t/00/00000000': 'f' * 30,
    'Preferences': '{"spellcheck": {"dictionaries": ["en-US"]}}',
    'Local State': '{"os_crypt": {"encrypted_key": "RFBBUEk="}}',
    'logs/main.log': 'started\n',
    'state.json': '{"appState": {}}',
}
# As Notion's installers are signed: Azure Trusted Signing, subject O="Notion Labs, Inc." (docs/signatures.md).
NOTION_SIGNER = 'Notion Labs, Inc.'
LAB_INSTALLER = 'C:\\Installers\\Notion Setup 7.36.0.exe'
LAB_INSTALLER_VERSION = '7.36.0'
PROXY_CONNECTIONS_KEY = 'Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\Connections'
KEPT_ENTRIES: tuple[str, ...] = ('Preferences', 'Local State', 'logs', 'state.json')


def seed_windows_user(twin: SimulatedWindows, username: str, sid: str, *, loaded: bool,
                      app_data: str | None = None, with_notion: bool = True, running: bool = False,
                      version: str = '7.35.0', account: str | None = None) -> str:
    """Add a profile (optionally with redirected AppData), a per-user Notion install and its data.

    Returns the userData path.
    """
    profile_path = f'C:\\Users\\{username}'
    folders = {'AppData': app_data} if app_data else None
    profile = twin.add_profile(username, sid, loaded=loaded, shell_folders=folders, account=account)
    roaming = (app_data or '%USERPROFILE%\\AppData\\Roaming').replace('%USERPROFILE%', profile_path)
    root = ntpath.join(roaming, 'Notion')
    if with_notion:
        twin.install_notion(profile, {'version': version, **trusted_signing(NOTION_SIGNER)}, ['/S'])
        exe = ntpath.join(profile_path, 'AppData', 'Local', 'Programs', 'Notion', 'Notion.exe')
        pids = [twin.add_process('Notion.exe', exe, sid) for _copy in range(3)] if running else []
        for relative, content in NOTION_TREE.items():
            locked = pids[0] if pids and relative.endswith('Cookies') else None
            twin.write(ntpath.join(root, relative.replace('/', '\\')), content, locked_by=locked)
    return root


def seed_posix_home(profiles_root: str, username: str, *, platform: str = 'linux', with_notion: bool = True) -> str:
    """Create a sandboxed home with a Notion userData tree; returns the userData path."""
    home = os.path.join(profiles_root, username)
    relative_root = 'Library/Application Support/Notion' if platform == 'darwin' else '.config/Notion'
    root = os.path.join(home, relative_root)
    os.makedirs(home, exist_ok=True)
    if with_notion:
        for relative, content in NOTION_TREE.items():
            path = os.path.join(root, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w', encoding='utf-8') as handle:
                handle.write(content)
    return root


def seed_lab_workstations() -> dict[str, dict[str, t.Any]]:
    """The lab's simulated Windows workstations, as twin states keyed by host name."""
    states = {}
    first = SimulatedWindows(empty_state('WS-WIN-01'))
    first.add_profile('systemprofile', 'S-1-5-18', loaded=True, profile_path='C:\\Windows\\system32\\config\\systemprofile')
    alice = 'S-1-5-21-1004336348-1177238915-682003330-1001'
    bob = 'S-1-5-21-1004336348-1177238915-682003330-1002'
    seed_windows_user(first, 'alice', alice, loaded=True, running=True)
    seed_user_proxy(first, alice, proxy_server='proxy.corp.example:8080', bypass='*.corp.example;<local>')
    seed_windows_user(first, 'bob', bob, loaded=False, app_data='%USERPROFILE%\\Roaming (redirected)')
    seed_user_proxy(first, bob, pac_url='http://wpad.corp.example/proxy.pac')
    seed_windows_user(first, 'carol', 'S-1-5-21-1004336348-1177238915-682003330-1003', loaded=False,
                      with_notion=False)
    # A block rule someone made for alice's Notion.exe: the firewall rung disables and records it.
    first.state['firewall_rules'].append({
        'name': '{6F1A2B3C-0D4E-4F50-8A61-72B83C94D0E1}', 'display_name': 'Block Notion (helpdesk ticket 4711)',
        'direction': 'out', 'action': 'block', 'profiles': ['domain', 'private', 'public'],
        'program': 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe', 'enabled': True,
        'description': ''})
    seed_installer(first, LAB_INSTALLER, LAB_INSTALLER_VERSION)
    states['ws-win-01'] = first.state
    second = SimulatedWindows(empty_state('WS-WIN-02'))
    seed_windows_user(second, 'dave', 'S-1-5-21-2004336348-1177238915-682003330-1101', loaded=True)
    seed_windows_user(second, 'erin', 'S-1-5-21-2004336348-1177238915-682003330-1102', loaded=False,
                      app_data='D:\\Profiles\\erin\\Roaming')
    # ws-win-02 is under the "Make proxy settings per-machine" policy.
    second.set_registry('HKLM', 'SOFTWARE\\Policies\\Microsoft\\Windows\\CurrentVersion\\Internet Settings',
                        {'ProxySettingsPerUser': {'type': 'REG_DWORD', 'data': 0}})
    seed_user_proxy(second, None, proxy_server='http=gw.corp.example:3128;https=gw.corp.example:3128')
    seed_installer(second, LAB_INSTALLER, LAB_INSTALLER_VERSION)
    states['ws-win-02'] = second.state
    return states


def seed_user_proxy(twin: SimulatedWindows, sid: str | None, *, proxy_server: str = '', bypass: str = '',
                    pac_url: str = '', auto_detect: bool = False, counter: int = 7,
                    saved_legacy: bool = True) -> bytes:
    """Give a user (or HKLM when sid is None) WinINET settings as the Settings app writes them."""
    flags = blob.ProxyFlags.DIRECT
    flags |= blob.ProxyFlags.PROXY if proxy_server else 0
    flags |= blob.ProxyFlags.AUTO_PROXY_URL if pac_url else 0
    flags |= blob.ProxyFlags.AUTO_DETECT if auto_detect else 0
    settings = blob.ConnectionSettings(version=blob.VERSION_IE7, counter=counter, flags=flags, proxy_server=proxy_server,
                                       bypass_list=bypass, pac_url=pac_url, trailing=bytes(32))
    data = blob.build(settings)
    encoded = {'type': 'REG_BINARY', 'data': base64.b64encode(data).decode()}
    hive = sid or 'HKLM'
    twin.set_registry(hive, PROXY_CONNECTIONS_KEY, {'DefaultConnectionSettings': encoded,
                                                    **({'SavedLegacySettings': encoded} if saved_legacy else {})})
    legacy = {name: value for name, value in blob.legacy_values(settings).items() if value is not None}
    twin.set_registry(hive, PROXY_CONNECTIONS_KEY.rsplit('\\', 1)[0], {
        name: {'type': 'REG_DWORD' if name == 'ProxyEnable' else 'REG_SZ', 'data': value} for name, value in legacy.items()})
    return data


def installer_content(version: str, signer: str | None = NOTION_SIGNER) -> bytes:
    return f'MZ Notion Setup {version} signed by {signer}'.encode()


def seed_installer(twin: SimulatedWindows, path: str, version: str, *, signer: str | None = NOTION_SIGNER,
                   uninstaller_hangs: bool = False) -> str:
    """Put a Notion installer on the simulated host; returns its SHA-256."""
    content = installer_content(version, signer)
    twin.write(path, content, meta=installer_meta(version, signer=signer, uninstaller_hangs=uninstaller_hangs))
    return hashlib.sha256(content).hexdigest()


def serve_installer(twin: SimulatedWindows, url: str, version: str, *, signer: str | None = NOTION_SIGNER) -> str:
    """Make the simulated host able to download an installer from url; returns its SHA-256."""
    content = installer_content(version, signer)
    twin.state['downloads'][url] = {'content': base64.b64encode(content).decode(),
                                    'meta': installer_meta(version, signer=signer)}
    return hashlib.sha256(content).hexdigest()


def seed_msix(twin: SimulatedWindows, path: str, version: str, *, publisher: str = NOTION_PUBLISHER,
              signature: str = 'Valid', signer_subject: str | None = None) -> str:
    """Put Notion's MSIX (identity com.notion.app.desktop.notion) on the simulated host; returns its SHA-256."""
    content = f'PK MSIX {NOTION_IDENTITY} {version} by {publisher}'.encode()
    twin.write(path, content, meta=msix_meta(NOTION_IDENTITY, publisher, version, signer='Notion Labs, Inc.',
                                             signature=signature, signer_subject=signer_subject))
    return hashlib.sha256(content).hexdigest()


def installer_meta(version: str, *, signer: str | None = NOTION_SIGNER, uninstaller_hangs: bool = False) -> dict[str, t.Any]:
    """A Notion installer signed through Azure Trusted Signing for signer (None: not signed)."""
    return {'kind': 'notion_installer', 'version': version, **trusted_signing(signer),
            'uninstaller_hangs': uninstaller_hangs}

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where browsers keep their profiles, which sites are Notion's, and which origins match them.

Private to this collection. The one place that knows browser layouts: the data
roots of Chrome, Edge, Brave, Chromium and Firefox on each platform (native,
Snap and Flatpak locations), the entries of a profile that hold site data, how
each browser spells an origin in a key or a folder name, and how a profile
list is read (Chromium's ``Local State`` -> ``profile.info_cache``, Firefox's
``profiles.ini``). Templates use the same ``{Folder}`` placeholders as
_layout, resolved per user by the host.
"""
from __future__ import annotations

import configparser
import json
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.loopbreaker.notion.plugins.module_utils import _containment
from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import substitute
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import PlatformLayout

DEFAULT_SITES: tuple[str, ...] = ('notion.so', 'notion.com')
BROWSER_NAMES: tuple[str, ...] = ('chrome', 'edge', 'brave', 'chromium', 'firefox')
SCOPE_NAMES: tuple[str, ...] = ('cookies', 'storage', 'service_workers', 'cache')
_HOST = re.compile(r'(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]')


@dataclass(frozen=True)
class Browser:
    name: str
    family: str  # 'chromium' or 'firefox'
    roots: dict[str, tuple[str, ...]]  # platform -> data root templates
    processes: dict[str, tuple[str, ...]]  # platform -> process names


def _linux_chromium(config: str, flatpak: str | None, snap: str | None = None) -> tuple[str, ...]:
    roots = [f'{{AppData}}/{config}']
    if flatpak:
        roots.append(f'{{ProfilePath}}/.var/app/{flatpak}/config/{config}')
    if snap:
        roots.append(f'{{ProfilePath}}/snap/{snap}/common/{config}')
    return tuple(roots)


BROWSERS: dict[str, Browser] = {b.name: b for b in (
    Browser('chrome', 'chromium',
            {'windows': ('{Local AppData}\\Google\\Chrome\\User Data',),
             'darwin': ('{AppData}/Google/Chrome',),
             'linux': _linux_chromium('google-chrome', 'com.google.Chrome')},
            {'windows': ('chrome.exe',), 'darwin': ('Google Chrome',), 'linux': ('chrome',)}),
    Browser('edge', 'chromium',
            {'windows': ('{Local AppData}\\Microsoft\\Edge\\User Data',),
             'darwin': ('{AppData}/Microsoft Edge',),
             'linux': _linux_chromium('microsoft-edge', 'com.microsoft.Edge')},
            {'windows': ('msedge.exe',), 'darwin': ('Microsoft Edge',), 'linux': ('msedge',)}),
    Browser('brave', 'chromium',
            {'windows': ('{Local AppData}\\BraveSoftware\\Brave-Browser\\User Data',),
             'darwin': ('{AppData}/BraveSoftware/Brave-Browser',),
             'linux': _linux_chromium('BraveSoftware/Brave-Browser', 'com.brave.Browser')},
            {'windows': ('brave.exe',), 'darwin': ('Brave Browser',), 'linux': ('brave',)}),
    Browser('chromium', 'chromium',
            {'windows': ('{Local AppData}\\Chromium\\User Data',),
             'darwin': ('{AppData}/Chromium',),
             'linux': _linux_chromium('chromium', 'org.chromium.Chromium', 'chromium')},
            {'windows': ('chrome.exe',), 'darwin': ('Chromium',), 'linux': ('chromium',)}),
    Browser('firefox', 'firefox',
            {'windows': ('{AppData}\\Mozilla\\Firefox',),
             'darwin': ('{AppData}/Firefox',),
             'linux': ('{ProfilePath}/.mozilla/firefox', '{ProfilePath}/snap/firefox/common/.mozilla/firefox',
                       '{ProfilePath}/.var/app/org.mozilla.firefox/.mozilla/firefox')},
            {'windows': ('firefox.exe',), 'darwin': ('firefox',), 'linux': ('firefox', 'firefox-esr', 'firefox-bin')}),
)}

# Entries of a profile, relative and '/'-separated, by scope. "edit": a shared store edited in place
# (its original quarantined first); "origins": a folder of per-origin entries moved whole.
CHROMIUM_EDITED: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    # (entry, store kind, companions moved and not rewritten)
    'cookies': (('Cookies', 'chromium_cookies', ('Cookies-journal', 'Cookies-wal', 'Cookies-shm')),
                ('Network/Cookies', 'chromium_cookies', ('Network/Cookies-journal', 'Network/Cookies-wal', 'Network/Cookies-shm'))),
    'storage': (('Local Storage/leveldb', 'local_storage', ()),
                ('Session Storage', 'session_storage', ()),
                ('File System/Origins', 'file_system_origins', ())),
    'service_workers': (('Service Worker/Database', 'service_worker_database', ()),),
    'cache': (),
}
CHROMIUM_ORIGIN_FOLDERS: dict[str, tuple[str, ...]] = {
    'storage': ('IndexedDB', 'File System', 'WebStorage'),
    'service_workers': ('Service Worker/CacheStorage',),
    'cache': (),
}
CHROMIUM_READ_ONLY = ('WebStorage/QuotaManager', 'Service Worker/CacheStorage/*/index.txt')
FIREFOX_EDITED: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    'cookies': (('cookies.sqlite', 'firefox_cookies', ('cookies.sqlite-wal', 'cookies.sqlite-shm', 'cookies.sqlite-journal')),),
    'storage': (('webappsstore.sqlite', 'firefox_webappsstore',
                 ('webappsstore.sqlite-wal', 'webappsstore.sqlite-shm', 'webappsstore.sqlite-journal')),
                ('storage/ls-archive.sqlite', 'firefox_ls_archive',
                 ('storage/ls-archive.sqlite-wal', 'storage/ls-archive.sqlite-shm',
                  'storage/ls-archive.sqlite-journal'))),
    'service_workers': (('serviceworker.txt', 'firefox_service_workers', ()),),
    'cache': (),
}
FIREFOX_ORIGIN_FOLDERS: dict[str, tuple[str, ...]] = {'storage': ('storage/default',), 'service_workers': (), 'cache': ()}
# Firefox keeps profiles at the root (Linux) or under Profiles/ (Windows, macOS); both are listed.
FIREFOX_PROFILE_GLOBS = ('*', 'Profiles/*')
NOT_ATTRIBUTABLE = {
    'cache': 'the HTTP cache is one shared disk cache per profile whose entries are not stored per site; '
             'it is left in place (it holds no login state)',
}


def validate_sites(sites: list[str]) -> tuple[str, ...]:
    """Registrable host names, lower-cased; anything else raises ValueError."""
    cleaned = []
    for site in sites:
        name = site.strip().lower().rstrip('.')
        if not _HOST.fullmatch(name):
            raise ValueError(f'site {site!r} is not a host name (like notion.so); give names, not URLs or addresses')
        cleaned.append(name)
    if not cleaned:
        raise ValueError('sites must name at least one site')
    return tuple(dict.fromkeys(cleaned))


def host_matches(host: str | None, sites: tuple[str, ...]) -> str | None:
    """The site a host belongs to (the site itself or a subdomain of it), else None."""
    if not host:
        return None
    name = host.strip().lower().lstrip('.').rstrip('.')
    for site in sites:
        if name == site or name.endswith('.' + site):
            return site
    return None


def origin_host(origin: str) -> str | None:
    """Host of a serialised origin or storage key (``https://h:1/``, ``https://h/^0https://top``)."""
    first = origin.split('^', 1)[0]
    match = re.match(r'^[a-z][a-z0-9+.-]*://(\[[^\]]*\]|[^/:]+)', first)
    return match.group(1) if match else None


def chromium_identifier_host(name: str) -> str | None:
    """Host of Chromium's file-name origin identifier: ``https_www.notion.so_0.indexeddb.leveldb``."""
    first = name.split('^', 1)[0]
    match = re.match(r'^(https?|chrome-extension|file)_(.*)_(\d+)(?:\.|$)', first)
    return match.group(2) if match else None


def firefox_folder_host(name: str) -> str | None:
    """Host of a Firefox ``storage/default`` folder: ``https+++www.notion.so+8443^userContextId=1``."""
    first = name.split('^', 1)[0]
    match = re.match(r'^(https?)\+\+\+([^+]+)', first)
    return match.group(2) if match else None


def firefox_origin_key_host(origin_key: str) -> str | None:
    """Host of webappsstore's reversed originKey: ``os.noiton.www.:https:443``."""
    reversed_host = origin_key.split(':', 1)[0]
    return reversed_host[::-1].strip('.') or None


def roots(layout: PlatformLayout, browsers: tuple[str, ...]) -> list[tuple[Browser, str]]:
    """(browser, data root template) for every chosen browser on this platform."""
    return [(BROWSERS[name], root) for name in browsers for root in BROWSERS[name].roots.get(layout.name, ())]


def process_names(layout: PlatformLayout, browsers: tuple[str, ...]) -> list[str]:
    return sorted({name for b in browsers for name in BROWSERS[b].processes.get(layout.name, ())})


def profile_globs(browser: Browser) -> tuple[str, ...]:
    return FIREFOX_PROFILE_GLOBS if browser.family == 'firefox' else ('*',)


def edited_entries(browser: Browser, scopes: tuple[str, ...]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    table = FIREFOX_EDITED if browser.family == 'firefox' else CHROMIUM_EDITED
    return [(scope, entry, kind, companions) for scope in scopes for entry, kind, companions in table.get(scope, ())]


def origin_folders(browser: Browser, scopes: tuple[str, ...]) -> list[tuple[str, str]]:
    table = FIREFOX_ORIGIN_FOLDERS if browser.family == 'firefox' else CHROMIUM_ORIGIN_FOLDERS
    return [(scope, folder) for scope in scopes for folder in table.get(scope, ())]


def _join(layout: PlatformLayout, *parts: str) -> str:
    return layout.join(*[layout.native(part) for part in parts])


def probe_patterns(layout: PlatformLayout, browsers: tuple[str, ...],
                   scopes: tuple[str, ...]) -> tuple[list[str], list[str], list[str]]:
    """(profile lists to read as text, entries to stat, stores to read as bytes) for each_profile operations."""
    lists, stats, trees = [], [], []
    for browser, root in roots(layout, browsers):
        lists.append(_join(layout, root, 'profiles.ini' if browser.family == 'firefox' else 'Local State'))
        for glob in profile_globs(browser):
            for _scope, entry, _kind, companions in edited_entries(browser, scopes):
                trees += [_join(layout, root, glob, name) for name in (entry,) + companions]
            for _scope, folder in origin_folders(browser, scopes):
                stats.append(_join(layout, root, glob, folder, '*'))
            if browser.family == 'chromium':
                trees += [_join(layout, root, glob, name) for name in CHROMIUM_READ_ONLY
                          if set(scopes) & {'storage', 'service_workers'}]
    return lists, stats, trees


def all_original_patterns(layout: PlatformLayout) -> list[str]:
    """Every path browser_data may quarantine, for the quarantine module's probe (restore conflicts)."""
    _lists, stats, trees = probe_patterns(layout, BROWSER_NAMES, SCOPE_NAMES)
    return [p for p in stats + trees if not p.endswith('index.txt') and not p.endswith('QuotaManager')]


def user_root_paths(layout: PlatformLayout, profile: dict[str, t.Any]) -> list[str]:
    substitutions = {'ProfilePath': profile['profile_path'], 'Sid': profile['sid'], **profile['folders']}
    return [substitute(root, substitutions) for _b, root in roots(layout, BROWSER_NAMES)]


def holds(layout: PlatformLayout, profile: dict[str, t.Any], path: str) -> bool:
    """Whether path lies strictly inside one of this user's browser data roots."""
    return any(_containment.strictly_inside(layout, path, root) for root in user_root_paths(layout, profile))


def chromium_profiles(local_state: str | None) -> tuple[dict[str, str] | None, str | None]:
    """({directory: display name}, error) from the text of ``Local State``."""
    if local_state is None:
        return None, None
    try:
        data = json.loads(local_state)
        cache = data['profile']['info_cache']
        if not isinstance(cache, dict):
            raise TypeError('info_cache is not an object')
    except (ValueError, KeyError, TypeError) as error:
        return None, f'Local State has no readable profile.info_cache ({error})'
    return {str(directory): str((info or {}).get('name') or directory) if isinstance(info, dict) else str(directory)
            for directory, info in cache.items()}, None


def firefox_profiles(profiles_ini: str | None) -> tuple[dict[str, str] | None, str | None]:
    """({relative or absolute path: name}, error) from the text of ``profiles.ini``."""
    if profiles_ini is None:
        return None, None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(profiles_ini)
    except configparser.Error as error:
        return None, f'profiles.ini is not readable ({error.__class__.__name__})'
    found = {}
    for section in parser.sections():
        if section.lower().startswith('profile') and parser.has_option(section, 'Path'):
            path = parser.get(section, 'Path')
            relative = parser.get(section, 'IsRelative', fallback='1').strip() == '1'
            key = ('' if relative else '/') + path.replace('\\', '/').lstrip('/')
            found[key] = parser.get(section, 'Name', fallback=path)
    return found, None

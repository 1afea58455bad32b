# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where Notion keeps things on each platform, and what each app_data scope removes.

Private to this collection. This is the one place that knows Notion's on-disk
layout (docs/scopes.md renders the same table for readers); planners and hosts
only see the path patterns built here. Templates use ``{Folder}`` placeholders
that the host resolves per profile (a shell folder on Windows, a directory
relative to the home elsewhere), so a redirected AppData is honoured.
"""
from __future__ import annotations

import ntpath
import posixpath
import types
from dataclasses import dataclass

from ansible_collections.loopbreaker.notion.plugins.module_utils._msix import VIRTUAL_DATA_ROOT

SCOPE_NAMES: tuple[str, ...] = ('cache', 'service_workers', 'storage', 'cookies')
SCOPE_CHOICES: tuple[str, ...] = ('all',) + SCOPE_NAMES

# Chromium profile entries, found both at the userData root and inside every
# session partition (Notion uses Partitions/notion for persist:notion).
_CHROMIUM_ENTRIES: dict[str, tuple[str, ...]] = {
    'cache': ('Cache', 'Code Cache', 'GPUCache', 'DawnCache', 'DawnGraphiteCache', 'DawnWebGPUCache',
              'GrShaderCache', 'ShaderCache'),
    'service_workers': ('Service Worker',),
    'storage': ('Local Storage', 'IndexedDB', 'Session Storage', 'File System', 'WebStorage', 'blob_storage',
                'shared_proto_db'),
    'cookies': ('Cookies', 'Cookies-journal', 'Network/Cookies', 'Network/Cookies-journal'),
}
# Notion's own entries, only at the userData root.
_NOTION_ENTRIES: dict[str, tuple[str, ...]] = {
    'cache': ('notionAssetCache-v2',),
    'service_workers': (),
    'storage': ('notion.db', 'notion.db-wal', 'notion.db-shm', 'notion.db-journal'),
    'cookies': (),
}
PARTITION_PREFIX = 'Partitions/*/'


@dataclass(frozen=True)
class PlatformLayout:
    name: str
    path: types.ModuleType
    shell_folders: dict[str, str]
    data_root: str
    outside_root: dict[str, tuple[str, ...]]
    quarantine_root: str
    process_names: tuple[str, ...]
    # Where the quarantine goes when quarantine_root is on another volume than the data (Windows
    # with a redirected AppData), so that a move stays a rename; None where homes are one volume.
    fallback_quarantine_root: str | None = None
    # Other places the same userData may be in, or be split into: on Windows the MSIX's virtualised
    # copy of AppData (see _msix). Every scope covers them as it covers data_root.
    extra_data_roots: tuple[str, ...] = ()

    def data_roots(self) -> tuple[str, ...]:
        return (self.data_root,) + self.extra_data_roots

    def quarantine_roots(self) -> list[str]:
        """Every template a quarantine entry can live under, for listing."""
        return [self.quarantine_root] + ([self.fallback_quarantine_root] if self.fallback_quarantine_root else [])

    def join(self, *parts: str) -> str:
        return str(self.path.join(*parts))

    def native(self, relative: str) -> str:
        return relative.replace('/', self.path.sep)


WINDOWS = PlatformLayout(
    name='windows',
    path=ntpath,
    shell_folders={'AppData': 'AppData\\Roaming', 'Local AppData': 'AppData\\Local'},
    data_root='{AppData}\\Notion',
    outside_root={},
    quarantine_root='{Local AppData}\\loopbreaker\\quarantine',
    process_names=('Notion.exe',),
    fallback_quarantine_root='{AppData}\\loopbreaker-quarantine',
    extra_data_roots=(VIRTUAL_DATA_ROOT,),
)
DARWIN = PlatformLayout(
    name='darwin',
    path=posixpath,
    shell_folders={'AppData': 'Library/Application Support', 'Caches': 'Library/Caches'},
    data_root='{AppData}/Notion',
    outside_root={'cache': ('{Caches}/notion.id*',)},
    quarantine_root='{AppData}/loopbreaker/quarantine',
    process_names=('Notion', 'Notion Helper', 'Notion Helper (Renderer)', 'Notion Helper (GPU)',
                   'Notion Helper (Plugin)'),
)
LINUX = PlatformLayout(
    name='linux',
    path=posixpath,
    shell_folders={'AppData': '.config', 'Data': '.local/share'},
    data_root='{AppData}/Notion',
    outside_root={},
    quarantine_root='{Data}/loopbreaker/quarantine',
    process_names=('notion', 'Notion', 'notion-app', 'notion-desktop'),
)
LAYOUTS: dict[str, PlatformLayout] = {layout.name: layout for layout in (WINDOWS, DARWIN, LINUX)}


def expand_scopes(scopes: list[str]) -> tuple[str, ...]:
    """Scope names in table order; 'all' means every scope. Unknown names raise ValueError."""
    unknown = sorted(set(scopes) - set(SCOPE_CHOICES))
    if unknown:
        raise ValueError(f'unknown scope(s) {", ".join(unknown)}; choose from {", ".join(SCOPE_CHOICES)}')
    if not scopes or 'all' in scopes:
        return SCOPE_NAMES
    return tuple(name for name in SCOPE_NAMES if name in scopes)


def scope_table() -> dict[str, tuple[str, ...]]:
    """Scope -> relative patterns (``/`` separated) under the userData root."""
    table: dict[str, tuple[str, ...]] = {}
    for scope in SCOPE_NAMES:
        chromium = _CHROMIUM_ENTRIES[scope]
        table[scope] = _NOTION_ENTRIES[scope] + chromium + tuple(PARTITION_PREFIX + entry for entry in chromium)
    return table


def scope_patterns(layout: PlatformLayout, scopes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(scope, host path template) for every place the chosen scopes cover on this platform."""
    table = scope_table()
    patterns = [(scope, layout.join(root, layout.native(relative)))
                for root in layout.data_roots() for scope in scopes for relative in table[scope]]
    patterns += [(scope, template) for scope in scopes for template in layout.outside_root.get(scope, ())]
    return patterns

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notion's MSIX: its identity, how Windows names a package, and where a packaged Notion keeps its data.

Private to this collection. Pure functions, shared by the planners and the simulated host.

A package family name is ``<identity name>_<publisher id>``; the publisher id is the first 64 bits of
SHA-256 over the UTF-16LE publisher DN of the manifest, plus one zero bit, in Crockford's base32
(lower case). It pins the publisher: checked against Microsoft's own ``8wekyb3d8bbwe``, and Notion's
``87smfmv0eebam`` is the id of ``CN="Notion Labs, Inc.", O="Notion Labs, Inc.", L=San Francisco,
S=California, C=US`` (tests/unit/plugins/module_utils/test_msix.py). Windows itself refuses a
package whose manifest publisher is not its signing certificate's subject, so a verified family name
and a valid signature together say "signed by the holder of Notion's certificate".

Data: a packaged desktop app reads and changes files that already exist in the real
``%APPDATA%`` (Notion: "reads your existing profile and login data from the same location"), but on
Windows 10 1903 and later *new* files and folders it creates under AppData go to the per-user,
per-package ``%LOCALAPPDATA%\\Packages\\<family>\\LocalCache\\Roaming`` and are merged into its view of
AppData (learn.microsoft.com/windows/msix/desktop/desktop-to-uwp-behind-the-scenes, "AppData";
unless the manifest turns file-system write virtualisation off). So a user's Notion data may be in
either place, or split between both: everything here looks in both.
"""
from __future__ import annotations

import hashlib
import re

NOTION_IDENTITY = 'com.notion.app.desktop.notion'
NOTION_PUBLISHER = 'CN="Notion Labs, Inc.", O="Notion Labs, Inc.", L=San Francisco, S=California, C=US'
NOTION_PUBLISHER_ID = '87smfmv0eebam'
NOTION_FAMILY = f'{NOTION_IDENTITY}_{NOTION_PUBLISHER_ID}'
NOTION_DOWNLOAD = 'https://www.notion.com/desktop/windows-msix/download'
# The virtualised copy of %APPDATA%\Notion, as a template of the Local AppData shell folder.
VIRTUAL_DATA_ROOT = '{Local AppData}\\Packages\\' + NOTION_FAMILY + '\\LocalCache\\Roaming\\Notion'
PACKAGE_EXTENSIONS = ('.msix', '.appx', '.msixbundle', '.appxbundle')
FAMILY_NAME = re.compile(r'^[A-Za-z0-9.-]{3,50}_[0-9a-hjkmnp-tv-z]{13}$')
_CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz'


def publisher_id(publisher: str) -> str:
    digest = hashlib.sha256(publisher.encode('utf-16-le')).digest()[:8]
    bits = ''.join(f'{byte:08b}' for byte in digest) + '0'
    return ''.join(_CROCKFORD[int(bits[i:i + 5], 2)] for i in range(0, 65, 5))


def family_name(name: str, publisher: str) -> str:
    return f'{name}_{publisher_id(publisher)}'


def full_name(name: str, version: str, architecture: str, publisher: str, resource_id: str = '') -> str:
    return f'{name}_{version}_{architecture}_{resource_id}_{publisher_id(publisher)}'


def version_key(version: str | None) -> tuple[int, ...]:
    """A package version (four parts) or an app version (three) as comparable numbers; 7.40.0 == 7.40.0.0."""
    parts = [int(part) for part in re.findall(r'\d+', version or '')]
    return tuple(parts + [0] * (4 - len(parts)))


def is_package_path(path: str) -> bool:
    return path.lower().rsplit('?', 1)[0].endswith(PACKAGE_EXTENSIONS)

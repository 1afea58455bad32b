# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Package names as Windows computes them: the publisher id pins Notion's publisher."""
from __future__ import annotations

from ansible_collections.loopbreaker.notion.plugins.module_utils import _msix


def test_the_publisher_id_is_windows_own() -> None:
    microsoft = 'CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US'
    assert _msix.publisher_id(microsoft) == '8wekyb3d8bbwe'
    assert _msix.publisher_id(_msix.NOTION_PUBLISHER) == _msix.NOTION_PUBLISHER_ID == '87smfmv0eebam'
    assert _msix.family_name(_msix.NOTION_IDENTITY, _msix.NOTION_PUBLISHER) == _msix.NOTION_FAMILY
    # The same words without the quotes are another publisher.
    assert _msix.publisher_id(_msix.NOTION_PUBLISHER.replace('"', '')) != _msix.NOTION_PUBLISHER_ID


def test_versions_compare_across_three_and_four_parts() -> None:
    assert _msix.version_key('7.40.0') == _msix.version_key('7.40.0.0')
    assert _msix.version_key('7.40.1.0') > _msix.version_key('7.40.0')
    assert _msix.is_package_path('C:\\x\\Notion.MSIX') and not _msix.is_package_path('C:\\x\\Notion Setup.exe')

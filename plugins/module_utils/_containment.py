# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a privileged operation on one user's data may go: pure checks, before anything is sent.

Private to this collection. The modules run as root/administrator over trees
their users control, so every path they act on is checked twice: here, in the
planner (a path must lie inside the profile it belongs to and inside the data
roots the rung acts on), and on the host, which walks below the ``within``
anchor these helpers choose without following any link (see the WITHIN rule
in _bridge_vocabulary).
"""
from __future__ import annotations

import fnmatch
import re
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import substitute
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import PlatformLayout

# stored_name numbers items from 000; an entry of more than 1000 items has 1000-... and on.
STORED_AS = re.compile(r'items[\\/](\d{3,})-([^\\/]+)')


class ContainmentError(ValueError):
    """A path that would take a privileged operation outside the user's own data."""


def _fold(layout: PlatformLayout, path: str) -> str:
    normal = str(layout.path.normpath(path))
    return normal.lower() if layout.name == 'windows' else normal


def inside(layout: PlatformLayout, path: str, root: str) -> bool:
    """Whether path is root or lies below it (normalised; case-insensitive on Windows)."""
    if '\x00' in path or '\x00' in root:
        return False
    folded_path, folded_root = _fold(layout, path), _fold(layout, root).rstrip('\\/')
    separator = layout.path.sep
    return folded_path == folded_root or folded_path.startswith(folded_root + separator)


def strictly_inside(layout: PlatformLayout, path: str, root: str) -> bool:
    return inside(layout, path, root) and _fold(layout, path) != _fold(layout, root).rstrip('\\/')


def user_roots(profile: dict[str, t.Any]) -> list[str]:
    """The directories a user's data may live in: the profile, then each resolved shell folder."""
    return [profile['profile_path']] + [folder for folder in profile['folders'].values() if folder]


def anchor_for(layout: PlatformLayout, profile: dict[str, t.Any], *paths: str) -> str:
    """The ``within`` for an operation on paths: the first of the user's roots holding all of them.

    Raises ContainmentError when no root of this user holds every path.
    """
    for root in user_roots(profile):
        if all(strictly_inside(layout, path, root) for path in paths):
            return root
    raise ContainmentError(f"{', '.join(repr(p) for p in paths)} is not inside the profile of "
                           f"{profile['username']} ({profile['profile_path']}) or one of its folders")


def foreign_folder(layout: PlatformLayout, profile: dict[str, t.Any],
                   profiles: list[dict[str, t.Any]]) -> str | None:
    """Why this user's shell folders cannot be trusted, or None.

    A user sets their own shell folders (User Shell Folders in their hive). Pointing one into another
    user's profile would make an administrator move that user's data into this user's quarantine.
    """
    own = profile['profile_path']
    for name, folder in profile['folders'].items():
        if inside(layout, folder, own):
            continue
        for other in profiles:
            if other['sid'] != profile['sid'] and other['profile_path'] and inside(layout, folder, other['profile_path']):
                return f"its {name} folder {folder} lies inside the profile of {other['username']}"
    return None


def data_roots(layout: PlatformLayout, profile: dict[str, t.Any]) -> list[str]:
    """Substituted templates of everything a rung may take from this user (data root and outside roots)."""
    substitutions = {'ProfilePath': profile['profile_path'], 'Sid': profile['sid'], **profile['folders']}
    templates = list(layout.data_roots()) + [p for patterns in layout.outside_root.values() for p in patterns]
    return [substitute(template, substitutions) for template in templates]


def check_original(layout: PlatformLayout, profile: dict[str, t.Any], original: str) -> None:
    """An item's original path must be a data root of this user, or lie inside one."""
    for root in data_roots(layout, profile):
        if '*' in root:
            parent = layout.path.dirname(root)
            if strictly_inside(layout, original, parent) and fnmatch.fnmatchcase(
                    _fold(layout, original)[len(_fold(layout, parent)) + 1:].split(layout.path.sep)[0],
                    _fold(layout, layout.path.basename(root))):
                return
        elif inside(layout, original, root):
            return
    raise ContainmentError(f'{original!r} is not inside the Notion data of {profile["username"]}')


def check_stored_as(stored_as: str) -> None:
    match = STORED_AS.fullmatch(stored_as)
    if not match or match.group(2) in ('.', '..'):
        raise ContainmentError(f'{stored_as!r} is not an item name of a quarantine entry')

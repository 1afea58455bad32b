# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a firewall rule's program means on Windows, and where the MSIX Notion's program is.

Private to this collection (used by _firewall.py). The firewall service matches a rule's program
after expanding only the machine's environment variables, so a per-user variable in a rule makes it
match nothing; what such a rule would mean for a user is worked out from that user's own
environment, never the administrator's. The MSIX Notion's program path carries its version, so it
is found from the installed package each run.
"""
from __future__ import annotations

import ntpath
import re
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._host import operation_data

# The MSIX Notion: one package family (name + publisher hash), its exe at a path that carries the version.
MSIX_NAME = 'com.notion.app.desktop.notion'
MSIX_FAMILY = 'com.notion.app.desktop.notion_87smfmv0eebam'
MSIX_PATH_PATTERN = re.compile(r'\\com\.notion\.app\.desktop\.notion_[^\\]*_87smfmv0eebam\\', re.IGNORECASE)
# What %VAR% in a rule's program means to the firewall service, which expands only the machine's
# variables: a rule naming a per-user variable (%LOCALAPPDATA%...) matches no real program.
MACHINE_VARIABLES: dict[str, str] = {
    'systemdrive': 'C:', 'systemroot': 'C:\\Windows', 'windir': 'C:\\Windows', 'programdata': 'C:\\ProgramData',
    'programfiles': 'C:\\Program Files', 'programw6432': 'C:\\Program Files',
    'programfiles(x86)': 'C:\\Program Files (x86)',
}
VARIABLE = re.compile(r'%([^%\\]+)%')
# Where deployment puts packages; users cannot create or write anything in it.
WINDOWS_APPS = MACHINE_VARIABLES['programfiles'] + '\\WindowsApps'


def expand(text: str, variables: dict[str, str]) -> str | None:
    """text with every %VAR% replaced, or None when one is not in variables (then nothing is meant)."""
    unknown = [m.group(1) for m in VARIABLE.finditer(text) if m.group(1).lower() not in variables]
    if unknown:
        return None
    return VARIABLE.sub(lambda m: variables[m.group(1).lower()], text)


def service_path(rule_program: str | None) -> str | None:
    """The program as the firewall service sees it: machine variables expanded, per-user ones matching nothing."""
    return expand(str(rule_program), MACHINE_VARIABLES) if rule_program else None


def user_variables(profile: dict[str, t.Any]) -> dict[str, str]:
    """That user's environment: from the profile's own (its hive) when listed, else from its folders."""
    variables = dict(MACHINE_VARIABLES)
    environment = profile.get('environment')
    if isinstance(environment, dict):
        listed = {str(k).lower(): v for k, v in environment.items() if isinstance(v, str)}
        variables.update(listed)
        # A user variable may be stored unexpanded (REG_EXPAND_SZ, %USERPROFILE%\AppData\Local): one level.
        variables.update({k: expand(v, variables) or v for k, v in listed.items() if '%' in v})
        return variables
    home = profile['profile_path']
    local = profile['folders'].get('Local AppData') or ntpath.join(home, 'AppData', 'Local')
    drive, rest = ntpath.splitdrive(home)
    variables.update({'userprofile': home, 'username': profile['username'], 'homedrive': drive, 'homepath': rest,
                      'localappdata': local,
                      'appdata': profile['folders'].get('AppData') or ntpath.join(home, 'AppData', 'Roaming'),
                      'temp': ntpath.join(local, 'Temp'), 'tmp': ntpath.join(local, 'Temp')})
    return variables


def is_msix_path(path: str | None) -> bool:
    return bool(path) and bool(MSIX_PATH_PATTERN.search(ntpath.normpath(str(path))))


def notion_packages(envelope: dict[str, t.Any], index: int) -> list[dict[str, t.Any]]:
    """Listed MSIX Notions of Notion's publisher (the family name carries the publisher's hash)."""
    return [p for p in operation_data(envelope, index)['packages']
            if str(p.get('family_name') or '').lower() == MSIX_FAMILY and p.get('install_location')]


def installed_by_windows(package: dict[str, t.Any]) -> bool:
    """Whether the package lives in Program Files\\WindowsApps under its own full name, as deployment puts it.

    A package registered from loose files (developer mode) keeps its files wherever its user put
    them, and anyone can claim a publisher name: such a folder is the user's, never a rule program.
    The folder's name proves nothing (a user may call their own folder ``WindowsApps\\<full name>``,
    and may create ``C:\\WindowsApps`` or ``D:\\WindowsApps`` at a drive root); only the one under
    Program Files is out of every user's reach. A package moved to another volume gets no rule.
    """
    location = ntpath.normcase(ntpath.normpath(str(package['install_location'])))
    return (ntpath.dirname(location) == ntpath.normcase(WINDOWS_APPS)
            and ntpath.basename(location) == str(package.get('package_full_name') or '').lower())


def msix_packages(envelope: dict[str, t.Any], index: int) -> list[dict[str, t.Any]]:
    """The Notion packages of a list_packages result (operation ``index``) that Windows deployed."""
    return [p for p in notion_packages(envelope, index) if installed_by_windows(p)]


def msix_operations(packages: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """Where each package's Notion.exe is: at the package root or one folder down, never assumed."""
    return [{'op': 'stat_paths', 'within': p['install_location'],
             'patterns': [f"{p['install_location']}\\Notion.exe", f"{p['install_location']}\\*\\Notion.exe"]}
            for p in packages]

#!/usr/bin/python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: proxy
short_description: Take Notion's traffic off a blocking proxy, for every user, and put it back
description:
  - Fix 4 of the "Cannot Connect to Workspace" runbook. A proxy or VPN that lets plain HTTPS through
    but breaks the WebSocket to C(msgstore.www.notion.so) keeps the app spinning.
  - On Windows it edits each target user's own WinINET settings in their hive (logged-off users'
    C(NTUSER.DAT) is loaded under a temporary key and always unloaded), because the Settings toggle
    and C(win_inet_proxy) only reach the user running them. The C(DefaultConnectionSettings) and
    C(SavedLegacySettings) blobs are parsed and rebuilt in Python, their change counter incremented
    and every byte not understood preserved; the legacy C(ProxyEnable), C(ProxyServer),
    C(ProxyOverride) and C(AutoConfigURL) values are kept consistent with them. A blob that cannot be
    parsed is reported and never overwritten.
  - Under the machine-wide proxy policy (C(ProxySettingsPerUser) = 0) the machine settings in HKLM are
    changed instead, and the result says so.
  - The first change records the original settings (per user in their hive, machine-wide in HKLM),
    and O(mode=restore) puts them back, byte-identical except the change counter.
  - On macOS it uses C(networksetup) per network service (proxy settings there are per service, not
    per user). On Linux it changes the GNOME proxy settings of the connection user when GNOME and a
    session bus are present; otherwise it returns RV(not_applicable).
version_added: 0.1.0
author: loopbreaker.notion contributors (@loopbreaker)
requirements:
  - Windows targets - Windows 10 or 11 (or Server 2016+) with Windows PowerShell 5.1, reached over a
    PowerShell connection (C(ansible.builtin.winrm) with pywinrm, C(ansible.builtin.psrp) with pypsrp on the
    controller, or C(ansible.builtin.ssh) with C(ansible_shell_type=powershell)) as a member of
    Administrators. Nothing is installed on the host.
  - macOS targets - C(networksetup), run as root.
  - Linux targets - C(gsettings) and the connection user's GNOME session bus; without them the module reports
    RV(not_applicable).
options:
  mode:
    description:
      - V(direct) turns proxies off, like the Settings toggle "Use a proxy server"; O(disable) says which.
      - V(bypass) keeps the proxy and adds Notion's hosts to its bypass list, the right fix on corporate
        networks where everything else must keep using the proxy. Nothing changes for a user without a
        manual proxy.
      - V(restore) puts back what this module changed, from its record.
    type: str
    required: true
    choices: [direct, bypass, restore]
  disable:
    description: With V(direct), what to turn off. The default matches the Settings toggle.
    type: list
    elements: str
    choices: [manual_proxy, pac, auto_detect]
    default: [manual_proxy]
  bypass_hosts:
    description:
      - With V(bypass), the host patterns to add (C(*) wildcards). Defaults to Notion's hosts
        C(*.notion.so), C(notion.so), C(*.notion.com), C(notion.com), C(*.notion-static.com),
        C(notion-static.com) and C(prod-files-secure.s3.us-west-2.amazonaws.com). An empty list fails.
      - Each entry is one ASCII host name, address or pattern (letters, digits, C(.), C(-), C(*), C(:),
        C([]), or C(<local>)); separators (C(;), C(,), whitespace), URLs, empty entries and C(*) alone
        (which would bypass the proxy for every host - use V(direct) for that) fail. Write an
        internationalised name in its punycode form (C(xn--...)).
    type: list
    elements: str
  winhttp:
    description:
      - The machine-wide WinHTTP proxy (used by services, not by Notion) is always reported under
        RV(winhttp); V(reset) also turns it to direct (recorded, and restored by V(restore)).
    type: str
    choices: [keep, reset]
    default: keep
  users:
    description:
      - Windows only. These users; a name with no profile, or an empty list, fails before anything changes.
        Default every user.
      - On Windows a user is a local, domain or Entra ID (C(S-1-12-1-)) account, named by profile name or account
        (C(CONTOSO\\alice), C(AzureAD\\JaneDoe)); a name two accounts share must be given as the account. Broken
        profiles (a C(.bak) key, a temporary or incomplete profile) are never users; see RV(skipped_profiles). Only the
        chosen users' hives are loaded.
    type: list
    elements: str
  exclude_users:
    description: Windows only. Every user except these; an empty list excludes nobody.
    type: list
    elements: str
  services:
    description:
      - macOS only. These network services (default every enabled one); an unknown name, or an empty
        list, fails.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: Reports the settings before and after per user or service; changes nothing.
  diff_mode:
    support: full
    description: One line per user or service with modes, proxy, bypass list and PAC URL.
  platform:
    platforms: [windows, darwin, linux]
    support: full
    description: Windows through the bridge; macOS with networksetup; Linux with GNOME settings where present.
notes:
  - Idempotent; a second identical run reports no change.
  - The account-side causes (a proxy injecting C(X-Notion-Allowed-Workspaces)) are out of reach of any host setting.
seealso:
  - module: loopbreaker.notion.app_data
"""

EXAMPLES = r"""
- name: Keep the corporate proxy, let Notion bypass it (every user)
  loopbreaker.notion.proxy:
    mode: bypass

- name: Turn the manual proxy and the PAC script off for two users
  loopbreaker.notion.proxy:
    mode: direct
    disable: [manual_proxy, pac]
    users: [alice, bob]

- name: Put everything back as it was
  loopbreaker.notion.proxy:
    mode: restore
"""

RETURN = r"""
skipped_profiles:
  description:
    - Windows ProfileList entries that are no usable profile and were left alone, each with the reason
      (a C(<SID>.bak) key kept by Windows after it gave the user a temporary profile, a temporary profile,
      one without C(ProfileImagePath), profile folder or C(NTUSER.DAT)). Empty on macOS and Linux.
  returned: always
  type: list
  elements: dict
  sample: [{user: bob, sid: S-1-5-21-1-2-3-1002, key: S-1-5-21-1-2-3-1002.bak, profile_path: 'C:\\Users\\bob',
            reason: 'a backup of the profile kept by Windows (.bak): ...'}]
platform:
  description: C(windows), C(darwin) or C(linux).
  returned: always
  type: str
mode:
  description: The mode applied.
  returned: always
  type: str
scope:
  description: C(user) (per-user settings), C(machine) (machine-wide policy on Windows, or macOS services).
  returned: when applicable
  type: str
machine_wide_policy:
  description: Windows, whether ProxySettingsPerUser = 0 made the module act on the machine settings.
  returned: on Windows
  type: bool
targets:
  description: One entry per user (Windows), the machine (machine-wide policy), network service (macOS) or GNOME session (Linux).
  returned: when applicable
  type: list
  elements: dict
  contains:
    name:
      description: User name, C((machine)), service name or C(gnome).
      type: str
      returned: always
    kind:
      description: "C(user), C(machine), C(service) or C(gnome)."
      type: str
      returned: always
    status:
      description: C(changed), C(unchanged), C(not_configured) (no proxy settings at all), C(unparsable) (left untouched) or C(failed).
      type: str
      returned: always
    before:
      description: Settings before (decoded blob on Windows, tool state elsewhere).
      type: dict
      returned: always
    after:
      description: Settings after (or as they would be in check mode).
      type: dict
      returned: always
    notes:
      description: Why nothing changed, or what failed.
      type: list
      elements: str
      returned: always
winhttp:
  description: Windows, the WinHTTP proxy before and after and the action taken (C(kept), C(reset), C(restored), or C(failed) with its error).
  returned: on Windows
  type: dict
not_applicable:
  description: True when the host has no proxy settings this module can change (Linux without GNOME or a session bus).
  returned: when not applicable
  type: bool
"""

import json
import os
import platform
import pwd
import stat

from ansible_collections.loopbreaker.notion.plugins.module_utils import _posix_proxy, _proxy
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._native_module import new_module


def _load_record(path: str) -> dict | None:
    """The record of what this module changed; never read through a link, a corrupt one is an error."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RequestError(f'cannot read the proxy record {path}: {error.strerror}; nothing was changed') from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RequestError(f'the proxy record {path} is not a regular file; nothing was changed')
    with os.fdopen(fd, 'rb') as handle:
        data = handle.read(1048577)
    try:
        record = json.loads(data.decode('utf-8'))
    except ValueError:
        record = None
    if not isinstance(record, dict) or len(data) > 1048576:
        raise RequestError(f'the proxy record {path} is corrupt; nothing was changed (move it aside to start afresh)')
    return record


def _save_record(path: str, record: dict | None) -> None:
    """Write (or remove) the record atomically: a new file renamed over it, so a link there is replaced."""
    if record is None:
        if os.path.lexists(path):
            os.unlink(path)
        return
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    temporary = f'{path}.{os.getpid()}.tmp'
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
    os.replace(temporary, path)


def _describe(system: str, name: str, state: dict) -> dict:
    return {'name': name, 'kind': 'service' if system == 'darwin' else 'gnome', 'sid': None, 'before': state}


def main() -> None:
    module = new_module(_proxy.ARGUMENT_SPEC, mutually_exclusive=_proxy.MUTUALLY_EXCLUSIVE,
                        supports_check_mode=True)
    system = platform.system().lower()
    params = module.params
    home = pwd.getpwuid(os.getuid()).pw_dir
    record_path = _posix_proxy.MAC_RECORD if system == 'darwin' else os.path.join(home, _posix_proxy.GNOME_RECORD)

    def runner(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv)

    try:
        _proxy.validate(params)
        if params.get('users') or params.get('exclude_users'):
            raise RequestError('users and exclude_users apply to Windows; on macOS proxies are per network '
                               'service (see services) and on Linux per desktop session')
        if params.get('services') and system != 'darwin':
            raise RequestError('services applies to macOS only')
        record = _load_record(record_path)
        plan = _posix_proxy.plan_native(system, runner, params, _proxy.bypass_hosts(params), record,
                                        bool(os.environ.get('DBUS_SESSION_BUS_ADDRESS')))
    except (RequestError, _posix_proxy.NativeProxyError, _posix_proxy.CommandOutputError, ValueError) as error:
        module.fail_json(msg=str(error), changed=False)
    if 'not_applicable' in plan:
        module.exit_json(changed=False, not_applicable=True, platform=system, mode=params['mode'], msg=plan['not_applicable'])
    commands = plan['commands']
    changed = any(commands.values())
    targets = []
    for name, state in plan['targets'].items():
        entry = _describe(system, name, state)
        entry.update(status='changed' if commands[name] else 'unchanged', commands=commands[name], notes=[])
        targets.append(entry)
    if changed and not module.check_mode:
        if params['mode'] == 'restore':
            new_record = None
        else:
            new_record = dict(record or {})
            for name, argv_list in commands.items():
                if argv_list:
                    new_record.setdefault(name, plan['targets'][name])
        try:
            if params['mode'] != 'restore':
                _save_record(record_path, new_record)
            for argv_list in commands.values():
                for argv in argv_list:
                    _posix_proxy.run_checked(runner, argv)
            if params['mode'] == 'restore':
                _save_record(record_path, None)
        except (OSError, _posix_proxy.NativeProxyError) as error:
            module.fail_json(msg=f'proxy change failed part-way: {error}', changed=True, targets=targets)
    diff = {'before': ''.join(f"{t['name']}: {json.dumps(t['before'], sort_keys=True)}\n" for t in targets),
            'after': ''.join(f"{t['name']}: {' ; '.join(' '.join(a[1:]) for a in t['commands']) or 'unchanged'}\n"
                             for t in targets)}
    result = {'changed': changed, 'platform': system, 'mode': params['mode'], 'scope': plan['scope'], 'targets': targets}
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()

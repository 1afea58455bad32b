#!/usr/bin/python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: app_data
short_description: Clear the Notion desktop app's site data for every user profile, into a quarantine
description:
  - Fix 1 of the "Cannot Connect to Workspace" runbook, the same as DevTools > Application > Clear site
    data in the desktop app, done for every user profile of a host without their session.
  - Finds each profile's real Notion userData folder (Windows C(%APPDATA%\\Notion), read from the user's
    own hive so redirected folders are honoured; macOS C(~/Library/Application Support/Notion) and
    C(~/Library/Caches/notion.id*); Linux C(~/.config/Notion)) and moves the entries of the chosen
    O(scopes) aside, both at the top level and inside the C(Partitions\\notion) session partition.
  - On Windows the MSIX Notion may keep part of the same data in its virtualised AppData,
    C(%LOCALAPPDATA%\\Packages\\com.notion.app.desktop.notion_87smfmv0eebam\\LocalCache\\Roaming\\Notion)
    (a packaged app's new AppData files go there on Windows 10 1903 and later); every scope covers that
    folder too, when it exists.
  - By default nothing is deleted. Each user's entries are moved into a quarantine entry on the same
    volume, readable only by that user and administrators, with a C(manifest.json); restore or purge
    it with M(loopbreaker.notion.quarantine).
  - Notion processes of an affected user are stopped first (only that user's), because the app holds
    its databases open and rewrites them on exit.
  - On Windows hosts (PowerShell connections) the logic runs on the controller and the host only
    executes primitive operations through the collection's internal Windows bridge, in at most two
    calls whatever the number of users.
  - Clearing the C(cookies) scope signs the device out, the device half of Fix 3. The account-wide
    "Log out of all sessions" has no API; the result lists it under RV(manual_actions).
version_added: 0.1.0
author: loopbreaker.notion contributors (@loopbreaker)
requirements:
  - Windows targets - Windows 10 or 11 (or Server 2016+) with Windows PowerShell 5.1, reached over a
    PowerShell connection (C(ansible.builtin.winrm) with pywinrm, C(ansible.builtin.psrp) with pypsrp on the
    controller, or C(ansible.builtin.ssh) with C(ansible_shell_type=powershell)) as a member of
    Administrators. Nothing is installed on the host.
  - macOS and Linux targets - a Python that ansible-core supports on targets, run as root (C(become)) to reach every user's home.
options:
  scopes:
    description:
      - What to clear. C(cache) is the HTTP, code, GPU/shader caches and C(notionAssetCache-v2);
        C(service_workers) is C(Service Worker); C(storage) is Local Storage, IndexedDB, Session Storage,
        File System, WebStorage, blob_storage, shared_proto_db and the C(notion.db) offline store (with its
        -wal/-shm/-journal files); C(cookies) is C(Cookies) and C(Network/Cookies) (and their journals).
      - C(all) is every scope, like ticking every box in "Clear site data". An empty list fails (it
        does not mean every scope).
      - The table lives in one place, C(plugins/module_utils/_layout.py), and in C(docs/scopes.md).
    type: list
    elements: str
    choices: [all, cache, service_workers, storage, cookies]
    default: [all]
  users:
    description:
      - Only these users (profile names, case-insensitive on Windows and macOS). A name with no profile
        on the host fails the task before anything changes.
      - By default every user profile that has Notion data. An empty list fails (leave the option out
        for every user), and so does a name that is a path.
      - On Windows a user is a local, domain or Entra ID (C(S-1-12-1-)) account, named by profile name or account
        (C(CONTOSO\\alice), C(AzureAD\\JaneDoe)); a name two accounts share must be given as the account. Broken
        profiles (a C(.bak) key, a temporary or incomplete profile) are never users; see RV(skipped_profiles). Only the
        chosen users' hives are loaded.
    type: list
    elements: str
  exclude_users:
    description:
      - Every profile with Notion data except these. Names absent from the host are ignored; an empty
        list excludes nobody.
    type: list
    elements: str
  state_dir:
    description:
      - macOS and Linux only. Where the trusted quarantine records and the host lock are kept. It must
        be reachable from C(/) through directories that only root can change; it is created C(0700).
      - On Windows the records are kept in C(HKLM\\SOFTWARE\\loopbreaker\\notion\\records), which only
        administrators can write.
      - Defaults to C(/var/lib/loopbreaker/notion); on macOS C(/private/var/lib/loopbreaker/notion), because
        C(/var) is a link there and no link is followed on the way to the state directory.
    type: path
  profiles_root:
    description:
      - macOS and Linux only. The directory holding the home directories; each subdirectory is a
        profile. Lets a lab or a mounted disk image stand in for the real homes.
      - Must be an absolute path to an existing directory. Defaults to C(/Users) on macOS and
        C(/home) on Linux. Rejected on Windows, where profiles come from ProfileList.
    type: path
  stop_app:
    description:
      - Stop the affected user's Notion processes before clearing (only that user's, only when there
        is something to clear).
      - With V(false) and Notion running for an affected user, the task fails before touching anything.
    type: bool
    default: true
  stop_timeout:
    description: Seconds (1 to 3600) to wait for Notion processes to exit before the user is reported as failed.
    type: int
    default: 30
  quarantine:
    description:
      - Move cleared entries into the user's quarantine (same volume, private to the user and
        administrators, with a manifest). V(false) deletes them, which can lose unsynced offline edits
        kept in C(notion.db) and IndexedDB.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports exactly what a real run would move, stop and where; changes nothing.
  diff_mode:
    support: full
    description: Lists the affected paths per user before and where they went after.
  platform:
    platforms: [windows, darwin, linux]
    support: full
    description: Windows through the bridge; macOS and Linux natively.
notes:
  - Idempotent. Once cleared, a second run finds nothing to move and reports no change (the app
    recreates some entries when it next starts; clearing those again is a new change).
  - The quarantine holds session cookies; it is created with access for the user, Administrators and
    SYSTEM only (mode 0700 owned by the user elsewhere).
seealso:
  - module: loopbreaker.notion.quarantine
"""

EXAMPLES = r"""
- name: Clear Notion's site data for every user, keeping a restorable copy
  loopbreaker.notion.app_data:

- name: Only caches and service workers for two users, leaving them signed in
  loopbreaker.notion.app_data:
    scopes: [cache, service_workers]
    users: [alice, bob]

- name: Preview on a lab of sandboxed homes
  loopbreaker.notion.app_data:
    profiles_root: /srv/lab/homes
  check_mode: true
  diff: true

- name: Fail instead of closing Notion under a user's feet
  loopbreaker.notion.app_data:
    stop_app: false
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
  description: The layout used.
  returned: always
  type: str
  sample: windows
scopes:
  description: The scopes cleared, C(all) expanded.
  returned: always
  type: list
  elements: str
  sample: [cache, service_workers, storage, cookies]
quarantine_id:
  description: Id of the quarantine entries created (one per affected user, same id), null when nothing was quarantined.
  returned: always
  type: str
  sample: 20261129T141500Z-1a2b3c
users:
  description: One entry per profile considered.
  returned: always
  type: list
  elements: dict
  contains:
    user:
      description: Profile name.
      type: str
      returned: always
      sample: alice
    sid:
      description: The user's SID on Windows; elsewhere C(uid:<n>/<name>), the home's owner and the profile name.
      type: str
      returned: always
    profile_path:
      description: Home directory.
      type: str
      returned: always
    logged_on:
      description: Windows, whether the user's hive was loaded (the user is logged on); elsewhere whether the user has processes running.
      type: bool
      returned: always
    data_root:
      description: The user's Notion userData folder.
      type: str
      returned: always
    data_roots:
      description: >-
        Every Notion userData folder found for the user - RV(users[].data_root) first, then on Windows the
        MSIX's virtualised copy when it exists.
      type: list
      elements: str
      returned: always
    data_root_source:
      description: C(registry) when the user's own hive placed AppData (a redirected folder), C(default) otherwise.
      type: str
      returned: always
    status:
      description: "C(cleared), C(clean) (nothing to clear) or C(failed)."
      type: str
      returned: always
    processes_stopped:
      description: Notion processes of this user stopped first (or that would be, in check mode).
      type: list
      elements: dict
      returned: always
    processes_not_stopped:
      description:
        - Processes left running because the process behind the id was no longer the one the probe listed
          (another image name, owner or start time; Windows and Linux reuse process ids), each with pid, name
          and reason. Nothing but the listed process is ever stopped.
      type: list
      elements: dict
      returned: always
    items:
      description: Every matching path with scope, type, bytes, files, quarantine_path and action
        (C(quarantined), C(removed), C(vanished) when it disappeared between probe and apply,
        C(failed) with error, C(skipped) after an earlier failure for this user).
      type: list
      elements: dict
      returned: always
    bytes:
      description: Bytes moved or removed.
      type: int
      returned: always
    files:
      description: Files moved or removed.
      type: int
      returned: always
    quarantine_path:
      description: This user's quarantine entry directory.
      type: str
      returned: always
    errors:
      description: What failed for this user.
      type: list
      elements: str
      returned: always
totals:
  description: Users cleared, items, bytes and files across users.
  returned: always
  type: dict
  sample: {users: 2, items: 14, bytes: 1048576, files: 230}
manual_actions:
  description: Steps that cannot be automated and still matter, e.g. the account-wide logout when cookies are cleared.
  returned: always
  type: list
  elements: str
"""

import datetime
import os
import platform
import secrets

from ansible_collections.loopbreaker.notion.plugins.module_utils import _app_data
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import native_context, native_outcome
from ansible_collections.loopbreaker.notion.plugins.module_utils._native_module import new_module


def main() -> None:
    module = new_module(_app_data.ARGUMENT_SPEC, mutually_exclusive=_app_data.MUTUALLY_EXCLUSIVE,
                        supports_check_mode=True)

    def clear() -> dict:
        layout, host = native_context(platform.system(), module.params['profiles_root'], os.path.isdir,
                                      state_dir=module.params['state_dir'], exclusive=not module.check_mode)
        return _app_data.run(host, layout, module.params, check_mode=module.check_mode,
                             now=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0),
                             entry_token=secrets.token_hex(3))

    succeeded, result = native_outcome(clear, diff=module._diff)
    if succeeded:
        module.exit_json(**result)
    module.fail_json(**result)


if __name__ == '__main__':
    main()

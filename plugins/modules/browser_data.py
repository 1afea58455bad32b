#!/usr/bin/python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: browser_data
short_description: Clear Notion's site data in every user's browsers, and nothing else
description:
  - Fix 2 of the "Cannot Connect to Workspace" runbook (the web app, or the desktop app signing in
    through the browser). The runbook asks each user to open DevTools and "Clear site data" for Notion,
    then to clear notion.so's cookies; this module does the same for every user's profiles of Chrome,
    Edge, Brave, Chromium and Firefox, without their session, and leaves every other site untouched.
  - Profiles come from Chromium's C(Local State) (C(profile.info_cache)) and Firefox's C(profiles.ini),
    in the native, Snap and Flatpak locations of each platform.
  - A site matches by registrable domain, the site itself and its subdomains (C(www.notion.so),
    C(msgstore.www.notion.so), C(app.notion.com)); C(evilnotion.so) never matches.
  - Per-origin folders (IndexedDB, OPFS under C(File System), storage buckets under C(WebStorage),
    Cache Storage, Firefox C(storage/default/<origin>)) are moved into the user's quarantine. Shared
    databases (Cookies, Local Storage, Session Storage, the Service Worker database,
    C(File System/Origins), Firefox C(cookies.sqlite), C(webappsstore.sqlite), the LocalStorage archive
    C(storage/ls-archive.sqlite) and the service worker registrations in C(serviceworker.txt)) are copied,
    the copy edited to remove only the matching origins' entries (SQLite with Python's sqlite3, LevelDB with
    plyvel, C(serviceworker.txt) by whole registration records), the original moved into the quarantine
    and the edited copy put in its place. So
    M(loopbreaker.notion.quarantine) with O(loopbreaker.notion.quarantine#module:state=restored)
    brings every original back byte for byte.
  - A running browser holds its databases and rewrites them on exit, so its profiles are skipped and
    reported unless O(stop_browser) is set. A database that is corrupt or of an unknown format is
    reported and left untouched.
  - On Windows hosts the logic runs on the controller; the host only reads the stores, moves and
    writes files through the collection's internal Windows bridge (two calls, four with
    O(stop_browser)).
  - Never uses DevTools or remote debugging (Chrome 136 and later refuse it on users' real profiles).
version_added: 0.2.0
author: loopbreaker.notion contributors (@loopbreaker)
requirements:
  - On the host running the logic (the target for macOS/Linux, the controller for Windows), the
    C(plyvel) Python package to edit LevelDB stores (Local Storage, Session Storage, service worker
    registrations, OPFS). Without it those stores are reported as skipped and left untouched;
    cookies, IndexedDB, Cache Storage and Firefox's stores are still cleared.
options:
  browsers:
    description: Which browsers. C(all) is every one.
    type: list
    elements: str
    choices: [all, chrome, edge, brave, chromium, firefox]
    default: [all]
  sites:
    description:
      - Registrable host names whose data is cleared, with their subdomains. Host names only, not URLs.
    type: list
    elements: str
    default: [notion.so, notion.com]
  scopes:
    description:
      - C(cookies); C(storage) (Local Storage, Session Storage, IndexedDB, OPFS and the File System API,
        storage buckets; Firefox C(webappsstore.sqlite), C(storage/ls-archive.sqlite) and
        C(storage/default)); C(service_workers) (registrations and Cache Storage; Firefox
        C(serviceworker.txt), its scripts and caches live in C(storage/default)); C(cache), which cannot
        be attributed to a site in any of these browsers' HTTP caches and is therefore only reported.
      - C(all) is every scope, like the DevTools button.
    type: list
    elements: str
    choices: [all, cookies, storage, service_workers, cache]
    default: [all]
  users:
    description:
      - Only these users (profile names). A name with no profile fails the task before anything changes.
      - On Windows a user is a local, domain or Entra ID (C(S-1-12-1-)) account, named by profile name or account
        (C(CONTOSO\\alice), C(AzureAD\\JaneDoe)); a name two accounts share must be given as the account. Broken
        profiles (a C(.bak) key, a temporary or incomplete profile) are never users; see RV(skipped_profiles). Only the
        chosen users' hives are loaded.
    type: list
    elements: str
  exclude_users:
    description: Every profile except these. Names absent from the host are ignored.
    type: list
    elements: str
  profiles_root:
    description:
      - macOS and Linux only. The directory holding the home directories. Defaults to C(/Users) on macOS
        and C(/home) on Linux.
    type: path
  state_dir:
    description:
      - macOS and Linux only. Where the trusted quarantine records and the host lock are kept; see
        M(loopbreaker.notion.app_data). Defaults to C(/var/lib/loopbreaker/notion).
    type: path
  stop_browser:
    description:
      - End the affected user's browser first (gracefully, then forced after O(stop_timeout)) and read
        its stores again after it exited. With V(false) a running browser's profiles are skipped and reported.
    type: bool
    default: false
  stop_timeout:
    description: Seconds to wait for a browser to exit before it is killed.
    type: int
    default: 30
  quarantine:
    description:
      - Keep every original in the user's quarantine. V(false) deletes the originals instead.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Edits private copies to count exactly what a real run would remove; changes nothing.
  diff_mode:
    support: full
    description: Lists each store and folder with the sites and entries removed.
  platform:
    platforms: [windows, darwin, linux]
    support: full
    description: Windows through the bridge; macOS and Linux natively.
notes:
  - Idempotent. A second run finds no matching entries and reports no change.
  - Clearing cookies signs the user out of Notion in that browser, nothing else.
seealso:
  - module: loopbreaker.notion.app_data
  - module: loopbreaker.notion.quarantine
"""

EXAMPLES = r"""
- name: Fix 2 for every user and browser, keeping the originals restorable
  loopbreaker.notion.browser_data:

- name: Only Chrome and Edge, closing them first
  loopbreaker.notion.browser_data:
    browsers: [chrome, edge]
    stop_browser: true

- name: Preview what would be removed
  loopbreaker.notion.browser_data:
  check_mode: true
  diff: true
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
  sample: linux
browsers:
  description: The browsers considered, C(all) expanded.
  returned: always
  type: list
  elements: str
sites:
  description: The sites cleared.
  returned: always
  type: list
  elements: str
scopes:
  description: The scopes cleared, C(all) expanded.
  returned: always
  type: list
  elements: str
quarantine_id:
  description: Id of the quarantine entries created (one per affected user), null when nothing was quarantined.
  returned: always
  type: str
users:
  description: One entry per user considered, each with its browser profiles.
  returned: always
  type: list
  elements: dict
  contains:
    user:
      description: Profile name.
      type: str
      returned: always
    status:
      description: C(cleared), C(clean), C(skipped) (a running browser) or C(failed).
      type: str
      returned: always
    profiles:
      description:
        - Per browser profile, its browser, data_root, profile directory, name, path, status and what was
          C(removed) (scope, store, path, sites with entry counts, entries, bytes, action C(edited),
          C(quarantined), C(removed), C(failed) or C(skipped)) and C(skipped) with the reason.
      type: list
      elements: dict
      returned: always
    quarantine_path:
      description: This user's quarantine entry directory.
      type: str
      returned: always
    errors:
      description: What failed for this user (a corrupt database, a failed move).
      type: list
      elements: str
      returned: always
totals:
  description: Users and profiles cleared, entries and bytes removed.
  returned: always
  type: dict
manual_actions:
  description: Steps that cannot be automated and still matter (the account-wide logout, when cookies were cleared), as for M(loopbreaker.notion.app_data).
  returned: always
  type: list
  elements: str
notes:
  description: What the module leaves in place on purpose, and why; also each browser process that was not
    stopped because the process behind its id was no longer the one the probe listed (process ids are reused).
  returned: always
  type: list
  elements: str
"""

import datetime
import os
import platform
import secrets

from ansible_collections.loopbreaker.notion.plugins.module_utils import _browser_data
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import native_context, native_outcome
from ansible_collections.loopbreaker.notion.plugins.module_utils._native_module import new_module


def main() -> None:
    module = new_module(_browser_data.ARGUMENT_SPEC,
                        mutually_exclusive=_browser_data.MUTUALLY_EXCLUSIVE, supports_check_mode=True)

    def clear() -> dict:
        layout, host = native_context(platform.system(), module.params['profiles_root'], os.path.isdir,
                                      state_dir=module.params['state_dir'], exclusive=not module.check_mode)
        return _browser_data.run(host, layout, module.params, check_mode=module.check_mode,
                                 now=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0),
                                 entry_token=secrets.token_hex(3))

    succeeded, result = native_outcome(clear, diff=module._diff)
    if succeeded:
        module.exit_json(**result)
    module.fail_json(**result)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: diagnose
short_description: Diagnose the Notion "Cannot Connect to Workspace" loop, per user, and name the rung that fixes it
description:
  - Read-only, on the target host (Windows through the bridge, macOS and Linux natively with the
    standard library); check mode gives the same result.
  - "Local evidence per user: the user's effective proxy (Windows: the user's WinINET settings, or the
    machine-wide ones under C(ProxySettingsPerUser=0)), running Notion processes, enabled firewall block
    rules naming the user's C(Notion.exe), the per-user install and its Authenticode signature and MSIX
    packages (Windows; registered for the user with their family, publisher and install state, and those
    provisioned for all users, which register at the next logon), app-data size (on Windows also in the
    MSIX's virtualised AppData, C(%LOCALAPPDATA%\\Packages\\<family>\\LocalCache\\Roaming\\Notion), listed
    in C(data.roots)), the last 64 KiB of the app's C(log.log) (C(did-fail-load),
    C(render-process-gone), C(child-process-gone) newer than the cut-off), the C(notion.db) header (and
    C(PRAGMA quick_check) on macOS/Linux) and LevelDB C(LOG) files reporting corruption."
  - "On macOS also C(/Applications/Notion.app) and each user's C(~/Applications/Notion.app): version
    (C(defaults read)), signing team (C(codesign -dv)) and C(codesign --verify --deep --strict), as
    C(install.bundles); a bundle that does not verify or is not signed by Notion Labs' team
    (C(LBQJ96FQ8D)) is C(install_unsigned), Notion data without any bundle C(install_missing). Only the
    read-only commands declared in C(plugins/module_utils/_macos_app.py) are run."
  - "Network, through each user's proxy: DNS, TCP 443 (or the proxy's CONNECT), TLS with the issuer of
    the chain, HTTPS to C(www.notion.so) and C(app.notion.com), and the real-time channel as today's
    clients use it: the Engine.IO v4 polling handshake at C(/primus-v8/?EIO=4&transport=polling) on the
    msgstore hosts, then the WebSocket upgrade. All probes run in parallel on the host, each step with
    O(timeout)."
  - Proxies on Windows are chosen per URL as WinHTTP would (manual server and bypass list; PAC and
    auto-detect through WinHTTP's auto-proxy).
  - "What we support on macOS/Linux: the proxy is O(proxy) (C(host:port), or a PAC file as
    C(pac+http://...), C(pac+https://...) or C(pac+file:///path)); else the system's PAC setting
    (macOS: the automatic proxy configuration URL of the first enabled network service,
    C(networksetup -getautoproxyurl); Linux: GNOME's C(org.gnome.system.proxy) C(mode 'auto') with
    C(autoconfig-url), read only when the module has the user's D-Bus session, since C(gsettings) run
    as root reads root's settings); else C(https_proxy) of the module's environment; else direct.
    C(facts.proxy_source) says which. Auto-detect (WPAD) and manual proxies set in networksetup or
    GNOME are not read: give them as O(proxy)."
  - "PAC files (every platform but Windows, where WinHTTP does it) are fetched direct, never through a
    proxy they define, at most 1 MiB within O(timeout), and evaluated with L(pypac,https://pypi.org/project/pypac/)
    (dukpy's QuickJS engine) in a child Python process limited in time and memory. C(FindProxyForURL)
    is called with each endpoint's C(https://host/) URL; the probe goes through the first C(PROXY host:port)
    (or C(HTTP)) or C(DIRECT) entry. C(SOCKS), C(SOCKS4), C(SOCKS5) and C(HTTPS) entries are skipped (the
    probes speak HTTP CONNECT only); the entries after the one followed are listed as C(fallbacks) and not
    probed (a browser tries them only when the first proxy cannot be reached). Each probe's C(pac) says
    the URL, what C(FindProxyForURL) returned, the entry followed and those skipped. A PAC file that
    cannot be fetched or run is reported in the probe's C(pac.error) and C(note), and the probe goes
    direct, as the OS does. Without pypac on the host, or with only entries the probes cannot follow,
    nothing is probed and the user gets C(proxy_not_evaluated)."
  - "Returns a verdict (C(healthy) or C(unhealthy)) and findings, each with a stable code, the user, the
    evidence and the rung it points to: C(dns_failure) (none: manual), C(proxy_unreachable),
    C(notion_host_blocked), C(tls_intercepted), C(websocket_blocked), C(http_error) (proxy),
    C(block_rule) (firewall), C(install_missing), C(install_unsigned) (reinstall), C(renderer_crashed)
    (restart), C(load_failed), C(cache_corrupt) (app_data), C(user_unreadable) (none: manual; the user's
    profile or data could not be read, for example access denied, so they are never reported healthy),
    C(proxy_not_evaluated) (none: manual; the user's PAC file could not be evaluated on the host)."
  - At most two bridge calls per run, whatever the number of users.
version_added: 0.2.0
author: loopbreaker.notion contributors (@loopbreaker)
options:
  users:
    description:
      - Only these users (default every real profile).
      - On Windows a user is a local, domain or Entra ID (C(S-1-12-1-)) account, named by profile name or account
        (C(CONTOSO\\alice), C(AzureAD\\JaneDoe)); a name two accounts share must be given as the account. Broken
        profiles (a C(.bak) key, a temporary or incomplete profile) are never users; see RV(skipped_profiles). Only the
        chosen users' hives are loaded.
    type: list
    elements: str
  exclude_users:
    description: Every user but these.
    type: list
    elements: str
  endpoints:
    description: Endpoints to probe instead of Notion's (labs, regions).
    type: list
    elements: dict
    suboptions:
      name:
        description: Label in the results.
        type: str
      host:
        description: Host name.
        type: str
        required: true
      port:
        description: Port (default O(port)).
        type: int
      kind:
        description: C(https) (a GET) or C(engineio) (polling handshake, then WebSocket upgrade).
        type: str
        choices: [https, engineio]
        default: https
      path:
        description: Request path (default C(/), or the Engine.IO handshake).
        type: str
  port:
    description: Port of the default endpoints.
    type: int
    default: 443
  resolve:
    description: Host name to address overrides for the probes (like a hosts file entry).
    type: dict
  ca_bundle:
    description: A CA certificate file on the host to trust in addition to (Windows) or instead of (POSIX) the system store.
    type: str
  timeout:
    description: Seconds per probe step (1-60).
    type: int
    default: 5
  since:
    description: Only log evidence newer than this ISO 8601 time counts (for instance the time a rung was applied).
    type: str
  log_window_minutes:
    description: Only log evidence of the last this many minutes counts.
    type: int
    default: 60
  proxy:
    description:
      - macOS/Linux only; the proxy (C(host:port)) to probe through, or a PAC file (C(pac+http://host/proxy.pac),
        C(pac+https://...), C(pac+file:///etc/proxy.pac)) to evaluate.
      - Default the system's PAC setting, else C(https_proxy) of the environment (see the description).
    type: str
  no_proxy:
    description: macOS/Linux only; hosts that bypass O(proxy) (comma separated).
    type: str
  network:
    description: Probe the network (false = local evidence only, one bridge call).
    type: bool
    default: true
  incident:
    description: An incident id; its record (see M(loopbreaker.notion.incident)) is returned as RV(incident).
    type: str
  expect_proxies:
    description:
      - The proxy settings an earlier diagnosis of this host listed in C(facts.proxies) (see RV(facts)). They are probed
        in the same call as the local evidence, so a re-diagnosis after a rung that left every user's proxy
        settings as they were costs one host call instead of two. If a user's settings are no longer among
        them (the proxy rung changed them), a second call probes what the users have now; the result is
        the same either way.
      - Each entry has C(mode) (V(direct), V(manual), V(pac) or V(auto_detect)) and, as the facts list them,
        C(server), C(bypass) or C(pac_url). The ladder role passes them for its re-diagnosis.
    type: list
    elements: dict
  profiles_root:
    description: macOS/Linux only; the directory holding home directories.
    type: path
  state_dir:
    description: macOS/Linux only; the root-only directory holding the trusted records.
    type: path
notes:
  - "Log times are read as UTC (electron-log writes local time; on a host not on UTC, widen O(log_window_minutes))."
seealso:
  - module: loopbreaker.notion.incident
attributes:
  check_mode:
    support: full
    description: Read-only; runs its probes for real in check mode too, with the same result.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  platform:
    platforms: [windows, darwin, linux]
    support: full
    description: Windows through the bridge; macOS and Linux natively.
"""

EXAMPLES = r"""
- name: Diagnose every user of the workstation
  loopbreaker.notion.diagnose:
  register: diagnosis

- name: Show the findings
  ansible.builtin.debug:
    msg: "{{ diagnosis.findings | map(attribute='code') | list }}"
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
verdict:
  description: C(healthy) when no user has a finding.
  returned: always
  type: str
findings:
  description: Every finding, each C({code, user, rung, meaning, evidence}).
  returned: always
  type: list
  elements: dict
users:
  description: Per user C({user, verdict, findings, logged_on, notion_running}); C(not_applicable) without Notion.
  returned: always
  type: list
  elements: dict
rungs:
  description: The rungs the findings point to, in ladder order.
  returned: always
  type: list
  elements: str
facts:
  description:
    - The evidence (per-user facts, every probe with its steps, the proxy settings probed, the log cut-off).
    - A probe through a PAC setting has C(pac) C({url, evaluated, engine, returned, entry, skipped, fallbacks})
      or C({url, evaluated, error}); on macOS/Linux C(proxy_source) says where the proxy setting came from.
  returned: always
  type: dict
  sample: {probes: [{host: msgstore.www.notion.so, proxy: '10.0.0.8:3128', failed_step: connect,
                     pac: {url: 'http://wpad.corp.example/proxy.pac', evaluated: true, engine: 'pypac 0.19.0, dukpy 0.6.0',
                           returned: 'PROXY 10.0.0.8:3128; DIRECT', entry: 'PROXY 10.0.0.8:3128', skipped: [],
                           fallbacks: [DIRECT]}}]}
incident:
  description: The incident record named by O(incident), or null.
  returned: always
  type: dict
bridge_calls:
  description: Host calls made (at most 2).
  returned: always
  type: int
elapsed_ms:
  description: Wall time of the diagnosis.
  returned: always
  type: int
"""

import datetime
import os
import platform
import shutil
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils import _diagnose, _diagnose_macos, _posix_proxy
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import native_context, native_outcome
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost
from ansible_collections.loopbreaker.notion.plugins.module_utils._native_module import new_module


def annotate_for(host: LocalHost, platform_name: str,
                 runner: t.Callable[[list[str]], tuple[int, str, str]]) -> t.Callable[[dict], None]:
    """Evidence only the native module gathers: notion.db's quick_check; on macOS each Notion.app's signature."""
    def annotate(facts: dict) -> None:
        for user in facts['users']:
            for db in user['db']:
                if db.get('bytes'):
                    db['quick_check'] = host.quick_check(db['path'])
        if platform_name == 'darwin':
            _diagnose_macos.install_facts(facts, runner, os.path.isdir)
    return annotate


def main() -> None:
    module = new_module(_diagnose.ARGUMENT_SPEC, mutually_exclusive=_diagnose.MUTUALLY_EXCLUSIVE,
                        supports_check_mode=True)

    def runner(argv: list[str]) -> tuple[int, str, str]:
        if shutil.which(argv[0]) is None:  # run_command would fail the module; a missing tool is "not set"
            return 127, '', f'{argv[0]} is not installed'
        return module.run_command(argv)

    def act() -> dict:
        _diagnose.validate(module.params)
        layout, host = native_context(platform.system(), module.params['profiles_root'], os.path.isdir,
                                      state_dir=module.params['state_dir'])
        system_pac, source = None, 'the proxy option'
        if not module.params.get('proxy'):
            system_pac, why = _posix_proxy.read_pac_setting(
                layout.name, runner, bool(os.environ.get('DBUS_SESSION_BUS_ADDRESS'))) if module.params['network'] \
                else (None, 'not read (network is false)')
            source = why if system_pac else f'https_proxy of the environment, else direct (system PAC: {why})'
        result = _diagnose.run(host, module.params, platform=layout.name,
                               now=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0),
                               posix_proxy=_diagnose.posix_proxy_from(module.params, os.environ, system_pac),
                               annotate=annotate_for(host, layout.name, runner))
        result['facts']['proxy_source'] = source
        return result

    succeeded, result = native_outcome(act, diff=False)
    if succeeded:
        module.exit_json(**result)
    module.fail_json(**result)


if __name__ == '__main__':
    main()

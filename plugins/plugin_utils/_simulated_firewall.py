# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulated Windows host's firewall (a mixin of SimulatedWindows).

Private to this collection. Rules live in ``state['firewall_rules']``, each in the store it came
from (``store``: ``local``, the default, ``group_policy`` or ``mdm``), written sparsely as the
firewall's own stores write them: a field at its default ("any") is simply absent. As on Windows:

- ``list_firewall_rules`` reads every store in one pass (it adds
  the rules read into the call's log entry, ``firewall_rule_reads``, so a test can prove one pass
  per call) and returns each rule complete, with its store;
  programs are returned as stored, never expanded with anyone's environment.
- ``set_firewall_rule`` and ``remove_firewall_rule`` act on the local store only. Setting a rule that
  exists only in a policy store creates a *local duplicate* of that name and leaves the policy rule
  applying; removing one reports it missing.
- "Apply local firewall rules: no" (``AllowLocalPolicyMerge`` = 0 under the profile's policy key, from
  Group Policy or the MDM Firewall CSP) means local rules of that profile never take effect; the
  listing reports it per profile in ``local_rules_apply``.
"""
from __future__ import annotations

import copy
import fnmatch
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import (
    FIREWALL_RULE_DEFAULTS as RULE_DEFAULTS,
)

PROFILES: tuple[str, ...] = ('domain', 'private', 'public')
CORE_KEYS: tuple[str, ...] = ('name', 'display_name', 'direction', 'action', 'profiles', 'program', 'enabled',
                              'description')
# Where the two policy sources keep the per-profile "apply local firewall rules" switch.
POLICY_PROFILE_KEYS: dict[str, tuple[str, ...]] = {
    profile: (f'software\\policies\\microsoft\\windowsfirewall\\{profile}profile',
              f'system\\currentcontrolset\\services\\sharedaccess\\parameters\\firewallpolicy\\mdm\\{profile}profile')
    for profile in PROFILES
}


def complete(rule: dict[str, t.Any]) -> dict[str, t.Any]:
    """A stored (sparse) rule as the listing returns it: every field, and its store."""
    full = {key: rule.get(key) for key in CORE_KEYS}
    full['description'] = full['description'] or ''
    for key, default in RULE_DEFAULTS.items():
        full[key] = copy.deepcopy(rule.get(key, default))
    full['store'] = rule.get('store', 'local')
    return full


def sparse(rule: dict[str, t.Any]) -> dict[str, t.Any]:
    """A complete local rule as the store keeps it: fields at their default left out."""
    kept = {key: copy.deepcopy(rule[key]) for key in CORE_KEYS}
    for key, default in RULE_DEFAULTS.items():
        if key in rule and rule[key] != default:
            kept[key] = copy.deepcopy(rule[key])
    return kept


class SimulatedFirewall:
    """op_list_firewall_rules, op_set_firewall_rule and op_remove_firewall_rule for SimulatedWindows."""

    state: dict[str, t.Any]

    def local_rules_apply(self) -> dict[str, bool]:
        hive = self.state['hives']['HKLM']
        applies = {}
        for profile, keys in POLICY_PROFILE_KEYS.items():
            values = [(hive.get(key) or {}).get('values', {}).get('AllowLocalPolicyMerge') for key in keys]
            # Either policy source turning the merge off wins: the harsher reading of two sources.
            applies[profile] = not any(v is not None and int(v.get('data', 1)) == 0 for v in values)
        return applies

    def op_list_firewall_rules(self, programs: list[str] | None = None) -> dict[str, t.Any]:
        # Every stored rule is read once per listing: the cost that scales with the machine's rule count.
        call = self.state['calls'][-1] if self.state['calls'] else {}
        call['firewall_rule_reads'] = call.get('firewall_rule_reads', 0) + len(self.state['firewall_rules'])
        lowered = None if programs is None else [p.lower() for p in programs]
        rules = []
        for rule in self.state['firewall_rules']:
            if lowered is not None and not any(fnmatch.fnmatchcase((rule.get('program') or '').lower(), p)
                                               for p in lowered):
                continue
            rules.append(complete(rule))
        return {'rules': rules, 'local_rules_apply': self.local_rules_apply()}

    def op_set_firewall_rule(self, name: str, display_name: str, direction: str, action: str, profiles: list[str],
                             program: str, enabled: bool, description: str = '', protocol: str = 'any',
                             local_ports: list[str] | None = None, remote_ports: list[str] | None = None,
                             local_addresses: list[str] | None = None, remote_addresses: list[str] | None = None,
                             service: str = '', interface_types: list[str] | None = None,
                             interfaces: list[str] | None = None, edge_traversal: str = 'block',
                             grouping: str = '') -> dict[str, t.Any]:
        wanted = sparse({'name': name, 'display_name': display_name, 'direction': direction, 'action': action,
                         'profiles': sorted(profiles), 'program': program, 'enabled': enabled,
                         'description': description, 'protocol': protocol, 'local_ports': local_ports or [],
                         'remote_ports': remote_ports or [], 'local_addresses': local_addresses or [],
                         'remote_addresses': remote_addresses or [], 'service': service,
                         'interface_types': sorted(interface_types or []), 'interfaces': interfaces or [],
                         'edge_traversal': edge_traversal, 'grouping': grouping})
        rules = self.state['firewall_rules']
        for index, rule in enumerate(rules):
            if rule['name'] == name and rule.get('store', 'local') == 'local':
                updated = rule != wanted
                rules[index] = wanted
                return {'created': False, 'updated': updated}
        # A name found only in a policy store: Windows creates a local rule of that name beside it.
        rules.append(wanted)
        return {'created': True, 'updated': False}

    def op_remove_firewall_rule(self, name: str) -> dict[str, t.Any]:
        rules = self.state['firewall_rules']
        kept = [r for r in rules if r['name'] != name or r.get('store', 'local') != 'local']
        removed = len(kept) < len(rules)
        self.state['firewall_rules'] = kept
        return {'removed': removed, 'missing': not removed}

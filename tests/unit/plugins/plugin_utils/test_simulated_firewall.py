# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The twin's firewall behaves as Windows is documented to (plugins/plugin_utils/_simulated_firewall.py)."""
from __future__ import annotations

import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import FIREWALL_RULE_DEFAULTS
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

POLICY_RULE = {'name': 'gpo-block', 'display_name': 'Block Notion', 'direction': 'out', 'action': 'block',
               'profiles': ['domain', 'private', 'public'], 'program': 'C:\\Apps\\Notion.exe', 'enabled': True,
               'description': '', 'store': 'group_policy'}


def one(twin: SimulatedWindows, operation: dict[str, t.Any]) -> dict[str, t.Any]:
    return twin.run_batch([operation])['results'][0]


def test_a_policy_rule_set_locally_gets_a_local_duplicate_and_keeps_applying() -> None:
    twin = SimulatedWindows(empty_state())
    twin.state['firewall_rules'] = [dict(POLICY_RULE)]
    result = one(twin, {'op': 'set_firewall_rule', **{k: v for k, v in POLICY_RULE.items() if k != 'store'},
                        'enabled': False})
    assert result['data'] == {'created': True, 'updated': False}
    assert twin.state['firewall_rules'][0] == POLICY_RULE, 'the policy rule is untouched'
    assert [r.get('store', 'local') for r in twin.state['firewall_rules']] == ['group_policy', 'local']
    removed = one(twin, {'op': 'remove_firewall_rule', 'name': 'gpo-block'})
    assert removed['data'] == {'removed': True, 'missing': False}
    assert twin.state['firewall_rules'] == [POLICY_RULE], 'only the local copy goes'
    assert one(twin, {'op': 'remove_firewall_rule', 'name': 'gpo-block'})['data'] == {'removed': False, 'missing': True}


def test_listing_is_complete_with_stores_and_the_merge_switch_and_counts_one_pass() -> None:
    twin = SimulatedWindows(empty_state())
    twin.state['firewall_rules'] = [dict(POLICY_RULE), {**POLICY_RULE, 'name': 'local', 'store': 'local'}]
    twin.set_registry('HKLM', 'SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\PublicProfile',
                      {'AllowLocalPolicyMerge': {'type': 'REG_DWORD', 'data': 0}})
    twin.set_registry('HKLM', 'SYSTEM\\CurrentControlSet\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\Mdm\\'
                      'DomainProfile', {'AllowLocalPolicyMerge': {'type': 'REG_DWORD', 'data': 0}})
    listed = one(twin, {'op': 'list_firewall_rules'})['data']
    assert listed['local_rules_apply'] == {'domain': False, 'private': True, 'public': False}
    assert [r['store'] for r in listed['rules']] == ['group_policy', 'local']
    assert all(r[key] == default for r in listed['rules'] for key, default in FIREWALL_RULE_DEFAULTS.items())
    assert twin.state['calls'][-1]['firewall_rule_reads'] == 2


def test_rules_are_stored_sparsely_as_the_firewall_stores_them() -> None:
    twin = SimulatedWindows(empty_state())
    rule = {k: v for k, v in POLICY_RULE.items() if k != 'store'}
    one(twin, {'op': 'set_firewall_rule', **rule, **FIREWALL_RULE_DEFAULTS, 'protocol': 'tcp', 'remote_ports': ['443']})
    assert twin.state['firewall_rules'] == [{**rule, 'protocol': 'tcp', 'remote_ports': ['443']}]

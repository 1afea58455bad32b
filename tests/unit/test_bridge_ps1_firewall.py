# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bridge's firewall functions read as a Windows engineer would check them (issue 9).

No PowerShell here: the functions are found with tree-sitter and their text checked for what the
cost and correctness rules forbid: a per-rule or whole-store CIM query (Get-NetFirewallRule took
48 s per name lookup on a 1,091-rule machine), and expanding rule programs with the administrator's
environment. The policy keys the bridge reads are the ones the twin models.
"""
from __future__ import annotations

import re

import pytest

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_firewall import POLICY_PROFILE_KEYS

try:
    import bridge_ps1
except ImportError:  # tests/unit imported as a package
    from . import bridge_ps1  # type: ignore[no-redef]

FIREWALL_OPERATIONS = ('list_firewall_rules', 'set_firewall_rule', 'remove_firewall_rule')


@pytest.fixture(scope='module')
def functions() -> dict[str, str]:
    tree = bridge_ps1.parse(bridge_ps1.bridge_text())
    found = {}
    for node in bridge_ps1._walk(tree.root_node):  # pylint: disable=protected-access
        if node.type == 'function_statement':
            name = bridge_ps1._text(bridge_ps1._function_name(node))  # pylint: disable=protected-access
            found[name] = bridge_ps1._text(node)  # pylint: disable=protected-access
    return found


def called(functions: dict[str, str], name: str) -> str:
    """The function's text and that of every Bridge function it calls, transitively."""
    seen, pending, texts = set(), [name], []
    while pending:
        current = pending.pop()
        if current in seen or current not in functions:
            continue
        seen.add(current)
        texts.append(functions[current])
        pending += re.findall(r'\b([A-Z][a-z]+-Bridge\w+)\b', functions[current])
    return '\n'.join(texts)


@pytest.mark.parametrize('operation', FIREWALL_OPERATIONS)
def test_no_firewall_operation_queries_rules_through_cim(functions: dict[str, str], operation: str) -> None:
    text = called(functions, f'Invoke-BridgeOp_{operation}')
    assert not re.search(r'Get-NetFirewall(Rule|ApplicationFilter)|Get-CimInstance', text), \
        'rules are read from their stores in one pass, never through a CIM query'


@pytest.mark.parametrize('operation', FIREWALL_OPERATIONS)
def test_rule_programs_are_never_expanded_with_the_administrators_environment(functions: dict[str, str],
                                                                              operation: str) -> None:
    text = called(functions, f'Invoke-BridgeOp_{operation}')
    assert 'ExpandEnvironmentVariables' not in text
    assert 'DoNotExpandEnvironmentNames' in called(functions, 'Invoke-BridgeOp_list_firewall_rules')


def test_listing_reads_every_store_and_the_local_merge_switch(functions: dict[str, str]) -> None:
    text = bridge_ps1.bridge_text()
    for path in (r'FirewallPolicy\FirewallRules', r'SOFTWARE\Policies\Microsoft\WindowsFirewall\FirewallRules',
                 r'FirewallPolicy\Mdm\FirewallRules'):
        assert f'\\{path}\'' in text or f"'{path}'" in text, path
    declared = {key.lower() for key in re.findall(r"'((?:SOFTWARE|SYSTEM)\\[^']*Profile)'", text)}
    assert declared == {key for keys in POLICY_PROFILE_KEYS.values() for key in keys}, \
        'the bridge reads AllowLocalPolicyMerge where the twin models it'
    assert 'AllowLocalPolicyMerge' in called(functions, 'Invoke-BridgeOp_list_firewall_rules')

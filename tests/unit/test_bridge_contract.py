"""The Python hosts implement the bridge vocabulary exactly (the .ps1 has its own test)."""
from __future__ import annotations

import inspect
import typing as t

import pytest

from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import OPERATIONS
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows

# Operations that mean nothing on macOS/Linux: the local host must not pretend to have them.
WINDOWS_ONLY = {'read_registry', 'write_registry', 'delete_registry_values', 'list_registry_subkeys',
                'list_firewall_rules', 'set_firewall_rule', 'remove_firewall_rule', 'get_file_info', 'download_file',
                'run_as_user', 'start_as_user', 'list_packages', 'verify_file', 'ensure_admin_dir',
                'verify_package', 'provision_package', 'remove_provisioned_package'}


def contract_violations(host_class: type, expected: t.Iterable[str]) -> list[str]:
    """Every way host_class's op_* methods disagree with the vocabulary for the expected operations."""
    problems = []
    implemented = {name[3:] for name in dir(host_class) if name.startswith('op_')}
    for name in sorted(implemented - set(OPERATIONS)):
        problems.append(f'{host_class.__name__}.op_{name} is not in the vocabulary')
    for name in sorted(set(expected) - implemented):
        problems.append(f'{host_class.__name__} lacks op_{name}')
    for name in sorted(set(expected) & implemented):
        spec = OPERATIONS[name]
        parameters = list(inspect.signature(getattr(host_class, f'op_{name}')).parameters.values())[1:]
        required = [p.name for p in parameters if p.default is inspect.Parameter.empty]
        optional = [p.name for p in parameters if p.default is not inspect.Parameter.empty]
        if required != list(spec.required):
            problems.append(f'op_{name} requires {required}, the vocabulary {list(spec.required)}')
        if optional != list(spec.optional):
            problems.append(f'op_{name} has optional {optional}, the vocabulary {list(spec.optional)}')
    return problems


def test_the_simulated_windows_host_implements_the_whole_vocabulary() -> None:
    assert contract_violations(SimulatedWindows, OPERATIONS) == []


def test_the_local_host_implements_everything_but_the_windows_only_operations() -> None:
    assert contract_violations(LocalHost, set(OPERATIONS) - WINDOWS_ONLY) == []


def test_windows_only_operations_are_in_the_vocabulary() -> None:
    assert WINDOWS_ONLY <= set(OPERATIONS)


class _Renamed(SimulatedWindows):
    def op_move_path(self, source: str, target: str) -> dict[str, t.Any]:  # type: ignore[override]  # pylint: disable=arguments-renamed
        return {}


class _Extra(SimulatedWindows):
    def op_format_disk(self, drive: str) -> dict[str, t.Any]:
        return {}


class _OptionalMadeRequired(SimulatedWindows):
    def op_stop_processes(self, processes: list[dict[str, t.Any]],  # type: ignore[override]
                          timeout_seconds: int) -> dict[str, t.Any]:
        return {}


@pytest.mark.parametrize('doctored, message', [
    (_Renamed, "op_move_path requires ['source', 'target'], the vocabulary ['source', 'destination']"),
    (_Extra, '_Extra.op_format_disk is not in the vocabulary'),
    (_OptionalMadeRequired,
     "op_stop_processes requires ['processes', 'timeout_seconds'], the vocabulary ['processes']"),
])
def test_the_check_catches_a_drifted_host(doctored: type, message: str) -> None:
    assert message in contract_violations(doctored, OPERATIONS)


def test_the_check_catches_a_missing_operation() -> None:
    assert contract_violations(LocalHost, OPERATIONS)[0].startswith('LocalHost lacks op_')

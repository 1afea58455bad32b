# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Contract test: plugins/modules/win_bridge.ps1 implements exactly the bridge vocabulary.

No PowerShell here, so the script is read with tree-sitter (tests/unit/bridge_ps1.py).
Each check is a function returning its problems, and the self-tests at the end prove
that every check catches a doctored copy of the script.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import (
    COMMON_PARAMETERS,
    LOCK_NAME,
    LOCK_TIMEOUT_SECONDS,
    OPERATIONS,
    RECORD_NAME_PATTERN,
    RECORDS_KEY,
)

try:
    import bridge_ps1
except ImportError:  # tests/unit imported as a package
    from . import bridge_ps1  # type: ignore[no-redef]

COLLECTION = Path(__file__).resolve().parents[2]
PS1 = COLLECTION / 'plugins' / 'modules' / 'win_bridge.ps1'
DOC = COLLECTION / 'plugins' / 'modules' / 'win_bridge.py'
PREFIX = 'Invoke-BridgeOp_'


@pytest.fixture(scope='module')
def ps1_text() -> str:
    return bridge_ps1.bridge_text()


# ------------------------------------------------------------------- the checks

def table_problems(text: str) -> list[str]:
    """$OperationParameters must list every operation's parameters, required then optional."""
    declared = bridge_ps1.declared_operations(text)
    expected = {name: op.parameters for name, op in OPERATIONS.items()}
    problems = [f'{name}: declared {declared.get(name)}, vocabulary {params}'
                for name, params in expected.items() if declared.get(name) != params]
    problems += [f'{name}: not in the vocabulary' for name in declared if name not in expected]
    if not problems and list(declared) != list(expected):
        problems.append(f'operations out of vocabulary order: {list(declared)}')
    return problems


def optional_problems(text: str) -> list[str]:
    """$OptionalParameters (what the bridge may omit) must match the vocabulary's optional tails."""
    declared = bridge_ps1.declared_table(text, 'OptionalParameters')
    expected = {name: op.optional for name, op in OPERATIONS.items()}
    return [f'{name}: declared optional {declared.get(name)}, vocabulary {expected.get(name)}'
            for name in sorted(set(declared) | set(expected)) if declared.get(name) != expected.get(name)]


def flag_problems(text: str) -> list[str]:
    """$MutatingOperations drives the check-mode refusal; $CommonParameters the input check."""
    problems = []
    mutating = bridge_ps1.declared_list(text, 'MutatingOperations')
    expected = tuple(name for name, op in OPERATIONS.items() if op.mutates)
    if mutating != expected:
        problems.append(f'$MutatingOperations {mutating} != vocabulary {expected}')
    common = bridge_ps1.declared_list(text, 'CommonParameters')
    if common != COMMON_PARAMETERS:
        problems.append(f'$CommonParameters {common} != vocabulary {COMMON_PARAMETERS}')
    return problems


def function_problems(text: str) -> list[str]:
    """One Invoke-BridgeOp_<op> per operation, and none for anything else."""
    functions = bridge_ps1.defined_functions(text)
    expected = {PREFIX + name for name in OPERATIONS}
    # PowerShell function names are case-insensitive: a differently cased twin is still an extra.
    bridge_ops = {name for name in functions if name.lower().startswith(PREFIX.lower())}
    problems = [f'missing function {name}' for name in sorted(expected - functions)]
    problems += [f'extra function {name}' for name in sorted(bridge_ops - expected)]
    return problems


def constant_problems(text: str) -> list[str]:
    """The constants the bridge mirrors from the vocabulary: record store, record names, the lock."""
    expected = {'RecordsKey': RECORDS_KEY, 'RecordNamePattern': RECORD_NAME_PATTERN, 'LockName': LOCK_NAME,
                'LockTimeoutSeconds': str(LOCK_TIMEOUT_SECONDS)}
    problems = []
    for variable, value in expected.items():
        found = re.findall(rf"(?m)^\${variable} = (?:'([^']*)'|(\d+))$", text)
        declared = [quoted or number for quoted, number in found]
        if declared != [value]:
            problems.append(f'${variable} is {declared}, the vocabulary {value!r}')
    return problems


def header_problems(text: str) -> list[str]:
    lines = text.splitlines()
    problems = []
    if not lines or lines[0] != '#!powershell':
        problems.append('first line is not #!powershell')
    if '#AnsibleRequires -CSharpUtil Ansible.Basic' not in lines:
        problems.append('no #AnsibleRequires -CSharpUtil Ansible.Basic line')
    if 'supports_check_mode = $true' not in text:
        problems.append('module spec does not declare supports_check_mode = $true')
    return problems


# ---------------------------------------------------------------- on the script

def test_script_parses_without_errors(ps1_text: str) -> None:
    assert bridge_ps1.syntax_errors(ps1_text) == []


def test_operation_table_matches_vocabulary(ps1_text: str) -> None:
    assert table_problems(ps1_text) == []


def test_optional_parameters_match_vocabulary(ps1_text: str) -> None:
    assert optional_problems(ps1_text) == []


def test_mutating_and_common_parameters_match_vocabulary(ps1_text: str) -> None:
    assert flag_problems(ps1_text) == []


def test_every_operation_has_exactly_its_function(ps1_text: str) -> None:
    assert function_problems(ps1_text) == []


def test_constants_match_vocabulary(ps1_text: str) -> None:
    assert constant_problems(ps1_text) == []


def test_module_header(ps1_text: str) -> None:
    assert header_problems(ps1_text) == []


def test_documentation_names_every_operation() -> None:
    tree = ast.parse(DOC.read_text(encoding='utf-8'))
    docs = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant)}
    documentation = yaml.safe_load(docs['DOCUMENTATION'])
    assert documentation['module'] == 'win_bridge'
    notes = '\n'.join(documentation['notes'])
    assert [name for name in OPERATIONS if f'C({name})' not in notes] == []
    assert set(yaml.safe_load(docs['RETURN'])) == {'changed', 'results', 'hives_loaded', 'hives_unloaded'}


# ------------------------------------------- self-tests: each check can fail

def _doctor(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f'self-test out of date: {old!r} is not in win_bridge.ps1 exactly once'
    return text.replace(old, new)


DOCTORED: list[tuple[str, str, str, Callable[[str], list[str]]]] = [
    ('renamed parameter',
     "    write_file = @('path', 'content', 'within')\n", "    write_file = @('path', 'text', 'within')\n", table_problems),
    ('parameters out of order',
     "    write_file = @('path', 'content', 'within')\n", "    write_file = @('content', 'path', 'within')\n", table_problems),
    ('optional parameter dropped',
     "    stop_processes = @('processes', 'timeout_seconds')\n", "    stop_processes = @('processes')\n",
     table_problems),
    ('operation missing from the table',
     "    remove_path = @('path', 'within')\n    list_processes", '    list_processes', table_problems),
    ('unknown operation in the table',
     "    remove_path = @('path', 'within')\n", "    remove_path = @('path', 'within')\n    format_disk = @('drive')\n",
     table_problems),
    ('optional tail wrong',
     "    read_registry = @('sid', 'names')\n", "    read_registry = @('names')\n", optional_problems),
    ('mutating operation not flagged',
     "    'remove_path'\n", '', flag_problems),
    ('missing function',
     'function Invoke-BridgeOp_remove_path {', 'function Invoke-BridgeOp_delete_path {', function_problems),
    ('extra function',
     'function Invoke-BridgeOp_remove_path {',
     'function Invoke-BridgeOp_format_disk {\n}\n\nfunction Invoke-BridgeOp_remove_path {', function_problems),
    ('differently cased extra function',
     'function Invoke-BridgeOp_remove_path {',
     'function invoke-bridgeop_Remove_Path {\n}\n\nfunction Invoke-BridgeOp_remove_path {', function_problems),
    ('broken syntax',
     '    return [ordered]@{ created_key = $createdKey }\n', '    return [ordered]@{ created_key = $createdKey\n',
     bridge_ps1.syntax_errors),
    ('lock timeout drifted',
     '$LockTimeoutSeconds = 60\n', '$LockTimeoutSeconds = 30\n', constant_problems),
    ('record name pattern drifted',
     "$RecordNamePattern = '[A-Za-z0-9][A-Za-z0-9._-]{0,127}'\n", "$RecordNamePattern = '.*'\n", constant_problems),
    ('no Ansible.Basic',
     '#AnsibleRequires -CSharpUtil Ansible.Basic\n', '', header_problems),
]


@pytest.mark.parametrize(('old', 'new', 'check'), [case[1:] for case in DOCTORED], ids=[case[0] for case in DOCTORED])
def test_check_catches_doctored_script(ps1_text: str, old: str, new: str, check: Callable[[str], list[str]]) -> None:
    assert check(ps1_text) == []
    assert check(_doctor(ps1_text, old, new)) != []


@pytest.mark.parametrize(('old', 'new'), [
    ("    write_file = @('path', 'content', 'within')\n", '    write_file = @("path", "content", "within")\n'),
    ("    write_file = @('path', 'content', 'within')\n    ensure_private_dir",
     "    write_file = @('path', 'content', 'within'); ensure_private_dir"),
    ("    write_file = @('path', 'content', 'within')\n", "    write_file = 'path', 'content', 'within'\n"),
    ("    write_file = @('path', 'content', 'within')\n", "    write_file = @('path',\n        'content', 'within')\n"),
    ('$OperationParameters = @{', '$OperationParameters = [ordered]@{'),
], ids=['double quotes', 'two entries on one line', 'not an @() array', 'entry over two lines', 'not a plain @{}'])
def test_table_reader_rejects_other_forms(ps1_text: str, old: str, new: str) -> None:
    with pytest.raises(bridge_ps1.BridgeTableError):
        bridge_ps1.declared_operations(_doctor(ps1_text, old, new))


def test_table_reader_needs_the_table(ps1_text: str) -> None:
    with pytest.raises(bridge_ps1.BridgeTableError):
        bridge_ps1.declared_operations(_doctor(ps1_text, '$OperationParameters = @{', '$OperationParameter = @{'))

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the contract tables and function names out of plugins/modules/win_bridge.ps1.

There is no PowerShell on the build machines, so the script is parsed with
tree-sitter-powershell. The tables must keep the exact form the bridge declares
them in; anything else raises BridgeTableError rather than being guessed at:

    $OperationParameters = @{
        get_profiles = @('shell_folders')
        ...
    }
    $MutatingOperations = @(
        'write_file'
        ...
    )
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import tree_sitter
import tree_sitter_powershell

_NAME = r"'[A-Za-z_][A-Za-z0-9_]*'"
# @(), @('a'), @('a', 'b'): single-quoted identifiers only, on one line.
_INLINE_ARRAY = re.compile(rf"@\(\s*(?:{_NAME}(?:\s*,\s*{_NAME})*)?\s*\)")
# A multi-line @( ... ) of single-quoted identifiers, one or several per line.
_BLOCK_ARRAY = re.compile(rf"@\(\s*(?:{_NAME}(?:\s*[,\n]\s*{_NAME})*)?\s*\)")
_QUOTED = re.compile(r"'([^']*)'")


class BridgeTableError(ValueError):
    """A table of win_bridge.ps1 is missing or not in its declared form."""


@functools.cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def parse(ps1_text: str) -> tree_sitter.Tree:
    return _parser().parse(ps1_text.encode('utf-8'))


def _text(node: tree_sitter.Node) -> str:
    return node.text.decode('utf-8') if node.text is not None else ''


def _walk(node: tree_sitter.Node):
    yield node
    for child in node.children:
        yield from _walk(child)


def syntax_errors(ps1_text: str) -> list[str]:
    """'line:column: ERROR|MISSING <text>' for every node tree-sitter could not parse."""
    problems = []
    for node in _walk(parse(ps1_text).root_node):
        if node.type == 'ERROR' or node.is_missing:
            kind = 'MISSING' if node.is_missing else 'ERROR'
            row, column = node.start_point
            problems.append(f'{row + 1}:{column + 1}: {kind} {_text(node)[:60]!r}')
    return problems


def _top_level_assignment(ps1_text: str, variable: str) -> tree_sitter.Node:
    """The right-hand side of the one top-level `$variable = ...` statement."""
    tree = parse(ps1_text)
    found = []
    for statements in tree.root_node.children:
        if statements.type != 'statement_list':
            continue
        for statement in statements.children:
            assignment = statement.children[0] if statement.type == 'pipeline' and statement.children else None
            if assignment is None or assignment.type != 'assignment_expression':
                continue
            target = assignment.child_by_field_name('left') or assignment.children[0]
            if _text(target).strip().lower() == f'${variable}'.lower():
                found.append(assignment.children[-1])
    if len(found) != 1:
        raise BridgeTableError(f'expected one top-level assignment to ${variable}, found {len(found)}')
    return found[0]


def _single_descendant(node: tree_sitter.Node, node_type: str, variable: str) -> tree_sitter.Node:
    """Follow the chain of single named children down to node_type (the grammar nests deeply)."""
    current = node
    while current.type != node_type:
        named = current.named_children
        if len(named) != 1:
            raise BridgeTableError(f'${variable} is not a plain {node_type}: {_text(node)[:80]!r}')
        current = named[0]
    return current


def _names(array_text: str) -> tuple[str, ...]:
    return tuple(_QUOTED.findall(array_text))


def declared_table(ps1_text: str, variable: str) -> dict[str, tuple[str, ...]]:
    """A `$variable = @{ key = @('a', 'b') ... }` table, one entry per line, in source order."""
    value = _top_level_assignment(ps1_text, variable)
    table = _single_descendant(value, 'hash_literal_expression', variable)
    result: dict[str, tuple[str, ...]] = {}
    rows: set[int] = set()
    for body in table.named_children:
        for entry in body.named_children:
            if entry.type != 'hash_entry':
                raise BridgeTableError(f'${variable}: unexpected {entry.type} {_text(entry)[:60]!r}')
            key_node, value_node = entry.named_children[0], entry.named_children[-1]
            key = _text(key_node)
            if key_node.type != 'key_expression' or not re.fullmatch(r'[a-z_][a-z0-9_]*', key):
                raise BridgeTableError(f'${variable}: key {key!r} is not a bare operation name')
            if entry.start_point[0] != entry.end_point[0] or entry.start_point[0] in rows:
                raise BridgeTableError(f'${variable}: entry {key!r} is not alone on one line')
            rows.add(entry.start_point[0])
            if not _INLINE_ARRAY.fullmatch(_text(value_node)):
                raise BridgeTableError(f"${variable}: {key} must be @('name', ...), not {_text(value_node)!r}")
            if key in result:
                raise BridgeTableError(f'${variable}: {key} is declared twice')
            result[key] = _names(_text(value_node))
    return result


def declared_list(ps1_text: str, variable: str) -> tuple[str, ...]:
    """A `$variable = @('a', 'b')` (or one name per line) list of names, in source order."""
    value = _top_level_assignment(ps1_text, variable)
    array = _single_descendant(value, 'array_expression', variable)
    if not _BLOCK_ARRAY.fullmatch(_text(array)):
        raise BridgeTableError(f"${variable} must be @('name', ...), not {_text(array)[:80]!r}")
    return _names(_text(array))


def declared_operations(ps1_text: str) -> dict[str, tuple[str, ...]]:
    """$OperationParameters: operation name -> every parameter, required then optional."""
    return declared_table(ps1_text, 'OperationParameters')


def defined_functions(ps1_text: str) -> set[str]:
    """Names of every function the script defines, at any depth."""
    return {_text(node.child_by_field_name('name') or _function_name(node))
            for node in _walk(parse(ps1_text).root_node) if node.type == 'function_statement'}


def _function_name(node: tree_sitter.Node) -> tree_sitter.Node:
    for child in node.children:
        if child.type == 'function_name':
            return child
    raise BridgeTableError(f'function without a name at line {node.start_point[0] + 1}')


def function_text(ps1_text: str, name: str) -> str:
    """The whole text of one function the script defines (BridgeTableError if it is not defined once)."""
    found = [_text(node) for node in _walk(parse(ps1_text).root_node) if node.type == 'function_statement'
             and _text(node.child_by_field_name('name') or _function_name(node)).lower() == name.lower()]
    if len(found) != 1:
        raise BridgeTableError(f'function {name}: defined {len(found)} times')
    return found[0]


# The bridge is win_bridge.ps1 and the module_utils .psm1 it requires (transitively), each one job.
COLLECTION_ROOT = Path(__file__).resolve().parents[2]
BRIDGE_SCRIPT = COLLECTION_ROOT / 'plugins' / 'modules' / 'win_bridge.ps1'
MODULE_UTILS = COLLECTION_ROOT / 'plugins' / 'module_utils'
_REQUIRES = re.compile(r'^#AnsibleRequires -PowerShell ansible_collections\.loopbreaker\.notion\.plugins\.module_utils\.'
                       r'([A-Za-z0-9_]+)\s*$', re.M)


def required_modules(ps1_text: str) -> list[str]:
    """The collection's PowerShell module_utils a script or module requires directly, in order."""
    return _REQUIRES.findall(ps1_text)


def bridge_files(script: Path = BRIDGE_SCRIPT) -> dict[str, str]:
    """{file name: text} of the bridge script and every .psm1 it requires, directly or not."""
    files = {script.name: script.read_text(encoding='utf-8')}
    pending = required_modules(files[script.name])
    while pending:
        name = pending.pop(0)
        if f'{name}.psm1' in files:
            continue
        files[f'{name}.psm1'] = (MODULE_UTILS / f'{name}.psm1').read_text(encoding='utf-8')
        pending += required_modules(files[f'{name}.psm1'])
    return files


def bridge_text(script: Path = BRIDGE_SCRIPT) -> str:
    """The whole bridge as one text, for checks of what it defines and how (not for the tables' places)."""
    return '\n'.join(bridge_files(script).values())

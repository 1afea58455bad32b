"""Every C# module_util of the collection must parse, be named as Ansible loads it, and be the one the .ps1 asks for.

There is no C# compiler on the build machines (Ansible compiles these on the
Windows host, with Add-Type), so syntax is checked with the tree-sitter C#
grammar, as test_ps1_parse.py does for PowerShell. A collection C# util
referenced as ``#AnsibleRequires -CSharpUtil
ansible_collections.<ns>.<coll>.plugins.module_utils.<Name>`` is the file
``plugins/module_utils/<Name>.cs``; by convention its namespace is that same
dotted name, and a ``//TypeAccelerator`` line gives PowerShell a short name.
The self-tests prove each check catches a doctored file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

if os.environ.get("CI"):  # CI must never skip this check silently
    import tree_sitter
    import tree_sitter_c_sharp
else:
    tree_sitter = pytest.importorskip("tree_sitter")
    tree_sitter_c_sharp = pytest.importorskip("tree_sitter_c_sharp")

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_UTILS = REPO_ROOT / "plugins" / "module_utils"
PREFIX = "ansible_collections.loopbreaker.notion.plugins.module_utils."
_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_c_sharp.language()))
_REQUIRES = re.compile(r"(?im)^#\s*ansiblerequires\s+-csharputil\s+(ansible_collections\.\S+)")
_ACCELERATOR = re.compile(r"(?m)^//\s*TypeAccelerator\s+-Name\s+(\w+)\s+-TypeName\s+(\w+)")


def syntax_errors(source: str) -> list[str]:
    problems = []
    stack = [_PARSER.parse(source.encode("utf-8")).root_node]
    while stack:
        node = stack.pop()
        if node.is_missing or node.is_error:
            row, column = node.start_point
            problems.append(f"{row + 1}:{column + 1}: {'missing ' + node.type if node.is_missing else 'syntax error'}")
        if node.has_error:
            stack.extend(node.children)
    return sorted(problems)


def naming_problems(name: str, source: str) -> list[str]:
    problems = []
    namespaces = re.findall(r"(?m)^namespace\s+([\w.]+)", source)
    if namespaces != [PREFIX + name]:
        problems.append(f"{name}.cs: namespace {namespaces}, expected [{PREFIX + name!r}]")
    for accelerator, type_name in _ACCELERATOR.findall(source):
        if not re.search(rf"\b(class|struct)\s+{type_name}\b", source):
            problems.append(f"{name}.cs: TypeAccelerator {accelerator} names {type_name}, which it does not define")
    return problems


def reference_problems(ps1_text: str, available: dict[str, str]) -> list[str]:
    """Every collection C# util a script requires exists, and every accelerator it uses is declared."""
    problems = []
    declared: set[str] = set()
    for reference in _REQUIRES.findall(ps1_text):
        name = reference[len(PREFIX):] if reference.startswith(PREFIX) else None
        if name is None or name not in available:
            problems.append(f"requires {reference}, which is not in plugins/module_utils")
            continue
        declared |= {match[0] for match in _ACCELERATOR.findall(available[name])}
    for used in sorted(set(re.findall(r"\[(Loopbreaker\w+)\]::", ps1_text)) - declared):
        problems.append(f"uses [{used}] without requiring the C# util that declares it")
    return problems


def cs_files() -> dict[str, str]:
    return {path.stem: path.read_text(encoding="utf-8-sig") for path in sorted(MODULE_UTILS.glob("*.cs"))}


@pytest.mark.parametrize("name", sorted(cs_files()))
def test_csharp_util_parses_and_is_named_as_ansible_loads_it(name: str) -> None:
    source = cs_files()[name]
    assert syntax_errors(source) == []
    assert naming_problems(name, source) == []


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO_ROOT / "plugins" / "modules").glob("*.ps1")))
def test_scripts_require_existing_csharp_utils(script: str) -> None:
    text = (REPO_ROOT / "plugins" / "modules" / script).read_text(encoding="utf-8")
    assert reference_problems(text, cs_files()) == []


def test_the_bridge_requires_the_safe_path_util() -> None:
    text = (REPO_ROOT / "plugins" / "modules" / "win_bridge.ps1").read_text(encoding="utf-8")
    assert f"#AnsibleRequires -CSharpUtil {PREFIX}SafePath" in text.splitlines()


# --- self-tests ---------------------------------------------------------------

GOOD = "//TypeAccelerator -Name LoopbreakerX -TypeName X\nusing System;\nnamespace %sX\n{\n    public static class X { }\n}\n" % PREFIX


def test_checks_accept_a_good_util() -> None:
    assert syntax_errors(GOOD) == [] and naming_problems("X", GOOD) == []
    assert reference_problems(f"#AnsibleRequires -CSharpUtil {PREFIX}X\n[LoopbreakerX]::Go()\n", {"X": GOOD}) == []


@pytest.mark.parametrize(("source", "check"), [
    (GOOD.replace("{ }\n}", "{ \n}"), syntax_errors),
    (GOOD.replace("public static class X { }", "public static class X { void F() { int a = ; } }"), syntax_errors),
    (GOOD.replace(f"namespace {PREFIX}X", "namespace Other.X"), lambda s: naming_problems("X", s)),
    (GOOD.replace("-TypeName X", "-TypeName Y"), lambda s: naming_problems("X", s)),
], ids=["unbalanced brace", "bad expression", "wrong namespace", "accelerator for a missing type"])
def test_checks_catch_a_doctored_util(source: str, check) -> None:  # type: ignore[no-untyped-def]
    assert check(source) != []


def test_reference_check_catches_a_missing_util_and_an_undeclared_accelerator() -> None:
    assert reference_problems(f"#AnsibleRequires -CSharpUtil {PREFIX}Gone\n", {"X": GOOD}) != []
    assert reference_problems("[LoopbreakerX]::Go()\n", {"X": GOOD}) != []

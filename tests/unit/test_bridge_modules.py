"""The bridge's PowerShell module_utils keep to their own scope.

win_bridge.ps1 requires module_utils/Bridge*.psm1 (#AnsibleRequires -PowerShell). Ansible imports
each as a global module, so a function in one sees its own module, the global functions of the
modules it requires and .NET: never a function or a variable of the bridge script. Nothing runs
PowerShell here, so a module that reached back into the script would pass every twin test and
fail on the first real machine; these checks read the texts instead.
"""
from __future__ import annotations

import re

import pytest

try:
    import bridge_ps1
except ImportError:  # tests/unit imported as a package
    from . import bridge_ps1  # type: ignore[no-redef]

BRIDGE_COMMAND = re.compile(r'\b([A-Z][a-z]+-Bridge[A-Za-z0-9_]*)\b')
TOP_LEVEL_VARIABLE = re.compile(r'^\$([A-Za-z][A-Za-z0-9_]*)\s*=', re.M)
EXPORTS = re.compile(r'^Export-ModuleMember -Function @\(\n((?:    \'[A-Za-z0-9_-]+\'\n)+)\)\s*$', re.M)


def _code(text: str) -> str:
    """The text without comment lines and without the export list (names there are no calls)."""
    text = EXPORTS.sub('', text)
    return '\n'.join(line for line in text.splitlines() if not line.lstrip().startswith('#'))


def _closure(name: str, files: dict[str, str]) -> list[str]:
    """name and every module it requires, directly or not."""
    seen, pending = [], [name]
    while pending:
        current = pending.pop(0)
        if current not in seen:
            seen.append(current)
            pending += [f'{m}.psm1' for m in bridge_ps1.required_modules(files[current])]
    return seen


def scope_problems(files: dict[str, str]) -> list[str]:
    """Every way a .psm1 of the bridge reaches outside what it may see, or exports the wrong set."""
    script = files[bridge_ps1.BRIDGE_SCRIPT.name]
    script_variables = set(TOP_LEVEL_VARIABLE.findall(script))
    problems = []
    for name, text in files.items():
        if not name.endswith('.psm1'):
            continue
        own = bridge_ps1.defined_functions(text)
        visible = set().union(*(bridge_ps1.defined_functions(files[m]) for m in _closure(name, files)))
        code = _code(text)
        for command in sorted(set(BRIDGE_COMMAND.findall(code)) - visible):
            problems.append(f'{name} calls {command}, which neither it nor a module it requires defines')
        module_level = set(TOP_LEVEL_VARIABLE.findall(text))
        for function in sorted(own):
            body = _code(bridge_ps1.function_text(text, function))
            for variable in sorted(script_variables - module_level):
                local = re.search(rf'(\${variable}\s*[+-]?=[^=]|\]\${variable}\b|foreach\s*\(\${variable}\s)', body, re.I)
                if re.search(rf'\${variable}\b', body) and not local:
                    problems.append(f'{name} reads ${variable} in {function}, a variable of win_bridge.ps1 it cannot see')
        exports = EXPORTS.search(text)
        exported = set(re.findall(r"'([^']+)'", exports.group(1))) if exports else set()
        if exported != own:
            problems.append(f'{name} exports {sorted(exported)} but defines {sorted(own)}')
    # A module's own variables are private to it (only functions are exported): the script cannot read them.
    script_code = _code(script)
    for name, text in files.items():
        if name.endswith('.psm1'):
            for variable in sorted(set(TOP_LEVEL_VARIABLE.findall(text)) - script_variables):
                if re.search(rf'\${variable}\b', script_code):
                    problems.append(f'win_bridge.ps1 reads ${variable}, a variable private to {name}')
    return problems


def test_the_bridge_requires_every_bridge_module_and_each_exists() -> None:
    files = bridge_ps1.bridge_files()
    on_disk = {path.name for path in bridge_ps1.MODULE_UTILS.glob('*.psm1')}
    assert on_disk == {name for name in files if name.endswith('.psm1')}


def test_each_module_sees_only_itself_and_what_it_requires() -> None:
    assert scope_problems(bridge_ps1.bridge_files()) == []


def test_no_function_is_defined_twice_across_the_bridge() -> None:
    files = bridge_ps1.bridge_files()
    seen: dict[str, str] = {}
    twice = []
    for name, text in files.items():
        for function in bridge_ps1.defined_functions(text):
            if function in seen:
                twice.append(f'{function}: {seen[function]} and {name}')
            seen[function] = name
    assert twice == []


@pytest.mark.parametrize('doctor, message', [
    (lambda t: t.replace('\nExport-ModuleMember', '\nfunction Get-BridgeX {\n    Get-BridgeProfile -Sid $Sid\n}\n\n'
                         'Export-ModuleMember'),
     'BridgeNetProbe.psm1 calls Get-BridgeProfile, which neither it nor a module it requires defines'),
    (lambda t: t.replace('\nExport-ModuleMember', '\nfunction Get-BridgeX {\n    $RegistryUsers.OpenSubKey("x")\n}\n\n'
                         'Export-ModuleMember'),
     'BridgeNetProbe.psm1 reads $RegistryUsers in Get-BridgeX, a variable of win_bridge.ps1 it cannot see'),
    (lambda t: t.replace("    'Invoke-BridgeOp_probe_network'\n", ''),
     'BridgeNetProbe.psm1 exports'),
])
def test_the_check_catches_a_module_that_reaches_into_the_script(doctor, message: str) -> None:
    files = dict(bridge_ps1.bridge_files())
    files['BridgeNetProbe.psm1'] = doctor(files['BridgeNetProbe.psm1'])
    assert any(problem.startswith(message) for problem in scope_problems(files)), scope_problems(files)


def test_the_check_catches_the_script_reading_a_modules_private_variable() -> None:
    files = dict(bridge_ps1.bridge_files())
    files['win_bridge.ps1'] += '\nfunction Get-BridgeY {\n    $FirewallStores.Keys\n}\n'
    message = 'win_bridge.ps1 reads $FirewallStores, a variable private to BridgeFirewall.psm1'
    assert message in scope_problems(files)

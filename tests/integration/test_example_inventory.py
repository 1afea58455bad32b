"""inventories/example: it parses with its documented vault password, and no Windows group falls back to weak transports."""
from __future__ import annotations

import json
import re
import subprocess
import typing as t
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / 'inventories' / 'example'
WINDOWS_GROUPS = ['windows_winrm_kerberos', 'windows_winrm_ntlm', 'windows_psrp', 'windows_ssh']


@pytest.fixture
def vault_password_file(tmp_path: Path) -> Path:
    documented = re.search(r'vault password is `([^`]+)`', (EXAMPLE / 'README.md').read_text())
    assert documented, 'inventories/example/README.md names the throwaway vault password'
    path = tmp_path / 'vault-password'
    path.write_text(documented.group(1) + '\n')
    return path


def inventory(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(['ansible-inventory', '-i', str(EXAMPLE), *args], env=env, capture_output=True, text=True,
                          check=False, timeout=120)


def hostvars(env: dict[str, str], password: Path) -> dict[str, dict[str, t.Any]]:
    listed = inventory(env, '--list', '--vault-password-file', str(password))
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)['_meta']['hostvars']


def members(env: dict[str, str], password: Path) -> dict[str, list[str]]:
    listed = json.loads(inventory(env, '--list', '--vault-password-file', str(password)).stdout)
    return {group: listed.get(group, {}).get('hosts', []) for group in [*WINDOWS_GROUPS, 'macos']}


@pytest.mark.integration
def test_graph_works_with_the_vault_password_file(ansible_env: dict[str, str], vault_password_file: Path) -> None:
    graph = inventory(ansible_env, '--graph', '--vars', '--vault-password-file', str(vault_password_file))
    assert graph.returncode == 0, graph.stderr
    for group in ['notion_workstations', 'windows', *WINDOWS_GROUPS, 'macos']:
        assert f'@{group}:' in graph.stdout


@pytest.mark.integration
def test_credentials_are_vaulted(ansible_env: dict[str, str], vault_password_file: Path) -> None:
    vaults = sorted(EXAMPLE.glob('group_vars/*/vault.yml'))
    assert [v.parent.name for v in vaults] == ['macos', 'windows']
    for vault in vaults:
        assert vault.read_text().startswith('$ANSIBLE_VAULT;1.1;AES256\n'), vault
    without = inventory(ansible_env, '--graph', '--vars')
    assert without.returncode != 0 and 'vault' in without.stderr.lower()
    variables = hostvars(ansible_env, vault_password_file)
    for host, values in variables.items():
        for name, value in values.items():
            if 'password' in name and isinstance(value, str) and not name.startswith('vault_'):
                assert value.startswith('{{ vault_'), f'{host}: {name} must come from a vault'


@pytest.mark.integration
def test_no_windows_group_uses_basic_auth_or_plain_http(ansible_env: dict[str, str], vault_password_file: Path) -> None:
    variables = hostvars(ansible_env, vault_password_file)
    groups = members(ansible_env, vault_password_file)
    assert all(groups.values()), groups
    for host in groups['windows_winrm_kerberos'] + groups['windows_winrm_ntlm']:
        v = variables[host]
        assert (v['ansible_connection'], v['ansible_port'], v['ansible_winrm_scheme']) == ('winrm', 5986, 'https'), host
        assert v['ansible_winrm_transport'] in ('kerberos', 'ntlm'), host
        assert v['ansible_winrm_message_encryption'] == 'always', host
        assert v['ansible_winrm_server_cert_validation'] == 'validate', host
    assert {variables[h]['ansible_winrm_transport'] for h in groups['windows_winrm_kerberos']} == {'kerberos'}
    assert {variables[h]['ansible_winrm_transport'] for h in groups['windows_winrm_ntlm']} == {'ntlm'}
    for host in groups['windows_psrp']:
        v = variables[host]
        assert (v['ansible_connection'], v['ansible_port'], v['ansible_psrp_protocol']) == ('psrp', 5986, 'https'), host
        assert v['ansible_psrp_auth'] in ('negotiate', 'kerberos', 'ntlm'), host
        assert (v['ansible_psrp_cert_validation'], v['ansible_psrp_message_encryption']) == ('validate', 'always'), host
    for host in groups['windows_ssh']:
        v = variables[host]
        assert (v['ansible_connection'], v['ansible_shell_type']) == ('ssh', 'powershell'), host
        assert v['ansible_password'] is None, 'key authentication only'
    for host in groups['macos']:
        v = variables[host]
        assert (v['ansible_connection'], v['ansible_become']) == ('ssh', True), host
    text = '\n'.join(p.read_text() for p in EXAMPLE.rglob('*.yml') if not p.name == 'vault.yml')
    assert not re.search(r'transport:\s*basic|scheme:\s*http\s*$|:\s*5985\b|cert_validation:\s*ignore', text, re.M)

"""The execution environment: ansible-builder's build context, and what it reads from the installed collection.

Building the image needs a container engine, which the build machines do not have; the context
(Containerfile and _build/) is what an engine would receive.
"""
from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ('pywinrm[kerberos,credssp]', 'pypsrp[kerberos,credssp]')


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return completed


@pytest.mark.integration
def test_ansible_builder_create_names_the_collection_and_the_winrm_psrp_libraries(
        tmp_path: Path, ansible_env: dict[str, str]) -> None:
    context = tmp_path / 'context'
    run([str(ROOT / 'scripts' / 'ee-context'), str(context)], ansible_env)

    containerfile = (context / 'Containerfile').read_text()
    assert 'FROM $EE_BASE_IMAGE AS base' in containerfile
    assert 'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml' in containerfile
    assert 'COPY _build/requirements.txt requirements.txt' in containerfile

    galaxy = yaml.safe_load((context / '_build' / 'requirements.yml').read_text())
    (collection,) = galaxy['collections']
    assert collection['type'] == 'file'
    with tarfile.open(context / '_build' / collection['name']) as archive:
        info = json.load(archive.extractfile('MANIFEST.json'))['collection_info']  # type: ignore[arg-type]
        assert 'meta/execution-environment.yml' in archive.getnames()
    assert (info['namespace'], info['name']) == ('loopbreaker', 'notion')

    python = (context / '_build' / 'requirements.txt').read_text()
    for requirement in EXTRAS:
        assert requirement in python
    assert 'krb5-workstation [platform:rpm]' in (context / '_build' / 'bindep.txt').read_text()


@pytest.mark.integration
def test_an_ee_installing_the_collection_gets_its_dependencies_by_introspection(
        tmp_path: Path, ansible_env: dict[str, str]) -> None:
    """What ansible-builder finds in the installed collection (the builder stage runs the same introspect)."""
    run(['ansible-galaxy', 'collection', 'build', '--output-path', str(tmp_path), str(ROOT)], ansible_env)
    (tarball,) = tmp_path.glob('*.tar.gz')
    collections = tmp_path / 'collections'
    # Only the target path on the collection path, or ansible-galaxy finds the working tree "already installed".
    env = dict(ansible_env, ANSIBLE_COLLECTIONS_PATH=str(collections))
    run(['ansible-galaxy', 'collection', 'install', '--offline', '-p', str(collections), str(tarball)], env)
    found = yaml.safe_load(run(['ansible-builder', 'introspect', '--sanitize', str(collections)], env).stdout)
    python = [line.split('  #')[0] for line in found['python']]
    assert [p for p in python if p.startswith(EXTRAS)] == ['pywinrm[kerberos,credssp]>=0.5', 'pypsrp[kerberos,credssp]>=0.9']
    assert all(line.endswith('# from collection loopbreaker.notion') for line in found['python'] + found['system'])
    assert any(line.startswith('krb5-libs [platform:rpm]') for line in found['system'])

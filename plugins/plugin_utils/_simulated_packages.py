# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The twin's MSIX packages: registered per user, provisioned for all users, verified, removed.

Private to this collection. Kept apart from _simulated_windows so the package model has one owner;
SimulatedWindows mixes this class in. What it models, as Windows documents it and no more kindly:

* ``state['packages']`` are packages known to the machine (``Get-AppxPackage -AllUsers``), each with
  the install state per user SID; ``user_sids`` are only the users for whom it is *Installed*. A
  provisioned package is ``Staged`` for SYSTEM and registered for nobody until a user logs on.
* ``state['provisioned']`` are the packages staged for all users (``Get-AppxProvisionedPackage
  -Online``); ``log_on`` registers them for that user, as Windows does at each user's next logon.
  Provisioning needs no user session.
* An ``.msix`` file is a file whose ``meta`` is ``{kind: 'msix', identity: {name, publisher, version,
  architecture, executable}, signer, signature, signer_subject}``. Provisioning refuses a signature
  that is not valid, a manifest publisher that is not the signing certificate's subject, and a
  version lower than one of the same family already provisioned or installed (0x80073D06).
"""
from __future__ import annotations

import copy
import fnmatch
import ntpath
import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError
from ansible_collections.loopbreaker.notion.plugins.module_utils._msix import (
    family_name,
    full_name,
    publisher_id,
    version_key,
)

WINDOWS_APPS = 'C:\\Program Files\\WindowsApps'
SYSTEM_SID = 'S-1-5-18'
TRUSTED_INSTALLER_SID = 'S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464'
HIGHER_VERSION_INSTALLED = ('Deployment failed with HRESULT: 0x80073D06, The package could not be installed because '
                            'a higher version of this package is already installed.')


def msix_meta(name: str, publisher: str, version: str, *, architecture: str = 'x64', signer: str | None = None,
              signature: str = 'Valid', signer_subject: str | None = None,
              executable: str = 'app\\Notion.exe') -> dict[str, t.Any]:
    """The meta of a seeded .msix file (signer: the O= of the certificate, as get_file_info reports it)."""
    return {'kind': 'msix', 'identity': {'name': name, 'publisher': publisher, 'version': version,
                                         'architecture': architecture, 'executable': executable},
            'signer': signer, 'signature': signature, 'signer_subject': signer_subject or publisher}


class SimulatedPackages:
    """Mixin for SimulatedWindows."""

    state: dict[str, t.Any]

    # ------------------------------------------------------------------ seeding
    def provisioned(self) -> list[dict[str, t.Any]]:
        return t.cast(list[dict[str, t.Any]], self.state.setdefault('provisioned', []))

    def add_package(self, identity: dict[str, str], sids: list[str], *, signer: str | None = None) -> dict[str, t.Any]:
        """A package registered (Installed) for these users, as a per-user Add-AppxPackage leaves it."""
        package = self._package_record(identity)
        for sid in sids:
            package['user_states'][sid] = 'Installed'
        self._install_files(package, identity, signer)
        self.state['packages'].append(package)
        return package

    def log_on(self, sid: str) -> None:
        """The user starts an interactive session: explorer.exe, and every provisioned package registered."""
        self.add_process('explorer.exe', 'C:\\Windows\\explorer.exe', sid)  # type: ignore[attr-defined]
        for staged in self.provisioned():
            for package in self.state['packages']:
                if package['family_name'].lower() == staged['family_name'].lower() and sid in package.get(
                        'user_states', {}) and package['package_full_name'] != staged['package_name']:
                    # The newer provisioned version replaces the user's older registration.
                    if version_key(package['version']) < version_key(staged['version']):
                        package['user_states'].pop(sid)
            target = self._registered(staged['package_name'])
            if target is not None:
                target['user_states'][sid] = 'Installed'

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _package_record(identity: dict[str, str]) -> dict[str, t.Any]:
        package_name = full_name(identity['name'], identity['version'], identity.get('architecture', 'x64'),
                                 identity['publisher'])
        return {'name': identity['name'], 'package_full_name': package_name,
                'family_name': family_name(identity['name'], identity['publisher']), 'version': identity['version'],
                'install_location': ntpath.join(WINDOWS_APPS, package_name), 'publisher': identity['publisher'],
                'publisher_id': publisher_id(identity['publisher']),
                'architecture': identity.get('architecture', 'x64'), 'signature_kind': 'Developer', 'status': 'Ok',
                'user_states': {}}

    def _install_files(self, package: dict[str, t.Any], identity: dict[str, str], signer: str | None) -> None:
        executable = ntpath.join(package['install_location'], identity.get('executable') or 'app\\Notion.exe')
        self.write(executable, f"MZ Notion {identity['version']} (MSIX)",  # type: ignore[attr-defined]
                   meta={'kind': 'notion_exe', 'version': identity['version'], 'signer': signer,
                         'signature': 'Valid' if signer else 'NotSigned'}, owner=TRUSTED_INSTALLER_SID)

    def _registered(self, package_name: str) -> dict[str, t.Any] | None:
        return next((p for p in self.state['packages'] if p['package_full_name'].lower() == package_name.lower()), None)

    @staticmethod
    def _listed(package: dict[str, t.Any]) -> dict[str, t.Any]:
        listed = copy.deepcopy(package)
        # Packages seeded in the older shape (user_sids only) are Installed for those users.
        states = listed.get('user_states')
        if states is None:
            states = {sid: 'Installed' for sid in listed.get('user_sids', [])}
        listed['user_states'] = states
        listed['user_sids'] = [sid for sid, state in states.items() if state == 'Installed']
        for key in ('publisher', 'publisher_id', 'architecture', 'signature_kind'):
            listed.setdefault(key, None)
        listed.setdefault('status', 'Ok')
        return listed

    def _read_package(self, path: str) -> dict[str, t.Any]:
        entry = self._held_file(path)  # type: ignore[attr-defined]
        if entry is None or entry['type'] != 'file':
            raise BridgeOperationError(f"Cannot verify '{path}': the file does not exist.")
        info = self.op_get_file_info([path])['files'][0]  # type: ignore[attr-defined]
        meta = entry.get('meta') or {}
        identity = meta.get('identity')
        if meta.get('kind') != 'msix' or not identity:
            raise BridgeOperationError(f"'{path}' is not an MSIX package: it has no AppxManifest.xml (bundles are "
                                       'not supported).')
        return {'path': entry['path'], 'bytes': info['bytes'], 'sha256': info['sha256'], 'signature': info['signature'],
                'signer_subject': meta.get('signer_subject'),
                'identity': {'name': identity['name'], 'publisher': identity['publisher'],
                             'version': identity['version'], 'architecture': identity.get('architecture', 'x64'),
                             'executable': identity.get('executable'),
                             'publisher_id': publisher_id(identity['publisher']),
                             'family_name': family_name(identity['name'], identity['publisher']),
                             'package_full_name': full_name(identity['name'], identity['version'],
                                                            identity.get('architecture', 'x64'),
                                                            identity['publisher'])}}

    # -------------------------------------------------------------- operations
    def op_list_packages(self, names: list[str], include_provisioned: bool = False) -> dict[str, t.Any]:
        patterns = [n.lower() for n in names]
        result: dict[str, t.Any] = {
            'packages': [self._listed(p) for p in self.state['packages']
                         if any(fnmatch.fnmatchcase(p['name'].lower(), n) for n in patterns)]}
        if include_provisioned:
            result['provisioned'] = [copy.deepcopy(p) for p in self.provisioned()
                                     if any(fnmatch.fnmatchcase(p['display_name'].lower(), n) for n in patterns)]
        return result

    def op_verify_package(self, path: str, family_name: str | None = None,
                          sha256: str | None = None) -> dict[str, t.Any]:
        package = self._read_package(path)
        if sha256 and package['sha256'] != sha256.lower():
            raise BridgeOperationError(f"'{path}' has SHA-256 {package['sha256']}, expected {sha256.lower()}.")
        if package['signature']['status'] != 'Valid':
            raise BridgeOperationError(f"'{path}' has no valid signature (status {package['signature']['status']}).")
        found = package['identity']['family_name']
        if family_name and found.lower() != family_name.lower():
            raise BridgeOperationError(f"'{path}' is the package family {found} (publisher "
                                       f"{package['identity']['publisher']}), expected {family_name}.")
        return package

    def op_provision_package(self, path: str, family_name: str, sha256: str) -> dict[str, t.Any]:
        package = self.op_verify_package(path, family_name, sha256)
        identity = package['identity']
        if package['signer_subject'] != identity['publisher']:
            raise BridgeOperationError(
                'Deployment failed with HRESULT: 0x8007000B, The app manifest publisher name '
                f"({identity['publisher']}) must match the subject name of the signing certificate "
                f"({package['signer_subject']}).")
        same_family = [p for p in self.provisioned() if p['family_name'].lower() == identity['family_name'].lower()]
        installed = [p for p in self.state['packages'] if p['family_name'].lower() == identity['family_name'].lower()
                     and any(s == 'Installed' for s in self._listed(p)['user_states'].values())]
        wanted = version_key(identity['version'])
        if any(version_key(p['version']) > wanted for p in same_family + installed):
            raise BridgeOperationError(HIGHER_VERSION_INSTALLED)
        if any(p['package_name'].lower() == identity['package_full_name'].lower() for p in same_family):
            return {'package_name': identity['package_full_name'], 'version': identity['version'], 'changed': False}
        self.state['provisioned'] = [p for p in self.provisioned() if p not in same_family]
        record = self._registered(identity['package_full_name'])
        if record is None:
            record = self._package_record(identity)
            self.state['packages'].append(record)
        record.setdefault('user_states', {})[SYSTEM_SID] = 'Staged'
        self._install_files(record, identity, package['signature'].get('signer'))
        self.provisioned().append({
            'display_name': identity['name'], 'package_name': identity['package_full_name'],
            'family_name': identity['family_name'], 'version': identity['version'],
            'publisher_id': identity['publisher_id'], 'architecture': identity['architecture'],
            'install_location': record['install_location']})
        return {'package_name': identity['package_full_name'], 'version': identity['version'], 'changed': True}

    def op_remove_provisioned_package(self, package_name: str) -> dict[str, t.Any]:
        staged = [p for p in self.provisioned() if p['package_name'].lower() == package_name.lower()]
        if not staged:
            return {'removed': False, 'missing': True}
        self.state['provisioned'] = [p for p in self.provisioned() if p not in staged]
        return {'removed': True, 'missing': False}

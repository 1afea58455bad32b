# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulated Windows host's Authenticode signatures (a mixin of SimulatedWindows).

Private to this collection. A file's ``meta`` describes its signature the way
``Get-AuthenticodeSignature`` and the signing certificate would: ``signature`` (the
status; ``Valid`` when a signer is given and nothing else is said), ``signer`` (the
subject's O=), ``subject``, ``issuer`` (the issuing CA's CN) and ``ekus``. A file whose
meta names a signer but no issuer or EKUs has a certificate without them, and fails the
issuer and EKU checks: the twin never assumes what a real certificate would have to show.
``trusted_signing()`` gives the layout of a certificate from Azure Trusted Signing, which is
what Notion's installers carry (docs/signatures.md).
"""
from __future__ import annotations

import typing as t

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError
from ansible_collections.loopbreaker.notion.plugins.module_utils._signature import (
    CODE_SIGNING_EKU,
    NOTION_ORGANIZATION,
    TRUSTED_SIGNING_EKU,
    signature_problem,
)

SIGNATURE_FIELDS = ('signer', 'subject', 'issuer', 'ekus')
# Trusted Signing's per-subscriber identity EKU: its last arcs are the subscriber's own.
SUBSCRIBER_EKU = '1.3.6.1.4.1.311.97.990309390.766961637.194916062.941502583'


def trusted_signing(organization: str | None = NOTION_ORGANIZATION, *, ca: str = 'Microsoft ID Verified CS EOC CA 01',
                    status: str | None = None) -> dict[str, t.Any]:
    """Signature metadata of a file signed through Azure Trusted Signing for organization (None: unsigned)."""
    if organization is None:
        return {'signer': None, 'subject': None, 'issuer': None, 'ekus': [], 'signature': status or 'NotSigned'}
    quoted = '"' + organization + '"' if ',' in organization else organization
    meta = {'signer': organization, 'subject': f'CN={quoted}, O={quoted}, L=San Francisco, S=California, C=US',
            'issuer': ca, 'ekus': [CODE_SIGNING_EKU, TRUSTED_SIGNING_EKU, SUBSCRIBER_EKU]}
    if status is not None:
        meta['signature'] = status
    return meta


def signature_of(meta: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """What get_file_info reports as a file's signature."""
    meta = meta or {}
    signer = meta.get('signer')
    return {'status': meta.get('signature') or ('Valid' if signer else 'NotSigned'), 'signer': signer,
            'subject': meta.get('subject'), 'issuer': meta.get('issuer'), 'ekus': list(meta.get('ekus') or [])}


def signed_copy(meta: dict[str, t.Any] | None, *, status: str | None = None) -> dict[str, t.Any]:
    """The signature fields of meta, for a file an installer signed that way writes (status: its own, if broken)."""
    meta = meta or {}
    copied = {field: meta.get(field) for field in SIGNATURE_FIELDS}
    copied['ekus'] = list(meta.get('ekus') or [])
    copied['signature'] = status or ('Valid' if meta.get('signer') else 'NotSigned')
    return copied


class SimulatedSignatures:
    """op_verify_file for SimulatedWindows (get_file_info reports signature_of(meta))."""

    op_get_file_info: t.Callable[[list[str]], dict[str, t.Any]]

    def op_verify_file(self, path: str, sha256: str | None = None,
                       signer: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        info = self.op_get_file_info([path])['files'][0]
        if not info['exists']:
            raise BridgeOperationError(f"Cannot verify '{path}': the file does not exist.")
        if sha256 and info['sha256'] != sha256.lower():
            raise BridgeOperationError(f"'{path}' has SHA-256 {info['sha256']}, expected {sha256.lower()}.")
        if signer is not None:
            if not isinstance(signer, dict) or not signer.get('organization') or not signer.get('issuers'):
                raise BridgeOperationError('signer must be {organization, issuers, ekus}: who signed, through which '
                                           'certificate authorities, for which uses.')
            problem = signature_problem(path, info['signature'], signer)
            if problem is not None:
                raise BridgeOperationError(problem)
        return t.cast(dict[str, t.Any], info)

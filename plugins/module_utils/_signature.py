# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether an Authenticode signature is Notion's (or the configured publisher's): one rule, pure.

Private to this collection. The bridge reports a file's signature as ``{status, signer,
subject, issuer, ekus}``: the WinVerifyTrust status, the signing certificate's subject
``O=`` (its ``CN=`` when it has none), the whole subject, the issuing CA's ``CN=`` and the
certificate's EKU OIDs. A signature matches an expectation ``{organization, issuers, ekus}``
when

* the status is ``Valid`` (chain to a trusted root, not revoked, timestamped or in date);
* the subject organisation equals ``organization`` once both are normalised: Unicode
  NFC, whitespace runs collapsed, case of A-Z ignored, trailing punctuation dropped (so
  ``Notion Labs, Inc`` and ``Notion Labs, Inc.`` are the same name and ``Notion Labs Inc``
  or ``Notion Labs, Inc. Ltd`` are not). NFC, not NFKC: compatibility forms (fullwidth
  letters, a double-struck N, a one-dot leader for the final dot) spell other names that a CA
  can verify for someone else, so they must not fold into Notion's; and only A-Z is folded,
  because .NET's ToLowerInvariant maps a capital I with dot above (U+0130) to ``i`` where Python
  does not, and the bridge and the twin must decide alike;
* the issuer's common name matches one of ``issuers`` (``*`` wildcards, case ignored);
* every OID of ``ekus`` is among the certificate's EKUs.

Notion signs its Windows installers through Azure Trusted Signing (Microsoft "ID
Verified" certificates, a few days valid, issued by ``Microsoft ID Verified CS EOC CA 0x``
or ``... AOC CA 0x``), so the subject's O= is the stable identity, not a thumbprint; see
docs/signatures.md for the evidence. win_bridge.ps1 mirrors this rule in
``Get-BridgeSignerProblem``; the twin and the planners call ``signature_problem``.
"""
from __future__ import annotations

import fnmatch
import re
import typing as t
import unicodedata

CODE_SIGNING_EKU = '1.3.6.1.5.5.7.3.3'
# Present in every certificate Trusted Signing issues (with a per-subscriber 1.3.6.1.4.1.311.97.<...> beside it).
TRUSTED_SIGNING_EKU = '1.3.6.1.4.1.311.97.1.0'
TRUSTED_SIGNING_ISSUERS = ('Microsoft ID Verified CS EOC CA *', 'Microsoft ID Verified CS AOC CA *')
NOTION_ORGANIZATION = 'Notion Labs, Inc.'
# .NET's \s (what the bridge uses): Python's would also take the separators U+001C-U+001F for spaces.
_WHITESPACE = '\t\n\x0b\x0c\r\x85 \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000'
_TRAILING = re.compile(f'[{_WHITESPACE}.,;:]+$')
_SPACES = re.compile(f'[{_WHITESPACE}]+')
_ASCII_LOWER = str.maketrans('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')


def normalise_organization(value: str | None) -> str:
    """The comparison key of a subject organisation: NFC, single spaces, A-Z lower case, no trailing punctuation."""
    text = unicodedata.normalize('NFC', value or '')
    text = _SPACES.sub(' ', text).strip(' ')
    return _TRAILING.sub('', text).translate(_ASCII_LOWER)


def expectation(organization: str = NOTION_ORGANIZATION, issuers: t.Sequence[str] = TRUSTED_SIGNING_ISSUERS,
                ekus: t.Sequence[str] = (CODE_SIGNING_EKU,)) -> dict[str, t.Any]:
    """The bridge's ``signer`` parameter: who must have signed, through which CA, for which use."""
    return {'organization': organization, 'issuers': list(issuers), 'ekus': list(ekus)}


def _issuer_matches(issuer: str | None, patterns: t.Iterable[str]) -> bool:
    name = (issuer or '').strip().lower()
    return bool(name) and any(fnmatch.fnmatchcase(name, pattern.strip().lower()) for pattern in patterns)


def signature_problem(shown: str, signature: dict[str, t.Any] | None, expected: dict[str, t.Any]) -> str | None:
    """Why the signature of the file shown as ``shown`` is not the expected one, or None when it is.

    The messages are the bridge's: win_bridge.ps1 words them the same way.
    """
    signature = signature or {}
    status = signature.get('status') or 'NotSigned'
    if status != 'Valid':
        return f"'{shown}' has no valid signature (status {status})."
    signer = signature.get('signer')
    if normalise_organization(signer) != normalise_organization(expected['organization']):
        return f"'{shown}' is signed by {signer!r}, expected {expected['organization']!r}."
    issuers = list(expected.get('issuers') or [])
    if not _issuer_matches(signature.get('issuer'), issuers):
        return (f"'{shown}' is signed by {signer!r} through {signature.get('issuer')!r}, which is not one of the "
                f"expected issuers ({', '.join(issuers)}).")
    present = set(signature.get('ekus') or [])
    missing = [eku for eku in expected.get('ekus') or [] if eku not in present]
    if missing:
        return f"'{shown}' is signed by {signer!r} with a certificate without the EKU {', '.join(missing)}."
    return None

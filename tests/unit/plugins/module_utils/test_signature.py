# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_signature.py: whose Authenticode signature a file carries.

The table is what public signature dumps of Notion's Windows installers show (subject
``CN="Notion Labs, Inc.", O="Notion Labs, Inc.", L=San Francisco, S=California, C=US``,
issued by ``Microsoft ID Verified CS AOC CA 03`` / ``... EOC CA 0x`` through Azure Trusted
Signing, EKUs code signing + 1.3.6.1.4.1.311.97.*), next to what an impostor could present.
The end-to-end tests run the app rung on the twin with installers signed each way.
"""
from __future__ import annotations

import datetime
import typing as t

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _app, _diagnose
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._signature import (
    CODE_SIGNING_EKU,
    TRUSTED_SIGNING_EKU,
    expectation,
    normalise_organization,
    signature_problem,
)
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import seed_installer, seed_windows_user
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_signatures import trusted_signing
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state
from ansible_collections.loopbreaker.notion.tests.unit import bridge_ps1

NOTION = expectation()
NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
FILE = 'C:\\Installers\\Notion Setup 7.40.0.exe'
INSTALLER = FILE
ALICE = 'S-1-5-21-4444-5555-6666-1001'


def signed(**changes: t.Any) -> dict[str, t.Any]:
    """A signature as get_file_info reports Notion's: Trusted Signing, subject O=Notion Labs, Inc."""
    meta = trusted_signing('Notion Labs, Inc.', ca='Microsoft ID Verified CS AOC CA 03')
    signature = {'status': 'Valid', 'signer': meta['signer'], 'subject': meta['subject'], 'issuer': meta['issuer'],
                 'ekus': meta['ekus']}
    signature.update(changes)
    return signature


@pytest.mark.parametrize('value, key', [
    ('Notion Labs, Inc.', 'notion labs, inc'),
    ('Notion Labs, Inc', 'notion labs, inc'),
    ('NOTION LABS,  INC. ', 'notion labs, inc'),
    ('Notion\u00a0Labs, Inc.', 'notion labs, inc'),   # \s: a no-break space is a space
    ('Notion Labs Inc', 'notion labs inc'),
    ('Notion Labs, Inc. Ltd', 'notion labs, inc. ltd'),
    (None, ''),
])
def test_normalise_organization(value: str | None, key: str) -> None:
    assert normalise_organization(value) == key


@pytest.mark.parametrize('signature, problem', [
    (signed(), None),
    (signed(signer='Notion Labs, Inc'), None),
    (signed(signer='notion labs, inc.'), None),
    (signed(issuer='Microsoft ID Verified CS EOC CA 01'), None),
    (signed(issuer='Microsoft ID Verified CS EOC CA 04'), None),
    (signed(ekus=[CODE_SIGNING_EKU]), None),
    (signed(status='NotTrusted'), f"'{FILE}' has no valid signature (status NotTrusted)."),
    (signed(status='HashMismatch'), f"'{FILE}' has no valid signature (status HashMismatch)."),
    (None, f"'{FILE}' has no valid signature (status NotSigned)."),
    (signed(signer='Notion Labs Inc'), f"'{FILE}' is signed by 'Notion Labs Inc', expected 'Notion Labs, Inc.'."),
    (signed(signer='Notion Labs, Inc. Holdings'),
     f"'{FILE}' is signed by 'Notion Labs, Inc. Holdings', expected 'Notion Labs, Inc.'."),
    (signed(signer='Totally Notion Ltd'), f"'{FILE}' is signed by 'Totally Notion Ltd', expected 'Notion Labs, Inc.'."),
    (signed(issuer='Evil Code Signing CA'),
     f"'{FILE}' is signed by 'Notion Labs, Inc.' through 'Evil Code Signing CA', which is not one of the expected "
     'issuers (Microsoft ID Verified CS EOC CA *, Microsoft ID Verified CS AOC CA *).'),
    (signed(issuer=None),
     f"'{FILE}' is signed by 'Notion Labs, Inc.' through None, which is not one of the expected issuers "
     '(Microsoft ID Verified CS EOC CA *, Microsoft ID Verified CS AOC CA *).'),
    (signed(ekus=[TRUSTED_SIGNING_EKU]),
     f"'{FILE}' is signed by 'Notion Labs, Inc.' with a certificate without the EKU {CODE_SIGNING_EKU}."),
], ids=['as Notion signs', 'Inc without the dot', 'other case', 'EOC CA 01', 'EOC CA 04', 'code signing EKU only',
        'untrusted chain', 'altered file', 'not signed', 'other punctuation', 'longer name', 'impostor',
        'other CA', 'no issuer', 'no code-signing EKU'])
def test_signature_problem(signature: dict[str, t.Any] | None, problem: str | None) -> None:
    assert signature_problem(FILE, signature, NOTION) == problem


@pytest.mark.parametrize('impostor', [
    '\uff2e\uff4f\uff54\uff49\uff4f\uff4e \uff2c\uff41\uff42\uff53, \uff29\uff4e\uff43.',  # fullwidth
    '\u2115otion Labs, Inc.',                  # double-struck N
    'Notion Labs, Inc\u2024',                  # one dot leader, not a full stop
    'Notion Labs, \u2160nc.',                  # Roman numeral one
    'NOT\u0130ON LABS, \u0130NC.',             # capital I with dot above: .NET lower-cases it to i
    'Noti\u200bon Labs, Inc.',                 # zero-width space
    'N\u043etion Labs, Inc.',                  # Cyrillic o
    'Notion\x1cLabs, Inc.',                    # a file separator: Python's \s takes it for a space, .NET's not
], ids=['fullwidth', 'double-struck', 'one dot leader', 'roman numeral', 'dotted capital I', 'zero width',
        'cyrillic', 'file separator'])
def test_a_name_that_only_looks_like_notions_is_another_signer(impostor: str) -> None:
    """A CA verifies the name as spelt: a compatibility or look-alike spelling is someone else's name."""
    assert normalise_organization(impostor) != normalise_organization('Notion Labs, Inc.')
    assert signature_problem(FILE, signed(signer=impostor), NOTION) == \
        f"'{FILE}' is signed by {impostor!r}, expected 'Notion Labs, Inc.'."


def test_canonically_equivalent_spellings_are_one_name() -> None:
    """NFC: a precomposed and a decomposed letter are the same text, as both spell it."""
    assert normalise_organization('Soci\u00e9t\u00e9 G\u00e9n\u00e9rale') == \
        normalise_organization('Socie\u0301te\u0301 Ge\u0301ne\u0301rale')


def test_an_overridden_signer_names_its_own_issuers() -> None:
    other = expectation('Contoso Ltd', ['DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1'])
    theirs = signed(signer='Contoso Ltd', issuer='DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1')
    assert signature_problem(FILE, theirs, other) is None
    assert signature_problem(FILE, signed(), other) is not None


# ------------------------------------------------------ through the twin and the planners

def params(**args: t.Any) -> dict[str, t.Any]:
    validated = ArgumentSpecValidator(_app.ARGUMENT_SPEC, mutually_exclusive=_app.MUTUALLY_EXCLUSIVE,
                                      required_if=_app.REQUIRED_IF).validate(args)
    assert not validated.error_messages, validated.error_messages
    return validated.validated_parameters


def reinstall(twin: SimulatedWindows) -> dict[str, t.Any]:
    return _app.run(twin, params(state='reinstalled', installer=INSTALLER), check_mode=False, now=NOW,
                    entry_token='a1b2c3')


def twin_with_installer(meta: dict[str, t.Any]) -> SimulatedWindows:
    twin = SimulatedWindows(empty_state('WS01'))
    seed_windows_user(twin, 'alice', ALICE, loaded=True)
    seed_installer(twin, INSTALLER, '7.40.0')
    twin.state['files'][INSTALLER.lower()]['meta'].update(meta)
    return twin


def test_the_twin_reports_the_signing_certificate() -> None:
    twin = twin_with_installer(trusted_signing('Notion Labs, Inc.', ca='Microsoft ID Verified CS AOC CA 03'))
    [info] = twin.op_get_file_info([INSTALLER])['files']
    assert info['signature'] == signed()


def test_an_installer_signed_as_notion_signs_is_accepted_with_the_default_signer() -> None:
    twin = twin_with_installer(trusted_signing('Notion Labs, Inc.', ca='Microsoft ID Verified CS AOC CA 03'))
    result = reinstall(twin)
    assert [(u['user'], u['status']) for u in result['users']] == [('alice', 'reinstalled')]
    assert [task['executable'] for task in twin.state['tasks_run']][-1] == INSTALLER


@pytest.mark.parametrize('meta, problem', [
    ({'signer': 'Notion Labs, Inc.', 'issuer': 'Evil Code Signing CA'}, "through 'Evil Code Signing CA'"),
    ({'signer': 'Notion Labs, Inc.', 'ekus': [TRUSTED_SIGNING_EKU]}, f'without the EKU {CODE_SIGNING_EKU}'),
    ({'signer': 'Notion Labs Incorporated'}, "is signed by 'Notion Labs Incorporated', expected 'Notion Labs, Inc.'"),
], ids=['other CA', 'no code-signing EKU', 'other name'])
def test_an_impostor_installer_is_refused_before_anything_changed(meta: dict[str, t.Any], problem: str) -> None:
    twin = twin_with_installer(meta)
    files = dict(twin.state['files'])
    with pytest.raises(RequestError, match='refused, nothing was changed') as raised:
        reinstall(twin)
    assert problem in str(raised.value)
    assert twin.state['files'] == files and twin.state['tasks_run'] == []


def test_diagnose_takes_a_trusted_signing_notion_exe_for_notions() -> None:
    nsis = {'path': 'C:\\Users\\alice\\AppData\\Local\\Programs\\Notion\\Notion.exe', 'signature': signed()}
    fact = {'user': 'alice', 'data': {'exists': False}, 'logs': [], 'db': [], 'leveldb': [], 'block_rules': [],
            'install': {'nsis': nsis, 'msix': []}}
    assert not [f for f in _diagnose.local_findings(fact, None, 'windows') if f['code'] == 'install_unsigned']
    nsis['signature'] = signed(issuer='Evil Code Signing CA')
    [finding] = [f for f in _diagnose.local_findings(fact, None, 'windows') if f['code'] == 'install_unsigned']
    assert "through 'Evil Code Signing CA'" in finding['evidence'][0]


def test_the_bridge_applies_the_same_rule_wherever_it_checks_a_signer() -> None:
    text = bridge_ps1.bridge_text()
    for function in ('Assert-BridgeFileVerified', 'Open-BridgeVerifiedProgram'):
        body = bridge_ps1.function_text(text, function)
        # The rule in one place: no comparison of the signer of its own.
        assert 'Get-BridgeSignerProblem' in body and '-cne [string]$ExpectedSigner' not in body
    rule = bridge_ps1.function_text(text, 'Get-BridgeSignerProblem')
    # The messages signature_problem words, so the twin and the bridge fail alike.
    for fragment in ('has no valid signature (status ', ', expected ', ' through ',
                     'which is not one of the expected issuers (', 'with a certificate without the EKU '):
        assert fragment in rule, fragment
    key = bridge_ps1.function_text(text, 'ConvertTo-BridgeOrganizationKey')
    # NFC and A-Z only, as normalise_organization: NFKC folds fullwidth letters into Notion's name, and
    # ToLowerInvariant turns U+0130 into 'i' where Python does not.
    assert 'FormC)' in key and "'[\\s.,;:]+$'" in key and 'FormKC' not in key and 'ToLower' not in key
    assert '$code -ge 65 -and $code -le 90' in key
    signature = bridge_ps1.function_text(text, 'Get-BridgeSignature')
    assert 'X509EnhancedKeyUsageExtension' in signature and "-Attribute 'CN'" in signature

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/module_utils/_macos_app.py: the macOS command contract of the app module.

Tables of input -> argv for every COMMANDS entry and of tool output -> parsed
value; then run() driven by a fake runner (argv -> (rc, stdout, stderr)) that
fails the test on any command it was not told about, so each test also pins
down which commands run, in which order, and that check mode runs only
read-only ones. Homes, user data and bundle directories are real directories
under tmp_path; what happens inside a disk image is simulated by the runner.

Where the codesign samples come from (copied verbatim):
* SIRI: ``codesign --display --verbose=4 /Applications/Siri.app``, Apple-signed, no team —
  https://craftware.xyz/tips/Code-signing.html
* LOGIN: ``codesign --display --verbose --verbose $PPID`` on /usr/bin/login —
  https://real-world-systems.com/docs/codesign.1.html
* KALEIDOSCOPE: ``codesign --display -r- --deep -v Kaleidoscope.app``, a Developer ID app, only
  TeamIdentifier at that verbosity — https://github.com/autopkg/hjuutilainen-recipes/issues/22
* TELEPORT: the first lines of ``codesign -dv --verbose=4 "Teleport Connect.app"`` (an Electron
  app), as far as the public excerpt goes — https://github.com/gravitational/webapps/pull/1033
* NOTION is constructed, not captured: the Developer ID authority chain in the order codesign
  prints it, with Notion Labs' team LBQJ96FQ8D as Installomator's notion label expects it
  (https://github.com/Installomator/Installomator, fragments/labels/notion.sh).
The hdiutil/ditto/defaults/launchctl usage follows Installomator's fragments/functions.sh
(mountDMG, installFromZIP, installAppWithPath, runAsUser); the brew verbs follow Homebrew
Cask's USAGE.md (install/uninstall/reinstall/list --cask).
"""
from __future__ import annotations

import datetime
import hashlib
import os
import typing as t
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _app, _quarantine_state
from ansible_collections.loopbreaker.notion.plugins.module_utils import _macos_app as mac
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import DARWIN
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._lab import NOTION_TREE, seed_posix_home

NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
TOKEN = 'a1b2c3'
ENTRY_ID = '20260304T050607Z-a1b2c3'
NOTION_TEAM = 'LBQJ96FQ8D'
WORK = '/private/tmp/loopbreaker-notion.Ab12Cd'

SIRI = """Executable=/Applications/Siri.app/Contents/MacOS/Siri
Identifier=com.apple.siri.launcher
Format=app bundle with Mach-O thin (x86_64)
CodeDirectory v=20100 size=264 flags=0x0(none) hashes=3+3 location=embedded
Platform identifier=2
OSPlatform=36
OSSDKVersion=658432
OSVersionMin=658432
Hash type=sha256 size=32
CandidateCDHash sha256=533c83f3ab50c68c8b3922c91d6e610433612bbf
Hash choices=sha256
Page size=4096
CDHash=533c83f3ab50c68c8b3922c91d6e610433612bbf
Signature size=4105
Authority=Software Signing
Authority=Apple Code Signing Certification Authority
Authority=Apple Root CA
Info.plist entries=24
TeamIdentifier=not set
Sealed Resources version=2 rules=12 files=2
Internal requirements count=1 size=72
"""
LOGIN = """Executable=/usr/bin/login
Identifier=com.apple.login
Format=Mach-O thin (arm64e)
CodeDirectory v=20400 size=776 flags=0x0(none) hashes=14+7 location=embedded
Platform identifier=15
Signature size=4442
Authority=Software Signing
Authority=Apple Code Signing Certification Authority
Authority=Apple Root CA
Signed Time=Feb 10, 2024 at 03:42:04
Info.plist=not bound
TeamIdentifier=not set
Sealed Resources=none
"""
KALEIDOSCOPE = """Executable=/Users/abanks/Downloads/Kaleidoscope.app/Contents/MacOS/Kaleidoscope
Identifier=com.blackpixel.kaleidoscope
Format=bundle with Mach-O thin (x86_64)
CodeDirectory v=20200 size=18291 flags=0x0(none) hashes=907+3 location=embedded
Signature size=8507
Timestamp=Jun 9, 2015, 4:31:47 PM
Info.plist entries=41
TeamIdentifier=432ZXYXDNY
Sealed Resources version=2 rules=12 files=891
...
""" + ('designated => identifier "com.blackpixel.kaleidoscope" and anchor apple generic and certificate '
       '1[field.1.2.840.113635.100.6.2.6] /* exists */ and certificate leaf[field.1.2.840.113635.100.6.1.13] /* exists */ '
       'and certificate leaf[subject.OU] = "432ZXYXDNY"\n')
TELEPORT = """Executable=/Users/rav/Downloads/Teleport Connect.app/Contents/MacOS/Teleport Connect
Identifier=com.gravitational.teleport.connect
Format=app bundle with Mach-O thin (x86_64)
CodeDirectory v=20500 size=494 flags=0x10000(runtime) hashes=4+7 location=embedded
VersionPlatform=1
VersionMin=658176
VersionSDK=787200
Hash type=sha256 size=32
"""


def notion_signature(team: str = NOTION_TEAM, bundle: str = '/Applications/Notion.app') -> str:
    return (f'Executable={bundle}/Contents/MacOS/Notion\nIdentifier=notion.id\n'
            'Format=app bundle with Mach-O universal (x86_64 arm64)\n'
            'CodeDirectory v=20500 size=1234 flags=0x10000(runtime) hashes=27+7 location=embedded\n'
            f'Authority=Developer ID Application: Notion Labs, Incorporated ({team})\n'
            'Authority=Developer ID Certification Authority\nAuthority=Apple Root CA\n'
            f'Timestamp=Feb 2, 2026 at 10:11:12\nInfo.plist entries=33\nTeamIdentifier={team}\n'
            'Runtime Version=15.0.0\nSealed Resources version=2 rules=13 files=2041\n')


# ============================================================== command table

ARGV_CASES: list[tuple[str, tuple[t.Any, ...], list[str]]] = [
    ('list_accounts', (), ['/usr/bin/dscl', '.', '-list', '/Users', 'UniqueID']),
    ('console_users', (), ['/usr/bin/who']),
    ('processes', (), ['/bin/ps', '-axo', 'pid=,uid=,comm=']),
    ('bundle_version', ('/Applications/Notion.app',),
     ['/usr/bin/defaults', 'read', '/Applications/Notion.app/Contents/Info.plist', 'CFBundleShortVersionString']),
    ('signature', ('/Applications/Notion.app',), ['/usr/bin/codesign', '-dv', '--verbose=4', '/Applications/Notion.app']),
    ('verify_signature', ('/Users/a b/Applications/Notion.app',),
     ['/usr/bin/codesign', '--verify', '--deep', '--strict', '/Users/a b/Applications/Notion.app']),
    ('file_owner', ('/opt/homebrew/bin/brew',), ['/usr/bin/stat', '-f', '%Su', '/opt/homebrew/bin/brew']),
    ('current_user', (), ['/usr/bin/id', '-un']),
    ('brew_list', ('/opt/homebrew/bin/brew', None), ['/opt/homebrew/bin/brew', 'list', '--cask', '--versions', 'notion']),
    ('brew_list', ('/usr/local/bin/brew', 'admin'),
     ['/usr/bin/sudo', '-u', 'admin', '-H', '/usr/local/bin/brew', 'list', '--cask', '--versions', 'notion']),
    ('make_workdir', (), ['/usr/bin/mktemp', '-d', '/private/tmp/loopbreaker-notion.XXXXXX']),
    ('download', ('https://example.test/Notion-4.3.0.dmg', f'{WORK}/Notion-4.3.0.dmg', 600),
     ['/usr/bin/curl', '--fail', '--silent', '--show-error', '--location', '--max-time', '600', '--output',
      f'{WORK}/Notion-4.3.0.dmg', 'https://example.test/Notion-4.3.0.dmg']),
    ('attach', ('/tmp/Notion 4.3.0.dmg', f'{WORK}/mount'),
     ['/usr/bin/hdiutil', 'attach', '-nobrowse', '-readonly', '-mountpoint', f'{WORK}/mount', '/tmp/Notion 4.3.0.dmg']),
    ('detach', (f'{WORK}/mount',), ['/usr/bin/hdiutil', 'detach', f'{WORK}/mount']),
    ('unzip', ('/tmp/Notion.zip', f'{WORK}/unpacked'), ['/usr/bin/ditto', '-x', '-k', '/tmp/Notion.zip', f'{WORK}/unpacked']),
    ('copy_bundle', (f'{WORK}/Notion.app', '/Applications/Notion.app'),
     ['/usr/bin/ditto', f'{WORK}/Notion.app', '/Applications/Notion.app']),
    ('give_to', ('alice', '/Users/alice/Applications/Notion.app'),
     ['/usr/sbin/chown', '-R', 'alice', '/Users/alice/Applications/Notion.app']),
    ('remove', ('/Applications/Notion.app',), ['/bin/rm', '-rf', '/Applications/Notion.app']),
    ('signal', ('TERM', [601, 602]), ['/bin/kill', '-TERM', '601', '602']),
    ('signal', ('KILL', [602]), ['/bin/kill', '-KILL', '602']),
    ('open_as_user', (501, 'alice', '/Applications/Notion.app'),
     ['/bin/launchctl', 'asuser', '501', '/usr/bin/sudo', '-u', 'alice', '/usr/bin/open', '-a', '/Applications/Notion.app']),
    ('brew_fetch', ('/opt/homebrew/bin/brew', None), ['/opt/homebrew/bin/brew', 'fetch', '--cask', 'notion']),
    ('brew_install', ('/opt/homebrew/bin/brew', None), ['/opt/homebrew/bin/brew', 'install', '--cask', 'notion']),
    ('brew_reinstall', ('/opt/homebrew/bin/brew', 'admin'),
     ['/usr/bin/sudo', '-u', 'admin', '-H', '/opt/homebrew/bin/brew', 'reinstall', '--cask', 'notion']),
    ('brew_uninstall', ('/opt/homebrew/bin/brew', None), ['/opt/homebrew/bin/brew', 'uninstall', '--cask', 'notion']),
]


@pytest.mark.parametrize(('name', 'args', 'argv'), ARGV_CASES, ids=[f'{c[0]}-{i}' for i, c in enumerate(ARGV_CASES)])
def test_every_command_builds_the_expected_argv(name: str, args: tuple[t.Any, ...], argv: list[str]) -> None:
    assert mac.COMMANDS[name](*args) == argv


def test_the_table_covers_every_declared_command() -> None:
    assert {case[0] for case in ARGV_CASES} == set(mac.COMMANDS)


def test_read_only_commands_are_exactly_the_ones_that_only_look() -> None:
    assert mac.READ_ONLY == {'list_accounts', 'console_users', 'processes', 'bundle_version', 'signature',
                             'verify_signature', 'file_owner', 'current_user', 'brew_list'}


def test_the_shell_refuses_a_changing_command_in_check_mode() -> None:
    calls: list[list[str]] = []
    shell = mac.Shell(lambda argv: calls.append(argv) or (0, '', ''), check_mode=True)
    with pytest.raises(mac.MacAppError, match='remove changes the host and is never run in check mode'):
        shell.run('remove', '/Applications/Notion.app')
    assert calls == []


# ============================================================== parsers

SIGNATURE_CASES = [
    ('siri', SIRI, {'identifier': 'com.apple.siri.launcher', 'team_id': None,
                    'authorities': ['Software Signing', 'Apple Code Signing Certification Authority', 'Apple Root CA'],
                    'adhoc': False}),
    ('login', LOGIN, {'identifier': 'com.apple.login', 'team_id': None,
                      'authorities': ['Software Signing', 'Apple Code Signing Certification Authority', 'Apple Root CA'],
                      'adhoc': False}),
    ('kaleidoscope', KALEIDOSCOPE, {'identifier': 'com.blackpixel.kaleidoscope', 'team_id': '432ZXYXDNY',
                                    'authorities': [], 'adhoc': False}),
    ('teleport, no team line', TELEPORT, {'identifier': 'com.gravitational.teleport.connect', 'team_id': None,
                                          'authorities': [], 'adhoc': False}),
    ('notion', notion_signature(), {'identifier': 'notion.id', 'team_id': NOTION_TEAM,
                                    'authorities': ['Developer ID Application: Notion Labs, Incorporated (LBQJ96FQ8D)',
                                                    'Developer ID Certification Authority', 'Apple Root CA'],
                                    'adhoc': False}),
    ('ad hoc', 'Executable=/tmp/x.app/Contents/MacOS/x\nIdentifier=x\nSignature=adhoc\nTeamIdentifier=not set\n',
     {'identifier': 'x', 'team_id': None, 'authorities': [], 'adhoc': True}),
]


@pytest.mark.parametrize(('text', 'expected'), [c[1:] for c in SIGNATURE_CASES], ids=[c[0] for c in SIGNATURE_CASES])
def test_parse_signature(text: str, expected: dict[str, t.Any]) -> None:
    assert mac.parse_signature(text) == expected


@pytest.mark.parametrize('text', ['', '/Applications/Foo.app: code object is not signed at all\n'])
def test_parse_signature_rejects_what_is_not_a_signature(text: str) -> None:
    with pytest.raises(mac.CommandOutputError, match='unexpected codesign -dv output'):
        mac.parse_signature(text)


def test_parse_accounts_keeps_people_and_drops_service_accounts() -> None:
    output = '_amavisd                 83\n_appleevents             55\ndaemon                   1\nnobody                   -2\n' \
             'root                     0\nalice                    501\nbob                      502\n'
    assert mac.parse_accounts(output) == {'daemon': 1, 'nobody': -2, 'root': 0, 'alice': 501, 'bob': 502}


def test_parse_accounts_rejects_other_output() -> None:
    with pytest.raises(mac.CommandOutputError, match='unexpected dscl'):
        mac.parse_accounts('alice\n')


@pytest.mark.parametrize(('output', 'users'), [
    ('alice    console  Mar  4 05:00 \nalice    ttys000  Mar  4 05:01 \nbob      ttys001  Mar  4 05:02 \n', {'alice'}),
    ('alice    console  Mar  4 05:00 \ncarol    console  Mar  4 04:10 \n', {'alice', 'carol'}),
    ('', set()),
])
def test_parse_console_users(output: str, users: set[str]) -> None:
    assert mac.parse_console_users(output) == users


PS_OUTPUT = """    1     0 /sbin/launchd
  601   501 /Applications/Notion.app/Contents/MacOS/Notion
  602   501 /Applications/Notion.app/Contents/Frameworks/Notion Helper (Renderer).app/Contents/MacOS/Notion Helper (Renderer)
  603   501 /Applications/Notion.app/Contents/Frameworks/Notion Helper (GPU).app/Contents/MacOS/Notion Helper (GPU)
  604   501 /Applications/Notion Calendar.app/Contents/MacOS/Notion Calendar
  605   501 /Applications/Notion Calendar.app/Contents/Frameworks/Notion Calendar Helper.app/Contents/MacOS/Notion Calendar Helper
  701   502 /Users/bob/Applications/Notion.app/Contents/MacOS/Notion
  702   502 /usr/local/bin/notion
"""


def test_parse_processes_keeps_paths_with_spaces() -> None:
    parsed = mac.parse_processes(PS_OUTPUT)
    assert parsed[2] == {'pid': 602, 'uid': 501, 'name': 'Notion Helper (Renderer)',
                         'path': '/Applications/Notion.app/Contents/Frameworks/Notion Helper (Renderer).app/Contents/MacOS/'
                                 'Notion Helper (Renderer)'}
    assert len(parsed) == 8


def test_notion_processes_are_the_app_and_its_helpers_never_notion_calendar() -> None:
    assert [p['pid'] for p in mac.notion_processes(mac.parse_processes(PS_OUTPUT))] == [601, 602, 603, 701]


def test_parse_processes_rejects_other_output() -> None:
    with pytest.raises(mac.CommandOutputError, match='unexpected ps output'):
        mac.parse_processes('PID UID COMM\n')


@pytest.mark.parametrize(('path', 'bundle'), [
    ('/Applications/Notion.app/Contents/MacOS/Notion', '/Applications/Notion.app'),
    ('/Applications/Notion.app/Contents/Frameworks/Notion Helper (GPU).app/Contents/MacOS/Notion Helper (GPU)',
     '/Applications/Notion.app'),
    ('/Users/bob/Applications/Notion.app/Contents/MacOS/Notion', '/Users/bob/Applications/Notion.app'),
    ('/usr/local/bin/notion', None),
])
def test_bundle_of(path: str, bundle: str | None) -> None:
    assert mac.bundle_of(path) == bundle


@pytest.mark.parametrize(('parser', 'output', 'value'), [
    (mac.parse_version, '4.3.0\n', '4.3.0'),
    (mac.parse_brew_versions, 'notion 4.3.0\n', '4.3.0'),
    (mac.parse_brew_versions, 'notion 4.2.0 4.3.0\n', '4.3.0'),
    (mac.parse_brew_versions, '', None),
    (mac.parse_workdir, f'{WORK}\n', WORK),
    (mac.parse_user, 'admin\n', 'admin'),
])
def test_small_parsers(parser: t.Callable[[str], t.Any], output: str, value: t.Any) -> None:
    assert parser(output) == value


@pytest.mark.parametrize(('parser', 'output'), [
    (mac.parse_version, '\n'),
    (mac.parse_version, '4.3.0\n4.3.1\n'),
    (mac.parse_workdir, '/tmp/elsewhere\n'),
    (mac.parse_workdir, f'{WORK}/../../etc\n'),
    (mac.parse_user, '\n'),
])
def test_small_parsers_reject_what_they_do_not_know(parser: t.Callable[[str], t.Any], output: str) -> None:
    with pytest.raises(mac.CommandOutputError):
        parser(output)


# ============================================================== run() with a fake Mac


class FakeMac:
    """argv -> (rc, out, err), or a list answered in order (the last one repeating); records every call."""

    def __init__(self) -> None:
        self.responses: dict[tuple[str, ...], list[tuple[int, str, str]]] = {}
        self.calls: list[list[str]] = []

    def on(self, argv: list[str], *responses: tuple[int, str, str]) -> FakeMac:
        self.responses[tuple(argv)] = list(responses)
        return self

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(list(argv))
        queue = self.responses.get(tuple(argv))
        assert queue is not None, f'unexpected command: {argv}'
        return queue.pop(0) if len(queue) > 1 else queue[0]


def kind(argv: list[str]) -> str:
    """What a command line is, written out independently of COMMANDS."""
    if argv[0] == '/usr/bin/sudo' and argv[1] == '-u':
        argv = argv[4:]
    tool = os.path.basename(argv[0])
    if tool == 'codesign':
        return 'signature' if argv[1] == '-dv' else 'verify_signature'
    if tool == 'ditto':
        return 'unzip' if argv[1] == '-x' else 'copy_bundle'
    if tool == 'hdiutil':
        return argv[1]
    if tool == 'brew':
        return 'brew_' + argv[1]
    return {'dscl': 'list_accounts', 'who': 'console_users', 'ps': 'processes', 'defaults': 'bundle_version',
            'stat': 'file_owner', 'id': 'current_user', 'mktemp': 'make_workdir', 'curl': 'download',
            'chown': 'give_to', 'rm': 'remove', 'kill': 'signal', 'launchctl': 'open_as_user'}[tool]


LOOKS_ONLY = {'list_accounts', 'console_users', 'processes', 'bundle_version', 'signature', 'verify_signature',
              'file_owner', 'current_user', 'brew_list'}


class Mac:
    """A Mac under tmp_path: /Users with alice (501, at the console, running Notion) and bob (502, logged off)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / 'Users'
        self.root.mkdir()
        self.alice_data = Path(seed_posix_home(str(self.root), 'alice', platform='darwin'))
        seed_posix_home(str(self.root), 'bob', platform='darwin', with_notion=False)
        (self.root / 'Shared').mkdir()
        self.app = str(tmp / 'Applications' / 'Notion.app')
        os.makedirs(self.app)
        self.virtual: set[str] = set()
        self.sleeps: list[float] = []
        self.clock_now = 0.0
        self.runner = FakeMac()
        self.ps_lines = [f'  601   501 {self.app}/Contents/MacOS/Notion',
                         f'  602   501 {self.app}/Contents/Frameworks/Notion Helper (Renderer).app/Contents/MacOS/'
                         'Notion Helper (Renderer)',
                         '  900   501 /Applications/Notion Calendar.app/Contents/MacOS/Notion Calendar']
        self.runner.on(['/usr/bin/dscl', '.', '-list', '/Users', 'UniqueID'],
                       (0, '_www 70\ndaemon 1\nroot 0\nalice 501\nbob 502\nShared 9999\n', ''))
        self.runner.on(['/usr/bin/who'], (0, 'alice    console  Mar  4 05:00 \nalice    ttys000  Mar  4 05:01 \n', ''))
        self.bundle(self.app, '4.2.0')

    # ---- seeding the fake
    def ps(self, *rounds: list[str]) -> None:
        """What ps answers: first at discovery, then at each later look (the last answer repeats)."""
        self.runner.on(['/bin/ps', '-axo', 'pid=,uid=,comm='],
                       *[(0, '    1     0 /sbin/launchd\n' + ''.join(line + '\n' for line in lines), '') for lines in rounds])

    def bundle(self, path: str, *versions: str, team: str = NOTION_TEAM) -> None:
        self.runner.on(['/usr/bin/defaults', 'read', f'{path}/Contents/Info.plist', 'CFBundleShortVersionString'],
                       *[(0, f'{v}\n', '') for v in versions])
        self.runner.on(['/usr/bin/codesign', '-dv', '--verbose=4', path], (0, '', notion_signature(team, path)))
        self.runner.on(['/usr/bin/codesign', '--verify', '--deep', '--strict', path], (0, '', ''))

    def dmg(self, name: str = 'Notion-4.3.0.dmg', version: str = '4.3.0', team: str = NOTION_TEAM) -> str:
        """A local .dmg the fake knows how to mount; returns its path."""
        path = str(self.tmp / name)
        Path(path).write_bytes(b'koly dmg ' + name.encode())
        self.runner.on(['/usr/bin/mktemp', '-d', '/private/tmp/loopbreaker-notion.XXXXXX'], (0, WORK + '\n', ''))
        self.runner.on(['/usr/bin/hdiutil', 'attach', '-nobrowse', '-readonly', '-mountpoint', f'{WORK}/mount', path],
                       (0, f'/dev/disk4\tGUID_partition_scheme\t\n/dev/disk4s1\tApple_HFS\t{WORK}/mount\n', ''))
        self.virtual.add(f'{WORK}/mount/Notion.app')
        self.runner.on(['/usr/bin/ditto', f'{WORK}/mount/Notion.app', f'{WORK}/Notion.app'], (0, '', ''))
        self.runner.on(['/usr/bin/hdiutil', 'detach', f'{WORK}/mount'], (0, '"disk4" ejected.\n', ''))
        self.bundle(f'{WORK}/Notion.app', version, team=team)
        self.runner.on(['/bin/rm', '-rf', WORK], (0, '', ''))
        return path

    def replaceable(self, path: str, old: str, new: str) -> None:
        """The target bundle: old version at discovery, new after the copy."""
        self.bundle(path, old, new)
        self.runner.on(['/bin/rm', '-rf', path], (0, '', ''))
        self.runner.on(['/usr/bin/ditto', f'{WORK}/Notion.app', path], (0, '', ''))

    def kills(self, *pids: int, signal: str = 'TERM') -> None:
        self.runner.on(['/bin/kill', f'-{signal}', *map(str, pids)], (0, '', ''))

    # ---- running
    def exists(self, path: str) -> bool:
        return path in self.virtual or os.path.exists(path)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock_now += seconds

    def run(self, *, check_mode: bool = False, **args: t.Any) -> dict[str, t.Any]:
        args.setdefault('profiles_root', str(self.root))
        args.setdefault('state_dir', str(self.root.parent / 'state'))
        args.setdefault('app_path', self.app)
        validated = ArgumentSpecValidator(_app.ARGUMENT_SPEC, mutually_exclusive=_app.MUTUALLY_EXCLUSIVE,
                                          required_if=_app.REQUIRED_IF).validate(args)
        assert not validated.error_messages, validated.error_messages
        self.runner.calls.clear()
        return mac.run(validated.validated_parameters, runner=self.runner, check_mode=check_mode, now=NOW, token=TOKEN,
                       path_exists=self.exists, host=LocalHost(str(self.root), 'darwin', args['state_dir']), sleep=self.sleep,
                       clock=lambda: self.clock_now)

    def kinds(self) -> list[str]:
        return [kind(argv) for argv in self.runner.calls]

    def changing_calls(self) -> list[list[str]]:
        return [argv for argv in self.runner.calls if kind(argv) not in LOOKS_ONLY]


@pytest.fixture
def host(tmp_path: Path) -> Mac:
    return Mac(tmp_path)


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


# ---- discovery


@pytest.mark.parametrize('state', ['stopped', 'restarted', 'absent', 'present'])
def test_discovery_facts_in_every_state_and_check_mode_only_looks(host: Mac, state: str) -> None:
    host.ps(host.ps_lines)
    args: dict[str, t.Any] = {'state': state}
    if state == 'present':
        args['installer'] = host.dmg()
    result = host.run(check_mode=True, **args)
    facts = result['facts']
    assert facts['bundles'][0] == {'path': host.app, 'scope': 'machine', 'user': None, 'exists': True, 'version': '4.2.0',
                                   'team_id': NOTION_TEAM, 'authority':
                                   'Developer ID Application: Notion Labs, Incorporated (LBQJ96FQ8D)', 'running': 2}
    assert [(u['user'], u['uid'], u['logged_on'], u['running']) for u in facts['users']] == \
        [('alice', 501, True, 2), ('bob', 502, False, 0)]
    assert facts['users'][0]['user_data'] == str(host.alice_data)
    assert facts['users'][0]['user_data_bytes'] == sum(len(c.encode()) for c in NOTION_TREE.values())
    assert facts['users'][1]['user_data'] is None
    assert set(host.kinds()) <= LOOKS_ONLY, host.kinds()
    assert result['changed'] is True


def test_a_users_own_bundle_is_discovered_with_its_version(host: Mac) -> None:
    own = str(host.root / 'bob' / 'Applications' / 'Notion.app')
    os.makedirs(own)
    host.bundle(own, '4.1.0')
    host.ps([])
    result = host.run(state='stopped', check_mode=True)
    assert [(b['path'], b['scope'], b['user'], b['version']) for b in result['facts']['bundles']] == [
        (host.app, 'machine', None, '4.2.0'), (str(host.root / 'alice' / 'Applications' / 'Notion.app'), 'user', 'alice', None),
        (own, 'user', 'bob', '4.1.0')]
    assert result['changed'] is False and result['users'] == []


# ---- present / reinstalled


def test_present_with_a_newer_dmg_verifies_before_it_stops_or_removes_anything(host: Mac) -> None:
    installer = host.dmg()
    host.ps(host.ps_lines, [])
    host.kills(601, 602)
    host.replaceable(host.app, '4.2.0', '4.3.0')
    result = host.run(state='present', installer=installer, checksum=sha256(installer))
    assert result['changed'] is True and 'failed' not in result
    assert result['bundles'] == [{'path': host.app, 'scope': 'machine', 'user': None, 'status': 'upgraded', 'reason': None,
                                  'version_before': '4.2.0', 'version_after': '4.3.0',
                                  'operations': ['stop', 'remove', 'copy', 'verify']}]
    assert [(u['user'], u['status'], u['processes_stopped']) for u in result['users']] == [('alice', 'stopped', [601, 602])]
    kinds = host.kinds()
    assert kinds[kinds.index('make_workdir'):] == [
        'make_workdir', 'attach', 'copy_bundle', 'detach', 'verify_signature', 'signature', 'bundle_version',
        'signal', 'processes', 'remove', 'copy_bundle', 'verify_signature', 'signature', 'bundle_version', 'remove']
    assert host.runner.calls[-1] == ['/bin/rm', '-rf', WORK]
    assert ['/bin/kill', '-TERM', '900'] not in host.runner.calls, 'Notion Calendar is left alone'
    assert result['diff'] == {'before': f'{host.app}: 4.2.0\n', 'after': f'{host.app}: 4.3.0 (upgraded)\n'}


def test_present_check_mode_plans_the_same_and_only_looks(host: Mac) -> None:
    installer = host.dmg()
    host.ps(host.ps_lines)
    result = host.run(state='present', installer=installer, check_mode=True)
    assert result['changed'] is True
    assert [(b['status'], b['operations'], b['version_after']) for b in result['bundles']] == \
        [('upgraded', ['stop', 'remove', 'copy', 'verify'], '4.3.0')]
    assert host.changing_calls() == []


def test_present_with_the_same_version_changes_nothing(host: Mac) -> None:
    installer = host.dmg(name='Notion-4.2.0.dmg', version='4.2.0')
    host.ps(host.ps_lines)
    for check_mode in (True, False):
        result = host.run(state='present', installer=installer, check_mode=check_mode)
        assert result['changed'] is False
        assert [(b['status'], b['operations']) for b in result['bundles']] == [('unchanged', [])]
        assert result['users'] == []
        assert host.changing_calls() == []


def test_present_installs_a_missing_bundle(host: Mac) -> None:
    os.rmdir(host.app)
    installer = host.dmg()
    host.ps([])
    host.bundle(host.app, '4.3.0')
    host.runner.on(['/usr/bin/ditto', f'{WORK}/Notion.app', host.app], (0, '', ''))
    result = host.run(state='present', installer=installer)
    assert [(b['status'], b['version_before'], b['version_after'], b['operations']) for b in result['bundles']] == \
        [('installed', None, '4.3.0', ['copy', 'verify'])]
    assert 'remove' not in host.kinds()[:-1]


def test_present_with_an_unknown_version_leaves_an_installed_bundle_alone(host: Mac) -> None:
    installer = host.dmg(name='notion-latest.dmg')
    host.ps([])
    result = host.run(state='present', installer=installer)
    assert result['changed'] is False
    assert result['bundles'][0]['status'] == 'unchanged'
    assert result['bundles'][0]['reason'] == 'installer version unknown: Notion is installed, left as it is (set version)'


def test_reinstalled_from_a_zip_replaces_the_machine_bundle_and_a_users_own(host: Mac) -> None:
    own = str(host.root / 'bob' / 'Applications' / 'Notion.app')
    os.makedirs(own)
    zipped = str(host.tmp / 'Notion-4.3.0-universal.zip')
    Path(zipped).write_bytes(b'PK zip')
    host.runner.on(['/usr/bin/mktemp', '-d', '/private/tmp/loopbreaker-notion.XXXXXX'], (0, WORK + '\n', ''))
    host.runner.on(['/usr/bin/ditto', '-x', '-k', zipped, f'{WORK}/unpacked'], (0, '', ''))
    host.virtual.add(f'{WORK}/unpacked/Notion.app')
    host.bundle(f'{WORK}/unpacked/Notion.app', '4.3.0')
    host.runner.on(['/bin/rm', '-rf', WORK], (0, '', ''))
    host.ps([])
    host.replaceable(host.app, '4.2.0', '4.3.0')
    host.bundle(own, '4.1.0', '4.3.0')
    host.runner.on(['/bin/rm', '-rf', own], (0, '', ''))
    host.runner.on(['/usr/bin/ditto', f'{WORK}/unpacked/Notion.app', own], (0, '', ''))
    host.runner.on(['/usr/bin/ditto', f'{WORK}/unpacked/Notion.app', host.app], (0, '', ''))
    host.runner.on(['/usr/sbin/chown', '-R', 'bob', own], (0, '', ''))
    result = host.run(state='reinstalled', installer=zipped)
    assert [(b['user'], b['status'], b['version_before'], b['version_after'], b['operations'])
            for b in result['bundles']] == [
        (None, 'reinstalled', '4.2.0', '4.3.0', ['remove', 'copy', 'verify']),
        ('bob', 'reinstalled', '4.1.0', '4.3.0', ['remove', 'copy', 'give_to', 'verify'])]
    assert [(u['user'], u['status'], u['version_after']) for u in result['users']] == [('bob', 'reinstalled', '4.3.0')]
    assert ['/usr/sbin/chown', '-R', 'bob', own] in host.runner.calls


def test_a_team_mismatch_is_refused_before_anything_is_stopped_or_removed(host: Mac) -> None:
    installer = host.dmg(team='ABCDE12345')
    host.ps(host.ps_lines)
    with pytest.raises(mac.MacAppError) as raised:
        host.run(state='reinstalled', installer=installer)
    assert str(raised.value) == (f"Notion.app in installer {installer!r} is signed by team ABCDE12345, expected "
                                 f"{NOTION_TEAM}: refused, nothing was changed")
    outside_workdir = [argv for argv in host.changing_calls()
                       if not any(arg.startswith('/private/tmp/loopbreaker-notion.') for arg in argv)]
    assert outside_workdir == []
    assert host.runner.calls[-1] == ['/bin/rm', '-rf', WORK], 'the work directory is cleaned up'


def test_team_id_option_is_the_team_required(host: Mac) -> None:
    installer = host.dmg(team='ABCDE12345')
    host.ps([])
    host.replaceable(host.app, '4.2.0', '4.3.0')
    host.runner.on(['/usr/bin/codesign', '-dv', '--verbose=4', host.app], (0, '', notion_signature('ABCDE12345', host.app)))
    result = host.run(state='reinstalled', installer=installer, team_id='ABCDE12345')
    assert result['bundles'][0]['status'] == 'reinstalled'


def test_a_bundle_failing_codesign_verify_is_refused(host: Mac) -> None:
    installer = host.dmg()
    host.runner.on(['/usr/bin/codesign', '--verify', '--deep', '--strict', f'{WORK}/Notion.app'],
                   (1, '', f'{WORK}/Notion.app: a sealed resource is missing or invalid\n'))
    host.ps(host.ps_lines)
    with pytest.raises(mac.MacAppError, match='fails code signature verification .*a sealed resource is missing or '
                                              'invalid.*refused, nothing was changed'):
        host.run(state='reinstalled', installer=installer)
    assert 'signal' not in host.kinds() and ['/bin/rm', '-rf', host.app] not in host.runner.calls


def test_a_checksum_mismatch_is_refused_before_any_command_but_discovery(host: Mac) -> None:
    installer = host.dmg()
    host.ps(host.ps_lines)
    for check_mode in (True, False):
        with pytest.raises(mac.MacAppError) as raised:
            host.run(state='reinstalled', installer=installer, checksum='0' * 64, check_mode=check_mode)
        assert str(raised.value) == (f"installer {installer!r} has SHA-256 {sha256(installer)}, expected {'0' * 64}: "
                                     'refused, nothing was changed')
        assert set(host.kinds()) <= LOOKS_ONLY


def test_a_disk_image_with_another_version_inside_is_refused(host: Mac) -> None:
    installer = host.dmg(name='Notion-4.3.0.dmg', version='4.2.9')
    host.ps([])
    with pytest.raises(mac.MacAppError, match="holds Notion 4.2.9, not 4.3.0 as its name or the version option says"):
        host.run(state='reinstalled', installer=installer)


def test_a_missing_installer_is_refused(host: Mac) -> None:
    host.ps([])
    missing = str(host.tmp / 'Notion-4.3.0.dmg')
    with pytest.raises(RequestError, match=f"^installer {missing!r} does not exist on the host; nothing was changed$"):
        host.run(state='present', installer=missing)


def test_a_failed_download_changes_nothing(host: Mac) -> None:
    url = 'https://desktop-release.notion-static.com/Notion-4.3.0.dmg'
    host.ps(host.ps_lines)
    host.runner.on(['/usr/bin/mktemp', '-d', '/private/tmp/loopbreaker-notion.XXXXXX'], (0, WORK + '\n', ''))
    host.runner.on(mac.COMMANDS['download'](url, f'{WORK}/Notion-4.3.0.dmg', 600),
                   (22, '', 'curl: (22) The requested URL returned error: 404\n'))
    host.runner.on(['/bin/rm', '-rf', WORK], (0, '', ''))
    with pytest.raises(mac.MacAppError, match=r'^could not download .*error: 404; nothing was changed$'):
        host.run(state='reinstalled', installer=url)
    assert [kind(argv) for argv in host.changing_calls()] == ['make_workdir', 'download', 'remove']


# ---- stopped / restarted


def test_stopped_ends_notion_and_its_helpers_and_waits(host: Mac) -> None:
    host.ps(host.ps_lines, host.ps_lines[1:], [host.ps_lines[2]])
    host.kills(601, 602)
    result = host.run(state='stopped')
    assert result['changed'] is True
    assert [(u['user'], u['status'], u['processes_stopped']) for u in result['users']] == [('alice', 'stopped', [601, 602])]
    assert host.kinds() == ['list_accounts', 'console_users', 'processes', 'bundle_version', 'signature', 'signal',
                            'processes', 'processes']
    assert host.sleeps == [mac.POLL_SECONDS]


def test_stopped_kills_what_ignores_term_and_fails_when_it_still_runs(host: Mac) -> None:
    host.ps(host.ps_lines)
    host.kills(601, 602)
    host.kills(601, 602, signal='KILL')
    result = host.run(state='stopped', stop_timeout=2)
    assert result['failed'] is True
    assert result['users'][0]['status'] == 'failed'
    assert result['users'][0]['reason'] == 'Notion is still running (pid 601, 602) after 2 s'
    assert result['msg'] == 'alice: Notion is still running (pid 601, 602) after 2 s'
    assert ['/bin/kill', '-KILL', '601', '602'] in host.runner.calls


def test_stopped_with_nothing_running_changes_nothing(host: Mac) -> None:
    host.ps([])
    result = host.run(state='stopped')
    assert result['changed'] is False and result['users'] == []
    assert host.changing_calls() == []


def test_restarted_relaunches_in_the_users_console_session_and_a_logged_off_user_is_pending(host: Mac) -> None:
    bob_line = f'  701   502 {host.app}/Contents/MacOS/Notion'
    host.ps(host.ps_lines + [bob_line], [])
    host.kills(601, 602)
    host.runner.on(['/bin/launchctl', 'asuser', '501', '/usr/bin/sudo', '-u', 'alice', '/usr/bin/open', '-a', host.app],
                   (0, '', ''))
    result = host.run(state='restarted')
    assert [(u['user'], u['status'], u['reason'], u['relaunched']) for u in result['users']] == [
        ('alice', 'restarted', None, host.app),
        ('bob', 'pending', 'not logged on: Notion starts with their next session', None)]
    assert ['/bin/kill', '-TERM', '701'] not in host.runner.calls
    assert not [argv for argv in host.runner.calls if '502' in argv or 'bob' in argv]
    assert 'failed' not in result


def test_restarted_check_mode_only_looks(host: Mac) -> None:
    host.ps(host.ps_lines)
    result = host.run(state='restarted', check_mode=True)
    assert [(u['user'], u['status'], u['operations']) for u in result['users']] == [('alice', 'restarted', ['stop', 'open'])]
    assert host.changing_calls() == []


def test_restarted_says_so_when_it_could_not_relaunch(host: Mac) -> None:
    host.ps(host.ps_lines, [])
    host.kills(601, 602)
    host.runner.on(['/bin/launchctl', 'asuser', '501', '/usr/bin/sudo', '-u', 'alice', '/usr/bin/open', '-a', host.app],
                   (1, '', 'Could not find domain for port (Aqua)\n'))
    result = host.run(state='restarted')
    assert result['users'][0]['status'] == 'failed'
    assert result['users'][0]['reason'] == 'could not relaunch Notion in their session: Could not find domain for port (Aqua)'


# ---- absent


def test_absent_keeps_user_data(host: Mac) -> None:
    host.ps(host.ps_lines, [])
    host.kills(601, 602)
    host.runner.on(['/bin/rm', '-rf', host.app], (0, '', ''))
    before = tree(host.alice_data)
    result = host.run(state='absent')
    assert [(b['status'], b['version_after'], b['operations']) for b in result['bundles']] == \
        [('removed', None, ['stop', 'remove'])]
    assert tree(host.alice_data) == before
    assert result['users'][0]['quarantine_id'] is None


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to give the home the uid dscl reports')
def test_absent_with_remove_user_data_quarantines_it_restorably(host: Mac) -> None:
    os.chown(host.root / 'alice', 501, -1)   # as on a Mac: the home belongs to the account dscl lists
    host.ps(host.ps_lines, [])
    host.kills(601, 602)
    host.runner.on(['/bin/rm', '-rf', host.app], (0, '', ''))
    before = tree(host.alice_data)
    result = host.run(state='absent', remove_user_data=True)
    assert [(u["user"], u["status"], u["quarantine_id"]) for u in result["users"]] == [("alice", "removed", ENTRY_ID)]
    assert not host.alice_data.exists()
    entry = host.root / 'alice' / 'Library' / 'Application Support' / 'loopbreaker' / 'quarantine' / ENTRY_ID
    assert (entry / 'manifest.json').is_file() and oct(entry.stat().st_mode & 0o777) == '0o700'
    assert tree(entry / 'items' / '000-Notion') == before
    restored = _quarantine_state.run(LocalHost(str(host.root), 'linux', str(host.root.parent / 'state')), DARWIN,
                                     {'state': 'restored', 'id': ENTRY_ID, 'force': False, 'users': ['alice'],
                                      'exclude_users': None, 'stop_app': True},
                                     check_mode=False, now=NOW, entry_token='d4e5f6')
    assert restored['changed'] is True and 'failed' not in restored
    assert tree(host.alice_data) == before


def test_absent_check_mode_moves_nothing(host: Mac) -> None:
    host.ps(host.ps_lines)
    before = tree(host.alice_data)
    result = host.run(state='absent', remove_user_data=True, check_mode=True)
    assert result['users'][0]['operations'] == ['stop', 'quarantine']
    assert tree(host.alice_data) == before
    assert host.changing_calls() == []


# ---- Homebrew


def brew_host(host: Mac, *, owner: str, installed: str | None) -> str:
    brew = '/opt/homebrew/bin/brew'
    host.virtual.add(brew)
    host.runner.on(['/usr/bin/stat', '-f', '%Su', brew], (0, f'{owner}\n', ''))
    host.runner.on(['/usr/bin/id', '-un'], (0, 'root\n', ''))  # the module runs as root (become)
    run_as = None if owner == 'root' else owner
    host.runner.on(mac.COMMANDS['brew_list'](brew, run_as), (0, f'notion {installed}\n', '') if installed else (1, '', ''))
    return brew


def test_homebrew_present_installs_the_cask_as_its_owner(host: Mac) -> None:
    os.rmdir(host.app)
    brew = brew_host(host, owner='admin', installed=None)
    host.ps([])
    host.runner.on(mac.COMMANDS['brew_fetch'](brew, 'admin'), (0, '', ''))
    host.runner.on(mac.COMMANDS['brew_install'](brew, 'admin'), (0, '', ''))
    host.bundle('/Applications/Notion.app', '4.3.0')
    result = host.run(state='present', use_homebrew=True, app_path=None)
    assert [(b['status'], b['version_after'], b['operations']) for b in result['bundles']] == \
        [('installed', '4.3.0', ['brew_fetch', 'brew_install', 'verify'])]
    assert ['/usr/bin/sudo', '-u', 'admin', '-H', brew, 'install', '--cask', 'notion'] in host.runner.calls


def test_homebrew_present_with_the_cask_installed_changes_nothing(host: Mac) -> None:
    brew_host(host, owner='admin', installed='4.2.0')
    host.ps([])
    host.bundle('/Applications/Notion.app', '4.2.0')
    host.virtual.add('/Applications/Notion.app')
    result = host.run(state='present', use_homebrew=True, app_path=None)
    assert result['changed'] is False and result['bundles'][0]['status'] == 'unchanged'
    assert result['facts']['homebrew'] == {'path': '/opt/homebrew/bin/brew', 'owner': 'admin', 'run_as': 'admin',
                                           'notion_version': '4.2.0'}


def test_homebrew_absent_uninstalls_the_cask(host: Mac) -> None:
    brew = brew_host(host, owner='root', installed='4.2.0')
    host.ps([])
    host.bundle('/Applications/Notion.app', '4.2.0')
    host.virtual.add('/Applications/Notion.app')
    host.runner.on(mac.COMMANDS['brew_uninstall'](brew, None), (0, '', ''))
    result = host.run(state='absent', use_homebrew=True, app_path=None)
    assert [(b['status'], b['operations']) for b in result['bundles']] == [('removed', ['brew_uninstall'])]
    assert [brew, 'uninstall', '--cask', 'notion'] in host.runner.calls


def test_homebrew_missing_is_refused(host: Mac) -> None:
    host.ps([])
    with pytest.raises(RequestError, match='use_homebrew: Homebrew was not found at /opt/homebrew/bin/brew or '
                                           '/usr/local/bin/brew'):
        host.run(state='present', use_homebrew=True, app_path=None)


# ---- bad input


@pytest.mark.parametrize(('args', 'message'), [
    ({'state': 'present', 'installer': '/tmp/Notion.pkg'}, "installer must be a .dmg or .zip on macOS, got '/tmp/Notion.pkg'"),
    ({'state': 'present', 'installer': '/tmp/Notion-4.3.0.dmg', 'team_id': 'notion'},
     "team_id must be a 10-character Apple Team ID (like LBQJ96FQ8D), got 'notion'"),
    ({'state': 'stopped', 'app_path': 'Applications/Notion.app'},
     "app_path must be an absolute path to an .app bundle, got 'Applications/Notion.app'"),
    ({'state': 'present', 'use_homebrew': True}, 'use_homebrew manages /Applications/Notion.app, where the cask installs; '
                                                 'app_path cannot be combined with it'),
    ({'state': 'stopped', 'checksum': 'abc'}, "checksum must be a SHA-256 (64 hex digits), got 'abc'"),
    ({'state': 'stopped', 'remove_user_data': True}, 'remove_user_data only applies to state absent'),
])
def test_bad_input_is_refused_before_any_command(host: Mac, args: dict[str, t.Any], message: str) -> None:
    with pytest.raises(RequestError) as raised:
        host.run(**args)
    assert str(raised.value) == message
    assert host.runner.calls == []


def test_an_unknown_user_is_refused_after_looking_only(host: Mac) -> None:
    host.ps([])
    with pytest.raises(RequestError, match='^users lists unknown user\\(s\\): mallory; profiles on this host: alice, bob$'):
        host.run(state='stopped', users=['alice', 'mallory'])
    assert host.changing_calls() == []

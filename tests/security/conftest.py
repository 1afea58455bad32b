# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Linux machine with real, hostile accounts, for the attack tests.

``useradd`` makes two throwaway accounts (removed again at the end); their homes
live under a fresh directory in /var/tmp that they can reach, next to a
root-only state directory and a root-only "secrets" directory that stands for
everything an attacker must never read or change (/etc, /root, another user's
files). Everything the attacker does runs in a child process *as that user*
(``subprocess`` with ``user=``/``group=``), with the system's python3, so the
kernel's own permission checks apply. The modules are driven through their
Python entry points with a LocalHost, as the native module does.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.loopbreaker.notion.plugins.module_utils import _app_data, _quarantine_state
from ansible_collections.loopbreaker.notion.plugins.module_utils._layout import LINUX
from ansible_collections.loopbreaker.notion.plugins.module_utils._local_host import LocalHost

NOW = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(days=1)
ENTRY_ID = '20260304T050607Z-a1b2c3'
SYSTEM_PYTHON = shutil.which('python3', path='/usr/bin:/bin') or '/usr/bin/python3'

NOTION_FILES: dict[str, tuple[str, int]] = {
    'Cache/Cache_Data/data_0': ('cache bytes', 0o600),
    'notion.db': ('SQLite format 3\x00 offline edits', 0o640),
    'Partitions/notion/Network/Cookies': ('SQLite format 3\x00 token_v2', 0o600),
    'Preferences': ('{}', 0o644),
}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which('useradd') or not sys.platform.startswith('linux'),
    reason='the attack tests need root and useradd (CI runs them as root)')


@dataclass
class Account:
    login: str
    uid: int
    gid: int
    home: Path

    @property
    def notion(self) -> Path:
        return self.home / '.config' / 'Notion'

    @property
    def quarantine(self) -> Path:
        return self.home / '.local' / 'share' / 'loopbreaker' / 'quarantine'

    def run(self, script: str, **data: t.Any) -> subprocess.CompletedProcess[str]:
        """Run python code as this user, with ``data`` as the JSON object DATA; the test fails if it fails."""
        code = 'import json, os, sys\nDATA = json.loads(sys.argv[1])\n' + textwrap.dedent(script)
        completed = subprocess.run([SYSTEM_PYTHON, '-c', code, json.dumps(data)], user=self.uid, group=self.gid,
                                   extra_groups=[], capture_output=True, text=True, cwd=self.home, check=False,
                                   env={'HOME': str(self.home), 'PATH': '/usr/bin:/bin'})
        assert completed.returncode == 0, completed.stderr
        return completed


@dataclass
class Machine:
    base: Path
    homes: Path
    state: Path
    secrets: Path
    alice: Account
    bob: Account
    hooks: list[t.Callable[[str, dict[str, t.Any]], None]] = field(default_factory=list)

    def host(self, *, lock_timeout: float | None = None) -> LocalHost:
        host = LocalHost(str(self.homes), 'linux', str(self.state), exclusive=True, lock_timeout=lock_timeout)

        def hook(event: str, operation: dict[str, t.Any]) -> None:
            for callback in self.hooks:
                callback(event, operation)
        host.hook = hook
        return host

    def app_data(self, **args: t.Any) -> dict[str, t.Any]:
        params = _validated(_app_data.ARGUMENT_SPEC, {'profiles_root': str(self.homes), **args})
        host = self.host()
        try:
            return _app_data.run(host, LINUX, params, check_mode=False, now=NOW, entry_token='a1b2c3')
        finally:
            host.release()

    def quarantine(self, *, check_mode: bool = False, **args: t.Any) -> dict[str, t.Any]:
        params = _validated(_quarantine_state.ARGUMENT_SPEC, {'profiles_root': str(self.homes), **args})
        host = self.host()
        try:
            return _quarantine_state.run(host, LINUX, params, check_mode=check_mode, now=LATER, entry_token='d4e5f6')
        finally:
            host.release()

    def picture(self, *, skip: Path | None = None) -> dict[str, t.Any]:
        """Every path under the machine's base (but ``skip``) with type, owner, mode and content digest."""
        found: dict[str, t.Any] = {}
        for directory, subdirs, files in os.walk(self.base):
            for name in subdirs + files:
                path = Path(directory, name)
                if skip is not None and (path == skip or skip in path.parents):
                    continue
                status = path.lstat()
                digest = None
                if stat.S_ISREG(status.st_mode):
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                elif stat.S_ISLNK(status.st_mode):
                    digest = os.readlink(path)
                found[str(path.relative_to(self.base))] = (stat.S_IFMT(status.st_mode), status.st_uid,
                                                           stat.S_IMODE(status.st_mode), digest)
        return found

    def outside(self, account: Account) -> dict[str, t.Any]:
        """What must never change when ``account`` attacks: the machine but their home and the records."""
        return {path: found for path, found in self.picture(skip=account.home).items()
                if path != 'state' and not path.startswith('state/')}


def _validated(spec: dict[str, t.Any], args: dict[str, t.Any]) -> dict[str, t.Any]:
    result = ArgumentSpecValidator(spec).validate(args)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def _useradd(base: Path, name: str) -> Account:
    login = f'lbt{secrets.token_hex(3)}{name}'
    home = base / 'homes' / name
    subprocess.run(['useradd', '--no-create-home', '--home-dir', str(home), '--shell', '/usr/sbin/nologin',
                    '--user-group', login], check=True, capture_output=True)
    entry = subprocess.run(['getent', 'passwd', login], check=True, capture_output=True, text=True).stdout.split(':')
    account = Account(login=login, uid=int(entry[2]), gid=int(entry[3]), home=home)
    home.mkdir(mode=0o700)
    os.chown(home, account.uid, account.gid)
    for relative, (content, mode) in NOTION_FILES.items():
        path = account.notion / relative
        for parent in reversed(path.relative_to(home).parents):
            directory = home / parent
            if not directory.exists():
                directory.mkdir(mode=0o700)
                os.chown(directory, account.uid, account.gid)
        path.write_text(content, encoding='utf-8')
        os.chown(path, account.uid, account.gid)
        os.chmod(path, mode)
    return account


@pytest.fixture
def machine() -> t.Iterator[Machine]:
    base = Path(tempfile.mkdtemp(prefix='lb-attack-', dir='/var/tmp'))
    os.chmod(base, 0o755)
    (base / 'homes').mkdir(mode=0o755)
    secrets_dir = base / 'secrets'
    secrets_dir.mkdir(mode=0o700)
    (secrets_dir / 'shadow').write_text('root-only secret\n', encoding='utf-8')
    os.chmod(secrets_dir / 'shadow', 0o600)
    (secrets_dir / 'items').mkdir(mode=0o700)
    (secrets_dir / 'items' / '000-Cache').mkdir(mode=0o700)
    (secrets_dir / 'items' / '000-Cache' / 'key').write_text('root-only key\n', encoding='utf-8')
    accounts: list[Account] = []
    try:
        accounts = [_useradd(base, 'alice'), _useradd(base, 'bob')]
        yield Machine(base=base, homes=base / 'homes', state=base / 'state', secrets=secrets_dir,
                      alice=accounts[0], bob=accounts[1])
    finally:
        for account in accounts:
            subprocess.run(['userdel', account.login], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

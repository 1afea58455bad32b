"""Run the collection's integration playbooks against a simulated Windows host and a sandboxed POSIX host."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest

from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows, empty_state

TARGETS = Path(__file__).parent / 'targets'


@dataclass
class Lab:
    """One simulated Windows host and one local POSIX host whose homes live under tmp."""

    root: Path
    env: dict[str, str]

    @property
    def state_path(self) -> Path:
        return self.root / 'win.json'

    @property
    def homes(self) -> Path:
        return self.root / 'homes'

    def twin(self) -> SimulatedWindows:
        return SimulatedWindows(json.loads(self.state_path.read_text()))

    def save(self, twin: SimulatedWindows) -> None:
        self.state_path.write_text(json.dumps(twin.state))

    def state(self) -> dict[str, t.Any]:
        return json.loads(self.state_path.read_text())

    def play(self, target: str, host: str, extra: dict[str, t.Any] | None = None,
             flags: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess[str], dict[str, t.Any]]:
        """Run targets/<target>.yml on 'win' or 'posix'; returns the process and what the play dumped."""
        dump = self.root / f'{target}-{host}.json'
        dump.unlink(missing_ok=True)
        variables = {'target_host': host, 'dump_path': str(dump), 'homes': str(self.homes),
                     'state_dir': str(self.root / 'state'), **(extra or {})}
        completed = subprocess.run(
            ['ansible-playbook', '-i', str(self.root / 'inventory.yml'), str(TARGETS / f'{target}.yml'),
             '-e', json.dumps(variables), *flags],
            env=self.env, capture_output=True, text=True, check=False, timeout=600)
        results = json.loads(dump.read_text()) if dump.exists() else {}
        return completed, results


@pytest.fixture
def lab(tmp_path: Path, ansible_env: dict[str, str]) -> Lab:
    inventory = {
        'all': {'hosts': {
            'win': {'ansible_connection': 'loopbreaker.notion.simulated_windows',
                    'loopbreaker_simulated_state': str(tmp_path / 'win.json')},
            'posix': {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}'},
        }},
    }
    (tmp_path / 'inventory.yml').write_text(json.dumps(inventory))
    (tmp_path / 'win.json').write_text(json.dumps(empty_state()))
    (tmp_path / 'homes').mkdir()
    return Lab(root=tmp_path, env=ansible_env)


def assert_ok(completed: subprocess.CompletedProcess[str]) -> None:
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-3000:]


# The owner of the sandboxed homes of one test process. As root it is a uid no one else runs
# processes as, so code elsewhere on the machine that matches processes to users by uid alone
# (an older checkout in a neighbouring worktree, say) cannot stop this test's fake Notion.
SANDBOX_UID = 200000 + (os.getpid() % 10000) * 10 if os.geteuid() == 0 else os.geteuid()


def own_homes(homes: Path) -> None:
    """Give the sandboxed homes (and everything in them) to SANDBOX_UID."""
    if os.geteuid() != 0:
        return
    for path in [homes, *homes.rglob('*')]:
        os.lchown(path, SANDBOX_UID, SANDBOX_UID)


class FakeNotion:
    """A copy of /bin/sleep named ``notion``, run as SANDBOX_UID with HOME in one sandboxed home,
    as that user's session would run Notion."""

    def __init__(self, home: Path) -> None:
        self.directory = tempfile.mkdtemp(prefix='lb-notion-')  # reachable by SANDBOX_UID, unlike tmp_path
        os.chmod(self.directory, 0o755)
        binary = os.path.join(self.directory, 'notion')
        shutil.copy('/bin/sleep', binary)
        os.chmod(binary, 0o755)
        ids: dict[str, t.Any] = {'user': SANDBOX_UID, 'group': SANDBOX_UID} if os.geteuid() == 0 else {}
        self.process = subprocess.Popen([binary, '300'], env={'HOME': str(home), 'PATH': '/usr/bin:/bin'}, **ids)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self._named():
            time.sleep(0.01)

    def _named(self) -> bool:
        try:
            with open(f'/proc/{self.process.pid}/comm', encoding='utf-8') as handle:
                return handle.read().strip() == 'notion'
        except OSError:
            return False

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)

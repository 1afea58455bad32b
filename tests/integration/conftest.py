"""Run the collection's integration playbooks against a simulated Windows host and a sandboxed POSIX host."""
from __future__ import annotations

import json
import subprocess
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

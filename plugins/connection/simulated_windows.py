# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: simulated_windows
short_description: Run this collection's Windows path against a simulated Windows host
description:
  - A test and lab connection. It behaves like a PowerShell connection (the collection's action
    plugins take their Windows path), receives the exact payload Ansible would send to a real host
    for C(loopbreaker.notion.win_bridge), and executes the operations with the Python twin of the
    bridge against a simulated machine kept in a JSON state file.
  - Only C(loopbreaker.notion.win_bridge) can run through it; any other module or raw command fails
    with a clear message, because the simulation has no PowerShell.
  - Every bridge call is appended to the state's C(calls) list, so tests can count them.
version_added: 0.1.0
author: loopbreaker.notion contributors (@loopbreaker)
options:
  state_path:
    description: Path of the JSON file holding the simulated machine (see C(empty_state) in the twin).
    type: path
    required: true
    vars:
      - name: loopbreaker_simulated_state
    env:
      - name: LOOPBREAKER_SIMULATED_STATE
"""

import base64
import fcntl
import json
import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.connection import ConnectionBase

from ansible_collections.loopbreaker.notion.plugins.module_utils._bridge_vocabulary import VocabularyError
from ansible_collections.loopbreaker.notion.plugins.module_utils._host import HostError
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._simulated_windows import SimulatedWindows

BRIDGE_SCRIPT = 'ansible_collections.loopbreaker.notion.plugins.modules.win_bridge.ps1'
MANIFEST_SEPARATOR = b'\n\0\0\0\0\n'


def bridge_arguments(in_data: bytes) -> dict[str, t.Any]:
    """The module arguments Ansible packed for win_bridge.ps1 in its exec-wrapper manifest."""
    if MANIFEST_SEPARATOR not in in_data:
        raise AnsibleError('simulated_windows only runs modules (pipelined exec-wrapper payloads)')
    manifest = json.loads(in_data.split(MANIFEST_SEPARATOR, 1)[1])
    wrapper = [a for a in manifest['actions'] if a['name'] == 'module_wrapper.ps1'][0]['params']
    if wrapper['Script'] != BRIDGE_SCRIPT:
        raise AnsibleError(f"simulated_windows runs only {BRIDGE_SCRIPT}, not {wrapper['Script']}")
    script = base64.b64decode(manifest['scripts'][BRIDGE_SCRIPT]['script']).decode('utf-8')
    if '$OperationParameters' not in script:
        raise AnsibleError('the payload does not carry the bridge script')
    return [v for v in wrapper['Variables'] if v['Name'] == 'complex_args'][0]['Value']


class Connection(ConnectionBase):
    """Executes bridge payloads against the simulated machine in a JSON file."""

    transport = 'loopbreaker.notion.simulated_windows'
    module_implementation_preferences = ('.ps1', '.exe', '')
    allow_executable = False
    has_pipelining = True
    allow_extras = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self.always_pipeline_modules = True
        self._shell_type = 'powershell'
        super().__init__(*args, **kwargs)

    def _connect(self) -> Connection:
        self._connected = True
        return self

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        try:
            arguments = bridge_arguments(in_data or b'')
        except AnsibleError as error:
            return 1, b'', str(error).encode()
        operations = arguments.get('operations')
        if not isinstance(operations, list):
            return 0, json.dumps({'failed': True, 'msg': 'operations must be a list'}).encode(), b''
        with open(self.get_option('state_path'), 'r+', encoding='utf-8') as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            state = json.load(handle)
            try:
                envelope = SimulatedWindows(state).run_batch(operations,
                                                             check_mode=bool(arguments.get('_ansible_check_mode')))
            except (VocabularyError, HostError) as error:
                # What win_bridge.ps1 fails the whole call with (bad input, the host-wide lock not taken);
                # the call log still records the attempt.
                handle.seek(0)
                handle.truncate()
                json.dump(state, handle, indent=1, sort_keys=True)
                return 0, json.dumps({'failed': True, 'msg': str(error)}).encode(), b''
            handle.seek(0)
            handle.truncate()
            json.dump(state, handle, indent=1, sort_keys=True)
        return 0, json.dumps(envelope).encode(), b''

    def put_file(self, in_path: str, out_path: str) -> None:
        raise AnsibleConnectionFailure('simulated_windows cannot transfer files')

    def fetch_file(self, in_path: str, out_path: str) -> None:
        raise AnsibleConnectionFailure('simulated_windows cannot transfer files')

    def close(self) -> None:
        self._connected = False

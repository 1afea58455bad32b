# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routing shared by every action plugin of this collection.

Private to this collection. On a PowerShell connection the Python logic runs
here on the controller and drives the host through win_bridge.ps1 (at most one
probe and one apply call); on any other connection the module of the same name
runs natively on the target.
"""
from __future__ import annotations

import datetime
import secrets
import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase

from ansible_collections.loopbreaker.notion.plugins.module_utils._host import HostError, RequestError
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import raw_int_problem, redact, url_secrets

BRIDGE_MODULE = 'loopbreaker.notion.win_bridge'


class BridgeClient:
    """The ``Host`` a Windows run talks to: each batch is one win_bridge module call."""

    platform = 'windows'

    def __init__(self, action: ActionBase, task_vars: dict[str, t.Any]) -> None:
        self._action = action
        self._task_vars = task_vars

    def run_batch(self, operations: list[dict[str, t.Any]], *, check_mode: bool = False) -> dict[str, t.Any]:
        result = self._action._execute_module(module_name=BRIDGE_MODULE, module_args={'operations': operations},
                                              task_vars=self._task_vars)
        if result.get('failed') and 'results' not in result:
            raise HostError(result.get('msg') or result.get('module_stderr') or 'the Windows bridge failed')
        return result


class BridgeAction(ActionBase):
    """Subclasses set MODULE, ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE and implement run_windows()."""

    MODULE: str = ''
    ARGUMENT_SPEC: dict[str, t.Any] = {}
    MUTUALLY_EXCLUSIVE: list[list[str]] = []
    REQUIRED_IF: list[t.Any] = []
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        self._task.args = {**omitted_module_defaults(self), **self._task.args}
        if self._connection._shell.SHELL_FAMILY != 'powershell':
            result.update(self._execute_module(module_name=f'loopbreaker.notion.{self.MODULE}',
                                               module_args=self._task.args, task_vars=task_vars))
            return result
        # What AnsibleModule does on the native path, so both paths refuse the same input alike.
        hidden = url_secrets(self._task.args)
        problem = raw_int_problem(self.ARGUMENT_SPEC, self._task.args)
        if problem:
            result.update(failed=True, changed=False, msg=problem)
            return redact(result, hidden)
        validator = ArgumentSpecValidator(self.ARGUMENT_SPEC, mutually_exclusive=self.MUTUALLY_EXCLUSIVE,
                                          required_if=self.REQUIRED_IF)
        validated = validator.validate(self._task.args)
        hidden |= {str(value) for value in validated._no_log_values}  # pylint: disable=protected-access
        if validated.error_messages:
            error = validated.errors[0]
            message = validated.errors.msg
            if isinstance(error, UnsupportedError):
                message = f'Unsupported parameters for (loopbreaker.notion.{self.MODULE}) module: {message}'
            result.update(failed=True, changed=False, msg=message)
            return redact(result, hidden)
        result['invocation'] = {'module_args': validated.validated_parameters}
        try:
            outcome = self.run_windows(BridgeClient(self, task_vars), validated.validated_parameters,
                                       check_mode=bool(self._task.check_mode), now=_utc_now(),
                                       token=secrets.token_hex(3))
        except (RequestError, HostError) as error:
            result.update(failed=True, changed=False, msg=str(error))
            return redact(result, hidden)
        if not self._task.diff:
            outcome.pop('diff', None)
        result.update(outcome)
        return redact(result, hidden)

    @staticmethod
    def reject_profiles_root(params: dict[str, t.Any]) -> None:
        if params.get('profiles_root'):
            raise RequestError('profiles_root applies to macOS and Linux hosts; on Windows the profiles come '
                               "from the host's ProfileList")
        if params.get('state_dir'):
            raise RequestError('state_dir applies to macOS and Linux hosts; on Windows trusted records are kept '
                               'in HKLM\\SOFTWARE\\loopbreaker\\notion')

    def run_windows(self, host: BridgeClient, params: dict[str, t.Any], *, check_mode: bool,
                    now: datetime.datetime, token: str) -> dict[str, t.Any]:
        raise NotImplementedError


def task_module_defaults(action: ActionBase) -> dict[str, t.Any]:
    """This task's module_defaults (group/loopbreaker.notion.all and its own entry) as ansible-core merges them.

    Uses ansible-core 2.19's lookup (a private function); {} where it is absent or fails, never a failed task.
    """
    try:
        from ansible.executor.module_common import _get_action_arg_defaults  # pylint: disable=import-outside-toplevel
    except ImportError:  # 2.17/2.18 merge module_defaults after omit was applied
        return {}
    task = action._task  # pylint: disable=protected-access
    engine = getattr(action._templar, '_engine', action._templar)  # pylint: disable=protected-access
    try:
        defaults = _get_action_arg_defaults(task.resolved_action, task, engine)
        return {key: action._templar.template(value) for key, value in defaults.items()}  # pylint: disable=protected-access
    except Exception:  # pylint: disable=broad-exception-caught  # a private API: never fail the task over it
        return {}


def omitted_module_defaults(action: ActionBase) -> dict[str, t.Any]:
    """module_defaults for the task's arguments that are missing, so ``omit`` falls back to them.

    Roles pass their optional settings as ``"{{ x if x else omit }}"``. Up to ansible-core 2.18 an
    omitted argument fell back to the play's module_defaults (``group/loopbreaker.notion.all``);
    2.19 drops it instead, so a role run under ``module_defaults: {profiles_root: ...}`` silently
    used the real ``/home``. An argument given explicitly always wins.
    """
    return {key: value for key, value in task_module_defaults(action).items()
            if key not in action._task.args}  # pylint: disable=protected-access


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole ladder for one host in one task: diagnose, rung, re-diagnose, incident, on the controller.

Each step runs the collection's own action plugin of that module (diagnose, app_data, proxy, app,
firewall, incident) on this task's connection, as its task in the role did: on Windows its Python
logic drives the bridge from here, elsewhere the module runs natively. What used to be ~25 tasks of
set_fact/include per host is plain Python here, so a one-rung fix costs one task and 6 bridge calls.
"""
from __future__ import annotations

import datetime
import json
import time
import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase

from ansible_collections.loopbreaker.notion.plugins.module_utils import _ladder
from ansible_collections.loopbreaker.notion.plugins.module_utils._diagnose import INCIDENT_ID
from ansible_collections.loopbreaker.notion.plugins.module_utils._incident import tried_rungs
from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import raw_int_problem, redact, url_secrets
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._bridge_action import (
    omitted_module_defaults,
    task_module_defaults,
)
from ansible_collections.loopbreaker.notion.plugins.plugin_utils._fleet_report import rung_record

COLLECTION = 'loopbreaker.notion.'
TIME_FORMAT = '%Y-%m-%dT%H:%M:%SZ'


class LadderFailed(Exception):
    """A step's module failed: the climb stops there, with what it did so far."""


def module_specs() -> dict[str, tuple[dict[str, t.Any], list[list[str]], list[t.Any]]]:
    """Each rung module's (argument spec, mutually exclusive, required_if), to refuse bad options up front."""
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.loopbreaker.notion.plugins.module_utils import (
        _app, _app_data, _diagnose, _firewall, _proxy)
    return {'diagnose': (_diagnose.ARGUMENT_SPEC, _diagnose.MUTUALLY_EXCLUSIVE, []),
            'app_data': (_app_data.ARGUMENT_SPEC, _app_data.MUTUALLY_EXCLUSIVE, []),
            'proxy': (_proxy.ARGUMENT_SPEC, _proxy.MUTUALLY_EXCLUSIVE, []),
            'app': (_app.ARGUMENT_SPEC, _app.MUTUALLY_EXCLUSIVE, _app.REQUIRED_IF),
            'firewall': (_firewall.ARGUMENT_SPEC, _firewall.MUTUALLY_EXCLUSIVE, [])}


def spec_problem(spec: dict[str, t.Any], args: dict[str, t.Any], *, mutually_exclusive: list[list[str]] | None = None,
                 required_if: list[t.Any] | None = None, name: str = 'ladder') -> tuple[str | None, dict[str, t.Any]]:
    """(the message refusing args, or None; the validated parameters)."""
    problem = raw_int_problem(spec, args)
    if problem:
        return problem, {}
    validated = ArgumentSpecValidator(spec, mutually_exclusive=mutually_exclusive or [],
                                      required_if=required_if or []).validate(args)
    if validated.error_messages:
        message = validated.errors.msg
        if isinstance(validated.errors[0], UnsupportedError):
            message = f'Unsupported parameters for (loopbreaker.notion.{name}) module: {message}'
        return message, {}
    return None, validated.validated_parameters


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        defaults = task_module_defaults(self)
        args = {**omitted_module_defaults(self), **self._task.args}
        # group/loopbreaker.notion.all also holds options of the other modules (exclude_users, ...): each
        # module the ladder runs gets its own module_defaults, so here they are not the ladder's to refuse.
        # The role's variables say "not set" with an empty string.
        args = {k: (None if v == '' else v) for k, v in args.items() if k in _ladder.ARGUMENT_SPEC or k not in defaults}
        # A proxy URL in diagnose: may carry a password: never in the result (the modules redact theirs).
        nested = args.get('diagnose') if isinstance(args.get('diagnose'), dict) else {}
        hidden = url_secrets(args) | url_secrets(nested)
        problem, params = spec_problem(_ladder.ARGUMENT_SPEC, args)
        if problem is None:
            problem = self._input_problem(params)
        if problem:
            result.update(failed=True, changed=False, msg=problem)
            return redact(result, hidden)
        result['invocation'] = {'module_args': params}
        climb = Climb(self, params, task_vars, check_mode=bool(self._task.check_mode))
        try:
            climb.run()
        except LadderFailed as error:
            result.update(failed=True, msg=str(error))
        result.update(climb.result())
        return redact(result, hidden)

    @staticmethod
    def _input_problem(params: dict[str, t.Any]) -> str | None:
        try:
            _ladder.validate(params)
        except ValueError as error:
            return str(error)
        if params.get('incident') is not None and not INCIDENT_ID.fullmatch(params['incident']):
            return (f"incident {params['incident']!r} must be letters, digits, '.', '_' or '-' (at most 128, "
                    'starting with a letter or digit), such as a ticket number')
        # Every module the climb may run gets its arguments checked now, not after the rungs below it.
        specs = module_specs()
        checks = [('diagnose', _ladder.diagnose_args(params, since='2000-01-01T00:00:00Z'))]
        usable, _notes = _ladder.available_rungs(_ladder.effective_skip(params), params.get('max_rung'))
        for rung in usable:
            if _ladder.RUNG_MODULES[rung] not in specs:  # a rung this version cannot apply: refused when chosen
                continue
            checks.append((_ladder.RUNG_MODULES[rung], _ladder.rung_args(rung, params, ['-'], {'platform': 'windows'})))
        for module, module_args in checks:
            spec, exclusive, required = specs[module]
            problem, _validated = spec_problem(spec, module_args, mutually_exclusive=exclusive, required_if=required,
                                               name=module)
            if problem:
                return f'{module}: {problem}'
        return None

    def run_module(self, module: str, args: dict[str, t.Any], task_vars: dict[str, t.Any], *,
                   check_mode: bool) -> dict[str, t.Any]:
        """loopbreaker.notion.<module> on this host, as a task of its own would run it (module_defaults too)."""
        task = self._task.copy()
        task.args = args
        task.action = COLLECTION + module
        task._resolved_action = COLLECTION + module  # pylint: disable=protected-access
        task.check_mode = check_mode
        loader = self._shared_loader_obj.action_loader  # pylint: disable=protected-access
        action = loader.get(COLLECTION + module, task=task, connection=self._connection,
                            play_context=self._play_context, loader=self._loader, templar=self._templar,
                            shared_loader_obj=self._shared_loader_obj)
        return action.run(task_vars=task_vars)


class Climb:
    """One host's climb; result() is what the role's report holds, plus each module's own result."""

    def __init__(self, action: ActionModule, params: dict[str, t.Any], task_vars: dict[str, t.Any], *,
                 check_mode: bool) -> None:
        self.action = action
        self.params = params
        self.task_vars = task_vars
        self.check_mode = check_mode
        self.first: dict[str, t.Any] | None = None
        self.current: dict[str, t.Any] | None = None
        self.rediagnosed = False
        self.record: dict[str, t.Any] | None = None
        self.applied: list[str] = []
        self.steps: list[dict[str, t.Any]] = []
        self.changed = False
        self.warnings: list[str] = []
        self.diffs: list[dict[str, t.Any]] = []

    def module(self, module: str, args: dict[str, t.Any], *, check_mode: bool | None = None,
               what: str = '') -> dict[str, t.Any]:
        outcome = self.action.run_module(module, args, self.task_vars,
                                         check_mode=self.check_mode if check_mode is None else check_mode)
        self.warnings += [str(w) for w in outcome.get('warnings') or []]
        diff = outcome.get('diff')
        self.diffs += [d for d in (diff if isinstance(diff, list) else [diff]) if isinstance(d, dict) and d]
        if module != 'diagnose':
            self.changed = self.changed or bool(outcome.get('changed'))
        return outcome

    def diagnose(self, since: str | None = None) -> dict[str, t.Any]:
        # Read-only, so it runs for real in check mode too.
        outcome = self.module('diagnose', _ladder.diagnose_args(self.params, since=since, previous=self.current),
                              check_mode=False)
        if outcome.get('failed') or 'verdict' not in outcome:
            raise LadderFailed(f"diagnose failed: {outcome.get('msg') or 'no verdict'}")
        return outcome

    def plan(self) -> dict[str, t.Any]:
        if self.current is None:
            raise LadderFailed('no diagnosis to plan from')
        tried = tried_rungs(self.record)
        tried += [rung for rung in self.applied if rung not in tried]
        return _ladder.plan(self.current, tried, incident=self.params.get('incident'),
                            escalate=self.params['escalate'], skip=_ladder.effective_skip(self.params),
                            max_rung=self.params.get('max_rung'),
                            resolved=bool(self.record and self.record.get('state') == 'resolved'))

    def run(self) -> None:
        self.first = self.current = self.diagnose()
        self.record = self.first.get('incident')
        for _index in range(1 if self.params['escalate'] else self.params['max_steps']):
            if self.step():
                return

    def step(self) -> bool:
        """One rung and its re-diagnosis; True when the climb is over."""
        if self.current is None:
            raise LadderFailed('no diagnosis to climb from')
        chosen = self.plan()
        since = datetime.datetime.now(datetime.timezone.utc).strftime(TIME_FORMAT)
        rung = chosen['rung']
        if rung is None:
            self.steps.append({'rung': None, 'summary': chosen['reason'], 'reason': chosen['reason'],
                               'notes': chosen['notes']})
            return True
        users = self.params['users'] or chosen['users']
        step: dict[str, t.Any] = {'rung': rung, 'reason': chosen['reason'], 'climb': chosen['climb'], 'users': users,
                                  'changed': False, 'summary': '', 'after': None, 'module': _ladder.RUNG_MODULES[rung]}
        self.steps.append(step)
        try:
            rung_args = _ladder.rung_args(rung, self.params, users, self.current)
        except ValueError as error:
            step['summary'] = f'{rung} not applied'
            raise LadderFailed(str(error)) from None
        outcome = self.module(step['module'], rung_args)
        step['result'] = outcome
        step['changed'] = bool(outcome.get('changed'))
        # detection and remediation named as in the fleet report (for set_stats and the report file)
        graded = rung_record(rung, step['module'], outcome, check_mode=self.check_mode)
        step['outcome'] = {'detection': graded['detection'], 'remediation': graded['remediation']}
        if outcome.get('failed'):
            step['summary'] = f'{rung} failed'
            raise LadderFailed(f"rung {rung} failed: {outcome.get('msg') or 'see steps[].result'}")
        if self.check_mode:
            step['summary'] = f"{rung} (would apply; climb: {' > '.join(chosen['climb'])})"
            return True
        relaunch = _ladder.relaunch_users(rung, self.current, users)
        if relaunch:
            # app_data stops Notion; a logged-on user gets it back running.
            step['relaunch'] = self.module('app', {'state': 'restarted', 'users': relaunch})
            if step['relaunch'].get('failed'):
                raise LadderFailed(f"relaunching Notion after {rung} failed: {step['relaunch'].get('msg')}")
        if self.params['settle_seconds']:
            time.sleep(self.params['settle_seconds'])  # fresh log evidence before the re-diagnosis
        after = self.diagnose(since=since)
        self.rediagnosed = True
        if self.params.get('incident'):
            recorded = self.module('incident', {
                'id': self.params['incident'], 'state': 'resolved' if after['verdict'] == 'healthy' else 'escalated',
                'rung': rung, 'users': users, 'before': _ladder.finding_codes(self.current),
                'after': _ladder.finding_codes(after),
                # as the re-diagnosis just read it: one bridge call for the attempt instead of two
                'previous': json.dumps(after.get('incident')),
                **{o: self.params[o] for o in ('profiles_root', 'state_dir') if self.params.get(o)}})
            step['incident_result'] = recorded
            if recorded.get('failed'):
                raise LadderFailed(f"recording the attempt for incident {self.params['incident']} failed: "
                                   f"{recorded.get('msg')}")
            self.record = recorded.get('incident') or self.record
        self.applied.append(rung)
        step['summary'] = f"{rung} -> {after['verdict']}"
        step['after'] = _ladder.verdict(after)
        self.current = after
        return bool(self.params['escalate'] or after['verdict'] == 'healthy')

    def result(self) -> dict[str, t.Any]:
        outcome: dict[str, t.Any] = {
            'changed': self.changed, 'check_mode': self.check_mode, 'incident': self.params.get('incident'),
            'before': _ladder.verdict(self.first) if self.first else None, 'steps': self.steps,
            'after': _ladder.verdict(self.current) if self.current else None,
            'stopped_at': _ladder.stopped_at(self.steps),
            'manual_actions': list((self.current or {}).get('manual_actions') or []),
            'record': self.record,
            # the full diagnoses, first and last (for the fleet report's before/after and for playbooks)
            'diagnosis': {'before': self.first, 'after': self.current if self.rediagnosed else None},
        }
        if self.warnings:
            outcome['warnings'] = self.warnings
        if self.diffs:
            outcome['diff'] = self.diffs
        return outcome

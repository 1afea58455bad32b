# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AnsibleModule every native (macOS/Linux) module of this collection starts with.

Private to this collection. Two things AnsibleModule does not do for us:

* an ``int`` option given as ``inf`` (or ``1e400000000``) makes the argument spec
  raise OverflowError (or build a gigantic int) instead of failing the task; such a
  value is refused first, with the option's name, and no traceback;
* a URL with ``user:password@`` in it (an installer on a protected server) must not
  come back in ``invocation``, ``msg`` or per-user reasons: its userinfo is added to
  the module's no-log values, which AnsibleModule removes from everything it returns.
"""
from __future__ import annotations

import typing as t

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.loopbreaker.notion.plugins.module_utils._validation import raw_int_problem, url_secrets


def new_module(argument_spec: dict[str, t.Any], **kwargs: t.Any) -> AnsibleModule:
    """AnsibleModule(argument_spec, **kwargs), after refusing what would crash its validation."""
    raw = basic._load_params()  # pylint: disable=protected-access  # cached: AnsibleModule reads the same
    # Not a dict when something else stands in for the parameters (ansible-test's validate-modules).
    problem = raw_int_problem(argument_spec, raw) if isinstance(raw, dict) else None
    if problem:
        # Every option as raw, so that only the problem found above is reported.
        fallback = AnsibleModule(argument_spec={name: {'type': 'raw'} for name in argument_spec},
                                 supports_check_mode=True)
        fallback.no_log_values.update(url_secrets(fallback.params))
        fallback.fail_json(msg=problem, changed=False)
    module = AnsibleModule(argument_spec=argument_spec, **kwargs)
    module.no_log_values.update(url_secrets(module.params))
    return module

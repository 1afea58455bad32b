"""docs/awx.md: the survey and job template variables it shows fit the ladder and the role."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / 'docs' / 'awx.md').read_text(encoding='utf-8')
ROLE = yaml.safe_load((ROOT / 'roles' / 'escalation' / 'meta' / 'argument_specs.yml').read_text())['argument_specs']['main']['options']


def test_the_survey_asks_for_what_the_ladder_reads() -> None:
    (block,) = re.findall(r'```json\n(.*?)```', DOC, re.S)
    spec = json.loads(block)['spec']
    variables = {q['variable']: q for q in spec}
    assert variables['incident_id']['required'] is True and variables['incident_id']['max'] == 64
    assert 'incident_id' in (ROOT / 'playbooks' / 'ladder.yml').read_text()
    rungs = variables['escalation_rungs']
    assert set(rungs['choices']) <= set(ROLE['escalation_rungs']['choices'])
    assert set(rungs['default'].split('\n')) <= set(rungs['choices'])
    assert "escalation_users_text | split('\\n')" in DOC, 'the textarea answer is turned into escalation_users'


def test_the_job_template_variables_are_role_options() -> None:
    blocks = [yaml.safe_load(b) for b in re.findall(r'```yaml\n(.*?)```', DOC, re.S)]
    (variables,) = [b for b in blocks if isinstance(b, dict) and 'escalation_report_dir' in b]
    assert set(variables) <= set(ROLE)
    assert variables['escalation_report_dir'].endswith('/{{ incident_id }}')

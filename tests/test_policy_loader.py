"""Policy files: the shipped pack is valid; every kind of mistake names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from costwarden.policies.errors import PolicyError
from costwarden.policies.loader import default_pack_path, load_policies, load_policy_file

GOOD = """\
policies:
  - name: idle
    resource: aws.ec2
    mode: auto
    filters:
      - type: idle-gpu
        lookback_days: 3
    actions: [stop]
"""


def write(tmp_path: Path, text: str, name: str = "p.yml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error(tmp_path: Path, text: str) -> PolicyError:
    with pytest.raises(PolicyError) as exc:
        load_policy_file(write(tmp_path, text))
    return exc.value


def test_default_pack_loads_with_built_detectors_and_actions():
    loaded = load_policies([])
    assert {p.source for p in loaded} == {str(default_pack_path())}
    ec2 = {p.name: p for p in loaded if p.policy.resource == "aws.ec2"}  # the others: billing, tokens, GCP, k8s
    lp = ec2.pop("idle-gpu-instances")
    assert [d.name for d in lp.detectors] == ["idle-gpu"] and [a.name for a in lp.actions] == ["stop"]
    assert lp.policy.mode == "approve" and len(lp.content_hash) == 64
    # right-sizing and off-hours schedules are reported only: no action a default install could take
    assert {n: [d.name for d in p.detectors] for n, p in ec2.items()} == {
        "training-hardware-for-inference": ["training-hardware-for-inference"],
        "off-hours-idle-instances": ["off-hours-idle"]}
    assert all(p.policy.mode == "report" and not p.actions for p in ec2.values())


def test_good_file_and_shorthand(tmp_path):
    [lp] = load_policy_file(write(tmp_path, GOOD))
    assert lp.detectors[0].params.lookback_days == 3
    assert lp.detectors[0].lookback_hours == 72


def test_invalid_yaml_names_the_line(tmp_path):
    e = error(tmp_path, "policies:\n  - name: x\n    resource: [aws.ec2\n")
    assert e.path.endswith("p.yml") and e.line is not None and "invalid YAML" in str(e)


def test_unknown_field_names_line_and_field(tmp_path):
    e = error(tmp_path, GOOD.replace("    mode: auto\n", "    mode: auto\n    modee: auto\n"))
    assert (e.line, e.field) == (5, "policies.0.modee")
    assert str(e).startswith(f"{e.path}:5: field 'policies.0.modee': unknown field")


def test_bad_filter_parameter_names_its_line(tmp_path):
    e = error(tmp_path, GOOD.replace("lookback_days: 3", "lookback_days: -1"))
    assert e.line == 7 and e.field == "policies.0.filters.0.lookback_days"
    assert "greater than or equal to 1" in e.message


def test_unknown_filter_parameter(tmp_path):
    e = error(tmp_path, GOOD.replace("lookback_days: 3", "lookback_dayz: 3"))
    assert e.field == "policies.0.filters.0.lookback_dayz" and e.line == 7


def test_unknown_filter_and_action_types(tmp_path):
    e = error(tmp_path, GOOD.replace("type: idle-gpu", "type: idle-tpu"))
    assert e.line == 6 and "unknown filter type 'idle-tpu'" in e.message and "idle-gpu" in e.message
    e = error(tmp_path, GOOD.replace("actions: [stop]", "actions: [terminate]"))
    assert e.line == 8 and "unknown action type 'terminate'" in e.message


def test_bad_mode_resource_and_empty_file(tmp_path):
    e = error(tmp_path, GOOD.replace("mode: auto", "mode: yolo"))
    assert e.line == 4 and e.field == "policies.0.mode"
    e = error(tmp_path, GOOD.replace("resource: aws.ec2", "resource: aws.s3"))
    assert e.line == 3 and "unknown resource 'aws.s3'" in e.message
    e = error(tmp_path, "")
    assert "top-level 'policies'" in e.message
    e = error(tmp_path, GOOD.replace("    actions: [stop]\n", ""))
    assert "needs at least one action" in e.message and e.line == 2


def test_missing_file_and_duplicate_names(tmp_path):
    with pytest.raises(PolicyError, match="file not found"):
        load_policy_file(tmp_path / "nope.yml")
    a, b = write(tmp_path, GOOD, "a.yml"), write(tmp_path, GOOD, "b.yml")
    with pytest.raises(PolicyError, match="already defined in"):
        load_policies([a, b])


def test_directory_of_policies(tmp_path):
    write(tmp_path, GOOD, "a.yml")
    write(tmp_path, GOOD.replace("name: idle", "name: idle-2"), "b.yaml")
    assert [lp.name for lp in load_policies([tmp_path])] == ["idle", "idle-2"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PolicyError, match="no \\*.yml"):
        load_policies([empty])


def test_every_resource_type_has_a_collector_and_every_action_a_tool():
    from costwarden.policies.registry import actions, load_builtin
    from costwarden.policies.resources import RESOURCE_TYPES
    from costwarden.tools.collectors import resource_types
    from costwarden.tools.registry import tool_names

    assert sorted(RESOURCE_TYPES) == resource_types()
    load_builtin()
    for name, cls in actions.items():
        for rt in cls.resource_types:
            assert any(t.startswith(rt + ".") for t in tool_names()), (name, rt)

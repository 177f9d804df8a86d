"""Settings from a YAML file and COSTWARDEN_* variables; errors point at the file or the variable."""

from __future__ import annotations

import pytest

from costwarden.agent.config import ConfigError, load_settings


def test_defaults_are_safe(no_costwarden_env):
    s = load_settings(None)
    assert s.dry_run is True
    assert s.db_url == "sqlite:///state/costwarden.db"


def test_file_then_environment_wins(tmp_path, monkeypatch, no_costwarden_env):
    cfg = tmp_path / "c.yml"
    cfg.write_text("dry_run: false\naws:\n  regions: [eu-west-1]\npolicies: [mine.yml]\n")
    s = load_settings(cfg)
    assert s.dry_run is False and s.aws.regions == ["eu-west-1"]
    assert s.policies == [tmp_path / "mine.yml"]  # relative to the config file
    monkeypatch.setenv("COSTWARDEN_DRY_RUN", "true")
    monkeypatch.setenv("COSTWARDEN_AWS__REGIONS", '["us-east-2"]')
    s = load_settings(cfg)
    assert s.dry_run is True and s.aws.regions == ["us-east-2"]


def test_bad_value_in_file_names_file_line_and_field(tmp_path, no_costwarden_env):
    cfg = tmp_path / "c.yml"
    cfg.write_text("dry_run: true\naws:\n  regions: []\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert exc.value.line == 3 and exc.value.field == "aws.regions"
    cfg.write_text("dry_run: true\nsweep_intervall: 5\n")
    with pytest.raises(ConfigError, match=r"c.yml:2: field 'sweep_intervall': unknown setting"):
        load_settings(cfg)


def test_bad_environment_variable_is_named(monkeypatch, no_costwarden_env):
    monkeypatch.setenv("COSTWARDEN_SWEEP_INTERVAL_MINUTES", "soon")
    with pytest.raises(ConfigError, match="COSTWARDEN_SWEEP_INTERVAL_MINUTES"):
        load_settings(None)


def test_nested_variable_that_is_not_json_is_a_clear_error(monkeypatch, no_costwarden_env):
    monkeypatch.setenv("COSTWARDEN_AWS__REGIONS", "not json")
    with pytest.raises(ConfigError, match="COSTWARDEN_AWS__REGIONS"):
        load_settings(None)


def test_command_line_beats_environment(monkeypatch, tmp_path, no_costwarden_env):
    monkeypatch.setenv("COSTWARDEN_STATE_DIR", "/var/lib/costwarden")
    assert str(load_settings(None).state_dir) == "/var/lib/costwarden"
    assert load_settings(None, state_dir=tmp_path).state_dir == tmp_path

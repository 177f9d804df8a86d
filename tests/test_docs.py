"""The docs cannot drift: the README stays short and keeps CI's test command, its links resolve, and
the MkDocs site builds with --strict, its reference pages generated from the registries."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TEST_COMMAND = "pip install -e '.[dev]' && pytest -q"


def test_readme_is_short_and_keeps_the_test_command():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert TEST_COMMAND in text  # CI runs it (.ci/run); the README is where a newcomer finds it
    assert "pip install -e '.[demo]' && costwarden audit --demo" in text


def test_readme_links_point_at_files_that_exist():
    # GitHub renders the README on its own, outside the MkDocs build that checks the docs' links.
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local, "the README links into docs/"
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def _mkdocs(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_site_builds_strict_with_the_reference_generated_from_the_code(tmp_path):
    site = tmp_path / "site"
    proc = _mkdocs("--config-file", str(REPO / "mkdocs.yml"), "--site-dir", str(site), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]

    from costwarden.policies.registry import actions, detectors, load_builtin
    from costwarden.tools.collectors import resource_types

    load_builtin()
    policies = (site / "reference" / "policies" / "index.html").read_text()
    for name, _ in detectors.items():
        assert f'id="detector-{name}"' in policies
    for name, _ in actions.items():
        assert f'id="action-{name}"' in policies
    for rt in resource_types():
        assert f"<code>{rt}</code>" in policies
    config = (site / "reference" / "configuration" / "index.html").read_text()
    assert "<code>billing.focus_paths</code>" in config and "<code>gcp.monitoring.gpu_metric</code>" in config
    assert 'id="costwarden-audit"' in (site / "reference" / "cli" / "index.html").read_text()
    permissions = (site / "reference" / "permissions" / "index.html").read_text()
    for _, cls in [*detectors.items(), *actions.items()]:
        for perm in cls.permissions:  # every declaration is in the generated tables
            assert f"<code>{perm}</code>" in permissions, (cls.name, perm)
    assert "<code>ec2:StopInstances</code>" in permissions and '2012-10-17"' in permissions  # the packs' documents


def test_strict_build_fails_on_a_broken_link_and_an_orphan_page(tmp_path):
    """The project's own validation settings, on a two-page site: without them --strict would pass."""
    cfg = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[gone](no-such-page.md) and [here](index.md#no-such-anchor)\n")
    (docs / "orphan.md").write_text("# Not in the nav\n")
    small = {k: cfg[k] for k in ("site_name", "theme", "markdown_extensions", "validation")}
    small.update(docs_dir=str(docs), site_dir=str(tmp_path / "site"), nav=[{"Home": "index.md"}])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(small))
    proc = _mkdocs("--config-file", str(tmp_path / "mkdocs.yml"), cwd=tmp_path)
    assert proc.returncode != 0
    for culprit in ("no-such-page.md", "no-such-anchor", "orphan.md"):
        assert culprit in proc.stderr

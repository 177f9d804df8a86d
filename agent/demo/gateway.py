"""The demo's gateway config repository: the LiteLLM router config of the demo's features, in a
git repository in a temporary directory, so `audit --demo` shows `route-model` proposals with
their diff (dry-run: it clones and reads; nothing is ever pushed).

Why a plain repository made with the git command (three processes, a few milliseconds): the
proposal's code path is the production one, a clone of a real repository, not a file read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CONFIG_PATH = "litellm/config.yaml"

CONFIG = """\
# LiteLLM proxy: one model group per product feature, so each can be re-routed on its own.
model_list:
  - model_name: helpdesk            # the support widget's assistant
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
  - model_name: summarize
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
  - model_name: agent-chat
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
  - model_name: docs-search
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_key: os.environ/ANTHROPIC_API_KEY
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/OPENAI_API_KEY

router_settings:
  routing_strategy: simple-shuffle
  num_retries: 2
"""


def write_demo_gateway(directory: Path) -> dict[str, str]:
    """A repository at `directory` holding the config on `main`; the `gateway:` settings pointing at it.
    Empty (no gateway) when git is not installed: the proposals are then reported without a diff."""
    git = shutil.which("git")
    if git is None:
        return {}
    (directory / CONFIG_PATH).parent.mkdir(parents=True)
    (directory / CONFIG_PATH).write_text(CONFIG, encoding="utf-8")
    env = {**os.environ, "GIT_AUTHOR_NAME": "Platform team", "GIT_AUTHOR_EMAIL": "platform@example.com",
           "GIT_COMMITTER_NAME": "Platform team", "GIT_COMMITTER_EMAIL": "platform@example.com"}
    for args in (["init", "--quiet", "--initial-branch", "main"], ["add", CONFIG_PATH],
                 ["commit", "--quiet", "--no-verify", "-m", "LiteLLM proxy config"]):
        subprocess.run([git, *args], cwd=directory, env=env, check=True, capture_output=True, timeout=60)
    return {"repo": str(directory), "config_path": CONFIG_PATH, "base_branch": "main"}

"""The LiteLLM config edit: minimal diffs, one-line errors, and proof with a real `litellm.Router`
that the changed config sends the feature's calls to the small model."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.agent.demo.gateway import CONFIG
from costwarden.tools.gateway.litellm_config import GatewayConfigError, Route, reroute, unified_diff

MINI = [Route("gpt-4o", "gpt-4o-mini")]
ALIASED = """\
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: "os.environ/OPENAI_API_KEY"   # quoted on purpose
  - model_name: small
    litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY}
router_settings:
  model_group_alias:
    helpdesk: gpt-4o      # the support widget
    billing-bot: {model: 'gpt-4o', hidden: true}
"""


def served(config: str, feature: str, n: int = 12) -> set[str]:
    """The deployments (litellm_params.model) a real Router built from `config` sends `n` calls of `feature` to."""
    from litellm import Router

    doc = yaml.safe_load(config)
    rs = doc.get("router_settings") or {}
    router = Router(model_list=doc["model_list"], model_group_alias=rs.get("model_group_alias") or {},
                    routing_strategy=rs.get("routing_strategy", "simple-shuffle"), num_retries=0)
    out = set()
    for _ in range(n):
        resp = router.completion(model=feature, messages=[{"role": "user", "content": "Where is my invoice?"}],
                                 mock_response="In Settings > Billing.")
        out.add(resp._hidden_params["litellm_model_name"])
    return out


def test_a_feature_with_its_own_model_group_reaches_the_small_model_through_a_real_router():
    assert served(CONFIG, "helpdesk") == {"openai/gpt-4o"}
    new = reroute(CONFIG, "config.yaml", "helpdesk", MINI)
    assert served(new.text, "helpdesk") == {"openai/gpt-4o-mini"}
    assert served(new.text, "summarize") == {"openai/gpt-4o"}  # the other features keep their model
    assert unified_diff(CONFIG, new.text, "config.yaml").count("\n-") == 1


def test_an_aliased_feature_is_pointed_at_the_small_models_group_through_a_real_router():
    assert served(ALIASED, "helpdesk") == {"openai/gpt-4o"}
    new = reroute(ALIASED, "c.yaml", "helpdesk", MINI)
    assert new.changes == [{"where": "router_settings.model_group_alias.helpdesk", "from": "gpt-4o", "to": "small"}]
    assert served(new.text, "helpdesk") == {"openai/gpt-4o-mini"}
    assert served(new.text, "gpt-4o") == {"openai/gpt-4o"}
    diff = unified_diff(ALIASED, new.text, "c.yaml")
    assert "-    helpdesk: gpt-4o      # the support widget\n+    helpdesk: small      # the support widget\n" in diff
    # the dict form of an alias keeps its quotes and its other keys
    other = reroute(ALIASED, "c.yaml", "billing-bot", MINI)
    assert "    billing-bot: {model: 'small', hidden: true}\n" in other.text


def test_the_edit_keeps_comments_quotes_and_indentation():
    new = reroute(ALIASED.replace("helpdesk: gpt-4o", "helpdesk: gpt-4o-x"), "c.yaml", "gpt-4o", MINI)
    assert new.text.splitlines()[3] == "      model: openai/gpt-4o-mini"
    assert '"os.environ/OPENAI_API_KEY"   # quoted on purpose' in new.text
    assert sum(a != b for a, b in zip(new.text.splitlines(), ALIASED.splitlines())) <= 2


def test_already_routed_is_no_change():
    new = reroute(CONFIG, "c.yaml", "helpdesk", MINI)
    again = reroute(new.text, "c.yaml", "helpdesk", MINI)
    assert again.already and again.changes == [] and again.text == new.text


@pytest.mark.parametrize("text, feature, message", [
    ("model_list: [\n", "helpdesk", "gateway config c.yaml: not valid YAML (line 2)"),
    ("- a\n- b\n", "helpdesk", "gateway config c.yaml: expected a mapping with `model_list`, found a list"),
    ("", "helpdesk", "found an empty file"),
    ("router_settings: {}\n", "helpdesk", "no `model_list` list (not a LiteLLM router config)"),
    ("model_list:\n  - model_name: x\n", "helpdesk", "model_list[0] has no `litellm_params` mapping"),
    (CONFIG, "checkout", "feature 'checkout' not found (no model_list model_name"),
    (CONFIG, "docs-search", "feature 'docs-search' runs anthropic/claude-sonnet-4-5, not gpt-4o"),
    ("model_list:\n  - model_name: chat\n    litellm_params: {model: openai/gpt-4o, tags: [helpdesk]}\n",
     "helpdesk", "routed by tag (litellm_params.tags); tag-based routing is not changed automatically"),
    (ALIASED.replace("  - model_name: small\n    litellm_params: {model: openai/gpt-4o-mini, api_key: "
                     "os.environ/OPENAI_API_KEY}\n", ""), "helpdesk", "no model_list group serves gpt-4o-mini"),
])
def test_bad_configs_and_unknown_features_are_one_line_errors(text, feature, message):
    with pytest.raises(GatewayConfigError) as exc:
        reroute(text, "c.yaml", feature, MINI)
    assert message in str(exc.value) and "\n" not in str(exc.value)


NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda s: s[0] != "-" and s != "gpt-4o-mini" and yaml.safe_load(s) == s)  # `null`, `no`: not names in YAML


@settings(max_examples=60, deadline=None)
@given(features=st.lists(NAMES, min_size=1, max_size=6, unique=True), pick=st.integers(min_value=0),
       comment=st.sampled_from(["", "  # main", "   # a: b"]), indent=st.sampled_from([0, 2, 4]))
def test_only_the_chosen_features_model_line_changes(features, pick, comment, indent):
    """Invariant: re-routing changes one line, that line is the feature's model, and every other
    feature still runs what it ran (the parsed configs differ in exactly that value)."""
    pad = " " * indent
    entries = "".join(f"{pad}- model_name: {f}{comment}\n{pad}  litellm_params:\n{pad}    model: openai/gpt-4o\n"
                      f"{pad}    api_key: os.environ/K\n" for f in features)
    text = f"# config\nmodel_list:\n{entries}general_settings: {{}}\n"
    chosen = features[pick % len(features)]
    new = reroute(text, "c.yaml", chosen, MINI)
    changed = [(a, b) for a, b in zip(text.splitlines(), new.text.splitlines()) if a != b]
    assert len(changed) == 1 and len(text.splitlines()) == len(new.text.splitlines())
    assert changed[0][1].strip() == "model: openai/gpt-4o-mini"
    before, after = yaml.safe_load(text), yaml.safe_load(new.text)
    for b, a in zip(before["model_list"], after["model_list"]):
        want = "openai/gpt-4o-mini" if b["model_name"] == chosen else "openai/gpt-4o"
        assert a["litellm_params"]["model"] == want and a["model_name"] == b["model_name"]

"""cap-spend end to end: the plan from a negative-margin or runaway-spend finding, the real httpx client
against a local fake of LiteLLM's /team and /key management endpoints (tests/fakes/litellm_proxy.py:
the real proxy needs a Prisma-managed database no test here can start), dry-run refusing every POST
at the transport, exactly one update per approved action, undo, and realized savings from usage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from costwarden.agent.cli.main import main
from costwarden.agent.config import Settings
from costwarden.agent.demo.billing import write_demo_billing
from costwarden.agent.engine.approvals import decide
from costwarden.agent.engine.context import Providers
from costwarden.agent.engine.execute import execute_action
from costwarden.agent.engine.realized import refresh_realized
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.actions.base import PlanContext
from costwarden.policies.actions.cap_spend import CapSpend, CapSpendParams
from costwarden.policies.actions.evidence import PlanError
from costwarden.policies.loader import load_policies, load_policy_file
from costwarden.state.clock import utcnow
from costwarden.state.domain import Finding, PlannedAction
from costwarden.state.store import Store, as_utc
from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.errors import DryRunViolation, ToolError
from costwarden.tools.litellm_proxy.admin import LiteLLMAdmin
from costwarden.tools.litellm_proxy.caps import restore_limits, set_limits, undo_args
from costwarden.tools.litellm_proxy.settings import LiteLLMProxySettings
from tests.fakes.litellm_proxy import MASTER_KEY, FakeLiteLLMProxy
from tests.test_realized_llm import GPT4O, MONTH, capped_tier

NOW = datetime(2025, 3, 20, 9, tzinfo=timezone.utc)
PCTX = PlanContext(now=NOW, price_of=lambda *_: (None, ""))
LIMITS = {"max_budget": 157.81, "budget_duration": "30d", "tpm_limit": None, "rpm_limit": 1000}


@pytest.fixture
def proxy():
    fake = FakeLiteLLMProxy(teams={"starter": {"max_budget": 500.0, "budget_duration": "30d"}},
                            keys={"hashed-key-1": {"key_alias": "agent-chat", "tpm_limit": 90000}})
    yield fake
    fake.stop()


def admin(proxy, *, dry_run=False, key=MASTER_KEY, **kw) -> LiteLLMAdmin:
    return LiteLLMAdmin(LiteLLMProxySettings(url=proxy.url, master_key=key, retry_wait_seconds=0, **kw),
                        dry_run=dry_run)


def finding(detector="negative-margin", evidence=None, resource_id="agent-chat", waste="417.64") -> Finding:
    ev = evidence if evidence is not None else {"tiers": [
        {"tier": "pro", "users": 5, "cost_per_user_month_after": 40.0, "saving_usd_month": 12.5},
        {"tier": "starter", "users": 20, "cost_per_user_month_after": 8.0, "saving_usd_month": 417.64}]}
    return Finding("fnd_1", "llm-margins", detector, "llm", "openai", "global", resource_id, "llm.feature", ev,
                   Decimal(waste), "medium", tags={"feature": resource_id})


# -- planning -------------------------------------------------------------------------------------
def test_plan_caps_the_tier_that_saves_most_at_its_cost_after_the_quota():
    call = CapSpend(CapSpendParams(target="{tier}")).plan(finding(), PCTX)
    assert call.tool == "llm.feature.set_limits" and call.projected_monthly_savings_usd == Decimal("417.64")
    assert call.args["target"] == "starter" and call.args["tier"] == "starter" and call.args["feature"] == "agent-chat"
    # 20 users x $8.00 a month, for a 30-day budget window of a 730-hour month
    assert call.args["limits"]["max_budget"] == pytest.approx(160 * 30 / (730 / 24), abs=0.01)
    assert call.args["basis"] == "cost_per_user"
    daily = CapSpend(CapSpendParams(target="{tier}", budget_duration="1d")).plan(finding(), PCTX)
    assert daily.args["limits"]["max_budget"] == pytest.approx(160 / (730 / 24), abs=0.01)


def test_targets_mapping_wins_most_specific_first_and_a_fixed_budget_stands():
    p = CapSpendParams(targets={"starter": "team-b", "agent-chat/starter": "team-a"}, scope="key",
                       max_budget=99, rpm_limit=30)
    call = CapSpend(p).plan(finding(), PCTX)
    assert call.args["target"] == "team-a" and call.args["scope"] == "key"
    assert call.args["limits"] == {"max_budget": 99, "budget_duration": "30d", "tpm_limit": None, "rpm_limit": 30}


def test_runaway_spend_is_capped_at_its_normal_month_plus_headroom():
    ev = {"signal": "cost_per_request_jump", "requests": 300, "cost_per_request_before_usd": 0.0005}
    call = CapSpend(CapSpendParams(target="team-{feature}", headroom=0.5)).plan(
        finding("spend-anomaly", ev, "summarize", "9.37"), PCTX)
    assert call.args["target"] == "team-summarize" and call.args["basis"] == "cost_per_request"
    assert call.args["limits"]["max_budget"] == pytest.approx(0.0005 * 300 * 1.5 * 30, abs=0.01)
    assert call.projected_monthly_savings_usd == Decimal("9.37")


@pytest.mark.parametrize("params,f,needle", [
    ({"target": "{tier}"}, finding("spend-anomaly", {"signal": "daily_spend", "expected_usd": 3.0}, "summarize"),
     "needs a value"),
    ({"target": "x"}, finding("spend-anomaly", {"signal": "new_spend"}, "summarize"), "set max_budget"),
    ({"target": "x"}, finding("oversized-model", {}), "negative-margin findings and spend-anomaly"),
    ({"targets": {"pro": "t"}}, finding(), "no entry in `targets`"),
], ids=["no-tier-for-template", "new-spend-without-budget", "wrong-detector", "unmapped"])
def test_plan_errors_name_the_policy_finding_and_reason(params, f, needle):
    with pytest.raises(PlanError, match="policy 'llm-margins', action 'cap-spend'") as exc:
        CapSpend(CapSpendParams(**params)).plan(f, PCTX)
    assert needle in str(exc.value)


@pytest.mark.parametrize("params,needle", [({}, "needs `target`"), ({"target": "t", "budget_duration": "month"},
                                                                      "budget_duration"),
                                          ({"target": "t", "max_budget": -1}, "greater than or equal")],
                         ids=["no-target", "bad-duration", "negative-budget"])
def test_bad_params_are_refused_when_the_policy_loads(tmp_path, params, needle):
    import yaml

    action = {"type": "cap-spend", **params}
    (tmp_path / "p.yml").write_text(yaml.safe_dump({"policies": [
        {"name": "m", "resource": "llm.feature", "mode": "approve", "filters": [{"type": "negative-margin"}],
         "actions": [action]}]}))
    with pytest.raises(Exception, match=needle) as exc:
        load_policy_file(tmp_path / "p.yml")
    assert "p.yml" in str(exc.value) and "Traceback" not in str(exc.value)


# -- the tools against the fake proxy -------------------------------------------------------------
def test_set_limits_is_one_update_recorded_for_undo_and_idempotent(proxy):
    a = admin(proxy)
    out = set_limits(a, scope="team", target="starter", limits=LIMITS)
    assert out.ok and out.after["state"] == "capped"
    assert proxy.posts() == [("/team/update", {"team_id": "starter", "max_budget": 157.81, "budget_duration": "30d",
                                               "rpm_limit": 1000})]
    assert out.after["previous"] == {"max_budget": 500.0, "budget_duration": "30d", "rpm_limit": None}
    assert set_limits(a, scope="team", target="starter", limits=LIMITS).ok and len(proxy.posts()) == 1
    undo = restore_limits(a, **undo_args({"scope": "team", "target": "starter"}, out.after))
    assert undo.ok and proxy.teams["starter"]["max_budget"] == 500.0 and proxy.teams["starter"]["rpm_limit"] is None
    assert proxy.posts()[-1] == ("/team/update", {"team_id": "starter", "max_budget": 500.0, "budget_duration": "30d",
                                                  "rpm_limit": None})
    a.close()


def test_key_scope_uses_key_update_with_the_key_field(proxy):
    a = admin(proxy)
    out = set_limits(a, scope="key", target="hashed-key-1", limits={"max_budget": 5.0, "tpm_limit": 1000})
    assert out.ok and proxy.posts() == [("/key/update", {"key": "hashed-key-1", "max_budget": 5.0, "tpm_limit": 1000})]
    assert out.after["previous"] == {"max_budget": None, "tpm_limit": 90000}
    assert restore_limits(a, scope="key", target="hashed-key-1", previous=out.after["previous"]).ok
    assert proxy.keys["hashed-key-1"]["tpm_limit"] == 90000 and proxy.keys["hashed-key-1"]["max_budget"] is None


def test_dry_run_refuses_every_post_at_the_transport(proxy):
    a = admin(proxy, dry_run=True)
    with pytest.raises(DryRunViolation, match="litellm.POST /team/update"):
        set_limits(a, scope="team", target="starter", limits=LIMITS)
    with pytest.raises(DryRunViolation):
        a.update("key", "hashed-key-1", {"max_budget": 1.0})
    assert proxy.posts() == [] and [m for m, *_ in proxy.requests] == ["GET"]  # the read went, nothing else
    assert a.call_log.refused == {"litellm.POST /team/update": 1, "litellm.POST /key/update": 1}
    assert a.call_log.mutating() == {}


def test_reads_are_retried_on_429_and_5xx_but_updates_never(proxy):
    a = admin(proxy, retries=3)
    proxy.fail_next = [503, 429]
    assert a.info("team", "starter")["max_budget"] == 500.0
    assert a.call_log.retries["litellm.GET /team/info"] == 2
    proxy.fail_next = [502]
    with pytest.raises(ToolError, match="HTTP 502"):
        a.update("team", "starter", {"max_budget": 1.0})
    assert len(proxy.posts()) == 1 and proxy.teams["starter"]["max_budget"] == 500.0
    proxy.fail_next = [500] * 4
    with pytest.raises(ToolError, match="GET /team/info: HTTP 500"):
        a.info("team", "starter")


@pytest.mark.parametrize("case", ["bad-key", "unknown-team", "unknown-field-refused", "unreachable"])
def test_failures_are_one_line_errors_and_change_nothing(proxy, case):
    if case == "bad-key":
        with pytest.raises(ToolError, match="HTTP 401: Authentication Error"):
            set_limits(admin(proxy, key="sk-wrong"), scope="team", target="starter", limits=LIMITS)
    elif case == "unknown-team":
        with pytest.raises(ToolError, match="HTTP 404: Team not found"):
            set_limits(admin(proxy), scope="team", target="nope", limits=LIMITS)
    elif case == "unknown-field-refused":
        with pytest.raises(ToolError, match="unknown limit field"):
            set_limits(admin(proxy), scope="team", target="starter", limits={"max_budgt": 1})
    else:
        dead = LiteLLMAdmin(LiteLLMProxySettings(url="http://127.0.0.1:9", master_key="k", retries=0), dry_run=False)
        with pytest.raises(ToolError, match="ConnectError"):
            dead.info("team", "starter")
    assert proxy.posts() == [] and proxy.teams["starter"]["max_budget"] == 500.0


def test_settings_missing_are_a_one_line_error_when_a_cap_runs():
    with pytest.raises(ToolError, match="litellm_proxy.url is not set"):
        set_limits(LiteLLMAdmin(LiteLLMProxySettings(), dry_run=False), scope="team", target="t", limits=LIMITS)
    with pytest.raises(ToolError, match="master_key is not set"):
        LiteLLMAdmin(LiteLLMProxySettings(url="http://x"), dry_run=True).info("team", "t")


# -- through the sweep and the approval -----------------------------------------------------------
LIVE_NOW = utcnow().replace(minute=0, second=0, microsecond=0)


def margins_policy():
    return [lp for lp in load_policies([]) if lp.policy.name == "llm-margins"]


@pytest.fixture
def live(tmp_path, proxy, no_costwarden_env):
    (tmp_path / "billing").mkdir()  # relative to the clock: an approval's expiry is checked against it
    billing = BillingSettings.model_validate(write_demo_billing(tmp_path / "billing", now=LIVE_NOW))
    settings = Settings(state_dir=tmp_path / "state", dry_run=False, billing=billing,
                        litellm_proxy=LiteLLMProxySettings(url=proxy.url, master_key=MASTER_KEY))
    return settings


def test_dry_run_sweep_proposes_the_cap_and_makes_no_request(live, proxy):
    result = run_sweep(live, margins_policy(), dry_run=True, now=LIVE_NOW)
    assert result.errors == []
    [a] = result.actions
    assert a.tool == "llm.feature.set_limits" and a.decision == "needs_approval" and a.status == "dry_run"
    assert a.action == "cap-spend"
    assert a.args["target"] == "starter" and a.projected_monthly_savings_usd > 0
    assert proxy.requests == []


def test_approved_cap_executes_exactly_once_is_measured_from_usage_and_undone(live, proxy, tmp_path, monkeypatch):
    result = run_sweep(live, margins_policy(), dry_run=False, now=LIVE_NOW)
    [a] = result.actions
    assert a.status == "awaiting_approval" and proxy.posts() == []
    store = Store(live.db_url)
    try:
        assert decide(live, store, a.id, actor="cli:alice", decision="approve") == "approved"
        row = store.get_action(a.id)
        assert row.status == "done" and row.before_state["previous"] == {"max_budget": 500.0, "budget_duration": "30d"}
        assert proxy.posts() == [("/team/update", {"team_id": "starter", "max_budget": a.args["limits"]["max_budget"],
                                                   "budget_duration": "30d"})]
        # a second approval and a replayed execution change nothing
        decide(live, store, a.id, actor="cli:bob", decision="approve")
        replay = PlannedAction.from_dict(a.to_dict())
        assert execute_action(store, Providers(live, dry_run=False), replay, run_id=None,
                              policy_hash="") == "already-claimed"
        assert len(proxy.posts()) == 1
        assert any(d.stage == "approval" for d in store.decisions(action_id=a.id))

        # realized: the tier's usage around the change, from the rollup (dry-run providers: reads only)
        [(_, _, acted_at)] = store.executed_actions()
        split = as_utc(acted_at).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        capped_tier(tmp_path, split)
        usage = BillingSettings(usage_paths=[str(tmp_path / "usage.jsonl")], usage_window_days=7)
        [m] = refresh_realized(store, Providers(live, dry_run=True), now=split + timedelta(days=7), billing=usage)
        assert m["method"] == "usage" and m["held"] is True and m["basis"] == "cost_per_user"
        assert m["realized_monthly_usd"] == pytest.approx((24 - 6) * GPT4O * MONTH * 20, rel=0.03)
        row = store.get_realized(a.id)
        assert row.method == "usage" and float(row.realized_monthly_usd) == m["realized_monthly_usd"]
        assert len(proxy.posts()) == 1  # measuring changed nothing
    finally:
        store.close()

    # undo from the command line: refused by the transport in dry-run, then the previous values back
    env = {"COSTWARDEN_STATE_DIR": str(live.state_dir), "COSTWARDEN_LITELLM_PROXY__URL": proxy.url,
           "COSTWARDEN_LITELLM_PROXY__MASTER_KEY": MASTER_KEY}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["approvals", "undo", a.id]) == 1 and len(proxy.posts()) == 1
    monkeypatch.setenv("COSTWARDEN_DRY_RUN", "false")
    assert main(["approvals", "undo", a.id]) == 0
    assert proxy.posts()[-1] == ("/team/update", {"team_id": "starter", "max_budget": 500.0, "budget_duration": "30d"})
    assert main(["approvals", "undo", a.id]) == 0 and len(proxy.posts()) == 2  # already back: no second POST
    store = Store(live.db_url)
    try:
        undo = [(d.decision, d.reason) for d in store.decisions(action_id=a.id) if d.stage == "undo"]
        assert [d for d, _ in undo] == ["started", "failed", "started", "done", "started", "done"]
        assert "dry-run: refused mutating call litellm.POST /team/update" in undo[1][1]
    finally:
        store.close()


def test_an_approved_cap_without_a_proxy_configured_fails_cleanly_with_its_reason(live, proxy):
    settings = live.model_copy(update={"litellm_proxy": LiteLLMProxySettings()})
    [a] = run_sweep(settings, margins_policy(), dry_run=False, now=LIVE_NOW).actions
    store = Store(settings.db_url)
    try:
        assert decide(settings, store, a.id, actor="cli:alice", decision="approve") == "approved"
        row = store.get_action(a.id)
        assert row.status == "failed" and row.error.startswith("litellm_proxy.url is not set")
    finally:
        store.close()
    assert proxy.requests == []

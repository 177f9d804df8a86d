"""Prices from the AWS Price List API: real boto3 against a fake Pricing API on 127.0.0.1.

The fake (tests/fakes/pricing.py) holds, next to each on-demand Linux product, the Windows, RHEL,
Dedicated, SQL Server and unused-reservation products of the same type, so a request with the
wrong filters would get a wrong price here. Prices in it are illustrative, not AWS's.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.agent.config import AwsSettings, ConfigError, PricingSettings, Settings, load_settings
from tests.fakes.pricing import PricingFake, ec2_product, sagemaker_product
from costwarden.tools.aws.price_cache import PriceCache
from costwarden.tools.aws.price_list import (EC2, MAX_FILTER_VALUE, SAGEMAKER, AwsPriceList, api_endpoint, batches,
                                  parse_price_list, product_filters, service_of)
from costwarden.tools.pricing import PRICE_LIST_CACHE, PriceBook

TODAY = datetime.now(timezone.utc).strftime("%Y-%m-%d")
P5EN = 63.296  # the fake's figure for p5en.48xlarge in us-east-1 (not in the shipped tables)


@pytest.fixture(scope="module")
def fake() -> PricingFake:
    server = PricingFake(page_size=4).start()  # small pages: one type's products already span two
    server.add_ec2("us-east-1", "p5en.48xlarge", P5EN)
    server.add_ec2("us-east-1", "trn2.48xlarge", 44.7023)
    server.add_ec2("us-east-1", "g6e.2xlarge", 2.24208)
    server.add_ec2("us-east-1", "p4d.24xlarge", 21.9576)
    server.add_ec2("us-west-2", "p5en.48xlarge", 63.296 * 1.02)
    server.add_sagemaker("us-east-1", "ml.g6e.2xlarge", 3.14)
    yield server
    server.stop()


@pytest.fixture
def pricing_api(fake: PricingFake, monkeypatch: pytest.MonkeyPatch) -> PricingFake:
    """boto3's pricing client reaches the fake through AWS_ENDPOINT_URL_PRICING (which beats a moto
    AWS_ENDPOINT_URL for this one service); no real credentials."""
    for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", fake.endpoint)
    fake.deny = False
    fake.page_size = 4
    fake.clear_calls()
    return fake


def live_book(state_dir: Path, **pricing: object) -> PriceBook:
    return PriceBook.from_settings(PricingSettings(source="price-list-api", **pricing), state_dir)


# -- the pure parts ------------------------------------------------------------------------------

def test_filters_select_the_on_demand_linux_shared_product():
    f = {x["Field"]: (x["Type"], x["Value"]) for x in product_filters(EC2, "us-east-1", ["p5en.48xlarge"])}
    assert f == {"instanceType": ("TERM_MATCH", "p5en.48xlarge"), "regionCode": ("TERM_MATCH", "us-east-1"),
                 "operatingSystem": ("TERM_MATCH", "Linux"), "tenancy": ("TERM_MATCH", "Shared"),
                 "preInstalledSw": ("TERM_MATCH", "NA"), "capacitystatus": ("TERM_MATCH", "Used")}
    sm = product_filters(SAGEMAKER, "eu-west-1", ["ml.g5.xlarge", "ml.p5.48xlarge"])
    several = {x["Field"]: (x["Type"], x["Value"]) for x in sm}
    assert several == {"instanceName": ("ANY_OF", "ml.g5.xlarge,ml.p5.48xlarge"),
                       "regionCode": ("TERM_MATCH", "eu-west-1"), "component": ("TERM_MATCH", "Hosting")}
    assert service_of("ml.g5.xlarge") == SAGEMAKER and service_of("p5en.48xlarge") == EC2
    assert service_of("ebs:gp3") is None and service_of("eip") is None  # these stay with the tables


def test_the_pricing_client_never_follows_a_global_endpoint(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")  # moto, for the estate's APIs
    monkeypatch.delenv("AWS_ENDPOINT_URL_PRICING", raising=False)
    assert api_endpoint(None, "ap-south-1") == "https://api.pricing.ap-south-1.amazonaws.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", "http://127.0.0.1:7000")
    assert api_endpoint(None, "us-east-1") == "http://127.0.0.1:7000"
    assert api_endpoint("http://127.0.0.1:8000", "us-east-1") == "http://127.0.0.1:8000"


def test_batches_fit_the_filter_value_limit():
    types = [f"g6e.{n}xlarge" for n in range(200)]
    groups = batches(types)
    assert [t for g in groups for t in g] == types  # every type once, in order
    assert len(groups) > 1 and all(len(",".join(g)) <= MAX_FILTER_VALUE for g in groups)
    assert batches(["a.x", "a.x", "b.x"]) == [["a.x", "b.x"]]


def test_parse_takes_the_on_demand_linux_price_among_look_alikes():
    docs = [json.dumps(ec2_product("us-east-1", "p5en.48xlarge", 63.296, operating_system="Windows",
                                   operation="RunInstances:0002")),
            json.dumps(ec2_product("us-east-1", "p5en.48xlarge", 63.296)),
            json.dumps(ec2_product("us-east-1", "g6.xlarge", 0.0, capacity="UnusedCapacityReservation")),
            "{not json", json.dumps({"product": {}})]
    quotes = parse_price_list(docs, EC2)
    assert set(quotes) == {("us-east-1", "p5en.48xlarge")}  # a $0 line is no price, never a silent $0
    q = quotes[("us-east-1", "p5en.48xlarge")]
    assert q.usd_per_hour == Decimal("63.296") and q.operation == "RunInstances"
    sm = parse_price_list([sagemaker_product("us-east-1", "ml.g5.xlarge", 1.408)], SAGEMAKER)
    assert sm[("us-east-1", "ml.g5.xlarge")].usd_per_hour == Decimal("1.408")


# -- through boto3 -------------------------------------------------------------------------------

def test_a_type_missing_from_the_tables_is_priced_from_the_api(pricing_api, state_dir):
    assert PriceBook().hourly("aws", "us-east-1", "p5en.48xlarge") == (None, "unpriced")  # the tables alone

    book = live_book(state_dir)
    assert book.hourly("aws", "us-east-1", "p5en.48xlarge") == (Decimal("63.296"), f"AWS Price List API, {TODAY}")
    # one request, signed for the API's region, whose filters leave out the type's five look-alikes
    assert pricing_api.calls == ["GetProducts"]
    req = pricing_api.requests[0]
    assert req["region"] == "us-east-1" and req["body"]["ServiceCode"] == "AmazonEC2"
    assert {f["Field"] for f in req["body"]["Filters"]} >= {"instanceType", "regionCode", "operatingSystem",
                                                            "tenancy", "preInstalledSw", "capacitystatus"}
    # SageMaker types go to AmazonSageMaker, real-time hosting (the fake's Training product costs more)
    assert book.hourly("aws", "us-east-1", "ml.g6e.2xlarge")[0] == Decimal("3.14")
    assert pricing_api.requests[-1]["body"]["ServiceCode"] == "AmazonSageMaker"
    assert book.warnings == []
    cached = json.loads((state_dir / PRICE_LIST_CACHE).read_text())["entries"]
    assert cached["AmazonEC2/us-east-1/p5en.48xlarge"]["usd_per_hour"] == "63.296"


def test_a_cache_hit_makes_no_second_call(pricing_api, state_dir):
    assert live_book(state_dir).hourly("aws", "us-west-2", "p5en.48xlarge")[0] == Decimal("64.56192")
    calls = len(pricing_api.calls)
    assert calls >= 1
    again = live_book(state_dir)  # the next sweep: a new book over the same state_dir
    assert again.hourly("aws", "us-west-2", "p5en.48xlarge") == (Decimal("64.56192"), f"AWS Price List API, {TODAY}")
    assert again.hourly("aws", "us-west-2", "p5en.48xlarge")[0] == Decimal("64.56192")
    assert len(pricing_api.calls) == calls


def test_a_type_the_api_does_not_sell_is_cached_as_absent_and_falls_back_to_the_tables(pricing_api, state_dir):
    book = live_book(state_dir)
    # g5.2xlarge is not in the fake: the table figure answers, and the absence is cached
    assert book.hourly("aws", "us-east-1", "g5.2xlarge") == (
        Decimal("1.212"), "AWS EC2 On-Demand public price list (Linux, shared tenancy), as of 2025-07-01")
    assert book.hourly("aws", "us-east-1", "no-such.type") == (None, "unpriced")
    calls = len(pricing_api.calls)
    live_book(state_dir).hourly("aws", "us-east-1", "g5.2xlarge")
    assert len(pricing_api.calls) == calls  # not asked again within the TTL


def test_an_expired_cache_is_fetched_again_with_its_siblings_in_one_request(pricing_api, state_dir):
    path = state_dir / PRICE_LIST_CACHE
    AwsPriceList(path).hourly("us-east-1", "trn2.48xlarge")
    AwsPriceList(path).hourly("us-east-1", "g6e.2xlarge")
    pricing_api.clear_calls()

    fresh = AwsPriceList(path, now=lambda: datetime.now(timezone.utc) + timedelta(days=6))
    assert fresh.hourly("us-east-1", "trn2.48xlarge")[0] == Decimal("44.7023")
    assert pricing_api.calls == []  # six days old: still fresh

    later = datetime.now(timezone.utc) + timedelta(days=8)
    expired = AwsPriceList(path, now=lambda: later)
    pricing_api.page_size = 1  # one product a page: the two answers come on two pages (NextToken)
    price, source = expired.hourly("us-east-1", "trn2.48xlarge")
    assert price == Decimal("44.7023") and source == f"AWS Price List API, {later:%Y-%m-%d}"
    first = pricing_api.requests[0]["body"]["Filters"][0]
    assert first["Type"] == "ANY_OF" and set(first["Value"].split(",")) == {"trn2.48xlarge", "g6e.2xlarge"}
    assert pricing_api.calls == ["GetProducts", "GetProducts"] and pricing_api.requests[1]["body"]["NextToken"]
    calls = len(pricing_api.calls)
    assert expired.hourly("us-east-1", "g6e.2xlarge")[0] == Decimal("2.24208")  # refreshed by that request
    assert len(pricing_api.calls) == calls
    assert PriceCache(path).get("AmazonEC2/us-east-1/g6e.2xlarge").fetched_at.date() == later.date()


def test_an_override_still_wins(pricing_api, state_dir):
    book = live_book(state_dir, overrides={"p5en.48xlarge": 41.5, "us-west-2/p4d.24xlarge": 19.0})
    assert book.hourly("aws", "us-east-1", "p5en.48xlarge") == (Decimal("41.5"), "config override")
    assert book.hourly("aws", "us-west-2", "p4d.24xlarge") == (Decimal("19.0"), "config override")
    assert pricing_api.calls == []  # an overridden type is never asked for
    assert book.hourly("aws", "us-east-1", "p4d.24xlarge")[1] == f"AWS Price List API, {TODAY}"  # not overridden


def test_access_denied_falls_back_to_the_tables_with_one_warning(pricing_api, state_dir):
    pricing_api.deny = True
    book = live_book(state_dir)
    assert book.hourly("aws", "us-east-1", "p4d.24xlarge") == (
        Decimal("21.96"), "AWS EC2 On-Demand public price list (Linux, shared tenancy), as of 2025-07-01")
    assert book.hourly("aws", "us-east-1", "p5en.48xlarge") == (None, "unpriced")
    assert book.hourly("aws", "us-west-2", "g5.xlarge")[0] == Decimal("1.006")
    assert pricing_api.calls == ["GetProducts"]  # asked once, then left alone for the rest of the run
    assert len(book.warnings) == 1
    assert book.warnings[0].startswith("pricing: the AWS Price List API could not be used (AccessDeniedException: ")
    assert "\n" not in book.warnings[0]
    assert not (state_dir / PRICE_LIST_CACHE).exists()


def test_no_network_falls_back_with_one_warning(state_dir, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    book = live_book(state_dir, endpoint_url="http://127.0.0.1:9")  # nothing listens on port 9
    assert book.hourly("aws", "us-east-1", "g5.2xlarge")[0] == Decimal("1.212")
    assert book.hourly("aws", "us-east-1", "p4d.24xlarge")[0] == Decimal("21.96")
    assert len(book.warnings) == 1 and "EndpointConnectionError" in book.warnings[0]


def test_an_expired_price_beats_the_tables_when_the_api_fails(pricing_api, state_dir):
    path = state_dir / PRICE_LIST_CACHE
    AwsPriceList(path).hourly("us-east-1", "p5en.48xlarge")
    pricing_api.deny = True
    later = datetime.now(timezone.utc) + timedelta(days=30)
    book = PriceBook(price_list=AwsPriceList(path, now=lambda: later))
    price, source = book.hourly("aws", "us-east-1", "p5en.48xlarge")
    assert price == Decimal("63.296")
    assert source == f"AWS Price List API, {TODAY} (expired; the API could not be reached to refresh it)"
    assert len(book.warnings) == 1


def test_an_unreadable_cache_is_a_warning_and_a_fresh_start(pricing_api, state_dir):
    state_dir.mkdir(parents=True)
    (state_dir / PRICE_LIST_CACHE).write_text("{half a file")
    book = live_book(state_dir)
    assert book.hourly("aws", "us-east-1", "p5en.48xlarge")[0] == Decimal("63.296")
    assert len(book.warnings) == 1 and "ignoring the unreadable price cache" in book.warnings[0]
    assert json.loads((state_dir / PRICE_LIST_CACHE).read_text())["entries"]  # rewritten, whole


def test_the_tables_stay_the_default_and_a_bad_source_is_named(tmp_path, no_costwarden_env):
    assert Settings().pricing.source == "tables"
    assert PriceBook.from_settings(Settings().pricing, tmp_path).price_list is None  # no API, no permission
    cfg = tmp_path / "c.yml"
    cfg.write_text("pricing:\n  source: pricelist\n")
    with pytest.raises(ConfigError, match=r"c.yml:2: field 'pricing.source': Input should be 'tables' or "
                                          r"'price-list-api'"):
        load_settings(cfg)
    cfg.write_text("pricing:\n  source: price-list-api\n  api_region: us-west-2\n")
    with pytest.raises(ConfigError, match=r"field 'pricing.api_region'"):
        load_settings(cfg)


# -- the sweep and the CLI -----------------------------------------------------------------------

def test_a_dry_run_sweep_with_the_price_list_makes_zero_mutating_calls(aws, pricing_api, state_dir,
                                                                       no_costwarden_env):
    from costwarden.agent.demo.estate import ESTATE, DemoInstance, seed_estate
    from costwarden.agent.engine.sweep import run_sweep
    from costwarden.policies.loader import load_policies
    from tests.fakes.moto_server import mutating

    estate = [i for i in ESTATE if i.name in ("llm-finetune-01", "embeddings-batch", "inference-h100", "web-1")]
    estate.append(DemoInstance("h200-finetune", "us-east-1", "p5en.48xlarge", {"team": "research"}, "idle", "idle"))
    ids = seed_estate(aws.endpoint, estate=estate, days=8)
    aws.clear_calls()
    settings = Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1"]),
                        pricing=PricingSettings(source="price-list-api"))
    result = run_sweep(settings, load_policies([]), dry_run=True)

    idle = {f.resource_id: f.evidence for f in result.findings if f.detector == "idle-gpu"}
    assert set(idle) == {ids["h200-finetune"], ids["llm-finetune-01"], ids["embeddings-batch"]}
    h200 = idle[ids["h200-finetune"]]
    assert h200["hourly_price_usd"] == P5EN and h200["price_source"] == f"AWS Price List API, {TODAY}"
    assert idle[ids["llm-finetune-01"]]["hourly_price_usd"] == 21.9576  # the API's figure beats the table's
    assert idle[ids["embeddings-batch"]]["price_source"].startswith("AWS EC2 On-Demand public price list")
    assert not any("no on-demand price" in w for w in result.warnings)

    # proof below our code: moto saw reads only, the Pricing fake GetProducts only, nothing was refused
    assert mutating(aws.calls) == [] and result.refused_calls == {}
    assert set(pricing_api.calls) == {"GetProducts"}
    assert result.api_calls["pricing.GetProducts"] == len(pricing_api.calls)
    asked = {f["Value"] for r in pricing_api.requests for f in r["body"]["Filters"] if f["Field"] == "instanceType"}
    assert "p5en.48xlarge" in asked and "m5.xlarge" not in {t for v in asked for t in v.split(",")}  # needed only


def test_cli_refresh_then_show(pricing_api, tmp_path, capsys, no_costwarden_env):
    from costwarden.agent.cli.main import main

    state = tmp_path / "state"
    assert main(["prices", "refresh", "p5en.48xlarge", "trn2.48xlarge", "p4d.24xlarge", "--region", "us-east-1",
                 "--state-dir", str(state)]) == 0
    out = capsys.readouterr()
    assert "p5en.48xlarge" in out.out and "$63.2960/h" in out.out and "not in the shipped tables" in out.out
    assert "shipped tables: $21.9600/h" in out.out
    assert "3 prices fetched in 1 GetProducts request;" in out.out  # one batched request
    assert "pricing.source is 'tables'" in out.err

    cfg = tmp_path / "c.yml"
    cfg.write_text("pricing:\n  source: price-list-api\n")
    pricing_api.clear_calls()
    assert main(["prices", "show", "p5en.48xlarge", "-c", str(cfg), "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out == (f"p5en.48xlarge in us-east-1: $63.2960/h, $46,206.08/month at 730 h "
                                       f"(AWS Price List API, {TODAY})\n")
    assert pricing_api.calls == []  # from the cache

    assert main(["prices", "refresh", "--state-dir", str(state)]) == 0  # no types: what the cache holds
    assert "3 prices fetched in 1 GetProducts request;" in capsys.readouterr().out


def test_cli_refresh_failure_is_one_line_exit_2(pricing_api, tmp_path, capsys, no_costwarden_env):
    from costwarden.agent.cli.main import main

    pricing_api.deny = True
    assert main(["prices", "refresh", "p5en.48xlarge", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("costwarden: error: AWS Price List API: AccessDeniedException: ")
    assert main(["prices", "refresh", "ebs:gp3", "--state-dir", str(tmp_path)]) == 2
    assert "not an EC2 or SageMaker instance type" in capsys.readouterr().err
    assert main(["prices", "refresh", "--state-dir", str(tmp_path / "empty")]) == 2
    assert "nothing to refresh" in capsys.readouterr().err

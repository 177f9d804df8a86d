"""Many AWS accounts behind one lean fake on 127.0.0.1: STS AssumeRole, EC2 DescribeInstances per
account, CloudWatch GetMetricData; for the fan-out tests and bench/fanout.py.

Why not moto: 1,000 accounts with a few instances each is 1,000 RunInstances and ~3,000 requests a
tick on one moto server, whose per-request cost on this shared 2-core machine is what a fan-out
benchmark would then measure (bench/fanout.py prints the comparison). Here each request costs
microseconds plus an optional fixed `latency_s`, the round trip a real AWS endpoint has: with it
the sweep is I/O-bound, as it is against AWS.

Routing is by the SigV4 credential scope (`Credential=<key>/<date>/<region>/<service>/...`):
AssumeRole hands out the key `ASIA<account id>`, so every later request names its account, and
each account has an EC2 fake of its own (tests/fakes/ec2.py). Every request is counted per
(account, operation) where it arrives, and its arrival time kept (the rate-budget tests read them); a
request whose session token is not the one AssumeRole handed out with its key (`token-<account id>`)
is also counted in `mismatched`, so credentials mixed across accounts inside one process show up
here. `throttle` makes an account's EC2 calls answer
RequestLimitExceeded (EC2's throttling error), as a throttled account would.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import urllib.parse
from collections import Counter
from typing import Any
from xml.sax.saxutils import escape

from tests.fakes._wsgi import WsgiFake
from tests.fakes.cloudwatch import CloudWatchFake
from tests.fakes.ec2 import STATE_CODES, XMLNS, Ec2Error, Ec2Fake

BASE_ACCOUNT = "000000000000"
_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/")
_ROLE = re.compile(r"^arn:aws:iam::(\d{12}):role/(.+)$")
STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"


class AccountsFake(WsgiFake):
    def __init__(self, *, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.cloudwatch = CloudWatchFake()
        self.ec2: dict[str, Ec2Fake] = {}
        self.throttle: set[str] = set()
        self.throttle_delay_s = 0.0  # how long a throttled answer takes (a floor under the sender's backoff)
        self.holds: dict[tuple[str, str], threading.Event] = {}  # (account, operation) -> released when set
        self.counts: Counter[tuple[str, str]] = Counter()  # (account, operation) -> requests
        self.arrivals: list[tuple[float, str, str]] = []  # (time.monotonic(), account, operation) of each request
        self.mismatched: Counter[tuple[str, str]] = Counter()  # (account of the key, service) -> requests
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._calls: list[str] = []
        self._server: Any = None

    def account(self, account: str) -> Ec2Fake:
        """The account's EC2 fake; instance ids stay unique across accounts (CloudWatch keys by them)."""
        with self._lock:
            fake = self.ec2.get(account)
            if fake is None:
                fake = self.ec2[account] = Ec2Fake(account)
                fake._ids = itertools.count(next(self._ids) * 10_000)  # noqa: SLF001 - test fake internals
            return fake

    def per_account(self, operation: str) -> Counter[str]:
        with self._lock:
            return Counter({a: n for (a, op), n in self.counts.items() if op == operation})

    def clear_calls(self) -> None:
        with self._lock:
            self.counts.clear()
            self.arrivals.clear()
            self.mismatched.clear()
            self._calls.clear()

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if self.latency_s:
            time.sleep(self.latency_s)
        m = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        key, region, service = m.groups() if m else ("", "us-east-1", "")
        account = key[4:] if key.startswith("ASIA") and key[4:].isdigit() else BASE_ACCOUNT
        token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
        if token != (f"token-{account}" if account != BASE_ACCOUNT else None):
            with self._lock:
                self.mismatched[(account, service)] += 1
        if service == "monitoring":
            op = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
            self._count(account, op)
            return self.cloudwatch._app(environ, start_response)  # noqa: SLF001 - same package
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode() if length else ""
        params = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
        op = params.get("Action", "?")
        role = _ROLE.match(params.get("RoleArn", "")) if op == "AssumeRole" else None
        self._count(role.group(1) if role else account, op)  # an AssumeRole counts for the account it enters
        held = self.holds.get((account, op))
        if held is not None:
            held.wait(120)  # a call in flight for as long as a test needs (to kill its caller)
        if service == "sts":
            return self._sts(op, params, account, start_response)
        try:
            if service == "ec2" and op == "StopInstances" and account not in self.throttle:
                return _send(start_response, "200 OK", self._stop(account, region, params))
            if service != "ec2" or op != "DescribeInstances":
                raise Ec2Error("UnsupportedOperation", f"the fake implements DescribeInstances only, not {op}")
            if account in self.throttle:
                time.sleep(self.throttle_delay_s)
                raise Ec2Error("RequestLimitExceeded", "Request limit exceeded.")
            status, xml = "200 OK", self.account(account).describe_instances(region, params)
        except Ec2Error as exc:
            status = "503 Service Unavailable" if exc.code == "RequestLimitExceeded" else "400 Bad Request"
            xml = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{exc.code}</Code>'
                   f"<Message>{escape(exc.message)}</Message></Error></Errors><RequestID>fake</RequestID></Response>")
        return _send(start_response, status, xml)

    def _stop(self, account: str, region: str, params: dict[str, str]) -> str:
        """StopInstances of one account's instances (the stop action's call): they read as stopped after."""
        ids = {v for k, v in params.items() if k.startswith("InstanceId.")}
        items = []
        held = self.account(account)._regions.get(region)  # noqa: SLF001 - same package
        for inst in held.instances if held is not None else []:
            if inst.instance_id in ids:
                before, inst.state = inst.state, "stopped"
                items.append(f"<item><instanceId>{inst.instance_id}</instanceId><currentState><code>64</code>"
                             f"<name>stopping</name></currentState><previousState><code>{STATE_CODES[before]}"
                             f"</code><name>{before}</name></previousState></item>")
        if not items:
            raise Ec2Error("InvalidInstanceID.NotFound", f"no instances {sorted(ids)} in {account}/{region}")
        return (f'<StopInstancesResponse xmlns="{XMLNS}"><requestId>fake</requestId><instancesSet>'
                f'{"".join(items)}</instancesSet></StopInstancesResponse>')

    def _count(self, account: str, op: str) -> None:
        with self._lock:
            self.counts[(account, op)] += 1
            self.arrivals.append((time.monotonic(), account, op))
            self._calls.append(op)

    def _sts(self, op: str, params: dict[str, str], caller: str, start_response: Any) -> list[bytes]:
        if op == "GetCallerIdentity":
            return _send(start_response, "200 OK", _sts_xml(op, f"<Account>{caller}</Account>"
                                                            f"<Arn>arn:aws:iam::{caller}:user/costwarden</Arn>"
                                                            f"<UserId>AIDAFAKE</UserId>"))
        m = _ROLE.match(params.get("RoleArn", ""))
        if op != "AssumeRole" or m is None:
            return _send(start_response, "400 Bad Request", '<ErrorResponse><Error><Type>Sender</Type><Code>'
                         f"InvalidAction</Code><Message>not {escape(op)}</Message></Error></ErrorResponse>")
        account, role = m.groups()
        session = escape(params.get("RoleSessionName", "s"))
        return _send(start_response, "200 OK", _sts_xml(op, (
            f"<Credentials><AccessKeyId>ASIA{account}</AccessKeyId><SecretAccessKey>fake</SecretAccessKey>"
            f"<SessionToken>token-{account}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROAFAKE:{session}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::{account}:assumed-role/{escape(role)}/{session}</Arn></AssumedRoleUser>")))


def _sts_xml(op: str, inner: str) -> str:
    return (f'<{op}Response xmlns="{STS_XMLNS}"><{op}Result>{inner}</{op}Result>'
            f"<ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></{op}Response>")


def _send(start_response: Any, status: str, xml: str) -> list[bytes]:
    data = xml.encode()
    start_response(status, [("Content-Type", "text/xml;charset=UTF-8"), ("Content-Length", str(len(data)))])
    return [data]

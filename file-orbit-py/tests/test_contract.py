"""The hand-written Python models cannot drift from the core's Rust types: every class of
the package with a ``_to_core()`` (found by walking the package, so a new model without a
case here fails) is built with a value other than its default in every field, and what it
sends goes through the core's serde (``_native.check_core``), which refuses a key it does
not know and returns what it read. Every value Python set must come back unchanged; a key
the core dropped (a typo the core skipped) or changed fails, naming the path.

No servers needed: nothing is stored or transferred.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import inspect
import json
import pathlib
from typing import Any

import pytest

import file_orbit as fo
from file_orbit import _native
from file_orbit._orbit import _ingest_event, _notification_request, _source_request, _submit_request

# Secret fields: the core writes them back as "***" (it never shows a secret).
SECRETS = {"password", "secret_access_key", "session_token", "pem", "passphrase", "signing_key", "webhook_url"}

# Classes with a ``_to_core`` that are never built themselves: their subclasses are.
ABSTRACT = {fo.Endpoint, fo.Channel}

FILTERS = fo.Filters(
    include=("*.csv", "in/**"),
    exclude=("*.tmp",),
    min_age=90,
    max_age=_dt.timedelta(days=2),
    min_size=1024,
    max_size="20M",
)
RETRY = fo.RetryPolicy(max_attempts=7, base_delay=1.5, max_delay=42.0)


def spec(destination: str = "archive") -> fo.TransferSpec:
    return fo.TransferSpec(
        fo.Local("inbox", root="/srv/inbox"),
        destination,
        destination_path="{year}/{filename}",
        source_path="incoming/a.csv",
        mode="move",
        scope="file",
        filters=FILTERS,
        conflict="newer_only",
        verify=True,
        parallelism=8,
    )


# Per class: the core type it stands for, and instances that together give every field a
# value other than its default (SFTP's ways to log in and check the host key exclude each
# other, so it takes several).
CASES: dict[type, tuple[str, list[Any]]] = {
    fo.Filters: ("filters", [FILTERS]),
    fo.RetryPolicy: ("retry_policy", [RETRY]),
    fo.TransferSpec: ("transfer_spec", [spec()]),
    fo.Template: (
        "template",
        [
            fo.Template(
                "nightly",
                spec(),
                path_glob="incoming/**/*.csv",
                min_size=10,
                max_size=10_000,
                min_age=30,
                content_type="text/*",
                metadata={"dept": "fin*"},
                priority=5,
                retry=RETRY,
                next_hops=(spec("backup"), spec("offsite")),
                enabled=False,
                schedule="0 0 2 * * *",
                missed_ticks="run_once",
            )
        ],
    ),
    fo.Local: (
        "endpoint",
        [
            fo.Local(
                "inbox",
                root="/srv/inbox",
                bandwidth="08:00,512k 19:00,off",
                placement=fo.Placement(agents=("b",)),
            )
        ],
    ),
    fo.Placement: ("placement", [fo.Placement(agents=("b", "c"), labels=("dmz", "eu-west"))]),
    fo.S3: (
        "endpoint",
        [
            fo.S3(
                "bucket",
                bucket="fo-bucket",
                prefix="in/",
                region="eu-west-1",
                endpoint_url="http://127.0.0.1:9000",
                access_key_id="AKID",
                secret_access_key="s3-secret",
                session_token="s3-token",
                provider="Minio",
                force_path_style=True,
                storage_class="STANDARD_IA",
                server_side_encryption="AES256",
                bandwidth="10M:2M",
                placement=fo.Placement(labels=("dmz",)),
            )
        ],
    ),
    fo.Sftp: (
        "endpoint",
        [
            fo.Sftp(
                "partner",
                host="sftp.example.com",
                user="acme",
                port=2222,
                password="sftp-pw",
                known_hosts="/etc/ssh/known_hosts",
                root="/upload",
                server_hashes=True,
                bandwidth="Mon-08:00,1M Sat-00:00,off",
                placement=fo.Placement(agents=("c",), labels=("dmz",)),
            ),
            fo.Sftp(
                "partner-key",
                host="sftp.example.com",
                user="acme",
                key_file="/home/acme/.ssh/id_ed25519",
                passphrase="key-pass",
                host_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ0cnVzdGVkLWtleQ",),
            ),
            fo.Sftp(
                "partner-pem",
                host="sftp.example.com",
                user="acme",
                key_pem="-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
                insecure_skip_host_key=True,
            ),
            fo.Sftp("partner-agent", host="sftp.example.com", user="acme", agent=True),
        ],
    ),
    fo.SqsSource: (
        "sqs_source",
        [
            fo.SqsSource(
                "https://sqs.eu-west-1.amazonaws.com/123456789012/uploads",
                region="eu-west-1",
                endpoint="s3in",
                endpoint_url="http://127.0.0.1:5000",
                access_key_id="AKID",
                secret_access_key="sqs-secret",
                session_token="sqs-token",
                wait_time_seconds=5,
                max_messages=3,
                visibility_timeout_seconds=600,
            )
        ],
    ),
    fo.LocalWatch: (
        "local_watch",
        [
            fo.LocalWatch(
                fo.Local("inbox", root="/srv/inbox"),
                sub_path="drop/today",
                stable_for=2.5,
                marker_suffix=".done",
                ignore=("*.part", "~*"),
                rescan_interval=0.25,
            )
        ],
    ),
    fo.RemotePoll: (
        "remote_poll",
        [fo.RemotePoll("partner", "outbox/2026", interval=1.5, ignore=["*.lock"])],
    ),
    fo.Webhook: ("channel", [fo.Webhook("https://hooks.example.com/orbit", signing_key="sixteen-chars-key")]),
    fo.Email: (
        "channel",
        [
            fo.Email(
                "smtp.example.com",
                to=("ops@example.com", "Night Desk <night@example.com>"),
                sender="File Orbit <orbit@example.com>",
                port=2465,
                tls="tls",
                username="orbit",
                password="smtp-pw",
                ca_file="/etc/ssl/private-ca.pem",
            )
        ],
    ),
    fo.Slack: ("channel", [fo.Slack("https://hooks.slack.com/services/T0/B0/slack-token")]),
    fo.Teams: ("channel", [fo.Teams("https://prod.westeurope.logic.azure.com/workflows/teams-token")]),
    fo.RateLimit: ("rate_limit", [fo.RateLimit(3, 60)]),
    fo.Smb: (
        "endpoint",
        [
            fo.Smb(
                "share",
                host="files.example.com",
                user="DOM\\u",
                password="smb-pw",
                share="data",
                bandwidth="off",
                placement=fo.Placement(agents=("b",)),
                port=1445,
                domain="CORP",
                root="in/2026",
            )
        ],
    ),
}


def models_with_to_core() -> set[type]:
    """Every class defined in a Python module of the package that has a ``_to_core``."""
    found = set()
    for source in sorted(pathlib.Path(fo.__file__).parent.glob("*.py")):
        name = f"{fo.__name__}.{source.stem}" if source.stem != "__init__" else fo.__name__
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and hasattr(cls, "_to_core"):
                found.add(cls)
    return found


def test_every_model_with_to_core_has_a_case() -> None:
    found = models_with_to_core()
    assert fo.TransferSpec in found and fo.Sftp in found, found
    missing = found - ABSTRACT - CASES.keys()
    assert not missing, f"add a contract case for {sorted(c.__name__ for c in missing)}"


@pytest.mark.parametrize("cls", list(CASES), ids=lambda cls: cls.__name__)
def test_every_field_is_set_to_something_other_than_its_default(cls: type) -> None:
    _, instances = CASES[cls]
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            continue  # required: no default to differ from
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert any(getattr(obj, f.name) != default for obj in instances), (
            f"{cls.__name__}.{f.name}: every case leaves it at its default {default!r}"
        )


def assert_kept(sent: Any, back: Any, path: str) -> None:
    """Every value of ``sent`` is in ``back`` (the core's JSON of what it read), unchanged."""
    if isinstance(sent, dict):
        assert isinstance(back, dict), f"{path}: sent an object, the core has {back!r}"
        for key, value in sent.items():
            assert key in back, f"{path}.{key}: sent {value!r}, the core dropped it"
            if key in SECRETS and isinstance(value, str):
                assert back[key] == "***", f"{path}.{key}: a secret came back as {back[key]!r}"
            else:
                assert_kept(value, back[key], f"{path}.{key}")
    elif isinstance(sent, list):
        assert isinstance(back, list) and len(back) == len(sent), f"{path}: sent {sent!r}, the core has {back!r}"
        for index, (one, other) in enumerate(zip(sent, back)):
            assert_kept(one, other, f"{path}[{index}]")
    else:
        assert sent == back and type(sent) is type(back) or (
            isinstance(sent, (int, float)) and not isinstance(sent, bool) and sent == back
        ), f"{path}: sent {sent!r}, the core has {back!r}"


def check(kind: str, sent: dict[str, Any]) -> dict[str, Any]:
    back: dict[str, Any] = json.loads(_native.check_core(kind, json.dumps(sent)))
    assert_kept(sent, back, kind)
    return back


@pytest.mark.parametrize("cls", list(CASES), ids=lambda cls: cls.__name__)
def test_to_core_goes_through_the_core_with_every_value_kept(cls: type) -> None:
    kind, instances = CASES[cls]
    for obj in instances:
        check(kind, obj._to_core())


def test_a_job_request_with_next_hops_goes_through_the_core() -> None:
    request = _submit_request(spec(), 9, "once-only", RETRY, (spec("backup"), spec("offsite")))
    back = check("job_request", request)
    assert [hop["destination"] for hop in back["next_hops"]] == ["backup", "offsite"]


@pytest.mark.parametrize("kind", [fo.SqsSource, fo.LocalWatch, fo.RemotePoll], ids=lambda cls: cls.__name__)
def test_a_stored_source_goes_through_the_cores_one_parser(kind: type) -> None:
    spec = CASES[kind][1][0]
    request = _source_request("uploads", spec, False, "host-b", {"site": "paris"})
    back = check("source", request)
    assert (back["kind"], back["placement"]) == (spec._kind, {"node": "host-b", "labels": {"site": "paris"}})
    anywhere = check("source", _source_request("anywhere", spec, True, None, None))
    assert anywhere["placement"] == {} and anywhere["enabled"] is True


def test_a_notification_goes_through_the_cores_one_parser() -> None:
    channel = CASES[fo.Email][1][0]
    request = _notification_request(
        "ops", channel, ["job_dead", "worker_lost"], ("nightly",), ("in",), ("uploads",), fo.RateLimit(3, 60), 5, False
    )
    back = check("notification", request)
    assert back["channel"]["from"] == "File Orbit <orbit@example.com>" and back["channel"]["password"] == "***"
    defaults = check("notification", _notification_request("ops", channel, "job_dead", (), (), (), None, 8, True))
    assert defaults["events"] == ["job_dead"] and defaults["rate_limit"] == {"messages": 10, "per_secs": 300}


def test_an_ingested_event_goes_through_the_core() -> None:
    modified = _dt.datetime(2026, 12, 7, 9, 30, tzinfo=_dt.timezone.utc)
    event = _ingest_event(
        "inbox", "in/a.csv", 123, modified, "nightly", "manual", "dedup-1", {"why": "test"}, "text/csv", {"dept": "hr"}
    )
    sent = {**event, "file": {**event["file"], "modified": None}}
    back = check("incoming_event", sent)
    # The core's timestamp form differs from isoformat(): compare the instant.
    read = json.loads(_native.check_core("incoming_event", json.dumps(event)))
    assert _dt.datetime.fromisoformat(read["file"]["modified"].replace("Z", "+00:00")) == modified
    assert back["payload"] == {"why": "test"}
    assert (back["file"]["content_type"], back["file"]["metadata"]) == ("text/csv", {"dept": "hr"})


@pytest.mark.parametrize(
    ("kind", "typo", "field"),
    [
        ("transfer_spec", {"verifyy": True}, "verifyy"),
        ("filters", {"min_agee": "1s"}, "min_agee"),
        ("retry_policy", {"max_attempt": 3}, "max_attempt"),
        ("template", {"enable": False}, "enable"),
        ("job_request", {"priorty": 1}, "priorty"),
        ("endpoint", {"rooot": "/x"}, "rooot"),
        ("placement", {"agent": ["b"]}, "agent"),
        ("sqs_source", {"max_mesages": 5}, "max_mesages"),
        ("local_watch", {"stable_for": 5}, "stable_for"),
        ("remote_poll", {"interval": 5}, "interval"),
        ("channel", {"signing_keyy": "sixteen-chars-key"}, "signing_keyy"),
        ("notification", {"max_attempt": 3}, "max_attempt"),
        ("rate_limit", {"per_seconds": 60}, "per_seconds"),
    ],
)
def test_a_misspelt_key_is_refused_naming_it(kind: str, typo: dict[str, Any], field: str) -> None:
    valid = {
        "transfer_spec": lambda: spec()._to_core(),
        "filters": FILTERS._to_core,
        "retry_policy": RETRY._to_core,
        "template": lambda: CASES[fo.Template][1][0]._to_core(),
        "job_request": lambda: _submit_request(spec(), 0, None, None, ()),
        "endpoint": lambda: fo.Local("inbox", root="/srv")._to_core(),
        "placement": lambda: CASES[fo.Placement][1][0]._to_core(),
        "sqs_source": lambda: CASES[fo.SqsSource][1][0]._to_core(),
        "local_watch": lambda: CASES[fo.LocalWatch][1][0]._to_core(),
        "remote_poll": lambda: CASES[fo.RemotePoll][1][0]._to_core(),
        "channel": lambda: CASES[fo.Webhook][1][0]._to_core(),
        "notification": lambda: _notification_request(
            "ops", CASES[fo.Slack][1][0], "job_dead", (), (), (), None, 8, True
        ),
        "rate_limit": lambda: fo.RateLimit()._to_core(),
    }[kind]()
    with pytest.raises(fo.ConfigError, match=field):
        _native.check_core(kind, json.dumps({**valid, **typo}))


def test_a_dropped_key_fails_the_comparison() -> None:
    # What the comparison catches when a core type does not refuse unknown keys: the key
    # is read past and missing from what comes back.
    with pytest.raises(AssertionError, match=r"event\.sourcee: sent 'x', the core dropped it"):
        assert_kept({"sourcee": "x"}, {"source": "manual"}, "event")


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(fo.ConfigError, match="kind"):
        _native.check_core("spaceship", "{}")

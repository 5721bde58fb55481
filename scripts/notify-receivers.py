#!/usr/bin/env python3
"""notify-receivers.py — the real notification receivers File Orbit's tests send to (issue #15).

One process, bound to 127.0.0.1 only, started by scripts/test-servers.sh (server `notify`):

* SMTP (aiosmtpd) on --smtp-port: STARTTLS offered and required before anything but
  EHLO/HELO/NOOP/RSET/QUIT; AUTH PLAIN and LOGIN (only after TLS) required before MAIL; one
  user. A wrong password gets 535, MAIL before AUTH 530, any command before STARTTLS 530.
* SMTPS on --smtps-port: the same, with implicit TLS from the first byte.
  Every accepted message is recorded under each envelope recipient, lower-cased.
* HTTP on --http-port, where {name} ([A-Za-z0-9_.-]{1,80}) keeps parallel tests apart:
    POST /webhook/{name}   File Orbit's signed webhook (X-File-Orbit-Signature:
                           t=<unix s>,v1=<hex HMAC-SHA256(key, "<t>." + body)>, any v1 may
                           match, |now - t| <= 300 s; X-File-Orbit-Id/-Event; JSON body of
                           schema file-orbit.notification/v1) -> 200 {"ok": true};
                           bad signature or stale t -> 401, bad shape -> 400, both
                           {"ok": false, "problems": [...]}
    POST /slack/{name}     Slack incoming-webhook payload (text + blocks) -> 200 "ok";
                           not JSON -> 400 "invalid_payload", bad shape -> 400 "invalid_blocks"
    POST /teams/{name}     Teams Workflows payload (one Adaptive Card 1.2-1.5) -> 202, empty;
                           bad shape -> 400 {"ok": false, "problems": [...]}
    PUT /control/{name}    JSON, every key optional, given keys replace the name's current
                           ones: signing_key (str), mode up|down|hang|redirect|slow,
                           redirect_to (URL, for redirect), delay_ms (int, for slow).
                           down: 503 to every POST; hang: no answer until the client goes;
                           redirect: 307 to redirect_to; slow: wait delay_ms, then as up.
    GET|DELETE /received/{name}            {"accepted": [...], "refused": [...]} / clear
    GET|DELETE /received/mail/{address}    {"accepted": [mail...]} / clear
    GET /health                            200 {"ok": true} once every listener is up
  A record: at (unix float), path, status (what we answered; null for a hang), headers
  (lower-cased names), body (raw text), json (parsed or null), problems (strings), id
  (X-File-Orbit-Id or null). A mail: from, to, cc, envelope_from, envelope_to, subject,
  message_id, date, text, html, headers ([name, value] pairs), raw, auth_user, tls, at.
  Bounded: at most 5,000 records per list (oldest dropped), 10,000 names, 1 MiB per body
  (413) or mail (552).

The TLS files (ca.pem, server.pem, server.key under --dir) are made here with
`cryptography`: a private CA and a server certificate for localhost and 127.0.0.1; kept while
valid for another week. `--self-test` makes its own in a temporary dir, runs every receiver
on ephemeral ports and checks them with real clients (urllib, smtplib); exit 1 on a surprise.

Serve mode reads the SMTP user/password and the default webhook signing key from
FILE_ORBIT_TEST_SMTP_USER, FILE_ORBIT_TEST_SMTP_PASSWORD and
FILE_ORBIT_TEST_WEBHOOK_SIGNING_KEY (test-servers.sh owns the values). Logs one line per
HTTP request and per mail to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import email
import email.policy
import email.utils
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import select
import signal
import smtplib
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import warnings
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_BODY = 1024 * 1024
# A body over MAX_BODY is read and dropped up to this size before the 413, so the client
# sees the answer rather than a reset; beyond it the connection is just closed.
MAX_DRAIN = 64 * MAX_BODY
MAX_RECORDS = 5000
MAX_NAMES = 10000
REPLAY_WINDOW_S = 300
HANG_MAX_S = 600
MAX_DELAY_MS = 600_000
SCHEMA = "file-orbit.notification/v1"
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,80}")
MODES = ("up", "down", "hang", "redirect", "slow")


# Where log lines go: stderr (the server's log file), or the self-test's list.
LOG_LINES: list[str] | None = None


def log(line: str) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if LOG_LINES is not None:
        LOG_LINES.append(f"{stamp} {line}")
    else:
        print(f"{stamp} {line}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ TLS files
def ensure_certs(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) in `directory`: kept while the server certificate
    is valid for another 7 days, else all three made anew."""
    ca_pem, cert_pem, key_pem = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    if ca_pem.is_file() and key_pem.is_file() and cert_pem.is_file():
        cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
        if cert.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            days=7
        ):
            return ca_pem, cert_pem, key_pem
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "File Orbit test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem.touch(mode=0o600)
    key_pem.chmod(0o600)
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    for path, c in ((cert_pem, cert), (ca_pem, ca)):
        path.write_bytes(c.public_bytes(serialization.Encoding.PEM))
        path.chmod(0o644)
    log(f"tls: made a CA ({ca_pem}) and a server certificate for localhost and 127.0.0.1")
    return ca_pem, cert_pem, key_pem


def server_tls_context(cert_pem: Path, key_pem: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_pem, key_pem)
    return ctx


# ------------------------------------------------------------------ what was received
class Store:
    """Records and per-name controls, shared by the HTTP threads and the SMTP loop."""

    def __init__(self, default_signing_key: str) -> None:
        self.lock = threading.Lock()
        self.default_signing_key = default_signing_key
        self.records: collections.OrderedDict[str, dict[str, collections.deque]] = collections.OrderedDict()
        self.controls: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self.mail: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()

    @staticmethod
    def _slot(table: collections.OrderedDict, key: str, make):
        if key not in table:
            if len(table) >= MAX_NAMES:
                table.popitem(last=False)
            table[key] = make()
        return table[key]

    def control(self, name: str) -> dict:
        with self.lock:
            c = self.controls.get(name, {})
            return {"signing_key": self.default_signing_key, "mode": "up", **c}

    def set_control(self, name: str, changes: dict) -> dict:
        with self.lock:
            self._slot(self.controls, name, dict).update(changes)
        return self.control(name)

    def record(self, name: str, accepted: bool, entry: dict) -> None:
        with self.lock:
            lists = self._slot(
                self.records,
                name,
                lambda: {k: collections.deque(maxlen=MAX_RECORDS) for k in ("accepted", "refused")},
            )
            lists["accepted" if accepted else "refused"].append(entry)

    def received(self, name: str) -> dict:
        with self.lock:
            lists = self.records.get(name, {})
            return {k: list(lists.get(k, ())) for k in ("accepted", "refused")}

    def clear(self, name: str) -> None:
        with self.lock:
            self.records.pop(name, None)

    def add_mail(self, address: str, message: dict) -> None:
        with self.lock:
            self._slot(self.mail, address, lambda: collections.deque(maxlen=MAX_RECORDS)).append(message)

    def mailbox(self, address: str) -> dict:
        with self.lock:
            return {"accepted": list(self.mail.get(address, ()))}

    def clear_mail(self, address: str) -> None:
        with self.lock:
            self.mail.pop(address, None)


# ------------------------------------------------------------------ shape checks
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str(v, where: str, problems: list[str], max_len: int | None = None, non_empty: bool = True) -> bool:
    if not isinstance(v, str):
        problems.append(f"{where}: must be a string, got {type(v).__name__}")
        return False
    if non_empty and not v:
        problems.append(f"{where}: must not be empty")
        return False
    if max_len is not None and len(v) > max_len:
        problems.append(f"{where}: {len(v)} characters, at most {max_len} allowed")
        return False
    return True


def _list(v, where: str, problems: list[str], max_len: int | None = None) -> bool:
    if not isinstance(v, list) or not v:
        problems.append(f"{where}: must be a non-empty list")
        return False
    if max_len is not None and len(v) > max_len:
        problems.append(f"{where}: {len(v)} entries, at most {max_len} allowed")
        return False
    return True


def signature_problems(header: str | None, key: str, body: bytes, now: float) -> list[str]:
    """Stripe-like: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." + body)>[,v1=...]."""
    if header is None:
        return ["header X-File-Orbit-Signature is missing"]
    t, v1s = None, []
    for part in header.split(","):
        k, sep, v = part.strip().partition("=")
        if not sep:
            return ["header X-File-Orbit-Signature is malformed: an element is not key=value"]
        if k == "t":
            if t is not None:
                return ["header X-File-Orbit-Signature is malformed: t appears twice"]
            t = v
        elif k == "v1":
            v1s.append(v)
    if t is None or not re.fullmatch(r"[0-9]{1,12}", t):
        return ["header X-File-Orbit-Signature is malformed: no t=<unix seconds>"]
    if not v1s:
        return ["header X-File-Orbit-Signature is malformed: no v1=<signature>"]
    problems = []
    expected = hmac.new(key.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest().encode()
    if not any(hmac.compare_digest(expected, v.encode()) for v in v1s):
        problems.append("signature: no v1 matches HMAC-SHA256 of t + '.' + body with the name's key")
    skew = now - int(t)
    if abs(skew) > REPLAY_WINDOW_S:
        problems.append(
            f"signature: t is {skew:+.0f} s from the receiver's clock (window ±{REPLAY_WINDOW_S} s)"
        )
    return problems


def webhook_problems(headers: dict, parsed, json_error: str | None) -> list[str]:
    problems = []
    if not headers.get("x-file-orbit-id"):
        problems.append("header X-File-Orbit-Id is missing")
    if not headers.get("x-file-orbit-event"):
        problems.append("header X-File-Orbit-Event is missing")
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        problems.append(f"header Content-Type must be application/json, got {ctype or 'none'!r}")
    if json_error:
        return problems + [f"body: not JSON: {json_error}"]
    if not isinstance(parsed, dict):
        return problems + ["body: must be a JSON object"]
    b = parsed
    if b.get("schema") != SCHEMA:
        problems.append(f"body.schema: must be {SCHEMA!r}, got {b.get('schema')!r}")
    if _str(b.get("id"), "body.id", problems) and b["id"] != headers.get("x-file-orbit-id"):
        problems.append("body.id: differs from header X-File-Orbit-Id")
    for field in ("notification", "event", "summary"):
        _str(b.get(field), f"body.{field}", problems)
    count = b.get("count")
    # A test message (`"test": true`) reports no event: its count is 0.
    least = 0 if b.get("test") is True else 1
    if not _is_int(count) or count < least:
        problems.append(f"body.count: must be an integer >= {least}, got {count!r}")
        count = None
    counts = b.get("counts")
    if not isinstance(counts, dict):
        problems.append("body.counts: must be an object of string -> integer")
    elif not all(_is_int(v) and v >= 0 for v in counts.values()):
        problems.append("body.counts: every value must be an integer >= 0")
    elif count is not None and sum(counts.values()) != count:
        problems.append(f"body.counts: values sum to {sum(counts.values())}, count is {count}")
    items, omitted = b.get("items"), b.get("omitted")
    if not isinstance(items, list):
        problems.append("body.items: must be a list")
        items = None
    else:
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                problems.append(f"body.items[{i}]: must be an object")
                continue
            _str(item.get("event"), f"body.items[{i}].event", problems)
            _str(item.get("at"), f"body.items[{i}].at", problems)
    if not _is_int(omitted) or omitted < 0:
        problems.append(f"body.omitted: must be an integer >= 0, got {omitted!r}")
    elif items is not None and count is not None and len(items) + omitted != count:
        problems.append(f"body.items/omitted: {len(items)} items + {omitted} omitted != count {count}")
    return problems


SLACK_BLOCK_TYPES = ("header", "section", "context", "divider", "actions")


def _slack_text(obj, where: str, problems: list[str], types: tuple[str, ...], max_len: int) -> None:
    if not isinstance(obj, dict):
        problems.append(f"{where}: must be a text object")
        return
    if obj.get("type") not in types:
        problems.append(f"{where}.type: must be one of {', '.join(types)}, got {obj.get('type')!r}")
    _str(obj.get("text"), f"{where}.text", problems, max_len)


def slack_problems(parsed) -> list[str]:
    if not isinstance(parsed, dict):
        return ["body: must be a JSON object"]
    problems: list[str] = []
    _str(parsed.get("text"), "text", problems)
    blocks = parsed.get("blocks")
    if not _list(blocks, "blocks", problems, 50):
        return problems
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict) or block.get("type") not in SLACK_BLOCK_TYPES:
            problems.append(f"{where}.type: must be one of {', '.join(SLACK_BLOCK_TYPES)}")
            continue
        kind = block["type"]
        if kind == "header":
            _slack_text(block.get("text"), f"{where}.text", problems, ("plain_text",), 150)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: a section needs text or fields")
            if "text" in block:
                _slack_text(block["text"], f"{where}.text", problems, ("mrkdwn", "plain_text"), 3000)
            if "fields" in block and _list(block["fields"], f"{where}.fields", problems, 10):
                for j, field in enumerate(block["fields"]):
                    _slack_text(field, f"{where}.fields[{j}]", problems, ("mrkdwn", "plain_text"), 2000)
        elif kind == "context":
            if _list(block.get("elements"), f"{where}.elements", problems, 10):
                for j, el in enumerate(block["elements"]):
                    if not isinstance(el, dict) or el.get("type") == "image":
                        continue
                    _slack_text(el, f"{where}.elements[{j}]", problems, ("mrkdwn", "plain_text"), 3000)
        elif kind == "actions":
            _list(block.get("elements"), f"{where}.elements", problems, 25)
    return problems


TEAMS_ELEMENT_TYPES = ("TextBlock", "FactSet", "Container", "ColumnSet")


def _teams_elements(elements, where: str, problems: list[str], depth: int = 0) -> None:
    if not _list(elements, where, problems):
        return
    for i, el in enumerate(elements):
        w = f"{where}[{i}]"
        if not isinstance(el, dict) or el.get("type") not in TEAMS_ELEMENT_TYPES:
            problems.append(f"{w}.type: must be one of {', '.join(TEAMS_ELEMENT_TYPES)}")
            continue
        if el["type"] == "TextBlock":
            _str(el.get("text"), f"{w}.text", problems)
        elif el["type"] == "FactSet":
            if _list(el.get("facts"), f"{w}.facts", problems):
                for j, fact in enumerate(el["facts"]):
                    if not isinstance(fact, dict):
                        problems.append(f"{w}.facts[{j}]: must be an object")
                        continue
                    _str(fact.get("title"), f"{w}.facts[{j}].title", problems, non_empty=False)
                    _str(fact.get("value"), f"{w}.facts[{j}].value", problems, non_empty=False)
        elif depth >= 8:
            problems.append(f"{w}: nested more than 8 deep")
        elif el["type"] == "Container":
            _teams_elements(el.get("items"), f"{w}.items", problems, depth + 1)
        elif _list(el.get("columns"), f"{w}.columns", problems):
            for j, col in enumerate(el["columns"]):
                if not isinstance(col, dict) or col.get("type", "Column") != "Column":
                    problems.append(f"{w}.columns[{j}]: must be an object of type Column")
                    continue
                _teams_elements(col.get("items"), f"{w}.columns[{j}].items", problems, depth + 1)


def teams_problems(parsed) -> list[str]:
    if not isinstance(parsed, dict):
        return ["body: must be a JSON object"]
    problems: list[str] = []
    if parsed.get("type") != "message":
        problems.append(f"type: must be 'message', got {parsed.get('type')!r}")
    attachments = parsed.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return problems + ["attachments: must be a list of exactly one attachment"]
    att = attachments[0]
    if not isinstance(att, dict):
        return problems + ["attachments[0]: must be an object"]
    if att.get("contentType") != "application/vnd.microsoft.card.adaptive":
        problems.append("attachments[0].contentType: must be 'application/vnd.microsoft.card.adaptive'")
    if att.get("contentUrl") is not None:
        problems.append("attachments[0].contentUrl: must be null or absent")
    card = att.get("content")
    if not isinstance(card, dict):
        return problems + ["attachments[0].content: must be an Adaptive Card object"]
    where = "attachments[0].content"
    if card.get("$schema") != "http://adaptivecards.io/schemas/adaptive-card.json":
        problems.append(f"{where}.$schema: must be 'http://adaptivecards.io/schemas/adaptive-card.json'")
    if card.get("type") != "AdaptiveCard":
        problems.append(f"{where}.type: must be 'AdaptiveCard'")
    if card.get("version") not in ("1.2", "1.3", "1.4", "1.5"):
        problems.append(f"{where}.version: must be one of '1.2'..'1.5', got {card.get('version')!r}")
    _teams_elements(card.get("body"), f"{where}.body", problems)
    if "actions" in card and _list(card["actions"], f"{where}.actions", problems):
        for i, action in enumerate(card["actions"]):
            w = f"{where}.actions[{i}]"
            if not isinstance(action, dict) or action.get("type") != "Action.OpenUrl":
                problems.append(f"{w}.type: must be 'Action.OpenUrl'")
                continue
            _str(action.get("title"), f"{w}.title", problems)
            if _str(action.get("url"), f"{w}.url", problems):
                u = urllib.parse.urlsplit(action["url"])
                if u.scheme not in ("http", "https") or not u.netloc:
                    problems.append(f"{w}.url: must be an absolute http(s) URL")
    return problems


# ------------------------------------------------------------------ HTTP
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "file-orbit-notify-receivers"
    store: Store  # set on the subclass made by serve_http

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        log(f"http {self.client_address[0]} {format % args}")

    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value) -> None:
        self._send(status, json.dumps(value).encode())

    def _read_body(self) -> bytes | tuple[int, str]:
        """The request body, or the (status, problem) to refuse it with; then the connection
        closes after the answer."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline(100).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                if len(body) + size > MAX_BODY:
                    break
                body += self.rfile.read(size)
                self.rfile.readline(3)
        else:
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit():
                self.close_connection = True
                return 400, "header Content-Length is not a number"
            length = int(length)
            if length <= MAX_BODY:
                return self.rfile.read(length)
            if length <= MAX_DRAIN:
                while length > 0:
                    length -= len(self.rfile.read(min(length, 65536)) or b"x" * length)
        self.close_connection = True
        return 413, f"body larger than {MAX_BODY} bytes"

    def _route(self) -> tuple[str, list[str]]:
        path = urllib.parse.urlsplit(self.path).path
        return path, [urllib.parse.unquote(p) for p in path.strip("/").split("/")]

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path, parts = self._route()
        if parts == ["health"]:
            self._json(200, {"ok": True})
        elif len(parts) == 3 and parts[:2] == ["received", "mail"]:
            self._json(200, self.store.mailbox(parts[2].lower()))
        elif len(parts) == 2 and parts[0] == "received" and NAME_RE.fullmatch(parts[1]):
            self._json(200, self.store.received(parts[1]))
        else:
            self._json(404, {"ok": False, "problems": [f"no such path: GET {path}"]})

    def do_DELETE(self) -> None:  # noqa: N802
        path, parts = self._route()
        if len(parts) == 3 and parts[:2] == ["received", "mail"]:
            self.store.clear_mail(parts[2].lower())
            self._json(200, {"ok": True})
        elif len(parts) == 2 and parts[0] == "received" and NAME_RE.fullmatch(parts[1]):
            self.store.clear(parts[1])
            self._json(200, {"ok": True})
        else:
            self._json(404, {"ok": False, "problems": [f"no such path: DELETE {path}"]})

    def do_PUT(self) -> None:  # noqa: N802
        path, parts = self._route()
        body = self._read_body()
        if isinstance(body, tuple):
            self._json(body[0], {"ok": False, "problems": [body[1]]})
            return
        if len(parts) != 2 or parts[0] != "control" or not NAME_RE.fullmatch(parts[1]):
            self._json(404, {"ok": False, "problems": [f"no such path: PUT {path}"]})
            return
        try:
            changes = json.loads(body or b"{}")
        except ValueError as e:
            self._json(400, {"ok": False, "problems": [f"body: not JSON: {e}"]})
            return
        problems = control_problems(changes)
        if problems:
            self._json(400, {"ok": False, "problems": problems})
            return
        c = self.store.set_control(parts[1], changes)
        shown = {k: v for k, v in c.items() if k != "signing_key"}
        self._json(200, {"ok": True, "control": shown})

    def do_POST(self) -> None:  # noqa: N802
        path, parts = self._route()
        body = self._read_body()
        kind = parts[0] if len(parts) == 2 and NAME_RE.fullmatch(parts[1]) else None
        if kind not in ("webhook", "slack", "teams"):
            if isinstance(body, tuple):
                self._json(body[0], {"ok": False, "problems": [body[1]]})
            else:
                self._json(404, {"ok": False, "problems": [f"no such path: POST {path}"]})
            return
        name = parts[1]
        headers: dict[str, str] = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        entry = {
            "at": time.time(),
            "path": path,
            "status": None,
            "headers": headers,
            "body": "",
            "json": None,
            "problems": [],
            "id": headers.get("x-file-orbit-id"),
        }
        if isinstance(body, tuple):
            self._refuse(name, entry, body[0], [body[1]])
            return
        parsed, json_error = None, None
        try:
            parsed = json.loads(body)
        except ValueError as e:
            json_error = str(e)
        entry.update(body=body.decode("utf-8", "replace"), json=parsed)
        control = self.store.control(name)
        mode = control["mode"]
        if mode == "down":
            self._refuse(name, entry, 503, ["receiver is down (mode down)"])
            return
        if mode == "redirect":
            entry.update(status=307, problems=[f"redirected to {control['redirect_to']} (mode redirect)"])
            self.store.record(name, False, entry)
            self.send_response(307)
            self.send_header("Location", control["redirect_to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "hang":
            entry.update(status=None, problems=["never answered (mode hang)"])
            self.store.record(name, False, entry)
            self._hang()
            return
        if mode == "slow":
            time.sleep(control["delay_ms"] / 1000)
        getattr(self, f"_post_{kind}")(name, entry, body, parsed, json_error, control)

    def _refuse(self, name: str, entry: dict, status: int, problems: list[str]) -> None:
        entry.update(status=status, problems=problems)
        self.store.record(name, False, entry)
        self._json(status, {"ok": False, "problems": problems})

    def _hang(self) -> None:
        """Answer nothing until the client closes the connection (bounded by HANG_MAX_S)."""
        self.close_connection = True
        log(f'http {self.client_address[0]} "{self.requestline}" hanging until the client goes')
        deadline = time.monotonic() + HANG_MAX_S
        conn = self.connection
        while time.monotonic() < deadline:
            readable, _, _ = select.select([conn], [], [], 1.0)
            if readable:
                try:
                    if not conn.recv(65536):
                        return
                except OSError:
                    return

    def _post_webhook(self, name, entry, body, parsed, json_error, control) -> None:
        problems = signature_problems(
            entry["headers"].get("x-file-orbit-signature"), control["signing_key"], body, time.time()
        )
        if problems:
            self._refuse(name, entry, 401, problems)
            return
        problems = webhook_problems(entry["headers"], parsed, json_error)
        if problems:
            self._refuse(name, entry, 400, problems)
            return
        entry["status"] = 200
        self.store.record(name, True, entry)
        self._json(200, {"ok": True})

    def _post_slack(self, name, entry, body, parsed, json_error, control) -> None:
        if json_error:
            problems, answer = [f"body: not JSON: {json_error}"], b"invalid_payload"
        else:
            problems, answer = slack_problems(parsed), b"invalid_blocks"
        entry.update(status=400 if problems else 200, problems=problems)
        self.store.record(name, not problems, entry)
        self._send(entry["status"], answer if problems else b"ok", "text/plain")

    def _post_teams(self, name, entry, body, parsed, json_error, control) -> None:
        problems = [f"body: not JSON: {json_error}"] if json_error else teams_problems(parsed)
        if problems:
            self._refuse(name, entry, 400, problems)
            return
        entry["status"] = 202
        self.store.record(name, True, entry)
        self._send(202)


def control_problems(changes) -> list[str]:
    if not isinstance(changes, dict):
        return ["body: must be a JSON object"]
    problems = [
        f"{k}: unknown key (known: signing_key, mode, redirect_to, delay_ms)"
        for k in changes
        if k not in ("signing_key", "mode", "redirect_to", "delay_ms")
    ]
    if "signing_key" in changes:
        _str(changes["signing_key"], "signing_key", problems)
    mode = changes.get("mode", "up")
    if mode not in MODES:
        problems.append(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "redirect" or "redirect_to" in changes:
        if not isinstance(changes.get("redirect_to"), str) or not changes["redirect_to"]:
            problems.append("redirect_to: a URL is needed with mode redirect")
    if mode == "slow" or "delay_ms" in changes:
        d = changes.get("delay_ms")
        if not _is_int(d) or not 0 <= d <= MAX_DELAY_MS:
            problems.append(f"delay_ms: an integer 0..{MAX_DELAY_MS} is needed with mode slow")
    return problems


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True  # a hanging request never holds up the stop
    request_queue_size = 128  # the default 5 refuses a burst of parallel senders


def serve_http(store: Store, host: str, port: int) -> HttpServer:
    return HttpServer((host, port), type("BoundHandler", (Handler,), {"store": store}))


# ------------------------------------------------------------------ SMTP
def _part_text(part) -> str:
    """A text part decoded; with an unknown charset, its bytes as UTF-8 (bad bytes replaced)."""
    try:
        return part.get_content()
    except (LookupError, UnicodeError):
        return (part.get_payload(decode=True) or b"").decode("utf-8", "replace")


class MailHandler:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = html = None
        for part in msg.walk():
            if part.is_multipart() or part.get_content_disposition() == "attachment":
                continue
            ctype = part.get_content_type()
            if ctype == "text/plain" and text is None:
                text = _part_text(part)
            elif ctype == "text/html" and html is None:
                html = _part_text(part)

        def addresses(header: str) -> list[str]:
            value = msg.get(header)
            return [a.addr_spec for a in value.addresses] if value is not None else []

        tls = server.transport.get_extra_info("ssl_object") is not None
        login = session.login_data.decode("utf-8", "replace") if session.login_data else None
        record = {
            "at": time.time(),
            "from": str(msg["From"]) if msg["From"] is not None else None,
            "to": addresses("To"),
            "cc": addresses("Cc"),
            "envelope_from": envelope.mail_from,
            "envelope_to": list(envelope.rcpt_tos),
            "subject": str(msg["Subject"]) if msg["Subject"] is not None else None,
            "message_id": str(msg["Message-ID"]) if msg["Message-ID"] is not None else None,
            "date": str(msg["Date"]) if msg["Date"] is not None else None,
            "text": text,
            "html": html,
            "headers": [[k, str(v)] for k, v in msg.items()],
            "raw": raw.decode("utf-8", "replace"),
            "auth_user": login,
            "tls": tls,
        }
        for rcpt in envelope.rcpt_tos:
            self.store.add_mail(rcpt.lower(), record)
        log(
            f"smtp {session.peer[0]} accepted {record['message_id']} from {envelope.mail_from} "
            f"to {','.join(envelope.rcpt_tos)} (user {login}, tls {tls})"
        )
        return "250 2.0.0 OK: accepted"


# The implicit-TLS server requires AUTH with auth_require_tls=False (aiosmtpd's check looks
# for STARTTLS only); its connection is TLS from the first byte, so the warning is moot.
warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)


class SmtpServers:
    """SMTP (STARTTLS required) and SMTPS (implicit TLS) on one asyncio loop in a thread."""

    def __init__(
        self, store: Store, host: str, ports: tuple[int, int], tls: ssl.SSLContext, user: str, password: str
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="smtp", daemon=True)
        self.thread.start()
        handler = MailHandler(store)

        def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
            ok = (
                isinstance(auth_data, LoginPassword)
                and hmac.compare_digest(auth_data.login, user.encode())
                and hmac.compare_digest(auth_data.password, password.encode())
            )
            # handled=False: aiosmtpd answers a failure with 535.
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

        def smtp(implicit_tls: bool) -> SMTP:
            return SMTP(
                handler,
                hostname="localhost",
                data_size_limit=MAX_BODY,
                tls_context=None if implicit_tls else tls,
                require_starttls=not implicit_tls,
                auth_required=True,
                auth_require_tls=not implicit_tls,
                authenticator=authenticate,
                loop=self.loop,
            )

        async def start():
            plain = await self.loop.create_server(lambda: smtp(False), host, ports[0])
            implicit = await self.loop.create_server(lambda: smtp(True), host, ports[1], ssl=tls)
            return plain, implicit

        self.servers = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        self.ports = tuple(s.sockets[0].getsockname()[1] for s in self.servers)

    def stop(self) -> None:
        async def close():
            for s in self.servers:
                s.close()
                await s.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# ------------------------------------------------------------------ serve
def start_all(
    cert_dir: Path,
    host: str,
    http_port: int,
    smtp_port: int,
    smtps_port: int,
    user: str,
    password: str,
    signing_key: str,
):
    _, cert, key = ensure_certs(cert_dir)
    store = Store(signing_key)
    smtp = SmtpServers(store, host, (smtp_port, smtps_port), server_tls_context(cert, key), user, password)
    httpd = serve_http(store, host, http_port)
    threading.Thread(target=httpd.serve_forever, name="http", daemon=True).start()
    return httpd, smtp


def serve(args) -> int:
    missing = [
        v
        for v in (
            "FILE_ORBIT_TEST_SMTP_USER",
            "FILE_ORBIT_TEST_SMTP_PASSWORD",
            "FILE_ORBIT_TEST_WEBHOOK_SIGNING_KEY",
        )
        if not os.environ.get(v)
    ]
    if missing:
        print(f"notify-receivers: set {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.dir is None:
        print("notify-receivers: --dir is needed (where the TLS files live)", file=sys.stderr)
        return 2
    httpd, smtp = start_all(
        args.dir,
        args.host,
        args.http_port,
        args.smtp_port,
        args.smtps_port,
        os.environ["FILE_ORBIT_TEST_SMTP_USER"],
        os.environ["FILE_ORBIT_TEST_SMTP_PASSWORD"],
        os.environ["FILE_ORBIT_TEST_WEBHOOK_SIGNING_KEY"],
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log(
        f"up: http {args.host}:{httpd.server_address[1]}, smtp (STARTTLS) {args.host}:{smtp.ports[0]}, "
        f"smtps {args.host}:{smtp.ports[1]}"
    )
    stop.wait()
    httpd.shutdown()
    httpd.server_close()
    smtp.stop()
    log("stopped")
    return 0


# ------------------------------------------------------------------ self-test
def self_test() -> int:
    global LOG_LINES
    LOG_LINES = []
    t0 = time.monotonic()
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            failures.append(what)

    user, password, default_key = "selftest", "selftest-pw-7Hq", "selftest-default-key"
    with tempfile.TemporaryDirectory(prefix="notify-receivers-") as tmp:
        ca = ensure_certs(Path(tmp))[0]
        httpd, smtp = start_all(Path(tmp), "127.0.0.1", 0, 0, 0, user, password, default_key)
        base = f"http://127.0.0.1:{httpd.server_address[1]}"

        def call(method: str, path: str, body: bytes | None = None, headers=None, timeout=5.0):
            req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()

        def signed(key: str, body: bytes, t: int, msg_id: str = "msg-1") -> dict:
            sig = hmac.new(key.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
            return {
                "Content-Type": "application/json",
                "X-File-Orbit-Id": msg_id,
                "X-File-Orbit-Event": "job.dead",
                "X-File-Orbit-Signature": f"t={t},v1={'0' * 64},v1={sig}",
            }

        try:
            check(call("GET", "/health")[0] == 200, "GET /health is not 200")
            check(
                call("PUT", "/control/wh", json.dumps({"signing_key": "k-1"}).encode())[0] == 200,
                "PUT /control/wh is not 200",
            )
            check(call("PUT", "/control/wh", b'{"mode": "sideways"}')[0] == 400, "a bad mode is not 400")
            good = {
                "schema": SCHEMA,
                "id": "msg-1",
                "notification": "ops",
                "event": "job.dead",
                "count": 3,
                "counts": {"job.dead": 3},
                "items": [{"event": "job.dead", "at": "2026-01-01T00:00:00Z"}],
                "omitted": 2,
                "summary": "3 jobs dead",
            }
            body = json.dumps(good).encode()
            now = int(time.time())
            st, answer = call("POST", "/webhook/wh", body, signed("k-1", body, now))
            check(st == 200 and json.loads(answer) == {"ok": True}, f"a signed webhook got {st} {answer!r}")
            tampered = body.replace(b"3 jobs dead", b"0 jobs dead")
            check(
                call("POST", "/webhook/wh", tampered, signed("k-1", body, now))[0] == 401,
                "a tampered body is not 401",
            )
            check(
                call("POST", "/webhook/wh", body, signed("k-1", body, now - 301))[0] == 401,
                "a stale t is not 401",
            )
            check(
                call("POST", "/webhook/wh", body, signed(default_key, body, now))[0] == 401,
                "the wrong key is not 401",
            )
            bad = json.dumps({**good, "omitted": 5}).encode()
            check(
                call("POST", "/webhook/wh", bad, signed("k-1", bad, now))[0] == 400,
                "items+omitted != count is not 400",
            )
            check(
                call("POST", "/webhook/other", body, signed(default_key, body, now))[0] == 200,
                "the default key does not verify for a name without a control",
            )
            got = json.loads(call("GET", "/received/wh")[1])
            check(
                len(got["accepted"]) == 1
                and got["accepted"][0]["id"] == "msg-1"
                and got["accepted"][0]["json"] == good,
                "the accepted webhook is not recorded as sent",
            )
            check(
                [r["status"] for r in got["refused"]] == [401, 401, 401, 400],
                f"refused statuses: {[r['status'] for r in got['refused']]}",
            )
            check(
                call("POST", "/webhook/big", b"x" * (MAX_BODY + 1), {"Content-Type": "application/json"})[0]
                == 413,
                "a body over 1 MiB is not 413",
            )

            slack = {
                "text": "3 jobs dead",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "File Orbit"}},
                    {
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": "*3* jobs dead"},
                        "fields": [{"type": "mrkdwn", "text": "a"}],
                    },
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": "job 1"}]},
                    {"type": "divider"},
                ],
            }
            st, answer = call(
                "POST", "/slack/sl", json.dumps(slack).encode(), {"Content-Type": "application/json"}
            )
            check((st, answer) == (200, b"ok"), f"a valid Slack body got {st} {answer!r}")
            bad_slack = {
                "text": "x",
                "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "y" * 151}}],
            }
            st, answer = call(
                "POST", "/slack/sl", json.dumps(bad_slack).encode(), {"Content-Type": "application/json"}
            )
            check((st, answer) == (400, b"invalid_blocks"), f"an invalid Slack body got {st} {answer!r}")
            check(
                len(json.loads(call("GET", "/received/sl")[1])["refused"][0]["problems"]) == 2,
                "the Slack problems (type and length of the header) are not both recorded",
            )

            card = {
                "type": "message",
                "attachments": [
                    {
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "contentUrl": None,
                        "content": {
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard",
                            "version": "1.4",
                            "body": [
                                {"type": "TextBlock", "text": "3 jobs dead"},
                                {"type": "FactSet", "facts": [{"title": "job", "value": "1"}]},
                                {"type": "Container", "items": [{"type": "TextBlock", "text": "x"}]},
                            ],
                            "actions": [
                                {"type": "Action.OpenUrl", "title": "Job", "url": "http://127.0.0.1/j/1"}
                            ],
                        },
                    }
                ],
            }
            st, answer = call(
                "POST", "/teams/tm", json.dumps(card).encode(), {"Content-Type": "application/json"}
            )
            check((st, answer) == (202, b""), f"a valid Teams body got {st} {answer!r}")
            card["attachments"][0]["content"]["version"] = "2.0"
            check(
                call("POST", "/teams/tm", json.dumps(card).encode(), {"Content-Type": "application/json"})[0]
                == 400,
                "an Adaptive Card 2.0 is not 400",
            )

            call("PUT", "/control/dn", b'{"mode": "down"}')
            check(call("POST", "/slack/dn", json.dumps(slack).encode())[0] == 503, "mode down is not 503")
            call("PUT", "/control/hg", b'{"mode": "hang"}')
            t_hang = time.monotonic()
            try:
                call("POST", "/slack/hg", json.dumps(slack).encode(), timeout=0.3)
                failures.append("mode hang answered")
            except (TimeoutError, OSError):
                pass
            check(
                time.monotonic() - t_hang < 2 and call("GET", "/health", timeout=1)[0] == 200,
                "a hanging request blocks the others",
            )

            ctx = ssl.create_default_context(cafile=str(ca))
            mail = (
                f"From: File Orbit <orbit@localhost>\r\nTo: Ops@Example.test\r\nSubject: job dead\r\n"
                f"Message-ID: <m1@file-orbit>\r\nDate: {email.utils.formatdate()}\r\nMIME-Version: 1.0\r\n"
                "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
                "plain part\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html part</p>\r\n--b--\r\n"
            )
            with smtplib.SMTP("localhost", smtp.ports[0], timeout=5) as s:
                s.starttls(context=ctx)
                s.login(user, password)
                s.sendmail("orbit@localhost", ["Ops@Example.test"], mail)
            with smtplib.SMTP_SSL("127.0.0.1", smtp.ports[1], context=ctx, timeout=5) as s:
                s.login(user, password)
                s.sendmail("orbit@localhost", ["ops@example.test"], mail.replace("<m1@", "<m2@"))
            box = json.loads(call("GET", "/received/mail/ops@example.test")[1])["accepted"]
            check(
                [(m["message_id"], m["tls"], m["auth_user"]) for m in box]
                == [("<m1@file-orbit>", True, user), ("<m2@file-orbit>", True, user)],
                f"mailbox: {box}",
            )
            check(
                bool(box)
                and box[0]["text"].strip() == "plain part"
                and box[0]["html"].strip() == "<p>html part</p>"
                and box[0]["subject"] == "job dead",
                "the mail's parts or subject are not recorded",
            )
            with smtplib.SMTP("127.0.0.1", smtp.ports[0], timeout=5) as s:
                s.ehlo()
                check(not s.has_extn("auth"), "AUTH is offered before STARTTLS")
                try:
                    s.sendmail("orbit@localhost", ["ops@example.test"], mail)
                    failures.append("a mail without STARTTLS was accepted")
                except smtplib.SMTPSenderRefused as e:
                    check(e.smtp_code == 530, f"a mail without STARTTLS got {e.smtp_code}")
            with smtplib.SMTP("127.0.0.1", smtp.ports[0], timeout=5) as s:
                s.starttls(context=ctx)
                try:
                    s.login(user, "wrong")
                    failures.append("a wrong password was accepted")
                except smtplib.SMTPAuthenticationError as e:
                    check(e.smtp_code == 535, f"a wrong password got {e.smtp_code}")
                try:
                    s.sendmail("orbit@localhost", ["ops@example.test"], mail)
                    failures.append("a mail without AUTH was accepted")
                except smtplib.SMTPSenderRefused as e:
                    check(e.smtp_code == 530, f"a mail without AUTH got {e.smtp_code}")
            check(
                len(json.loads(call("GET", "/received/mail/ops@example.test")[1])["accepted"]) == 2,
                "a refused mail was recorded",
            )
        except Exception as e:  # noqa: BLE001 (any surprise fails the self-test, named)
            failures.append(f"unexpected {type(e).__name__}: {e}")
        finally:
            httpd.shutdown()
            httpd.server_close()
            smtp.stop()
    if failures:
        print("\n".join(LOG_LINES), file=sys.stderr)
    for f in failures:
        print(f"notify-receivers self-test: FAIL: {f}", file=sys.stderr)
    print(f"notify-receivers self-test: {'FAILED' if failures else 'ok'} ({time.monotonic() - t0:.2f} s)")
    return 1 if failures else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--self-test", action="store_true", help="check every receiver on ephemeral ports, then exit"
    )
    p.add_argument(
        "--dir", type=Path, help="where ca.pem, server.pem and server.key live (made when missing)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=5080)
    p.add_argument("--smtp-port", type=int, default=2525)
    p.add_argument("--smtps-port", type=int, default=2465)
    args = p.parse_args()
    if args.self_test:
        return self_test()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())

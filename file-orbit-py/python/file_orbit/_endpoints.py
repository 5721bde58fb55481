"""Endpoints: a name plus the typed configuration of local disk, S3, SFTP or SMB, and
their :class:`Placement` (the agents that may run their transfers).

Each class builds the core's own configuration form (the README's TOML/JSON) and has the
core validate it at construction, so a bad value raises :class:`~file_orbit.ConfigError`
naming the field at once. Secrets (passwords, keys, tokens) are left out of ``repr``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any, ClassVar

from . import _native
from .errors import ConfigError

__all__ = ["Endpoint", "Local", "Placement", "S3", "Sftp", "Smb"]


@dataclass(frozen=True)
class Placement:
    """Where an endpoint's transfers may run: on the agents named in ``agents``, or on any
    agent carrying one of ``labels``. A job runs only on an agent its source's and its
    destination's placements both admit; an endpoint without placement runs anywhere, the
    control plane's own workers included.

    Args:
        agents: Names of agents (see :meth:`Orbit.create_agent`), e.g. ``["b"]``.
        labels: Agent labels, e.g. ``["dmz"]``.

    Names and labels are 1-63 of ``a-z 0-9 . _ -``, starting with a letter or digit, at
    most 32 in all; a bad one raises :class:`~file_orbit.ConfigError` naming
    ``placement.agents`` or ``placement.labels`` when the endpoint is made.
    """

    agents: Sequence[str] = ()
    labels: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in ("agents", "labels"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"placement: {name} must be a sequence of names, not the str {value!r}")
            object.__setattr__(self, name, tuple(value))

    @property
    def anywhere(self) -> bool:
        """True when it names no agent and no label: transfers run anywhere."""
        return not self.agents and not self.labels

    def _to_core(self) -> dict[str, Any]:
        return {key: list(names) for key, names in (("agents", self.agents), ("labels", self.labels)) if names}

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> Placement:
        return cls(agents=tuple(data.get("agents", ())), labels=tuple(data.get("labels", ())))


@dataclass(frozen=True)
class Endpoint:
    """Base class of the endpoint types: a named place files move from or to."""

    name: str
    """The endpoint's name; transfers, templates and jobs refer to it."""

    _: KW_ONLY
    bandwidth: str | None = None
    """The most all transfers to and from this endpoint may move together, live: a rate
    (``"10M"``), ``"up:down"`` (``"10M:2M"``), ``"off"`` or a weekly timetable
    (``"08:00,512k 19:00,off"``, ``"Mon-08:00,1M Sat-00:00,off"``)."""
    placement: Placement | None = None
    """The agents that may run this endpoint's transfers (see :class:`Placement`); None:
    anywhere."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for secret in (f.name for f in fields(self) if not f.repr):
            value = getattr(self, secret)
            if value is not None and not isinstance(value, str):
                # Checked here so that no parser error can echo the value.
                raise TypeError(f"endpoint {self.name!r}: {secret} must be a str, not {type(value).__name__}")
        if self.placement is not None and not isinstance(self.placement, Placement):
            raise TypeError(
                f"endpoint {self.name!r}: placement must be a Placement, not {type(self.placement).__name__}"
            )
        _native.validate_endpoint(json.dumps(self._to_core()))

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def _to_core(self) -> dict[str, Any]:
        """The core's JSON form, secrets included (only ever handed to the native module)."""
        config = {key: value for key, value in self._config().items() if value is not None}
        limit = {} if self.bandwidth is None else {"bandwidth": self.bandwidth}
        placed = {} if self.placement is None or self.placement.anywhere else {"placement": self.placement._to_core()}
        return {"name": self.name, "type": self.kind, **limit, **placed, **config}


@dataclass(frozen=True)
class Local(Endpoint):
    """A directory on this machine.

    Args:
        name: The endpoint's name.
        root: Directory every path of this endpoint is inside; a relative one is resolved
            against the current directory when the endpoint is made.
    """

    _: KW_ONLY
    root: str | os.PathLike[str]
    """Absolute directory every path of this endpoint is inside."""

    kind: ClassVar[str] = "local"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", os.path.abspath(os.fspath(self.root)))
        super().__post_init__()

    def _config(self) -> dict[str, Any]:
        return {"root": os.fspath(self.root)}


@dataclass(frozen=True)
class S3(Endpoint):
    """An S3 bucket (AWS or any S3-compatible server), optionally below a key prefix.

    Without ``access_key_id``/``secret_access_key`` the environment's or the instance's
    credentials are used.

    Args:
        name: The endpoint's name.
        bucket: The bucket.
        prefix: Key prefix inside the bucket every path of this endpoint is under.
        region: The bucket's region.
        endpoint_url: URL of a non-AWS server, e.g. ``"http://127.0.0.1:9000"``.
        access_key_id: Static access key id.
        secret_access_key: Static secret key (never shown in ``repr``).
        session_token: Session token for temporary credentials (never shown).
        provider: rclone's provider name (``"AWS"``, ``"Minio"``, ``"Ceph"``, ``"Other"``...);
            unset, ``"Other"`` when ``endpoint_url`` is given, else ``"AWS"``.
        force_path_style: Use path-style URLs (most non-AWS servers need it).
        storage_class: Storage class of uploaded objects.
        server_side_encryption: Server-side encryption of uploaded objects (e.g. ``"AES256"``).
    """

    _: KW_ONLY
    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    provider: str | None = None
    force_path_style: bool | None = None
    storage_class: str | None = None
    server_side_encryption: str | None = None

    kind: ClassVar[str] = "s3"

    def _config(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "session_token": self.session_token,
            "provider": self.provider,
            "force_path_style": self.force_path_style,
            "storage_class": self.storage_class,
            "server_side_encryption": self.server_side_encryption,
        }


@dataclass(frozen=True)
class Sftp(Endpoint):
    """A directory on an SFTP server.

    Give exactly one way to log in: ``password``, ``key_file``, ``key_pem`` or
    ``agent=True``. The server's host key is checked against ``known_hosts``
    (default ``~/.ssh/known_hosts``) or the pinned ``host_keys``;
    ``insecure_skip_host_key=True`` is the explicit, insecure opt-out.

    Args:
        name: The endpoint's name.
        host: Host name or IP address.
        user: Login name.
        port: TCP port (22).
        password: Login password (never shown in ``repr``).
        key_file: Path of a private key file.
        key_pem: A private key in PEM form (never shown).
        passphrase: Passphrase of ``key_file`` or ``key_pem`` (never shown).
        agent: Log in with the keys of the running ssh-agent.
        known_hosts: An OpenSSH known_hosts file to check the host key against.
        host_keys: The server's public keys, ``"<algorithm> <base64 key>"`` each.
        insecure_skip_host_key: Do not check the host key at all.
        root: Directory every path is under (relative to the login directory unless it
            starts with ``/``).
        server_hashes: Let rclone run ``md5sum``/``sha1sum`` over SSH (needs a shell account).
    """

    _: KW_ONLY
    host: str
    user: str
    port: int = 22
    password: str | None = field(default=None, repr=False)
    key_file: str | os.PathLike[str] | None = None
    key_pem: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    agent: bool = False
    known_hosts: str | os.PathLike[str] | None = None
    host_keys: Sequence[str] | None = None
    insecure_skip_host_key: bool = False
    root: str = ""
    server_hashes: bool = False

    kind: ClassVar[str] = "sftp"

    def _config(self) -> dict[str, Any]:
        ways = {
            "password": self.password is not None,
            "key_file": self.key_file is not None,
            "key_pem": self.key_pem is not None,
            "agent": self.agent,
        }
        if sum(ways.values()) != 1:
            raise ConfigError(
                f"endpoint {self.name!r}: give exactly one of password, key_file, key_pem "
                f"or agent=True (got {[way for way, given in ways.items() if given] or 'none'})"
            )
        auth: dict[str, Any]
        if self.password is not None:
            auth = {"method": "password", "password": self.password}
        elif self.key_file is not None:
            auth = {"method": "key_file", "path": os.fspath(self.key_file)}
        elif self.key_pem is not None:
            auth = {"method": "key_pem", "pem": self.key_pem}
        else:
            auth = {"method": "agent"}
        if self.passphrase is not None and auth["method"] in ("key_file", "key_pem"):
            auth["passphrase"] = self.passphrase
        checks = {
            "known_hosts": self.known_hosts is not None,
            "host_keys": self.host_keys is not None,
            "insecure_skip_host_key": self.insecure_skip_host_key,
        }
        if sum(checks.values()) > 1:
            raise ConfigError(
                f"endpoint {self.name!r}: give at most one of known_hosts, host_keys "
                "or insecure_skip_host_key=True"
            )
        host_key: dict[str, Any] | None = None
        if self.known_hosts is not None:
            host_key = {"check": "known_hosts_file", "path": os.fspath(self.known_hosts)}
        elif self.host_keys is not None:
            host_key = {"check": "pinned", "keys": list(self.host_keys)}
        elif self.insecure_skip_host_key:
            host_key = {"check": "insecure_skip"}
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "auth": auth,
            "host_key": host_key,
            "root": self.root,
            "server_hashes": self.server_hashes,
        }


@dataclass(frozen=True)
class Smb(Endpoint):
    """A directory in an SMB (Windows, Samba) share.

    Args:
        name: The endpoint's name.
        host: Host name or IP address.
        user: ``user`` or ``DOMAIN\\user`` (the domain part then overrides ``domain``).
        password: The password (never shown in ``repr``).
        share: The share's name.
        port: TCP port (445).
        domain: Windows domain (``"WORKGROUP"``).
        root: Directory inside the share every path is under.
    """

    _: KW_ONLY
    host: str
    user: str
    password: str = field(repr=False)
    share: str
    port: int = 445
    domain: str = "WORKGROUP"
    root: str = ""

    kind: ClassVar[str] = "smb"

    @classmethod
    def from_unc(
        cls, name: str, unc: str, *, user: str, password: str, port: int = 445, domain: str = "WORKGROUP"
    ) -> Smb:
        """An endpoint for ``//host/share/path`` (or ``\\\\host\\share\\path``)."""
        host, share, root = _native.parse_unc(unc)
        return cls(
            name, host=host, user=user, password=password, share=share, port=port, domain=domain, root=root
        )

    def _config(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "domain": self.domain,
            "share": self.share,
            "root": self.root,
        }

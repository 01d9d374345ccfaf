"""The node's configuration, read from ``COUNTER_*`` environment variables.

Django-free, so the gunicorn configuration and tests can use it without
settings. Every bad value raises ``ConfigError`` with one line naming the
variable and the value, which ``manage.py`` prints before exiting non-zero.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from storage_app.core.keywords import TOKENIZERS
from storage_app.core.store import DEFAULT_MAX_SLOTS

DEFAULT_MAX_TOP = 1000  # COUNTER_MAX_TOP: keywords in one GET /top
DEFAULT_MAX_KEYWORD_LENGTH = 1024  # COUNTER_MAX_KEYWORD_LENGTH: characters of a looked-up keyword or prefix


class ConfigError(ValueError):
    """A COUNTER_* variable holds a value the node cannot run with."""


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node is configured with; see the README's table for meanings."""

    node_id: int
    seeds: tuple[str, ...]
    public_port: int
    sync_port: int
    host: str
    data_dir: Path
    dump_interval: float
    checkpoint_log_bytes: int  # 0: snapshots by time only
    sync_interval: float
    sync_timeout: float
    tokenizer: str
    max_body_bytes: int
    max_sync_body_bytes: int
    threads: int
    tokenizer_processes: int
    internal_token: str
    log_level: str
    log_format: str
    sync_token: str
    sync_insecure: bool
    anti_entropy_interval: float
    fsync: str
    wal: bool
    max_slots: int
    advertise_url: str
    member_timeout: float
    reuse_id: bool
    debug: bool
    allowed_hosts: tuple[str, ...]
    public_token: str
    public_read_token: str
    keepalive_timeout: float
    header_timeout: float
    body_timeout: float
    max_connections: int
    max_sync_connections: int
    max_buffered_bytes: int
    max_lookup_keywords: int
    max_top: int
    max_keyword_length: int
    max_batch_texts: int
    rate_limit: float
    rate_burst: int
    idempotency_ttl: float
    max_idempotency_keys: int

    @property
    def snapshot_path(self) -> Path:
        return self.data_dir / f"node-{self.node_id}.snapshot"

    @property
    def previous_snapshot_path(self) -> Path:
        return self.data_dir / f"node-{self.node_id}.snapshot.prev"

    @property
    def idempotency_path(self) -> Path:
        return self.data_dir / f"node-{self.node_id}.idempotency"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / f"node-{self.node_id}.pid"

    @property
    def members_path(self) -> Path:
        return self.data_dir / f"node-{self.node_id}.members.json"

    @property
    def wal_dir(self) -> Path:
        return self.data_dir / f"node-{self.node_id}.wal"

    @property
    def internal_token_path(self) -> Path:
        return self.data_dir / f"node-{self.node_id}.internal-token"

    @property
    def local_address(self) -> str:
        """The address this node's own commands connect to (loopback for a wildcard listen address)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"[{host}]" if ":" in host else host

    @property
    def sync_base_url(self) -> str:
        return f"http://{self.local_address}:{self.sync_port}"

    @property
    def public_base_url(self) -> str:
        return f"http://{self.local_address}:{self.public_port}"


def _raw(environ: Mapping[str, str], name: str, default: str) -> str:
    return environ.get(name, default).strip()


def _fail(name: str, value: str, expectation: str) -> ConfigError:
    return ConfigError(f"{name}={value!r}: {expectation}")


def env_int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer in [low, high]."""
    value = _raw(environ, name, str(default))
    try:
        number = int(value)
    except ValueError:
        raise _fail(name, value, f"must be an integer from {low} to {high}") from None
    if not low <= number <= high:
        raise _fail(name, value, f"must be an integer from {low} to {high}")
    return number


def env_seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    """A positive, finite number of seconds (fractions allowed)."""
    value = _raw(environ, name, str(default))
    try:
        seconds = float(value)
    except ValueError:
        raise _fail(name, value, "must be a number of seconds greater than 0") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise _fail(name, value, "must be a number of seconds greater than 0")
    return seconds


def env_rate(environ: Mapping[str, str], name: str) -> float:
    """Requests per second, 0 (the default) for no limit."""
    value = _raw(environ, name, "0")
    try:
        rate = float(value)
    except ValueError:
        raise _fail(name, value, "must be a number of requests per second (0 for no limit)") from None
    if not math.isfinite(rate) or rate < 0:
        raise _fail(name, value, "must be a number of requests per second (0 for no limit)")
    return rate


def env_choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(environ, name, default).lower()
    if value not in choices:
        raise _fail(name, value, f"must be one of {', '.join(choices)}")
    return value


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = _raw(environ, name, "true" if default else "false").lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise _fail(name, value, "must be true or false")


def env_secret(environ: Mapping[str, str], name: str) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (so it stays out of the environment)."""
    file_name = environ.get(f"{name}_FILE", "").strip()
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as error:
            raise _fail(f"{name}_FILE", file_name, f"cannot be read: {error.strerror}") from None
    return environ.get(name, "").strip()


def is_loopback_host(host: str) -> bool:
    """Is ``host`` (a name or an address) this machine's loopback?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def env_seeds(environ: Mapping[str, str], name: str = "COUNTER_SEEDS") -> tuple[str, ...]:
    """Comma-separated http(s) base URLs; blanks trimmed, empty entries dropped."""
    raw = environ.get(name, "")
    seeds: list[str] = []
    for entry in raw.split(","):
        seed = entry.strip()
        if not seed:
            continue
        parts = urlsplit(seed)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or parts.query or parts.fragment:
            raise _fail(name, raw, f"{seed!r} is not an http(s) base URL like http://localhost:4001")
        seeds.append(seed.rstrip("/"))
    return tuple(seeds)


def env_advertise_url(environ: Mapping[str, str], host: str, sync_port: int) -> str:
    """COUNTER_ADVERTISE_URL: the sync URL other nodes reach this one at.

    Default: ``http://127.0.0.1:<sync port>`` when listening on loopback, else
    ``http://<host name>:<sync port>``.
    """
    raw = _raw(environ, "COUNTER_ADVERTISE_URL", "")
    if not raw:
        name = "127.0.0.1" if is_loopback_host(host) else socket.gethostname()
        return f"http://{name}:{sync_port}"
    too_long = len(raw.encode()) > 1024
    urls = () if "," in raw or too_long else env_seeds({"COUNTER_ADVERTISE_URL": raw}, "COUNTER_ADVERTISE_URL")
    if len(urls) != 1:
        raise _fail("COUNTER_ADVERTISE_URL", raw, "must be one http(s) base URL like http://node-0.counter:3001")
    return urls[0]


def load_config(environ: Mapping[str, str]) -> NodeConfig:
    """Read and check every COUNTER_* variable; raise ``ConfigError`` on the first bad one."""
    # Every slot is a dense column (8 bytes per key), so a cluster states how many
    # node ids it uses; a peer's slot past that is refused, not stored.
    max_slots = env_int(environ, "COUNTER_MAX_NODES", 16, 1, DEFAULT_MAX_SLOTS)
    node_id = env_int(environ, "COUNTER_NODE_ID", 0, 0, DEFAULT_MAX_SLOTS - 1)
    if node_id >= max_slots:
        raise _fail("COUNTER_NODE_ID", str(node_id), f"must be below COUNTER_MAX_NODES={max_slots}")
    public_port = env_int(environ, "COUNTER_PUBLIC_PORT", 3000, 1, 65535)
    sync_port = env_int(environ, "COUNTER_SYNC_PORT", 3001, 1, 65535)
    if public_port == sync_port:
        raise _fail("COUNTER_SYNC_PORT", str(sync_port), "must differ from COUNTER_PUBLIC_PORT")
    host = _raw(environ, "COUNTER_HOST", "127.0.0.1")
    if not host or any(character.isspace() for character in host):
        raise _fail("COUNTER_HOST", host, "must be an address to listen on, like 127.0.0.1 or 0.0.0.0")
    data_dir = _raw(environ, "COUNTER_DATA_DIR", "data")
    if not data_dir:
        raise _fail("COUNTER_DATA_DIR", data_dir, "must be a directory path")
    sync_token = env_secret(environ, "COUNTER_SYNC_TOKEN")
    sync_insecure = env_bool(environ, "COUNTER_SYNC_INSECURE", False)
    if not sync_token and not sync_insecure and not is_loopback_host(host):
        raise _fail(
            "COUNTER_HOST",
            host,
            "listening beyond loopback needs COUNTER_SYNC_TOKEN (or COUNTER_SYNC_INSECURE=true, "
            "e.g. for counter-app peers, which cannot send a token)",
        )
    return NodeConfig(
        node_id=node_id,
        seeds=env_seeds(environ),
        public_port=public_port,
        sync_port=sync_port,
        host=host,
        data_dir=Path(data_dir),
        dump_interval=env_seconds(environ, "COUNTER_DUMP_INTERVAL", 1.0),
        checkpoint_log_bytes=env_int(environ, "COUNTER_CHECKPOINT_LOG_BYTES", 32 * 1024 * 1024, 0, 1 << 40),
        sync_interval=env_seconds(environ, "COUNTER_SYNC_INTERVAL", 1.0),
        sync_timeout=env_seconds(environ, "COUNTER_SYNC_TIMEOUT", 5.0),
        tokenizer=env_choice(environ, "COUNTER_TOKENIZER", "words", TOKENIZERS),
        max_body_bytes=env_int(environ, "COUNTER_MAX_BODY_BYTES", 16 * 1024 * 1024, 1, 1 << 40),
        max_sync_body_bytes=env_int(environ, "COUNTER_MAX_SYNC_BODY_BYTES", 512 * 1024 * 1024, 1, 1 << 40),
        threads=env_int(environ, "COUNTER_THREADS", 8, 1, 256),
        # One per core: a child tokenizes a large text while the worker serves other requests.
        tokenizer_processes=env_int(environ, "COUNTER_TOKENIZER_PROCESSES", os.cpu_count() or 1, 0, 64),
        internal_token=_raw(environ, "COUNTER_INTERNAL_TOKEN", ""),
        log_level=env_choice(environ, "COUNTER_LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        log_format=env_choice(environ, "COUNTER_LOG_FORMAT", "text", ("text", "json")),
        sync_token=sync_token,
        sync_insecure=sync_insecure,
        anti_entropy_interval=env_seconds(environ, "COUNTER_ANTI_ENTROPY_INTERVAL", 30.0),
        fsync=env_choice(environ, "COUNTER_FSYNC", "interval", ("always", "interval")),
        wal=env_bool(environ, "COUNTER_WAL", True),
        max_slots=max_slots,
        advertise_url=env_advertise_url(environ, host, sync_port),
        member_timeout=env_seconds(environ, "COUNTER_MEMBER_TIMEOUT", 60.0),
        reuse_id=env_bool(environ, "COUNTER_REUSE_ID", False),
        debug=env_bool(environ, "COUNTER_DEBUG", False),
        public_token=env_secret(environ, "COUNTER_PUBLIC_TOKEN"),
        public_read_token=env_secret(environ, "COUNTER_PUBLIC_READ_TOKEN"),
        keepalive_timeout=env_seconds(environ, "COUNTER_KEEPALIVE_TIMEOUT", 5.0),
        header_timeout=env_seconds(environ, "COUNTER_HEADER_TIMEOUT", 10.0),
        body_timeout=env_seconds(environ, "COUNTER_BODY_TIMEOUT", 60.0),
        max_connections=env_int(environ, "COUNTER_MAX_CONNECTIONS", 1000, 1, 1_000_000),
        max_sync_connections=env_int(environ, "COUNTER_MAX_SYNC_CONNECTIONS", 256, 1, 1_000_000),
        max_buffered_bytes=env_int(environ, "COUNTER_MAX_BUFFERED_BYTES", 256 * 1024 * 1024, 0, 1 << 40),
        max_lookup_keywords=env_int(environ, "COUNTER_MAX_LOOKUP_KEYWORDS", 1000, 1, 1_000_000),
        max_top=env_int(environ, "COUNTER_MAX_TOP", DEFAULT_MAX_TOP, 1, 1_000_000),
        max_keyword_length=env_int(environ, "COUNTER_MAX_KEYWORD_LENGTH", DEFAULT_MAX_KEYWORD_LENGTH, 1, 1 << 20),
        max_batch_texts=env_int(environ, "COUNTER_MAX_BATCH_TEXTS", 10_000, 1, 1_000_000),
        rate_limit=env_rate(environ, "COUNTER_RATE_LIMIT"),
        rate_burst=env_int(environ, "COUNTER_RATE_BURST", 100, 1, 1_000_000),
        idempotency_ttl=env_seconds(environ, "COUNTER_IDEMPOTENCY_TTL", 24 * 3600.0),
        max_idempotency_keys=env_int(environ, "COUNTER_MAX_IDEMPOTENCY_KEYS", 250_000, 1, 100_000_000),
        allowed_hosts=tuple(
            host.strip() for host in environ.get("COUNTER_ALLOWED_HOSTS", "*").split(",") if host.strip()
        )
        or ("*",),
    )

"""Typed settings read from the environment once, at start-up.

A bad or missing value stops the process with a message that names the variable, instead of a
stack trace from deep inside Django.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import zoneinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
# Tests keep their files (SQLite test database, broker folders, secret) apart from a running
# `make run`, whose worker would otherwise take the tests' messages. pytest sets PYTEST_VERSION.
_DEFAULT_DATA_DIR = REPO_ROOT / "data" / ("test" if "PYTEST_VERSION" in os.environ else "")


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigurationError(Exception):
    """Raised when the environment cannot configure Ironbowl; the message names the variable."""


class Config(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=True, extra="ignore")

    IRONBOWL_ENV: Mode = Mode.DEVELOPMENT
    DATA_DIR: Path = _DEFAULT_DATA_DIR
    DATABASE_URL: str = ""
    DATABASE_CONN_MAX_AGE: int = Field(default=60, ge=0)
    REDIS_URL: str = ""
    SECRET_KEY: str = ""
    ALLOWED_HOSTS: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "[::1]", "testserver"]
    )
    CSRF_TRUSTED_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    MEDIA_ROOT: Path | None = None
    TIME_ZONE: str = "Asia/Shanghai"
    STRIPE_SECRET_KEY: str = ""
    STRIPE_WEBHOOK_SECRET: str = ""
    # Days between a failed payment and the suspension of non-essential digital employees.
    BILLING_GRACE_DAYS: int = Field(default=7, ge=0, le=60)
    # E-mail (budget alerts, payment notices): printed to the console unless SMTP is set up.
    EMAIL_BACKEND: str = "django.core.mail.backends.console.EmailBackend"
    EMAIL_HOST: str = "localhost"
    EMAIL_PORT: int = Field(default=25, gt=0)
    EMAIL_HOST_USER: str = ""
    EMAIL_HOST_PASSWORD: str = ""
    EMAIL_USE_TLS: bool = False
    DEFAULT_FROM_EMAIL: str = "Ironbowl <no-reply@ironbowl.example>"
    LOG_LEVEL: str = "INFO"
    LOG_FORMAT: str = "json"
    API_MAX_BODY_BYTES: int = Field(default=1_048_576, gt=0)
    UPLOAD_CHUNK_MAX_BYTES: int = Field(default=8_388_608, gt=0)
    THROTTLE_ORGANIZATION_RATE: str = "6000/minute"
    THROTTLE_KEY_RATE: str = "1200/minute"
    # The public widget endpoint: per widget key, and per visitor's address.
    THROTTLE_WIDGET_KEY_RATE: str = "600/minute"
    THROTTLE_WIDGET_IP_RATE: str = "20/minute"
    # Analytics intake (POST …/events/): batches per API key, and of the whole organization
    # (a bucket apart from THROTTLE_ORGANIZATION_RATE's), and each batch's limits.
    THROTTLE_EVENTS_RATE: str = "600/minute"
    THROTTLE_EVENTS_ORGANIZATION_RATE: str = "30000/minute"
    ANALYTICS_MAX_BATCH_EVENTS: int = Field(default=10_000, gt=0)
    ANALYTICS_MAX_BODY_BYTES: int = Field(default=8_388_608, gt=0)  # as sent (gzip or not)
    ANALYTICS_MAX_INFLATED_BYTES: int = Field(default=33_554_432, gt=0)  # once un-gzipped
    # Live rooms' stream keys are encrypted with this Fernet key (unset: one derived from
    # SECRET_KEY); the fallbacks still decrypt during a rotation (scheduling.secrets).
    STREAM_KEY_ENCRYPTION_KEY: str = ""
    STREAM_KEY_ENCRYPTION_KEY_FALLBACKS: Annotated[list[str], NoDecode] = Field(
        default_factory=list
    )
    # Inference: where workers run and how they reach the control plane.
    INFERENCE_BACKEND: str = "local"
    INFERENCE_POOLS_FILE: Path | None = None
    INFERENCE_CONTROL_URL: str = "http://127.0.0.1:8000"
    INFERENCE_HEARTBEAT_INTERVAL_S: float = Field(default=5.0, gt=0)
    INFERENCE_HEARTBEAT_TIMEOUT_S: float = Field(default=30.0, gt=0)
    INFERENCE_START_TIMEOUT_S: float = Field(default=600.0, gt=0)
    INFERENCE_WARM_IDLE_S: float = Field(default=3600.0, ge=0)
    INFERENCE_SESSION_TOKEN_TTL_S: int = Field(default=300, ge=10, le=3600)
    INFERENCE_LLM_URL: str = ""
    INFERENCE_LLM_MODEL: str = "default"
    INFERENCE_LLM_API_KEY: str = ""
    KUBERNETES_NAMESPACE_PREFIX: str = "ironbowl-org-"
    KUBERNETES_KUEUE_QUEUE: str = ""
    KUBERNETES_TARGET_VERSION: str = "1.33"
    # Scheduling: a live shift's workload is requested this long before it starts; a shift not
    # on duty this long after its start is missed.
    SCHEDULING_WARMUP_MINUTES: int = Field(default=5, ge=0, le=120)
    SCHEDULING_MISSED_AFTER_MINUTES: int = Field(default=10, ge=1, le=240)
    # Shifts are made (and their capacity reserved) this many days ahead.
    SCHEDULING_HORIZON_DAYS: int = Field(default=14, ge=1, le=90)

    @field_validator(
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "STREAM_KEY_ENCRYPTION_KEY_FALLBACKS",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgres://", "postgresql://")):
            raise ValueError("must start with sqlite://, postgres:// or postgresql://")
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must start with redis:// or rediss://")
        return value

    @field_validator("TIME_ZONE")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in zoneinfo.available_timezones():
            raise ValueError(f"{value!r} is not an IANA time zone such as Asia/Shanghai")
        return value

    @field_validator("INFERENCE_BACKEND")
    @classmethod
    def _backend(cls, value: str) -> str:
        if value not in ("local", "kubernetes"):
            raise ValueError("must be local or kubernetes")
        return value

    @field_validator("LOG_FORMAT")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in ("json", "console"):
            raise ValueError("must be json or console")
        return value

    @field_validator(
        "THROTTLE_ORGANIZATION_RATE",
        "THROTTLE_KEY_RATE",
        "THROTTLE_WIDGET_KEY_RATE",
        "THROTTLE_WIDGET_IP_RATE",
        "THROTTLE_EVENTS_RATE",
        "THROTTLE_EVENTS_ORGANIZATION_RATE",
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        count, _, period = value.partition("/")
        if not count.isdigit() or period not in ("second", "minute", "hour", "day"):
            raise ValueError("must look like 600/minute (count/second|minute|hour|day)")
        return value

    @field_validator("STREAM_KEY_ENCRYPTION_KEY")
    @classmethod
    def _fernet_key(cls, value: str) -> str:
        if value:
            _check_fernet_key(value)
        return value

    @field_validator("STREAM_KEY_ENCRYPTION_KEY_FALLBACKS")
    @classmethod
    def _fernet_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            _check_fernet_key(key)
        return value

    @model_validator(mode="after")
    def _production_requirements(self) -> Config:
        if self.IRONBOWL_ENV is Mode.PRODUCTION:
            if len(self.SECRET_KEY) < 50:
                raise ValueError("SECRET_KEY: required in production, at least 50 characters")
            if not self.DATABASE_URL.startswith(("postgres://", "postgresql://")):
                raise ValueError("DATABASE_URL: production needs a PostgreSQL URL")
            if not self.REDIS_URL:
                raise ValueError("REDIS_URL: required in production (Celery broker, channels)")
        return self

    @property
    def is_production(self) -> bool:
        return self.IRONBOWL_ENV is Mode.PRODUCTION

    @property
    def database_url(self) -> str:
        return self.DATABASE_URL or f"sqlite:///{self.DATA_DIR / 'ironbowl.sqlite3'}"

    @property
    def media_root(self) -> Path:
        return self.MEDIA_ROOT or self.DATA_DIR / "media"


def _check_fernet_key(value: str) -> None:
    try:
        valid = len(base64.urlsafe_b64decode(value.encode())) == 32
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "must be a Fernet key: 32 random bytes in URL-safe base64, e.g. from python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )


def development_secret_key(data_dir: Path) -> str:
    """Generate the development secret once and keep it, so sessions survive restarts."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_config() -> Config:
    try:
        config = Config()
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"]) or "environment"
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"  {where}: {message}")
        raise ConfigurationError(
            "Ironbowl cannot start; fix these environment variables:\n" + "\n".join(problems)
        ) from None
    if not config.SECRET_KEY:
        config.SECRET_KEY = development_secret_key(config.DATA_DIR)
    return config

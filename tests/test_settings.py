"""Settings: bad values stop start-up with one line naming the variable; docs match code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.errors import ConfigError
from service.settings import Settings, load_settings

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"idle_seconds": "soon"}, "TA_IDLE_SECONDS"),
        ({"idle_seconds": 0}, "TA_IDLE_SECONDS"),
        ({"check_interval_seconds": -1}, "TA_CHECK_INTERVAL_SECONDS"),
        ({"clickhouse_url": "postgres://x"}, "TA_CLICKHOUSE_URL"),
        ({"analyze_url": "ftp://x"}, "TA_ANALYZE_URL"),
        ({"api_keys": "just-a-key"}, "TA_API_KEYS"),
        ({"log_level": "chatty"}, "TA_LOG_LEVEL"),
        ({"port": 70000}, "TA_PORT"),
        ({"clickhouse_cluster": "a b"}, "TA_CLICKHOUSE_CLUSTER"),
        ({"shard_index": 3, "shard_count": 2}, "TA_SHARD_INDEX"),
        ({"host": "0.0.0.0"}, "TA_HOST"),
        ({"api_keys": "k1=acme,k1=globex"}, "TA_API_KEYS"),
        ({"http_max_connections": 0}, "TA_HTTP_MAX_CONNECTIONS"),
        ({"http_keepalive_seconds": 0}, "TA_HTTP_KEEPALIVE_SECONDS"),
        ({"http_header_timeout_seconds": 301}, "TA_HTTP_HEADER_TIMEOUT_SECONDS"),
        ({"http_body_timeout_seconds": -1}, "TA_HTTP_BODY_TIMEOUT_SECONDS"),
        ({"rollup_read_cache_mb": -1}, "TA_ROLLUP_READ_CACHE_MB"),
        ({"rollup_read_cache_mb": 65537}, "TA_ROLLUP_READ_CACHE_MB"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    overrides: dict[str, object], variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    message = str(caught.value)
    assert variable in message
    assert "\n" not in message


def test_environment_is_read_with_the_ta_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TA_IDLE_SECONDS", "120")
    monkeypatch.setenv("TA_API_KEYS", "k1=acme,k0=*")
    settings = Settings()
    assert settings.idle_seconds == 120
    assert settings.api_key_map() == {"k1": "acme", "k0": "*"}
    assert settings.bind_host == "0.0.0.0"


def test_defaults_match_the_design() -> None:
    settings = Settings()
    assert settings.clickhouse_url == "chdb://./data"
    assert settings.idle_seconds == 60
    assert settings.check_interval_seconds == 10
    assert settings.scheduler_enabled is True
    assert settings.bind_host == "127.0.0.1"


def test_a_bad_api_key_entry_does_not_echo_the_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(api_keys="good=acme,supersecretvalue")
    assert "supersecretvalue" not in str(caught.value)


def test_readme_documents_every_setting_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `(TA_[A-Z_]+)` \|", README.read_text(), re.MULTILINE))
    declared = {f"TA_{name.upper()}" for name in Settings.model_fields}
    assert documented == declared


# The variables the design document (kept outside this repository) specifies.
DESIGN_SETTINGS = {
    "TA_CLICKHOUSE_URL", "TA_CLICKHOUSE_CLUSTER", "TA_IDLE_SECONDS", "TA_CHECK_INTERVAL_SECONDS",
    "TA_CHECK_BATCH_LIMIT", "TA_ANALYZE_URL", "TA_ANALYZE_CONCURRENCY",
    "TA_ANALYZE_TIMEOUT_SECONDS", "TA_ANALYZE_MAX_ATTEMPTS", "TA_WEBHOOK_SECRET",
    "TA_ROLLUP_INTERVAL_SECONDS", "TA_SCHEDULER_ENABLED", "TA_API_KEYS", "TA_HOST", "TA_PORT",
    "TA_LOG_LEVEL", "TA_SHARD_INDEX", "TA_SHARD_COUNT",
}  # fmt: skip


def test_every_setting_beyond_the_design_is_listed_among_the_deviations() -> None:
    text = README.read_text()
    deviations = text[text.index("## Deviations from the design") :]
    listed = set(re.findall(r"`(TA_[A-Z_]+)`", deviations))
    if "`TA_HTTP_*`" in deviations:
        listed |= {
            f"TA_{name.upper()}" for name in Settings.model_fields if name.startswith("http_")
        }
    extra = {f"TA_{name.upper()}" for name in Settings.model_fields} - DESIGN_SETTINGS
    assert extra - listed == set()


def test_the_cli_admin_key_is_ta_admin_key_else_the_first_admin_entry() -> None:
    keys = "k1=acme,k0=*,k9=*"
    assert load_settings(api_keys=keys).cli_admin_key() == "k0"
    assert load_settings(api_keys=keys, admin_key="other").cli_admin_key() == "other"
    assert load_settings(api_keys="k1=acme").cli_admin_key() is None
    assert load_settings().cli_admin_key() is None


def test_the_admin_key_is_masked_in_logs_like_the_other_secrets() -> None:
    from service.logs import secret_values

    assert "admin-key-9f2c" in secret_values(load_settings(admin_key="admin-key-9f2c"))

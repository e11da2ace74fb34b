"""The `monitoring` section of the configuration: defaults, per-use-case overrides, unknown keys."""

from __future__ import annotations

import pytest

from nightjar.config_loader import load_config
from nightjar.errors import ConfigError


def test_monitoring_defaults_and_overrides() -> None:
    config = load_config("test", ["monitoring.psi_max=0.1", "monitoring.bounds={amount_sum_7d: {min: 0}}"])
    assert config.monitoring.psi_max == 0.1 and config.monitoring.bounds["amount_sum_7d"].min == 0
    defaults = load_config("test").monitoring
    assert (defaults.psi_max, defaults.fail_on_alert, defaults.lookback_days) == (0.25, False, 90)


@pytest.mark.parametrize("override", ["monitoring.psi_maximum=0.3", "monitoring.bounds={x: {low: 0}}",
                                      "monitoring.psi_max=-1"])
def test_unknown_or_invalid_monitoring_keys_are_errors(override: str) -> None:
    with pytest.raises(ConfigError, match="monitoring"):
        load_config("test", [override])

"""The dates `make demo` runs a use case's jobs on, read from its configuration.

    python -m nightjar.demo [--use-case NAME] [--env ENV]
    # prints: FIRST_FEATURE_DATE LOGICAL_DATE LAST_TRAINING_DATE

The logical date is the last simulated day, `generate.end_date`; `train --date` on it uses the
feature dates FIRST_FEATURE_DATE .. LAST_TRAINING_DATE (the latest whose labels are final), so the
demo computes those in one backfill, then the logical date's for scoring. The dates between are
never read (for fraud, whose labels take 60 days to mature, they would be most of the work).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from models.training_set import label_dates
from nightjar.config import Config
from nightjar.config_loader import load_config
from nightjar.errors import ConfigError, NightjarError


def demo_dates(config: Config) -> tuple[date, date]:
    """The first feature date the demo computes and its logical date (train and score)."""
    if config.generate is None:
        raise ConfigError(f"use case {config.use_case.name!r} has no demo generator (no generate section in its file)")
    end = config.generate.end_date
    first = label_dates(end, config.use_case.label_reach, config.training.days, stride_days=1)[0]
    return first, end


def last_training_date(config: Config) -> date:
    """The newest feature date `train --date` on the demo's logical date uses."""
    _, end = demo_dates(config)
    return label_dates(end, config.use_case.label_reach, config.training.days, stride_days=1)[-1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m nightjar.demo", description=__doc__)
    parser.add_argument("--use-case", default=None)
    parser.add_argument("--env", default=None)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.env, use_case=args.use_case)
        first, end = demo_dates(config)
        last = last_training_date(config)
    except NightjarError as error:
        print(f"nightjar demo: error: {error}", file=sys.stderr)
        return error.exit_code
    print(first.isoformat(), end.isoformat(), last.isoformat())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

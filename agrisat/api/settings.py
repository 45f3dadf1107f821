"""API and push settings, from the environment only (secrets never come from files)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agrisat.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    output_dir: Path  # AGRISAT_OUTPUT_DIR: the run folders (plots.parquet is read from here)
    db_url: str  # AGRISAT_DB_URL: sqlite:///<output_dir>/agrisat.db unless set
    rate_per_s: float = 20.0  # AGRISAT_API_RATE: default tokens/s per key (a key may override)
    burst: int = 40  # AGRISAT_API_BURST: default bucket size per key
    webhook_url: str | None = None  # AGRISAT_WEBHOOK_URL
    webhook_secret: str | None = None  # AGRISAT_WEBHOOK_SECRET

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        out = Path(env.get("AGRISAT_OUTPUT_DIR") or "runs").resolve()
        try:
            rate = float(env.get("AGRISAT_API_RATE", "20"))
            burst = int(env.get("AGRISAT_API_BURST", "40"))
        except ValueError as e:
            raise ConfigError(f"AGRISAT_API_RATE / AGRISAT_API_BURST: not a number: {e}") from e
        if rate <= 0 or burst < 1:
            raise ConfigError("AGRISAT_API_RATE must be > 0 and AGRISAT_API_BURST >= 1")
        return cls(output_dir=out, db_url=env.get("AGRISAT_DB_URL") or f"sqlite:///{out / 'agrisat.db'}",
                   rate_per_s=rate, burst=burst, webhook_url=env.get("AGRISAT_WEBHOOK_URL") or None,
                   webhook_secret=env.get("AGRISAT_WEBHOOK_SECRET") or None)

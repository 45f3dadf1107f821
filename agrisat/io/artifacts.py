"""Versioned model artifacts: a joblib file and a JSON of everything but the fitted model(s)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib

from agrisat.errors import InputDataError


def save(artifact: dict[str, Any], out_dir: Path, prefix: str, model_key: str) -> Path:
    """``<out_dir>/<prefix>-<version>.joblib`` and its ``.json`` metadata (without ``model_key``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{prefix}-{artifact['version']}.joblib"
    joblib.dump(artifact, path)
    meta = {k: v for k, v in artifact.items() if k != model_key}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return path


def load(path: Path, what: str, is_valid: Callable[[Any], bool]) -> dict[str, Any]:
    """The artifact at ``path``; a named InputDataError when it cannot be read or is not ``what``."""
    try:
        art = joblib.load(path)
    except Exception as e:  # noqa: BLE001 (a corrupt pickle raises anything from KeyError to UnpicklingError)
        raise InputDataError(f"{path}: cannot load {what}: {e!r}") from e
    if not isinstance(art, dict) or not is_valid(art):
        raise InputDataError(f"{path}: not an agrisat {what} artifact")
    return art

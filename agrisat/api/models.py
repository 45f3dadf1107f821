"""Response models: they document the API (OpenAPI) and fix the shape the lending system parses.

Limit records pass through as published (``extra="allow"``): a column added to limits.parquet
appears in the API without a code change; the fields below are the contract.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["approved", "review", "declined"]


class Reason(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    amount: float | None = None
    plot_id: str | None = None
    detail: str | None = None
    text_en: str | None = None
    text_zh: str | None = None


class Limit(BaseModel):
    model_config = ConfigDict(extra="allow")
    farmer_id: str
    limit: float | None = Field(None, description="Credit limit in `currency`; null only if the run had none.")
    currency: str | None = None
    status: str = Field(description="approved | review | declined")
    decided_by: str | None = None
    reason_codes: list[str] = []
    reasons: list[Reason] = []
    previous_limit: float | None = None
    change_reason: str | None = None
    expected_revenue: float | None = None
    pledgeable_revenue: float | None = None
    rent_due: float | None = None
    existing_debt: float | None = None
    risk_score: float | None = None
    n_plots: int | None = None
    n_plots_eligible: int | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    run_id: str
    policy_version: str | None = None
    model_version: str | None = None
    imagery_dates: list[str] = []
    published_at: str = Field(description="When this limit became current (UTC, ISO 8601).")


class LimitPage(BaseModel):
    items: list[Limit]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    publication: int = Field(description="Sequence number of the last publish when this page was read.")


class LimitHistory(BaseModel):
    farmer_id: str
    items: list[Limit] = Field(description="Newest first.")


class RunSummary(BaseModel):
    run_id: str
    publication: int
    published_at: str
    created_utc: str | None
    n_limits: int
    policy_version: str | None
    model_version: str | None


class RunList(BaseModel):
    items: list[RunSummary]


class RunDetail(RunSummary):
    manifest: dict[str, Any]


class PlotFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any] | None
    properties: dict[str, Any]


class PlotCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    farmer_id: str
    run_id: str
    features: list[PlotFeature]


class AuditEntry(BaseModel):
    id: int
    at: str
    key_id: str | None
    method: str
    path: str
    farmer_id: str | None
    query: str | None
    status: int


class AuditList(BaseModel):
    items: list[AuditEntry]


class Health(BaseModel):
    status: str
    publication: int | None = None
    detail: str | None = None


class Problem(BaseModel):
    detail: str

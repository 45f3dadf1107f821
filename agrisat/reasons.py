"""Reason codes: the machine-readable code, the signed amount it moved the limit, and short texts.

Every code a limit can carry has an English and a Chinese text here, so a loan officer can read a
decision out to a farmer. Flags that lower a plot's advance appear as ``FLAG_<flag>``; plots left out
of the revenue base as ``PLOT_EXCLUDED_<flag>``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# code: (English, Chinese)
REASON_TEXT: dict[str, tuple[str, str]] = {
    "ADVANCE_ON_REVENUE": ("Advance on expected crop revenue", "按预期作物收入授信"),
    "CROP_CAP_PER_HA": ("Capped at the per-hectare maximum for the crop", "受作物每公顷上限限制"),
    "RENT_DUE": ("Land rent due this season deducted", "扣除本季应付地租"),
    "EXISTING_DEBT": ("Existing debt deducted", "扣除现有负债"),
    "FARMER_CAP": ("Capped at the maximum limit per farmer", "受单户最高额度限制"),
    "FLOOR_AT_ZERO": ("Deductions exceed the advance; limit set to zero", "扣减超过授信额，额度为零"),
    "ROUNDING": ("Rounded down", "向下取整"),
    "BELOW_MINIMUM": ("Below the minimum limit; declined", "低于最低额度，拒绝"),
    "CHANGE_INCREASE_CAPPED": ("Increase over the previous limit capped for this run", "较上期额度的增幅受本次上限限制"),
    "CHANGE_DECREASE_DAMPED": ("Decrease from the previous limit spread over runs", "较上期额度的降幅分期执行"),
    "PRIOR_YIELD_ESTIMATE": ("Planting stage: reference yields, crop not yet visible", "播种期：采用参考产量，作物尚不可见"),
    "PLOT_EXCLUDED_LEASE_MISSING": ("Leased plot without a contract excluded", "无租赁合同的地块被排除"),
    "PLOT_EXCLUDED_LEASE_EXPIRED": ("Plot with an expired lease excluded", "租约已过期的地块被排除"),
    "PLOT_EXCLUDED_LEASE_LESSEE_MISMATCH": ("Plot leased to someone else excluded", "承租人非本农户的地块被排除"),
    "PLOT_EXCLUDED_LEASE_OVERLAP": ("Plot claimed by two active leases excluded", "存在重叠租约的地块被排除"),
    "PLOT_EXCLUDED_LEASE_PARTIAL_SEASON": ("Plot whose lease does not cover the crop season excluded", "租约未覆盖作物生长季的地块被排除"),
    "DEBT_RECORD_REJECTED": ("Debt record could not be read; held for review", "负债记录无法读取，暂停授信待审核"),
    "PLOT_EXCLUDED_NOT_ENOUGH_CLEAR_OBSERVATIONS": ("Plot without enough clear imagery excluded", "晴空影像不足的地块被排除"),
    "PLOT_EXCLUDED_NO_IMAGERY_COVERAGE": ("Plot outside the imagery excluded", "无影像覆盖的地块被排除"),
    "PLOT_EXCLUDED_PLOT_TOO_SMALL": ("Plot too small to measure excluded", "地块过小无法测量被排除"),
    "PLOT_EXCLUDED_NO_CROP_SIGNAL": ("Plot with no crop signal excluded", "无作物信号的地块被排除"),
    "FLAG_PEAK_OUTSIDE_CROP_CALENDAR": ("Crop peaked outside its usual months", "作物长势峰值不在常规月份"),
    "FLAG_AREA_MISMATCH": ("Declared area differs from the mapped plot", "申报面积与地块测绘面积不符"),
    "FLAG_CROP_MISMATCH": ("Observed crop differs from the declared crop", "观测作物与申报作物不符"),
    "FLAG_GROWTH_ANOMALY_LOW": ("Crop growing below its peers", "作物长势低于同类地块"),
    "FLAG_GAP_TOO_LONG": ("Long gap without clear imagery", "晴空影像间隔过长"),
    "FLAG_WEATHER_DROUGHT": ("Drought this season", "本季干旱"),
    "FLAG_WEATHER_FLOOD": ("Flooding rain this season", "本季洪涝"),
    "FLAG_WEATHER_HEAT": ("Heat stress this season", "本季高温胁迫"),
    "FLAG_WEATHER_FROST": ("Frost after emergence", "出苗后霜冻"),
    "FLAG_WEATHER_DATA_GAP": ("Too many days of weather data missing", "气象数据缺失天数过多"),
    "FLAG_WEATHER_SOURCE_FAR": ("Nearest weather station or cell is far away", "最近气象站或格点距离过远"),
    "FLAG_WEATHER_RULES_NOT_EVALUATED": ("Weather shocks could not be ruled out; charged as if they happened",
                                         "无法排除气象灾害，按已发生计"),
    "FLAG_PARTIAL_IMAGERY_COVERAGE": ("Only part of the plot was seen; lent on that part", "地块仅部分被影像覆盖，按可见部分授信"),
    "PLOT_EXCLUDED_TENURE_UNKNOWN": ("Plot with no known tenure and no contract excluded", "权属不明且无合同的地块被排除"),
    "PRICE_HAIRCUT": ("Crop price risk deducted", "扣除作物价格风险"),
    "DEBT_UNKNOWN": ("Existing debt not known", "现有负债未知"),
    "DEBT_UNKNOWN_HOLD": ("Existing debt not known; held for review", "现有负债未知，暂停授信待审核"),
    "NO_PLEDGEABLE_EVIDENCE": ("No plot could be measured; more evidence is needed", "无可测量地块，需要更多证据"),
}


@dataclass(frozen=True)
class Reason:
    code: str
    amount: float  # signed effect on the limit, in the policy currency
    plot_id: str | None = None
    detail: str = ""

    def as_dict(self) -> dict:
        en, zh = REASON_TEXT.get(self.code, (self.code, self.code))
        return {**asdict(self), "text_en": en, "text_zh": zh}


def ordered(reasons: list[Reason]) -> list[Reason]:
    """Largest effect first; ties broken by code and plot so the order is deterministic."""
    return sorted(reasons, key=lambda r: (-abs(r.amount), r.code, r.plot_id or ""))

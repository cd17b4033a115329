"""Generate the Superset asset bundle (deploy/superset/assets/) from one readable description.

The YAML files under assets/ are what ``manage.py import`` zips and POSTs to
``/api/v1/assets/import/``; they are in Superset's export layout and committed, so a
review sees every change. This script is how they are written: uuids are derived from
names (uuid5), so regenerating never changes an identity and a re-import overwrites
instead of duplicating. Every chart is referenced by uuid in its dashboard's position.

    .venv/bin/python deploy/superset/build_assets.py          # rewrite assets/
    .venv/bin/python deploy/superset/build_assets.py --check  # fail if assets/ is stale

Board views are defined in sinks/views/<name>.sql, one file each (columns in sinks/VIEWS.md).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "assets"
NS = uuid.UUID("5b0e7c3e-6a43-4a36-9d59-0f1b8f1c7a11")
DB_NAME = "ClickHouse motcua"
SCHEMA = "motcua"
VN_TODAY = "toDate(now(), 'Asia/Ho_Chi_Minh')"

LEVEL_COLORS = {
    "Rất hài lòng": "#1a7f4b",
    "Hài lòng": "#5ac189",
    "Bình thường": "#b2b2b2",
    "Không hài lòng": "#ff9f43",
    "Rất không hài lòng": "#e04355",
}
# Series of metrics are keyed by metric name (the legend shows the verbose name).
OUTCOME_COLORS = {"total_early": "#1a7f4b", "total_on_time": "#5ac189", "total_late": "#e04355",
                  "total_received": "#2893b3", "total_resolved": "#1a7f4b"}
CHANNEL_COLORS = {"Trực tiếp": "#454e7c", "Trực tuyến": "#2893b3", "Bưu chính công ích": "#fcc700"}


def uid(kind: str, name: str) -> str:
    return str(uuid.uuid5(NS, f"{kind}:{name}"))


# ------------------------------------------------------------------------------------
# datasets: view -> (columns with types, temporal column, metrics, calculated columns)
# ------------------------------------------------------------------------------------
S, N, D, T, F, B = "String", "UInt64", "Date", "DateTime64(3, 'Asia/Ho_Chi_Minh')", "Float64", "UInt8"

DATASETS: dict[str, dict] = {
    "v_dossier_daily": {
        "description": "Hồ sơ theo ngày, đơn vị, lĩnh vực, kênh / Dossiers per day, unit, field, channel",
        "dttm": "day",
        "columns": {
            "day": D, "unit_code": S, "unit_name": S, "unit_kind": S, "procedure_field": S,
            "field_name": S, "channel": B, "channel_name": S, "received": N, "resolved": N,
            "resolved_early": N, "resolved_on_time": N, "resolved_late": N, "withdrawn": N,
            "refused": N, "stopped": N, "in_progress": N, "online": N, "digitised": N,
            "paid_online": N, "vneid": N, "electronic_result": N, "sum_resolution_working_days": F,
        },
        "verbose": {"day": "Ngày", "unit_name": "Đơn vị", "unit_kind": "Cấp đơn vị", "field_name": "Lĩnh vực",
                    "channel_name": "Kênh", "unit_code": "Mã đơn vị", "procedure_field": "Mã lĩnh vực"},
        "metrics": {
            "total_received": ("SUM(received)", "Tiếp nhận", ",d", "Dossiers received"),
            "received_today": (f"sumIf(received, day = {VN_TODAY})", "Tiếp nhận hôm nay", ",d",
                               "Dossiers received today (Vietnam time)"),
            "total_resolved": ("SUM(resolved)", "Đã giải quyết", ",d", "Dossiers resolved (early, on time or late)"),
            "total_early": ("SUM(resolved_early)", "Sớm hạn", ",d", "Resolved early"),
            "total_on_time": ("SUM(resolved_on_time)", "Đúng hạn", ",d", "Resolved on time"),
            "total_late": ("SUM(resolved_late)", "Quá hạn", ",d", "Resolved late"),
            "on_time_share": ("(SUM(resolved_early) + SUM(resolved_on_time)) / nullIf(SUM(resolved), 0)",
                              "Tỷ lệ đúng hạn", ".1%", "Share resolved early or on time"),
            "total_in_progress": ("SUM(in_progress)", "Đang xử lý", ",d", "Dossiers still open"),
            "online_share": ("SUM(online) / nullIf(SUM(received), 0)", "Tỷ lệ trực tuyến", ".1%",
                             "Share of dossiers filed online"),
            "digitised_share": ("SUM(digitised) / nullIf(SUM(received), 0)", "Tỷ lệ số hóa", ".1%",
                                "Share of dossiers with digitised components"),
            "vneid_share": ("SUM(vneid) / nullIf(SUM(received), 0)", "Tỷ lệ xác thực VNeID", ".1%",
                            "Share of owners authenticated with VNeID"),
            "paid_online_share": ("SUM(paid_online) / nullIf(SUM(received), 0)", "Tỷ lệ thanh toán trực tuyến",
                                  ".1%", "Share paid online"),
            "avg_resolution_days": ("SUM(sum_resolution_working_days) / nullIf(SUM(resolved), 0)",
                                    "Số ngày làm việc TB", ",.1f", "Average resolution time, working days"),
            "withdrawn_refused": ("SUM(withdrawn) + SUM(refused) + SUM(stopped)", "Rút / từ chối / dừng", ",d",
                                  "Withdrawn, refused or stopped"),
        },
    },
    "v_unit_scoreboard": {
        "description": "Bảng xếp hạng đơn vị, tháng hiện tại / Unit scoreboard, current month",
        "dttm": None,
        "columns": {
            "unit_code": S, "unit_name": S, "unit_kind": S, "received": N, "resolved": N, "on_time_share": F,
            "satisfaction_share": F, "overdue_now": N, "in_progress": N, "online_share": F, "digitised_share": F,
            "rank_on_time": N, "rank_satisfaction": N, "resolved_in_time": N, "online": N, "digitised": N,
            "ratings": N, "satisfied": N,
        },
        "verbose": {"unit_name": "Đơn vị", "unit_kind": "Cấp đơn vị", "unit_code": "Mã đơn vị"},
        "metrics": {
            "sb_received": ("SUM(received)", "Tiếp nhận (tháng)", ",d", "Received this month"),
            "sb_resolved": ("SUM(resolved)", "Đã giải quyết (tháng)", ",d", "Resolved this month"),
            "sb_on_time_share": ("SUM(resolved_in_time) / nullIf(SUM(resolved), 0)", "Tỷ lệ đúng hạn", ".1%",
                                 "Share resolved early or on time, this month"),
            "sb_satisfaction_share": ("SUM(satisfied) / nullIf(SUM(ratings), 0)", "Tỷ lệ hài lòng", ".1%",
                                      "Share of ratings satisfied or very satisfied, this month"),
            "sb_overdue_now": ("SUM(overdue_now)", "Quá hạn hiện tại", ",d", "Open dossiers past their promised date"),
            "sb_in_progress": ("SUM(in_progress)", "Đang xử lý", ",d", "Open dossiers"),
            "sb_online_share": ("SUM(online) / nullIf(SUM(received), 0)", "Tỷ lệ trực tuyến", ".1%", "Online share"),
            "sb_rank_on_time": ("MIN(rank_on_time)", "Hạng đúng hạn", ",d", "Rank by on-time share among units of the same level"),
            "sb_rank_satisfaction": ("MIN(rank_satisfaction)", "Hạng hài lòng", ",d",
                                     "Rank by satisfaction share among units of the same level"),
        },
    },
    "v_overdue_now": {
        "description": "Hồ sơ đang quá hạn / Open dossiers past their promised date",
        "dttm": None,
        "columns": {
            "dossier_code": S, "unit_code": S, "unit_name": S, "procedure_code": S, "procedure_name": S,
            "procedure_field": S, "channel": B, "status": B, "received_at": T, "promised_at": T,
            "deadline": T, "deadline_reading": S, "overdue_working_days": "Int64", "overdue_hours": "Int64",
        },
        "verbose": {"dossier_code": "Mã hồ sơ", "unit_name": "Đơn vị", "procedure_name": "Thủ tục",
                    "promised_at": "Hẹn trả", "received_at": "Tiếp nhận lúc", "deadline": "Hạn giải quyết",
                    "deadline_reading": "Cách tính hạn",
                    "overdue_working_days": "Số ngày quá hạn"},
        "metrics": {
            "overdue_count": ("COUNT(*)", "Quá hạn hiện tại", ",d",
                              "Open dossiers past their effective deadline (the stream's judgement)"),
        },
    },
    "v_rules_in_force": {
        "description": "Cách tính hạn đang áp dụng / The supplement reading the judgements used (last day)",
        "dttm": None,
        "columns": {"reading": S, "reading_name": S, "judgements": N, "last_judged_at": T},
        "verbose": {"reading": "Mã quy tắc", "reading_name": "Cách tính hạn khi bổ sung hồ sơ",
                    "judgements": "Số lượt đánh giá (24 giờ)", "last_judged_at": "Lần gần nhất"},
        "metrics": {
            "rule_judgements": ("SUM(judgements)", "Số lượt đánh giá", ",d", "Judgements in the last day"),
        },
    },
    "v_service_index": {
        "description": "Bộ chỉ số phục vụ (QĐ 766), đã tính và lưu theo đơn vị, kỳ, chỉ số / "
                       "National service index as computed and stored, per unit, period and indicator",
        "dttm": None,
        "columns": {
            "period_kind": S, "period": S, "period_kind_name": S, "period_name": S, "period_start": T,
            "period_end": T, "unit_code": S, "unit_name": S, "unit_kind": S, "unit_kind_name": S, "row_kind": S,
            "indicator": S, "indicator_name": S, "group_code": S, "group_name": S, "numerator": F,
            "denominator": F, "ratio": F, "points": F, "points_text": S, "max_points": F, "measured": B,
            "measured_text": S, "source": S, "note": S, "measured_max": F, "rank": N, "peers": N,
            "previous_points": F, "change": F, "finished": F, "finished_on_time": F, "received": F,
            "received_online": F, "ratings": F, "ratings_satisfied": F, "is_latest": B, "config_version": S,
            "computed_at": T,
        },
        "verbose": {"period_name": "Kỳ đánh giá", "unit_name": "Đơn vị", "unit_kind_name": "Cấp đơn vị",
                    "unit_code": "Mã đơn vị", "indicator_name": "Chỉ số", "group_name": "Nhóm chỉ số",
                    "numerator": "Tử số", "denominator": "Mẫu số", "ratio": "Tỷ lệ", "points_text": "Điểm",
                    "max_points": "Điểm tối đa", "measured_text": "Đo được", "measured_max": "Điểm đo được",
                    "rank": "Xếp hạng", "peers": "Số đơn vị cùng cấp", "change": "Thay đổi so với kỳ trước",
                    "previous_points": "Điểm kỳ trước", "computed_at": "Tính lúc", "note": "Ghi chú"},
        "metrics": {
            "si_total": ("sumIf(points, row_kind = 'total')", "Tổng điểm", ",.2f", "Total points (measured indicators)"),
            "si_measurable": ("sumIf(measured_max, row_kind = 'total')", "Điểm đo được", ",.0f",
                              "How many of the 100 points were measurable"),
            "si_rank": ("minIf(rank, row_kind = 'total')", "Xếp hạng cùng cấp", ",d",
                        "Rank among units of the same level (departments, communes)"),
            "si_change": ("sumIf(change, row_kind = 'total')", "Thay đổi so với kỳ trước", "+,.2f",
                          "Change of the total against the previous period"),
            "si_group_points": ("sumIf(points, row_kind = 'indicator') / nullIf(uniqExactIf(unit_code, "
                                "row_kind = 'indicator'), 0)", "Điểm đạt (TB mỗi đơn vị)", ",.2f",
                                "Points earned, average per unit shown"),
            "si_group_measurable": ("sumIf(measured_max, row_kind = 'indicator') / nullIf(uniqExactIf(unit_code, "
                                    "row_kind = 'indicator'), 0)", "Điểm đo được (TB mỗi đơn vị)", ",.2f",
                                    "Measurable points, average per unit shown"),
        },
    },
    "v_index_lost_dossiers": {
        "description": "Hồ sơ làm mất điểm chỉ số (tháng này) / Dossiers behind lost index points, this month",
        "dttm": None,
        "columns": {"dossier_code": S, "unit_code": S, "unit_name": S, "procedure_code": S, "procedure_name": S,
                    "reason": S, "reason_name": S, "indicators": S, "outcome": S, "outcome_name": S,
                    "received_at": T, "deadline": T, "closed_at": T},
        "verbose": {"dossier_code": "Mã hồ sơ", "unit_name": "Đơn vị", "procedure_name": "Thủ tục",
                    "reason_name": "Lý do mất điểm", "indicators": "Chỉ số bị ảnh hưởng", "outcome_name": "Kết quả",
                    "received_at": "Tiếp nhận lúc", "deadline": "Hạn giải quyết", "closed_at": "Kết thúc lúc"},
        "metrics": {"lost_dossiers": ("COUNT(*)", "Hồ sơ làm mất điểm", ",d", "Dossiers behind lost points")},
    },
    "v_ratings_daily": {
        "description": "Đánh giá hài lòng theo ngày / Satisfaction ratings per day",
        "dttm": "day",
        "columns": {"day": D, "unit_code": S, "unit_name": S, "kiosk_id": S, "officer_id": S, "level": B,
                    "level_code": S, "level_name": S, "ratings": N, "satisfied": N},
        "verbose": {"day": "Ngày", "unit_name": "Đơn vị", "kiosk_id": "Kiosk", "officer_id": "Cán bộ",
                    "level_name": "Mức độ", "unit_code": "Mã đơn vị"},
        "metrics": {
            "total_ratings": ("SUM(ratings)", "Lượt đánh giá", ",d", "Ratings"),
            "satisfaction_share": ("SUM(satisfied) / nullIf(SUM(ratings), 0)", "Tỷ lệ hài lòng", ".1%",
                                   "Share satisfied or very satisfied"),
            "dissatisfied": ("sumIf(ratings, level <= 2)", "Không hài lòng", ",d",
                             "Ratings dissatisfied or very dissatisfied"),
        },
    },
    "v_rating_criteria": {
        "description": "Hài lòng theo tiêu chí / Satisfaction per criterion",
        "dttm": "day",
        "columns": {"day": D, "unit_code": S, "criterion": S, "level": B, "ratings": N, "satisfied": N},
        "calculated": {
            "criterion_name": ("transform(criterion, ['overall', 'access', 'procedure', 'officer', 'time', "
                               "'result', 'feedback'], ['Đánh giá chung', 'Tiếp cận dịch vụ', 'Thủ tục hành chính', "
                               "'Công chức giải quyết', 'Thời gian giải quyết', 'Kết quả giải quyết', "
                               "'Tiếp nhận, xử lý phản ánh'], criterion)", S, "Tiêu chí"),
        },
        "verbose": {"day": "Ngày", "criterion": "Mã tiêu chí", "unit_code": "Mã đơn vị"},
        "metrics": {
            "crit_ratings": ("SUM(ratings)", "Lượt đánh giá", ",d", "Ratings"),
            "crit_satisfaction_share": ("SUM(satisfied) / nullIf(SUM(ratings), 0)", "Tỷ lệ hài lòng", ".1%",
                                        "Share satisfied or very satisfied"),
        },
    },
    "v_silent_kiosks": {
        "description": "Kiosk không có đánh giá / Kiosks without recent ratings",
        "dttm": None,
        "columns": {"kiosk_id": S, "unit_code": S, "unit_name": S, "last_rating_at": T, "silent_minutes": "Int64",
                    "is_silent": B},
        "verbose": {"kiosk_id": "Kiosk", "unit_name": "Đơn vị", "last_rating_at": "Đánh giá cuối",
                    "silent_minutes": "Số phút im lặng"},
        "metrics": {
            "silent_kiosks": ("countIf(is_silent = 1)", "Kiosk im lặng", ",d", "Kiosks silent past the threshold"),
            "kiosks": ("COUNT(*)", "Số kiosk", ",d", "Kiosks"),
        },
    },
    "v_dead_letters_by_reason": {
        "description": "Bản ghi bị loại theo quy tắc / Dead letters by rule",
        "dttm": "day",
        "columns": {"day": D, "rule": S, "source_system": S, "kind": S, "n": N, "redriven": N},
        "verbose": {"day": "Ngày", "rule": "Quy tắc", "source_system": "Hệ thống nguồn", "kind": "Loại"},
        "metrics": {
            "dead_letters": ("SUM(n)", "Bản ghi bị loại", ",d", "Dead letters"),
            "total_redriven": ("SUM(redriven)", "Đã xử lý lại", ",d", "Redriven"),
        },
    },
    "dq_results": {
        "description": "Kết quả kiểm tra chất lượng dữ liệu (GX) / Great Expectations results",
        "dttm": "batch_time",
        "columns": {"batch_id": S, "suite": S, "expectation": S, "column": S, "success": B, "success_share": F,
                    "unexpected_count": N, "element_count": N, "batch_time": T},
        "verbose": {"suite": "Bộ kiểm tra", "expectation": "Kỳ vọng", "column": "Cột", "batch_time": "Thời điểm"},
        "metrics": {
            "dq_checks": ("COUNT(*)", "Lượt kiểm tra", ",d", "Expectation runs"),
            "dq_pass_rate": ("avg(toUInt8(success))", "Tỷ lệ đạt", ".1%", "Share of expectation runs that passed"),
            "dq_failed": ("countIf(NOT success)", "Không đạt", ",d", "Failed expectation runs"),
            "dq_unexpected": ("SUM(unexpected_count)", "Giá trị bất thường", ",d", "Unexpected values"),
            "dq_success_share": ("SUM(element_count - unexpected_count) / nullIf(SUM(element_count), 0)",
                                 "Tỷ lệ giá trị hợp lệ", ".2%", "Share of checked values that met the expectation"),
            "dq_last_batch": ("MAX(toDateTime64(toString(batch_time), 3, 'UTC'))", "Lần chạy cuối", None,
                              "Last batch (Vietnam time)"),
        },
    },
    "v_freshness": {
        "description": "Độ tươi và độ trễ tiêu thụ / Freshness and consumer lag (latest snapshot)",
        "dttm": None,
        "columns": {"consumer_group": S, "topic": S, "partition": "Int32", "ts": T, "worker": S,
                    "committed_offset": "Int64", "end_offset": "Int64", "lag": "Int64", "freshness_ms": "Int64",
                    "events_per_s": F, "snapshot_age_s": "Int64"},
        "verbose": {"consumer_group": "Nhóm tiêu thụ", "topic": "Topic", "partition": "Phân vùng",
                    "lag": "Độ trễ (bản ghi)", "worker": "Worker", "freshness_ms": "Độ tươi (ms)",
                    "snapshot_age_s": "Tuổi số đo (giây)"},
        "metrics": {
            "total_lag": ("SUM(lag)", "Độ trễ tiêu thụ", ",d", "Consumer lag, records (sum over partitions)"),
            "freshness_s": ("MAX(freshness_ms) / 1000", "Độ tươi (giây)", ",.1f",
                            "Age of the newest processed event, seconds (worst partition)"),
            "total_events_per_s": ("SUM(events_per_s)", "Sự kiện/giây", ",.0f", "Throughput, events per second"),
            "max_snapshot_age_s": ("MAX(snapshot_age_s)", "Tuổi số đo (giây)", ",d", "Age of the latest snapshot"),
        },
    },
    "pipeline_metrics": {
        "description": "Số đo vận hành theo thời gian / Pipeline metrics over time",
        "dttm": "ts",
        "columns": {"ts": T, "worker": S, "consumer_group": S, "topic": S, "partition": "Int32",
                    "committed_offset": "Int64", "end_offset": "Int64", "lag": "Int64", "freshness_ms": "Int64",
                    "events_per_s": F},
        "verbose": {"ts": "Thời điểm", "consumer_group": "Nhóm tiêu thụ", "topic": "Topic"},
        "metrics": {
            "pm_max_lag": ("MAX(lag)", "Độ trễ lớn nhất", ",d", "Largest partition lag"),
            "pm_freshness_s": ("MAX(freshness_ms) / 1000", "Độ tươi (giây)", ",.1f", "Freshness, seconds"),
        },
    },
    "alerts": {
        "description": "Cảnh báo / Alerts raised by the stream",
        "dttm": "raised_at",
        "columns": {"alert_id": S, "kind": S, "unit_code": S, "kiosk_id": S, "dossier_code": S, "value": F,
                    "threshold": F, "window": S, "message": S, "raised_at": T},
        "calculated": {
            "kind_name": ("transform(kind, ['on_time_below', 'satisfaction_below', 'silent_kiosk', 'silent_unit', "
                          "'overdue_soon', 'overdue'], ['Đúng hạn thấp', 'Hài lòng thấp', 'Kiosk im lặng', "
                          "'Đơn vị im lặng', 'Sắp quá hạn', 'Quá hạn'], kind)", S, "Loại cảnh báo"),
        },
        "verbose": {"raised_at": "Thời điểm", "message": "Nội dung", "unit_code": "Mã đơn vị", "kind": "Mã loại"},
        "metrics": {"alert_count": ("COUNT(*)", "Cảnh báo", ",d", "Alerts")},
    },
}


# Vietnamese convention on every chart: dd/mm/yyyy, 24-hour clock (D3_TIME_FORMAT in
# superset_config.py names the months and days), Vietnam's wall-clock time.
DATE_FMT = "%d/%m/%Y"
DATETIME_FMT = "%d/%m/%Y %H:%M"
# Superset sends timestamps to the browser as UTC instants and formats them in UTC, so a
# DateTime64(3, 'Asia/Ho_Chi_Minh') value showed 7 hours early (14:23 for 21:23). Every such
# column gets a "<name>_local" twin carrying Vietnam's wall-clock time as if it were UTC, which
# the charts display; time-range filters stay on the real column (and its index).
T_LOCAL = "DateTime64(3, 'UTC')"
LOCAL_SUFFIX = "_local"


def wall_clock(col: str) -> str:
    """(dq_last_batch, defined above, spells the same expression out.)"""
    return f"toDateTime64(toString({col}), 3, 'UTC')"


for _spec in DATASETS.values():
    for _c, _typ in _spec["columns"].items():
        if _typ == T:
            _spec.setdefault("calculated", {})[_c + LOCAL_SUFFIX] = (
                wall_clock(_c), T_LOCAL, _spec.get("verbose", {}).get(_c) or _c)


def local(dataset: str, col: str) -> str:
    """The column a chart displays for ``col``: its wall-clock twin if it has one."""
    return col + LOCAL_SUFFIX if DATASETS[dataset]["columns"].get(col) == T else col


def dataset_yaml(name: str, spec: dict) -> dict:
    cols = []
    for c, typ in spec["columns"].items():
        cols.append({
            "column_name": c, "verbose_name": spec.get("verbose", {}).get(c), "is_dttm": c == spec["dttm"]
            or typ in (D, T), "is_active": True, "type": typ, "advanced_data_type": None, "groupby": True,
            "filterable": True, "expression": None, "description": None, "python_date_format": None, "extra": None,
        })
    for c, (expr, typ, verbose) in spec.get("calculated", {}).items():
        cols.append({"column_name": c, "verbose_name": verbose, "is_dttm": typ == T_LOCAL, "is_active": True,
                     "type": typ,
                     "advanced_data_type": None, "groupby": True, "filterable": True, "expression": expr,
                     "description": None, "python_date_format": None, "extra": None})
    metrics = []
    # ClickHouse resolves a name to the SELECT alias first: a metric named like a column
    # (SUM(ratings) AS ratings) breaks every other metric that aggregates that column.
    clash = set(spec["metrics"]) & (set(spec["columns"]) | set(spec.get("calculated", {})))
    assert not clash, (name, clash)
    for m, (expr, verbose, fmt, desc) in spec["metrics"].items():
        metrics.append({"metric_name": m, "verbose_name": verbose, "metric_type": None, "expression": expr,
                        "description": desc, "d3format": fmt, "currency": None, "extra": None,
                        "warning_text": None})
    return {
        "table_name": name, "main_dttm_col": spec["dttm"], "description": spec["description"],
        "default_endpoint": None, "offset": 0, "cache_timeout": None, "catalog": None, "schema": SCHEMA,
        "sql": None, "params": None, "template_params": None, "filter_select_enabled": True,
        "fetch_values_predicate": None, "extra": None, "normalize_columns": False,
        "always_filter_main_dttm": False, "uuid": uid("dataset", name), "metrics": metrics, "columns": cols,
        "version": "1.0.0", "database_uuid": uid("database", DB_NAME),
    }


# ------------------------------------------------------------------------------------
# charts
# ------------------------------------------------------------------------------------
def time_filter(col: str) -> list[dict]:
    return [{"clause": "WHERE", "comparator": "No filter", "expressionType": "SIMPLE",
             "operator": "TEMPORAL_RANGE", "subject": col}]


def sql_filter(expr: str) -> dict:
    return {"clause": "WHERE", "expressionType": "SQL", "sqlExpression": expr}


class Chart:
    def __init__(self, key: str, title: str, en: str, dataset: str, viz: str, params: dict,
                 width: int = 4, height: int = 50, follows_time: bool = True):
        self.key, self.title, self.en, self.dataset, self.viz = key, title, en, dataset, viz
        self.params, self.width, self.height, self.follows_time = params, width, height, follows_time
        self.uuid = uid("chart", key)

    def yaml(self) -> dict:
        params = {"viz_type": self.viz, "extra_form_data": {}, "annotation_layers": [], **self.params}
        return {"slice_name": self.title, "description": self.en, "certified_by": None,
                "certification_details": None, "viz_type": self.viz, "params": params, "query_context": None,
                "cache_timeout": None, "uuid": self.uuid, "version": "1.0.0",
                "dataset_uuid": uid("dataset", self.dataset)}


# The line under a big number, read from across the room: Vietnamese like the title (the English
# stays in the chart's description).
SUBHEADERS = {
    "ov_received_today": "Hồ sơ tiếp nhận hôm nay",
    "ov_received": "Hồ sơ tiếp nhận trong kỳ",
    "ov_resolved": "Hồ sơ đã giải quyết trong kỳ",
    "ov_on_time": "Giải quyết sớm hạn hoặc đúng hạn",
    "ov_overdue": "Hồ sơ đang quá hạn hẹn trả",
    "ov_in_progress": "Hồ sơ đang giải quyết",
    "ov_online": "Tỷ lệ nộp trực tuyến",
    "ov_digitised": "Tỷ lệ hồ sơ số hóa",
    "ov_satisfaction": "Tỷ lệ hài lòng",
    "sat_share": "Hài lòng hoặc rất hài lòng",
    "sat_ratings": "Lượt đánh giá trong kỳ",
    "sat_unhappy": "Không hài lòng hoặc rất không hài lòng",
    "sat_silent": "Kiosk quá ngưỡng không có đánh giá",
    "ops_dead": "Bản ghi bị loại trong kỳ",
    "ops_dq": "Lượt kiểm tra GX đạt yêu cầu",
    "ops_lag": "Bản ghi đang chờ xử lý",
    "ops_fresh": "Tuổi sự kiện mới nhất đã xử lý",
}


def big(key, title, en, dataset, metric, fmt, width=3, follows_time=True, filters=None, height=34):
    ds = DATASETS[dataset]
    adhoc = (time_filter(ds["dttm"]) if follows_time and ds["dttm"] else []) + (filters or [])
    return Chart(key, title, en, dataset, "big_number_total", {
        "metric": metric, "adhoc_filters": adhoc, "header_font_size": 0.5, "subheader_font_size": 0.15,
        "subheader": SUBHEADERS.get(key, en), "y_axis_format": fmt, "time_format": DATE_FMT,
        "force_timestamp_formatting": False,
    }, width=width, height=height, follows_time=follows_time)


def line(key, title, en, dataset, metrics, fmt, width=6, grain="P1D", groupby=None, bar=False, stack=False,
         height=50, colors=None):
    ds = DATASETS[dataset]
    p = {
        "x_axis": local(dataset, ds["dttm"]), "time_grain_sqla": grain, "metrics": metrics, "groupby": groupby or [],
        "adhoc_filters": time_filter(ds["dttm"]), "row_limit": 10000, "rich_tooltip": True,
        "show_legend": True, "legendOrientation": "top", "legendType": "scroll", "y_axis_format": fmt,
        "x_axis_time_format": "%d/%m" if grain in ("P1D", "P1W", "P1M") else "%H:%M",
        "tooltipTimeFormat": DATE_FMT if grain in ("P1D", "P1W", "P1M") else DATETIME_FMT, "truncateXAxis": True,
        "y_axis_bounds": [None, None], "color_scheme": "supersetColors", "markerEnabled": not bar,
        "markerSize": 4, "seriesType": "line", "opacity": 0.25, "zoomable": False, "order_desc": True,
        "truncate_metric": True, "show_empty_columns": True, "comparison_type": "values",
        "x_axis_title_margin": 15, "y_axis_title_margin": 15, "y_axis_title_position": "Left",
        "sort_series_type": "sum", "only_total": True, "orientation": "vertical",
    }
    if stack:
        p["stack"] = "Stack"
    if groupby:
        p["series_limit"] = 10
    return Chart(key, title, en, dataset, "echarts_timeseries_bar" if bar else "echarts_timeseries_line", p,
                 width=width, height=height)


def hbar(key, title, en, dataset, metrics, dim, fmt, filters=None, width=6, height=60, follows_time=False,
         sort_metric=None, limit=None):
    ds = DATASETS[dataset]
    adhoc = (time_filter(ds["dttm"]) if follows_time and ds["dttm"] else []) + (filters or [])
    p = {
        "x_axis": dim, "metrics": metrics, "groupby": [], "adhoc_filters": adhoc, "orientation": "horizontal",
        "row_limit": limit or 1000, "show_legend": len(metrics) > 1, "legendOrientation": "top",
        "legendType": "scroll", "y_axis_format": fmt, "rich_tooltip": True, "show_value": True,
        "color_scheme": "supersetColors", "x_axis_sort": sort_metric or metrics[0], "x_axis_sort_asc": True,
        "x_axis_sort_series": "name", "x_axis_sort_series_ascending": True, "truncateXAxis": True,
        "y_axis_bounds": [0, None], "only_total": True, "order_desc": True, "truncate_metric": True,
        "comparison_type": "values", "x_axis_title_margin": 15, "y_axis_title_margin": 15,
        "y_axis_title_position": "Left", "sort_series_type": "sum", "show_empty_columns": True,
    }
    return Chart(key, title, en, dataset, "echarts_timeseries_bar", p, width=width, height=height,
                 follows_time=follows_time)


def pie(key, title, en, dataset, metric, dim, width=4, height=50, fmt=",d", follows_time=True, filters=None):
    ds = DATASETS[dataset]
    adhoc = (time_filter(ds["dttm"]) if follows_time and ds["dttm"] else []) + (filters or [])
    return Chart(key, title, en, dataset, "pie", {
        "groupby": [dim], "metric": metric, "adhoc_filters": adhoc, "row_limit": 100, "donut": True,
        "innerRadius": 45, "outerRadius": 70, "show_labels": True, "labels_outside": False,
        "label_type": "percent", "show_labels_threshold": 3, "show_legend": True, "legendOrientation": "bottom",
        "legendType": "scroll", "number_format": fmt, "sort_by_metric": True, "color_scheme": "supersetColors",
        "date_format": DATE_FMT, "show_total": True,
    }, width=width, height=height, follows_time=follows_time)


def table(key, title, en, dataset, groupby, metrics, width=6, height=60, order_by=None, asc=False,
          follows_time=True, filters=None, formats=None, page=0, limit=1000, bars=True):
    ds = DATASETS[dataset]
    adhoc = (time_filter(ds["dttm"]) if follows_time and ds["dttm"] else []) + (filters or [])
    cfg = {m: {"d3NumberFormat": f} for m, f in (formats or {}).items()}
    return Chart(key, title, en, dataset, "table", {
        "query_mode": "aggregate", "groupby": groupby, "metrics": metrics, "all_columns": [],
        "percent_metrics": [], "adhoc_filters": adhoc, "timeseries_limit_metric": order_by or metrics[0],
        "order_desc": not asc, "row_limit": limit, "server_page_length": 10, "page_length": page,
        "show_cell_bars": bars, "color_pn": False, "allow_rearrange_columns": False, "include_search": False,
        "table_timestamp_format": DATETIME_FMT, "column_config": cfg, "conditional_formatting": [],
        "temporal_columns_lookup": {},
    }, width=width, height=height, follows_time=follows_time)


def raw_table(key, title, en, dataset, columns, order_col, desc=True, width=6, height=60, follows_time=False,
              filters=None, limit=500, formats=None):
    ds = DATASETS[dataset]
    adhoc = (time_filter(ds["dttm"]) if follows_time and ds["dttm"] else []) + (filters or [])
    cfg = {m: {"d3NumberFormat": f} for m, f in (formats or {}).items()}
    # Timestamps in Vietnam time. Raw mode does not resolve a calculated column by name (it sent
    # "raised_at_local" to ClickHouse as is), so the wall-clock expression goes in as an ad-hoc
    # column labelled with the column's Vietnamese name.
    columns = [{"expressionType": "SQL", "sqlExpression": wall_clock(c), "label": ds["verbose"].get(c, c)}
               if ds["columns"].get(c) == T else c for c in columns]
    return Chart(key, title, en, dataset, "table", {
        "query_mode": "raw", "all_columns": columns, "groupby": [], "metrics": [], "percent_metrics": [],
        "order_by_cols": [f'["{order_col}", {"false" if desc else "true"}]'], "adhoc_filters": adhoc,
        "row_limit": limit, "server_page_length": 10, "page_length": 0, "show_cell_bars": True,
        "include_search": False, "table_timestamp_format": DATETIME_FMT, "column_config": cfg,
        "conditional_formatting": [], "temporal_columns_lookup": {c: True for c in columns
                                                                   if isinstance(c, str)
                                                                   and DATASETS[dataset]["columns"].get(c) == D},
    }, width=width, height=height, follows_time=follows_time)


def pivot(key, title, en, dataset, rows, metrics, width=8, height=70):
    ds = DATASETS[dataset]
    return Chart(key, title, en, dataset, "pivot_table_v2", {
        "groupbyRows": rows, "groupbyColumns": [], "metrics": metrics, "metricsLayout": "COLUMNS",
        "adhoc_filters": time_filter(ds["dttm"]), "row_limit": 10000, "aggregateFunction": "Sum",
        "rowTotals": False, "colTotals": True, "rowSubTotals": True, "colSubTotals": False,
        "transposePivot": False, "combineMetric": False, "valueFormat": ",d", "date_format": DATE_FMT,
        "rowOrder": "value_z_to_a", "colOrder": "key_a_to_z", "order_desc": True, "series_limit": 0,
        "metricsLayout_": "COLUMNS", "time_grain_sqla": "P1D", "conditional_formatting": [],
        "currency_format": None,
    }, width=width, height=height)


# ------------------------------------------------------------------------------------
# boards
# ------------------------------------------------------------------------------------
PCT = ".1%"
DEPT = sql_filter("unit_kind = 'department'")
COMMUNE = sql_filter("unit_kind = 'commune'")

OVERVIEW = {
    "slug": "tong-quan-tinh",
    "title": "Tổng quan tỉnh — Province overview",
    "description": "Tiếp nhận, giải quyết, đúng hạn, trực tuyến, số hóa, hài lòng; xếp hạng sở, ngành và xã, phường.",
    "rows": [
        [
            big("ov_received_today", "Tiếp nhận hôm nay", "Received today", "v_dossier_daily", "received_today",
                ",d", follows_time=False),
            big("ov_received", "Tiếp nhận trong kỳ", "Received in the period", "v_dossier_daily", "total_received", ",d"),
            big("ov_resolved", "Đã giải quyết trong kỳ", "Resolved in the period", "v_dossier_daily", "total_resolved",
                ",d"),
            big("ov_on_time", "Tỷ lệ đúng hạn", "Resolved early or on time", "v_dossier_daily", "on_time_share",
                PCT),
        ],
        [
            big("ov_overdue", "Quá hạn hiện tại", "Open past the effective deadline, now", "v_overdue_now",
                "overdue_count", ",d", follows_time=False, width=3),
            big("ov_in_progress", "Đang xử lý", "Open dossiers, now", "v_dossier_daily", "total_in_progress", ",d",
                follows_time=False, width=3),
            big("ov_online", "Trực tuyến", "Share filed online", "v_dossier_daily", "online_share", PCT, width=2),
            big("ov_digitised", "Số hóa", "Share digitised", "v_dossier_daily", "digitised_share", PCT, width=2),
            big("ov_satisfaction", "Hài lòng", "Share satisfied", "v_ratings_daily",
                "satisfaction_share", PCT, width=2),
        ],
        [
            line("ov_trend", "Tiếp nhận và giải quyết theo ngày", "Received and resolved per day",
                 "v_dossier_daily", ["total_received", "total_resolved"], ",d", width=7),
            line("ov_outcomes", "Kết quả giải quyết theo ngày", "Resolved early / on time / late per day",
                 "v_dossier_daily", ["total_early", "total_on_time", "total_late"], ",d", width=5,
                 bar=True, stack=True),
        ],
        [
            hbar("ov_rank_dept", "Xếp hạng sở, ngành (tháng này)", "Departments: on-time and satisfaction share, "
                 "this month", "v_unit_scoreboard", ["sb_on_time_share", "sb_satisfaction_share"], "unit_name",
                 ".0%", filters=[DEPT], width=5, height=70),
            table("ov_rank_commune", "Xã, phường: đúng hạn thấp nhất trước (tháng này)",
                  "Communes ranked by on-time share, lowest first, this month", "v_unit_scoreboard", ["unit_name"],
                  ["sb_on_time_share", "sb_satisfaction_share", "sb_received", "sb_resolved", "sb_overdue_now",
                   "sb_rank_on_time"], width=7, height=70, order_by="sb_on_time_share", asc=True, follows_time=False,
                  filters=[COMMUNE], formats={"sb_on_time_share": PCT, "sb_satisfaction_share": PCT}),
        ],
        [
            pivot("ov_drill", "Chi tiết: đơn vị → lĩnh vực", "Drill-down: unit, then procedure field",
                  "v_dossier_daily", ["unit_name", "field_name"],
                  ["total_received", "total_resolved", "total_late", "total_in_progress"], width=8, height=80),
            pie("ov_channel", "Tiếp nhận theo kênh", "Received by channel", "v_dossier_daily", "total_received",
                "channel_name", width=4, height=80),
        ],
        [
            raw_table("ov_overdue_list", "Hồ sơ đang quá hạn", "Open dossiers past their promised date",
                      "v_overdue_now", ["unit_name", "procedure_name", "dossier_code", "promised_at", "deadline",
                                        "overdue_working_days"], "overdue_working_days", width=7, height=60),
            raw_table("ov_alerts", "Cảnh báo gần đây", "Recent alerts", "alerts",
                      ["raised_at", "message"], "raised_at", width=5, height=60, follows_time=True,
                      limit=200),
        ],
        [
            # what "late" and "overdue" on this board were computed with (docs/RULES.md)
            raw_table("ov_rules", "Cách tính hạn đang áp dụng", "The supplement reading the judgements used, "
                      "last day (Settings.supplement_reading)", "v_rules_in_force",
                      ["reading_name", "judgements", "last_judged_at"], "judgements", width=12, height=25),
        ],
    ],
    "filters": [
        ("time", "Kỳ báo cáo", None, None),
        ("select", "Đơn vị", "v_dossier_daily", "unit_name"),
        ("select", "Lĩnh vực", "v_dossier_daily", "field_name"),
        ("select", "Kênh", "v_dossier_daily", "channel_name"),
    ],
    "label_colors": {**OUTCOME_COLORS, **CHANNEL_COLORS, "sb_on_time_share": "#2893b3",
                     "sb_satisfaction_share": "#5ac189"},
}

SATISFACTION = {
    "slug": "muc-do-hai-long",
    "title": "Mức độ hài lòng — Satisfaction",
    "description": "Đánh giá tại quầy và kiosk: mức độ, tiêu chí, đơn vị, cán bộ, kiosk; kiosk không hoạt động.",
    "rows": [
        [
            big("sat_share", "Tỷ lệ hài lòng", "Satisfied or very satisfied", "v_ratings_daily",
                "satisfaction_share", PCT),
            big("sat_ratings", "Lượt đánh giá", "Ratings", "v_ratings_daily", "total_ratings", ",d"),
            big("sat_unhappy", "Không hài lòng", "Dissatisfied or very dissatisfied", "v_ratings_daily",
                "dissatisfied", ",d"),
            big("sat_silent", "Kiosk im lặng", "Kiosks without ratings past the threshold", "v_silent_kiosks",
                "silent_kiosks", ",d", follows_time=False),
        ],
        [
            pie("sat_levels", "Phân bố mức độ hài lòng", "Rating levels", "v_ratings_daily", "total_ratings",
                "level_name", width=4, height=60),
            line("sat_trend", "Tỷ lệ hài lòng theo ngày", "Satisfaction share per day", "v_ratings_daily",
                 ["satisfaction_share"], ".0%", width=8, height=60),
        ],
        [
            hbar("sat_criteria", "Hài lòng theo tiêu chí", "Satisfaction share per criterion",
                 "v_rating_criteria", ["crit_satisfaction_share"], "criterion_name", ".0%", width=6, height=60,
                 follows_time=True),
            table("sat_units", "Theo đơn vị", "Per unit", "v_ratings_daily", ["unit_name"],
                  ["satisfaction_share", "total_ratings", "dissatisfied"], width=6, height=60,
                  order_by="satisfaction_share", asc=True, formats={"satisfaction_share": PCT}),
        ],
        [
            table("sat_officers", "Theo cán bộ", "Per officer", "v_ratings_daily", ["officer_id", "unit_name"],
                  ["satisfaction_share", "total_ratings", "dissatisfied"], width=6, height=60,
                  order_by="satisfaction_share", asc=True, formats={"satisfaction_share": PCT},
                  filters=[sql_filter("officer_id != ''")]),
            table("sat_kiosks", "Theo kiosk", "Per kiosk", "v_ratings_daily", ["kiosk_id", "unit_name"],
                  ["satisfaction_share", "total_ratings", "dissatisfied"], width=6, height=60,
                  order_by="satisfaction_share", asc=True, formats={"satisfaction_share": PCT}),
        ],
        [
            raw_table("sat_silent_list", "Kiosk không có đánh giá", "Kiosks silent past the threshold",
                      "v_silent_kiosks", ["kiosk_id", "unit_name", "last_rating_at", "silent_minutes"],
                      "silent_minutes", width=12, height=50, filters=[sql_filter("is_silent = 1")]),
        ],
    ],
    "filters": [
        ("time", "Kỳ báo cáo", None, None),
        ("select", "Đơn vị", "v_ratings_daily", "unit_name"),
    ],
    "label_colors": {**LEVEL_COLORS, "satisfaction_share": "#1a7f4b", "crit_satisfaction_share": "#5ac189"},
}

OPERATIONS = {
    "slug": "chat-luong-du-lieu",
    "title": "Chất lượng dữ liệu và vận hành — Data quality & operations",
    "description": "Bản ghi bị loại, kết quả kiểm tra Great Expectations, độ tươi dữ liệu và độ trễ tiêu thụ.",
    "rows": [
        [
            big("ops_dead", "Bản ghi bị loại", "Dead letters in the period", "v_dead_letters_by_reason",
                "dead_letters", ",d"),
            big("ops_dq", "Tỷ lệ kiểm tra đạt", "Great Expectations runs passed", "dq_results", "dq_pass_rate",
                PCT),
            big("ops_lag", "Độ trễ tiêu thụ", "Consumer lag now, records", "v_freshness", "total_lag", ",d",
                follows_time=False),
            big("ops_fresh", "Độ tươi dữ liệu (giây)", "Newest processed event age, seconds", "v_freshness",
                "freshness_s", ",.1f", follows_time=False),
        ],
        [
            line("ops_dead_trend", "Bản ghi bị loại theo quy tắc", "Dead letters per day by rule",
                 "v_dead_letters_by_reason", ["dead_letters"], ",d", groupby=["rule"], bar=True, stack=True,
                 width=8, height=60),
            pie("ops_dead_source", "Theo hệ thống nguồn", "Dead letters by source system",
                "v_dead_letters_by_reason", "dead_letters", "source_system", width=4, height=60),
        ],
        [
            table("ops_dq_table", "Kết quả kiểm tra dữ liệu (GX)", "Great Expectations results by expectation",
                  "dq_results", ["suite", "expectation", "column"],
                  ["dq_pass_rate", "dq_checks", "dq_unexpected", "dq_last_batch"], width=7, height=60,
                  order_by="dq_pass_rate", asc=True, formats={"dq_pass_rate": PCT}),
            raw_table("ops_fresh_table", "Độ trễ theo phân vùng", "Lag and freshness per partition, latest",
                      "v_freshness", ["consumer_group", "topic", "partition", "lag", "freshness_ms",
                                      "snapshot_age_s"], "lag", width=5, height=60),
        ],
        [
            line("ops_lag_trend", "Độ trễ tiêu thụ theo thời gian", "Consumer lag over time",
                 "pipeline_metrics", ["pm_max_lag"], ",d", grain="PT1M", groupby=["consumer_group"], width=6,
                 height=50),
            line("ops_fresh_trend", "Độ tươi dữ liệu theo thời gian", "Freshness over time, seconds",
                 "pipeline_metrics", ["pm_freshness_s"], ",.1f", grain="PT1M", groupby=["consumer_group"],
                 width=6, height=50),
        ],
    ],
    "filters": [("time", "Kỳ báo cáo", None, None)],
    "label_colors": {},
}

SI_TOTAL = sql_filter("row_kind = 'total'")
SI_INDICATOR = sql_filter("row_kind = 'indicator'")

SERVICE_INDEX = {
    "slug": "bo-chi-so-phuc-vu",
    "title": "Bộ chỉ số phục vụ người dân, doanh nghiệp (QĐ 766)",
    "description": "Điểm theo Bộ chỉ số 766 của từng đơn vị, do worker tính và lưu (streams.service_index): "
                   "tổng điểm, điểm đo được, xếp hạng cùng cấp, điểm từng nhóm và chỉ số, hồ sơ làm mất điểm.",
    "rows": [
        [
            big("si_province_total", "Toàn tỉnh: tổng điểm", "Province roll-up: total points", "v_service_index",
                "si_total", ",.2f", width=3, follows_time=False, filters=[sql_filter("unit_kind = 'province'")]),
            big("si_province_measurable", "Toàn tỉnh: điểm đo được / 100", "Province roll-up: measurable points",
                "v_service_index", "si_measurable", ",.0f", width=3, follows_time=False,
                filters=[sql_filter("unit_kind = 'province'")]),
            hbar("si_groups", "Điểm theo nhóm chỉ số", "Points per group of indicators (average per unit shown)",
                 "v_service_index", ["si_group_points", "si_group_measurable"], "group_name", ",.1f",
                 filters=[SI_INDICATOR, sql_filter("unit_kind != 'province'")], width=6, height=34),
        ],
        [
            table("si_rank_dept", "Sở, ngành: tổng điểm và xếp hạng", "Departments: total, measurable points, "
                  "rank among departments, change", "v_service_index", ["unit_name"],
                  ["si_total", "si_measurable", "si_rank", "si_change"], width=6, height=70, order_by="si_total",
                  follows_time=False, filters=[SI_TOTAL, DEPT], bars=False),
            table("si_rank_commune", "Xã, phường: tổng điểm và xếp hạng", "Communes: total, measurable points, "
                  "rank among communes, change", "v_service_index", ["unit_name"],
                  ["si_total", "si_measurable", "si_rank", "si_change"], width=6, height=70, order_by="si_total",
                  follows_time=False, filters=[SI_TOTAL, COMMUNE], bars=False),
        ],
        [
            raw_table("si_indicators", "Chi tiết từng chỉ số", "Each indicator: numerator, denominator, ratio, "
                      "points (Chưa đo = not measured)", "v_service_index",
                      ["unit_name", "group_name", "indicator_name", "numerator", "denominator", "ratio",
                       "points_text", "max_points", "measured_text", "change"], "unit_name", desc=False,
                      width=12, height=80, filters=[SI_INDICATOR], limit=5000,
                      formats={"ratio": PCT, "change": "+,.2f"}),
        ],
        [
            raw_table("si_lost", "Hồ sơ làm mất điểm (tháng này)", "Dossiers behind lost points this month: "
                      "late, overdue, rated dissatisfied", "v_index_lost_dossiers",
                      ["unit_name", "procedure_name", "dossier_code", "reason_name", "outcome_name", "deadline",
                       "closed_at"], "deadline", width=12, height=60),
        ],
    ],
    "filters": [
        # exactly one stored period at a time, required, by default this month to date (the
        # view names the newest month to date "Tháng này (đến nay)": a fixed default value,
        # because "first item" defaults were not applied in Superset 4). A kind filter with an
        # optional period let the charts sum every stored month of the kind (totals of 70+).
        ("select", "Kỳ đánh giá", "v_service_index", "period_name",
         {"multiSelect": False, "enableEmptyFilter": True, "default": "Tháng này (đến nay)"}),
        ("select", "Đơn vị", "v_service_index", "unit_name"),
    ],
    "label_colors": {"si_group_points": "#1a7f4b", "si_group_measurable": "#b2b2b2"},
}

BOARDS = [OVERVIEW, SATISFACTION, OPERATIONS, SERVICE_INDEX]


def dashboard_yaml(board: dict, first_id: int) -> tuple[dict, list[Chart]]:
    charts: list[Chart] = []
    position: dict = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": board["title"]}},
    }
    ids: dict[str, int] = {}
    next_id = first_id
    for r, row in enumerate(board["rows"]):
        row_id = f"ROW-{board['slug']}-{r}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {"type": "ROW", "id": row_id, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
                            "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        for ch in row:
            cid = f"CHART-{ch.key}"
            ids[ch.key] = next_id
            position[row_id]["children"].append(cid)
            position[cid] = {"type": "CHART", "id": cid, "children": [], "parents": ["ROOT_ID", "GRID_ID", row_id],
                             "meta": {"chartId": next_id, "width": ch.width, "height": ch.height,
                                      "uuid": ch.uuid, "sliceName": ch.title}}
            next_id += 1
            charts.append(ch)
        assert sum(c.width for c in row) <= 12, (board["slug"], r)

    filters = []
    for kind, name, dataset, column, *options in board["filters"]:
        fid = "NATIVE_FILTER-" + uid("filter", f"{board['slug']}:{name}")[:12]
        if kind == "time":
            excluded = [ids[c.key] for c in charts if not c.follows_time or not DATASETS[c.dataset]["dttm"]]
            f = {"filterType": "filter_time", "targets": [{}],
                 "defaultDataMask": {"extraFormData": {"time_range": "Current month"},
                                     "filterState": {"value": "Current month"}, "ownState": {}},
                 "controlValues": {"enableEmptyFilter": False},
                 "description": "Mặc định: tháng hiện tại / Default: current month"}
        else:
            excluded = [ids[c.key] for c in charts if column not in DATASETS[c.dataset]["columns"]
                        and column not in DATASETS[c.dataset].get("calculated", {})]
            f = {"filterType": "filter_select",
                 "targets": [{"column": {"name": column}, "datasetUuid": uid("dataset", dataset)}],
                 "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
                 "controlValues": {"enableEmptyFilter": False, "defaultToFirstItem": False, "multiSelect": True,
                                   "searchAllOptions": False, "inverseSelection": False,
                                   **{k: v for k, v in (options[0] if options else {}).items() if k != "default"}},
                 "description": ""}
        default = (options[0] if options else {}).get("default")
        if kind != "time" and default is not None:
            f["defaultDataMask"] = {"extraFormData": {"filters": [{"col": column, "op": "IN", "val": [default]}]},
                                    "filterState": {"value": [default], "label": default}, "ownState": {}}
        f.update({"id": fid, "name": name, "type": "NATIVE_FILTER", "cascadeParentIds": [],
                  "scope": {"rootPath": ["ROOT_ID"], "excluded": excluded}})
        filters.append(f)

    metadata = {
        "native_filter_configuration": filters,
        "chart_configuration": {}, "global_chart_configuration": {"scope": {"rootPath": ["ROOT_ID"],
                                                                          "excluded": []}},
        "color_scheme": "supersetColors", "label_colors": board["label_colors"], "shared_label_colors": [],
        "map_label_colors": {}, "color_scheme_domain": [], "cross_filters_enabled": True,
        "refresh_frequency": 60, "timed_refresh_immune_slices": [], "expanded_slices": {},
        "default_filters": "{}",
    }
    return ({"dashboard_title": board["title"], "description": board["description"], "css": CSS,
             "slug": board["slug"], "certified_by": None, "certification_details": None, "published": True,
             "uuid": uid("dashboard", board["slug"]), "position": position, "metadata": metadata,
             "version": "1.0.0"}, charts)


CSS = """
/* Wall-display tweaks: tighter header, larger big numbers. */
.dashboard-component-chart-holder { border-radius: 8px; }
.header-with-actions .editable-title { font-weight: 600; }
"""


def _fname(text: str) -> str:
    return "".join(ch if ch.isalnum() and ch.isascii() else "_" for ch in text).strip("_")


def write(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    for sub in ("databases", "datasets/" + _fname(DB_NAME), "charts", "dashboards"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    def dump(path: Path, doc: dict) -> None:
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120), encoding="utf-8")

    dump(out / "metadata.yaml", {"version": "1.0.0", "type": "assets",
                                 "timestamp": "2026-11-23T00:00:00.000000+00:00"})
    dump(out / "databases" / f"{_fname(DB_NAME)}.yaml", {
        "database_name": DB_NAME,
        # Replaced at import time from CLICKHOUSE_URL (manage.py import); password passed separately.
        "sqlalchemy_uri": "clickhousedb://default:XXXXXXXXXX@127.0.0.1:8123/motcua",
        "cache_timeout": None, "expose_in_sqllab": True, "allow_run_async": False, "allow_ctas": False,
        "allow_cvas": False, "allow_dml": False, "allow_file_upload": False,
        "extra": {"allows_virtual_table_explore": True, "metadata_params": {}, "engine_params": {},
                  "schemas_allowed_for_file_upload": []},
        "impersonate_user": False, "uuid": uid("database", DB_NAME), "version": "1.0.0"})
    for name, spec in DATASETS.items():
        dump(out / "datasets" / _fname(DB_NAME) / f"{name}.yaml", dataset_yaml(name, spec))
    first_id = 1
    seen: set[str] = set()
    for board in BOARDS:
        dash, charts = dashboard_yaml(board, first_id)
        first_id += 100
        dump(out / "dashboards" / f"{board['slug']}.yaml", dash)
        for ch in charts:
            assert ch.key not in seen, ch.key
            seen.add(ch.key)
            dump(out / "charts" / f"{ch.key}.yaml", ch.yaml())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--check", action="store_true", help="fail if assets/ differs from the generated bundle")
    args = p.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            write(Path(tmp) / "assets")
            a = {f.relative_to(Path(tmp) / "assets"): f.read_bytes() for f in (Path(tmp) / "assets").rglob("*.yaml")}
            b = {f.relative_to(OUT): f.read_bytes() for f in OUT.rglob("*.yaml")}
            if a != b:
                sys.exit("deploy/superset/assets is stale: run deploy/superset/build_assets.py")
        print("assets up to date")
        return
    write(OUT)
    print(f"wrote {sum(1 for _ in OUT.rglob('*.yaml'))} files to {OUT}")


if __name__ == "__main__":
    main()

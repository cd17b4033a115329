-- The national service index (Decision 766), computed once by the leader worker
-- (streams.service_index, with rules.service_index's scoring: the same functions as the
-- batch `pulse index`) and stored, so boards read it instead of re-deriving it in SQL.
-- One row per (period, unit, indicator); indicator '_total' is the unit's total (points,
-- measurable points, rank among peers of its unit_kind, change against the previous
-- period); the province roll-up has unit_kind 'province'. A recomputation writes the same
-- keys again with a later computed_at (ReplacingMergeTree(computed_at)): readers use FINAL.
-- Sharded by unit so a key's versions meet on one shard.

CREATE TABLE IF NOT EXISTS {{table service_index | cityHash64(unit_code)}} (
    period_kind               LowCardinality(String),   -- month, quarter, year, mtd
    period                    String,                   -- 2026-11, 2026-Q4, 2026, 2026-12-MTD
    unit_code                 LowCardinality(String),
    indicator                 LowCardinality(String),   -- indicator code of the configuration, or '_total'
    period_start              DateTime64(3, 'Asia/Ho_Chi_Minh'),
    period_end                DateTime64(3, 'Asia/Ho_Chi_Minh'),  -- exclusive; as_of for a period not over
    unit_kind                 LowCardinality(String),
    group_code                LowCardinality(String),
    group_name                String,
    name_vi                   String,
    numerator                 Nullable(Float64),
    denominator               Nullable(Float64),
    ratio                     Nullable(Float64),
    points                    Nullable(Float64),        -- NULL: not measured (never 0, never full marks)
    max_points                Float64,
    measured                  Bool,
    source                    LowCardinality(String),   -- live, supplied, '' (not measured)
    note                      String,
    measured_max              Float64,                  -- of max_points, how many were measurable
    rank                      Nullable(UInt32),         -- '_total' rows: among units of the same unit_kind
    peers                     Nullable(UInt32),
    previous_points           Nullable(Float64),
    change                    Nullable(Float64),
    counts                    Map(LowCardinality(String), Float64),   -- '_total' rows: the counts scored
    config_version            LowCardinality(String),
    computed_at               DateTime64(3, 'Asia/Ho_Chi_Minh')
) ENGINE = {{engine ReplacingMergeTree(computed_at)}}
ORDER BY (period_kind, period, unit_code, indicator);

-- Supplied indicator values (contract schemas/supplied_indicators.py), loaded by
-- `pulse index import-supplied FILE`; a reload of the same key replaces it (loaded_at).
CREATE TABLE IF NOT EXISTS {{table service_index_supplied | cityHash64(unit_code)}} (
    unit_code                 LowCardinality(String),
    period                    String,                   -- upper case: 2026-11, 2026-Q4, 2026
    indicator                 LowCardinality(String),
    numerator                 Nullable(Float64),
    denominator               Nullable(Float64),
    ratio                     Nullable(Float64),
    source                    String,
    note                      Nullable(String),
    config_version            LowCardinality(String),
    loaded_at                 DateTime64(3, 'Asia/Ho_Chi_Minh')
) ENGINE = {{engine ReplacingMergeTree(loaded_at)}}
ORDER BY (period, unit_code, indicator);

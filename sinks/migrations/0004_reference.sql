-- Reference data (Vietnamese names for boards), loaded by sinks.reference from
-- schemas/reference. Small: a full copy on every node. ReplacingMergeTree(version,
-- is_deleted): a reload writes only changed rows (higher version) and tombstones for
-- removed codes; readers use FINAL.

CREATE TABLE IF NOT EXISTS {{global_table ref_units}} (
    unit_code                 String,
    unit_name                 String,
    unit_kind                 LowCardinality(String),
    parent_code               String,
    version                   UInt64,
    is_deleted                UInt8
) ENGINE = {{engine ReplacingMergeTree(version, is_deleted)}}
ORDER BY unit_code;

CREATE TABLE IF NOT EXISTS {{global_table ref_procedures}} (
    procedure_code            String,
    procedure_name            String,
    field_code                LowCardinality(String),
    legal_working_days        Nullable(Float32),
    version                   UInt64,
    is_deleted                UInt8
) ENGINE = {{engine ReplacingMergeTree(version, is_deleted)}}
ORDER BY procedure_code;

CREATE TABLE IF NOT EXISTS {{global_table ref_fields}} (
    field_code                String,
    field_name                String,
    version                   UInt64,
    is_deleted                UInt8
) ENGINE = {{engine ReplacingMergeTree(version, is_deleted)}}
ORDER BY field_code;

-- Working-day calendar (weekends, public holidays, swapped days). working_index is the
-- running count of working days, so working days between two dates is a difference.
CREATE TABLE IF NOT EXISTS {{global_table ref_calendar}} (
    day                       Date,
    is_working                UInt8,
    working_index             UInt32,
    version                   UInt64,
    is_deleted                UInt8
) ENGINE = {{engine ReplacingMergeTree(version, is_deleted)}}
ORDER BY day;

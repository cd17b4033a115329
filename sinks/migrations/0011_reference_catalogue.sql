-- Reference catalogue as data (issue 21, pulse reference import): the ref_* tables get the
-- rest of schemas.reference's model, so a worker can rebuild the whole catalogue from
-- ClickHouse, and ref_catalogue records each imported version.
-- A row's `version` in ref_units / ref_procedures / ref_fields is the catalogue version
-- that last wrote it (sinks.reference.replace_table); readers keep using FINAL.

ALTER TABLE {{global_table ref_units}}
    ADD COLUMN IF NOT EXISTS unit_name_en String DEFAULT '',
    ADD COLUMN IF NOT EXISTS former_district String DEFAULT '',
    ADD COLUMN IF NOT EXISTS gso_code String DEFAULT '';

-- procedure_level: where it is received ('province' | 'commune', Cấp thực hiện);
-- online_level: the online public service it has ('full' = toàn trình / mức độ 4,
-- 'partial' = một phần / mức độ 3, 'none' = information only / mức độ 1-2).
ALTER TABLE {{global_table ref_procedures}}
    ADD COLUMN IF NOT EXISTS procedure_level LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS online_level LowCardinality(String) DEFAULT '';

ALTER TABLE {{global_table ref_fields}}
    ADD COLUMN IF NOT EXISTS field_name_en String DEFAULT '',
    ADD COLUMN IF NOT EXISTS department_code String DEFAULT '';

-- One row per catalogue version, written after that version's ref_* rows: the marker the
-- workers poll (streams.catalogue) and the whole catalogue as one JSON document, so a
-- worker reads one consistent version in one query (the ref_* tables serve the boards'
-- joins). source: 'import' (pulse reference import) or 'bundled' (schemas/reference).
CREATE TABLE IF NOT EXISTS {{global_table ref_catalogue}} (
    version                   UInt64,
    imported_at               DateTime64(3, 'Asia/Ho_Chi_Minh'),
    source                    LowCardinality(String),
    province_code             String,
    province_name             String,
    files                     Array(String),
    units                     UInt32,
    procedures                UInt32,
    fields                    UInt32,
    digest                    String,
    document                  String CODEC(ZSTD(3))
) ENGINE = {{engine MergeTree}}
ORDER BY version;

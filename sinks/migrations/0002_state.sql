-- Current state per dossier, written by the stream after every applied event.
-- ReplacingMergeTree(version): the row with the highest version wins; `version` is
-- monotonic per dossier (the stream writes the number of applied events, or the last
-- event time in ms). Readers use FINAL. No time partition: a dossier's rows must stay
-- in one partition to be replaced.
CREATE TABLE IF NOT EXISTS {{table dossier_state | cityHash64(dossier_code)}} (
    dossier_code              String,
    unit_code                 LowCardinality(String),
    procedure_code            LowCardinality(String),
    procedure_field           LowCardinality(String),
    channel                   UInt8,
    status                    UInt8,
    submitted_at              Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    received_at               Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    promised_at               Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    finished_at               Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    returned_at               Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    refused_at                Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    closed_at                 Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    supplement_rounds         UInt16,
    supplement_wait_working_days Float32,
    outcome                   Enum8('' = 0, 'early' = 1, 'on_time' = 2, 'late' = 3,
                                    'withdrawn' = 4, 'refused' = 5, 'stopped' = 6),
    resolution_working_days   Nullable(Float32),
    is_open                   Bool,
    overdue                   Bool,
    digitised                 Bool,
    paid_online               Bool,
    vneid                     Bool,
    electronic_result         Bool,
    first_event_time          DateTime64(3, 'Asia/Ho_Chi_Minh'),
    last_event_time           DateTime64(3, 'Asia/Ho_Chi_Minh'),
    version                   UInt64,
    updated_at                DateTime64(3, 'Asia/Ho_Chi_Minh') DEFAULT now64(3)
) ENGINE = {{engine ReplacingMergeTree(version)}}
ORDER BY dossier_code
TTL toDateTime(last_event_time) + INTERVAL {{param state_retention_days}} DAY WHERE NOT is_open;

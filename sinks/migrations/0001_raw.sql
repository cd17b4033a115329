-- Raw events, exactly as accepted (every contract field) plus where they came from.
-- Idempotent: ReplacingMergeTree with the event's id in the sorting key; a retried or
-- replayed event collapses into one row (read with FINAL, or count distinct ids).

CREATE TABLE IF NOT EXISTS {{table dossier_events | cityHash64(event_id)}} (
    event_id                  String,
    event_time                DateTime64(3, 'Asia/Ho_Chi_Minh'),
    ingest_time               DateTime64(3, 'Asia/Ho_Chi_Minh'),
    source_system             LowCardinality(String),
    contract_version          LowCardinality(String),
    dossier_code              String,
    procedure_code            LowCardinality(String),
    procedure_field           LowCardinality(String),
    unit_code                 LowCardinality(String),
    channel                   UInt8,
    status                    UInt8,
    handler                   Nullable(String),
    owner_type                Nullable(UInt8),
    submitted_at              Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    received_at               Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    promised_at               Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    finished_at               Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    returned_at               Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    refused_at                Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    supplements               Array(Tuple(
                                  requested_at    DateTime64(3, 'Asia/Ho_Chi_Minh'),
                                  resumed_at      Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
                                  old_promised_at Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
                                  new_promised_at Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')))),
    has_digitised_components  Bool,
    electronic_result         Bool,
    paid_online               UInt8,
    vneid_authenticated       Bool,
    kafka_topic               LowCardinality(String),
    kafka_partition           Int32,
    kafka_offset              Int64,
    inserted_at               DateTime64(3, 'Asia/Ho_Chi_Minh') DEFAULT now64(3)
) ENGINE = {{engine ReplacingMergeTree}}
PARTITION BY toYYYYMM(event_time)
ORDER BY (unit_code, toDate(event_time), event_id)
TTL toDateTime(event_time) + INTERVAL {{param raw_retention_days}} DAY;

CREATE TABLE IF NOT EXISTS {{table ratings | cityHash64(rating_id)}} (
    rating_id                 String,
    event_time                DateTime64(3, 'Asia/Ho_Chi_Minh'),
    ingest_time               DateTime64(3, 'Asia/Ho_Chi_Minh'),
    source_system             LowCardinality(String),
    contract_version          LowCardinality(String),
    kiosk_id                  LowCardinality(String),
    unit_code                 LowCardinality(String),
    counter_id                Nullable(String),
    officer_id                Nullable(String),
    dossier_code              Nullable(String),
    procedure_code            Nullable(String),
    level                     UInt8,
    scale                     UInt8,
    criteria                  Map(LowCardinality(String), UInt8),
    comment                   Nullable(String),
    kafka_topic               LowCardinality(String),
    kafka_partition           Int32,
    kafka_offset              Int64,
    inserted_at               DateTime64(3, 'Asia/Ho_Chi_Minh') DEFAULT now64(3)
) ENGINE = {{engine ReplacingMergeTree}}
PARTITION BY toYYYYMM(event_time)
ORDER BY (unit_code, toDate(event_time), rating_id)
TTL toDateTime(event_time) + INTERVAL {{param raw_retention_days}} DAY;

-- Rejected messages. One row per Kafka record (topic, partition, offset); a redrive
-- writes the same key again with redriven_at set and a later updated_at.
CREATE TABLE IF NOT EXISTS {{table dead_letters | cityHash64(topic, partition, offset)}} (
    dead_letter_id            String,
    topic                     LowCardinality(String),
    partition                 Int32,
    offset                    Int64,
    source_system             LowCardinality(String),
    kind                      Enum8('unknown' = 0, 'dossier' = 1, 'rating' = 2),
    rules                     Array(LowCardinality(String)),
    reasons                   Array(String),
    raw                       String,
    raw_size                  UInt32,
    received_at               DateTime64(3, 'Asia/Ho_Chi_Minh'),
    redriven_at               Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')),
    updated_at                DateTime64(3, 'Asia/Ho_Chi_Minh')
) ENGINE = {{engine ReplacingMergeTree(updated_at)}}
PARTITION BY toYYYYMM(received_at)
ORDER BY (topic, partition, offset)
TTL toDateTime(received_at) + INTERVAL {{param ops_retention_days}} DAY;

-- Operations: data-quality results, alerts, worker freshness/lag snapshots.

CREATE TABLE IF NOT EXISTS {{table dq_results | cityHash64(batch_id)}} (
    batch_id                  String,
    suite                     LowCardinality(String),
    expectation               LowCardinality(String),
    column                    LowCardinality(String),
    success                   Bool,
    success_share             Float64,
    unexpected_count          UInt64,
    element_count             UInt64,
    batch_time                DateTime64(3, 'Asia/Ho_Chi_Minh')
) ENGINE = {{engine ReplacingMergeTree}}
PARTITION BY toYYYYMM(batch_time)
ORDER BY (batch_id, suite, expectation, column)
TTL toDateTime(batch_time) + INTERVAL {{param ops_retention_days}} DAY;

CREATE TABLE IF NOT EXISTS {{table alerts | cityHash64(alert_id)}} (
    alert_id                  String,
    kind                      LowCardinality(String),
    unit_code                 LowCardinality(String),
    kiosk_id                  String,
    dossier_code              String,
    value                     Float64,
    threshold                 Float64,
    window                    String,
    message                   String,
    raised_at                 DateTime64(3, 'Asia/Ho_Chi_Minh')
) ENGINE = {{engine ReplacingMergeTree}}
PARTITION BY toYYYYMM(raised_at)
ORDER BY alert_id
TTL toDateTime(raised_at) + INTERVAL {{param ops_retention_days}} DAY;

CREATE TABLE IF NOT EXISTS {{table pipeline_metrics | cityHash64(consumer_group, topic, partition)}} (
    ts                        DateTime64(3, 'Asia/Ho_Chi_Minh'),
    worker                    LowCardinality(String),
    consumer_group            LowCardinality(String),
    topic                     LowCardinality(String),
    partition                 Int32,
    committed_offset          Int64,
    end_offset                Int64,
    lag                       Int64,
    freshness_ms              Int64,
    events_per_s              Float64
) ENGINE = {{engine ReplacingMergeTree}}
PARTITION BY toYYYYMMDD(ts)
ORDER BY (consumer_group, topic, partition, ts)
TTL toDateTime(ts) + INTERVAL {{param metrics_retention_days}} DAY;

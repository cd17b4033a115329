-- Board view (columns in sinks/VIEWS.md). Live.
-- Latest snapshot per (consumer group, topic, partition).

CREATE OR REPLACE VIEW {{view v_freshness}} AS
SELECT consumer_group, topic, partition, last_ts AS ts, worker, committed_offset, end_offset,
       lag, freshness_ms, events_per_s, dateDiff('second', last_ts, now()) AS snapshot_age_s
FROM
(
    SELECT consumer_group, topic, partition,
           max(ts) AS last_ts,
           argMax(worker, ts) AS worker,
           argMax(committed_offset, ts) AS committed_offset,
           argMax(end_offset, ts) AS end_offset,
           argMax(lag, ts) AS lag,
           argMax(freshness_ms, ts) AS freshness_ms,
           argMax(events_per_s, ts) AS events_per_s
    FROM {{db}}.pipeline_metrics
    GROUP BY consumer_group, topic, partition
);

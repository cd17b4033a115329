-- The judgement stored with the state (issue "one truth"): the effective deadline the
-- stream judged the dossier against (the first promise moved by supplement waits, or the
-- unit's new promise, per the reading in force) and which reading that was. Boards and
-- alerts read these and `overdue`/`outcome`; no view re-derives them from promised_at.
-- Placed after `overdue` so the row layout keeps version and updated_at last.
-- Two statements per column: on a cluster the first alters the shards' local tables, the
-- second the cluster-wide table in front of them; on a single node the second finds the
-- column and does nothing.

ALTER TABLE {{table dossier_state | cityHash64(dossier_code)}}
    ADD COLUMN IF NOT EXISTS deadline Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')) AFTER overdue,
    ADD COLUMN IF NOT EXISTS deadline_reading LowCardinality(String) DEFAULT '' AFTER deadline;

ALTER TABLE {{db}}.dossier_state{{on_cluster}}
    ADD COLUMN IF NOT EXISTS deadline Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh')) AFTER overdue,
    ADD COLUMN IF NOT EXISTS deadline_reading LowCardinality(String) DEFAULT '' AFTER deadline;

-- Data-quality results name the rule (expectation meta.rule, e.g. dossier.unit_known), the
-- same name dead letters carry, so the data-quality board can put both side by side.
-- Two statements: on a cluster the first alters the shards' local tables, the second the
-- cluster-wide table in front of them; on a single node the second finds the column and
-- does nothing.

ALTER TABLE {{table dq_results | cityHash64(batch_id)}}
    ADD COLUMN IF NOT EXISTS rule LowCardinality(String) DEFAULT '' AFTER expectation;

ALTER TABLE {{db}}.dq_results{{on_cluster}}
    ADD COLUMN IF NOT EXISTS rule LowCardinality(String) DEFAULT '' AFTER expectation;

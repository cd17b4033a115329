-- Board view (contract with the Superset assets; columns in sinks/VIEWS.md). Live,
-- over dead_letters FINAL (a redrive replaces its record). One row per (day received,
-- rule, source, kind); a record with several rules counts under each, none under '(none)'.

CREATE OR REPLACE VIEW {{view v_dead_letters_by_reason}} AS
SELECT toDate(received_at) AS day, rule, source_system, kind, count() AS n,
       countIf(redriven_at IS NOT NULL) AS redriven
FROM {{db}}.dead_letters FINAL
ARRAY JOIN if(empty(rules), ['(none)'], rules) AS rule
GROUP BY day, rule, source_system, kind;

-- agg_overdue (0006) filtered `promised_at < now()` after selecting
-- `assumeNotNull(promised_at) AS promised_at`: ClickHouse resolves a name to the SELECT
-- alias first, so the filter saw the alias, NULL became 1970-01-01, and every open dossier
-- without a promised date yet (status 1, not yet received) counted as overdue by ~15,000
-- days. The filter now runs in a subquery over the column itself.

DROP VIEW IF EXISTS {{view agg_overdue}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{view agg_overdue}}
REFRESH EVERY {{param board_refresh_seconds}} SECOND
ENGINE = MergeTree ORDER BY (unit_code, dossier_code)
AS
SELECT dossier_code, unit_code, procedure_code, procedure_field, channel, status, received_at,
       assumeNotNull(due) AS promised_at, now() AS as_of
FROM
(
    SELECT dossier_code, unit_code, procedure_code, procedure_field, channel, status, received_at,
           promised_at AS due
    FROM {{db}}.dossier_state FINAL
    WHERE is_open AND promised_at IS NOT NULL AND promised_at < now()
);

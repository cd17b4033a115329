-- Open dossiers past their promised date at the refresh.
-- A refreshable materialized view, recomputed in full from the FINAL tables every
-- board_refresh_seconds (a parameter, default 60) and swapped in atomically: its numbers
-- are exactly those of a plain query over the raw rows as of the refresh (`v_board_as_of`
-- shows when). Why not a SummingMergeTree fed by an insert-triggered materialized view:
-- the replacing tables get a new row for every version, and it would count each one.
-- Why not the plain FINAL query in the board views (as first written): over 10M events
-- (2.5M dossiers) a board query took 0.4-1.7 s on 2 cores; the aggregates hold a few
-- hundred thousand rows at most.
--
-- The filter runs in a subquery over the column itself, not beside the
-- `assumeNotNull(...) AS promised_at` of the outer SELECT: ClickHouse resolves a name to
-- the SELECT alias first, so a `promised_at < now()` next to that alias saw the alias,
-- NULL became 1970-01-01, and every open dossier without a promised date yet (status 1,
-- not yet received) counted as overdue by ~15,000 days (the bug of the first version,
-- fixed by migration 0008; tests/integration/test_overdue_view.py).

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

-- Open dossiers the stream judged overdue (dossier_state.overdue: open, the clock running,
-- now past the EFFECTIVE deadline, rules.timeliness), as of the refresh. The judgement is
-- the stream's, stored with the state; this view does not re-derive it from promised_at
-- (a re-promised dossier, or one waiting for the citizen's documents, was overdue here and
-- not in the alerts, or the other way round). `promised_at` is the date the dossier
-- carries (shown to the reader), `deadline` the one it is judged against.
-- A refreshable materialized view, recomputed in full from the FINAL tables every
-- board_refresh_seconds (a parameter, default 60) and swapped in atomically: its numbers
-- are exactly those of a plain query over the raw rows as of the refresh (`v_board_as_of`
-- shows when). Why not a SummingMergeTree fed by an insert-triggered materialized view:
-- the replacing tables get a new row for every version, and it would count each one.
-- Why not the plain FINAL query in the board views (as first written): over 10M events
-- (2.5M dossiers) a board query took 0.4-1.7 s on 2 cores; the aggregates hold a few
-- hundred thousand rows at most.
--
-- No `assumeNotNull(...) AS name` beside a filter on that name: ClickHouse resolves a
-- name to the SELECT alias first, so a filter next to such an alias saw the alias, NULL
-- became 1970-01-01, and every open dossier without a promised date yet counted as
-- overdue by ~15,000 days (the bug of the first version, fixed by migration 0008;
-- tests/integration/test_overdue_view.py).

CREATE MATERIALIZED VIEW IF NOT EXISTS {{view agg_overdue}}
REFRESH EVERY {{param board_refresh_seconds}} SECOND
ENGINE = MergeTree ORDER BY (unit_code, dossier_code)
AS
SELECT dossier_code, unit_code, procedure_code, procedure_field, channel, status, received_at,
       promised_at, deadline, deadline_reading, now() AS as_of
FROM {{db}}.dossier_state FINAL
WHERE is_open AND overdue;

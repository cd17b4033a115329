-- A refreshable materialized view, recomputed in full from the FINAL tables every
-- board_refresh_seconds (a parameter, default 60) and swapped in atomically: its numbers
-- are exactly those of a plain query over the raw rows as of the refresh (`v_board_as_of`
-- shows when). Why not a SummingMergeTree fed by an insert-triggered materialized view:
-- the replacing tables get a new row for every version, and it would count each one.
-- Why not the plain FINAL query in the board views (as first written): over 10M events
-- (2.5M dossiers) a board query took 0.4-1.7 s on 2 cores; the aggregates hold a few
-- hundred thousand rows at most.
--
-- Per-criterion levels; the rating's own level counts as criterion 'overall' unless the
-- kiosk sent an explicit 'overall' (mapUpdate: the kiosk's criteria win).

CREATE MATERIALIZED VIEW IF NOT EXISTS {{view agg_rating_criteria}}
REFRESH EVERY {{param board_refresh_seconds}} SECOND
ENGINE = MergeTree ORDER BY (day, unit_code, criterion, level)
AS
SELECT toDate(event_time) AS day, unit_code, criterion, clevel AS level, count() AS ratings,
       countIf(clevel >= 4) AS satisfied
FROM {{db}}.ratings FINAL
ARRAY JOIN
    mapKeys(mapUpdate(map('overall', level), criteria)) AS criterion,
    mapValues(mapUpdate(map('overall', level), criteria)) AS clevel
GROUP BY day, unit_code, criterion, level;

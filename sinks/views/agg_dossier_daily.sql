-- A refreshable materialized view, recomputed in full from the FINAL tables every
-- board_refresh_seconds (a parameter, default 60) and swapped in atomically: its numbers
-- are exactly those of a plain query over the raw rows as of the refresh (`v_board_as_of`
-- shows when). Why not a SummingMergeTree fed by an insert-triggered materialized view:
-- the replacing tables get a new row for every version, and it would count each one.
-- Why not the plain FINAL query in the board views (as first written): over 10M events
-- (2.5M dossiers) a board query took 0.4-1.7 s on 2 cores; the aggregates hold a few
-- hundred thousand rows at most.
--
-- Day semantics (sinks/VIEWS.md): a dossier is counted once on its arrival day
-- (received_at, else submitted_at, else first event) for received / in_progress /
-- online / digitised / paid_online / vneid, and once on its closing day (closed_at,
-- else finished/returned/refused, else last event) for resolved* / withdrawn / refused /
-- stopped / electronic_result / sum_resolution_working_days. "Today" and "this month"
-- are Vietnam calendar days (Asia/Ho_Chi_Minh), whatever the server's timezone.

CREATE MATERIALIZED VIEW IF NOT EXISTS {{view agg_dossier_daily}}
REFRESH EVERY {{param board_refresh_seconds}} SECOND
ENGINE = MergeTree ORDER BY (day, unit_code, procedure_field, channel)
AS
SELECT
    if(side = 0, s_recv_day, s_close_day)                              AS day,
    s_unit                                                             AS unit_code,
    s_field                                                            AS procedure_field,
    s_channel                                                          AS channel,
    countIf(side = 0)                                                  AS received,
    countIf(side = 1 AND s_outcome IN ('early', 'on_time', 'late'))    AS resolved,
    countIf(side = 1 AND s_outcome = 'early')                          AS resolved_early,
    countIf(side = 1 AND s_outcome = 'on_time')                        AS resolved_on_time,
    countIf(side = 1 AND s_outcome = 'late')                           AS resolved_late,
    countIf(side = 1 AND s_outcome = 'withdrawn')                      AS withdrawn,
    countIf(side = 1 AND s_outcome = 'refused')                        AS refused,
    countIf(side = 1 AND s_outcome = 'stopped')                        AS stopped,
    countIf(side = 0 AND s_open)                                       AS in_progress,
    countIf(side = 0 AND s_channel = 2)                                AS online,
    countIf(side = 0 AND s_digitised)                                  AS digitised,
    countIf(side = 0 AND s_paid)                                       AS paid_online,
    countIf(side = 0 AND s_vneid)                                      AS vneid,
    countIf(side = 1 AND s_eresult)                                    AS electronic_result,
    sumIf(toFloat64(ifNull(s_rwd, 0)), side = 1 AND s_outcome IN ('early', 'on_time', 'late')) AS sum_resolution_working_days
FROM
(
    SELECT
        unit_code AS s_unit, procedure_field AS s_field, channel AS s_channel,
        outcome AS s_outcome, is_open AS s_open, digitised AS s_digitised,
        paid_online AS s_paid, vneid AS s_vneid, electronic_result AS s_eresult,
        resolution_working_days AS s_rwd,
        toDate(coalesce(received_at, submitted_at, first_event_time)) AS s_recv_day,
        toDate(coalesce(closed_at, finished_at, returned_at, refused_at, last_event_time)) AS s_close_day
    FROM {{db}}.dossier_state FINAL
)
ARRAY JOIN if(s_open, [0], [0, 1]) AS side
GROUP BY day, unit_code, procedure_field, channel;

-- Board aggregates: refreshable materialized views recomputed from the FINAL tables
-- every {{param board_refresh_seconds}} s, and the board views re-pointed at them.
--
-- Why: the 0005 views aggregate dossier_state FINAL at query time: exact, but over 10M
-- events (2.5M dossiers) a board query took 0.4-1.7 s on 2 cores. A SummingMergeTree fed
-- by a materialized view on the replacing dossier_state would double-count replaced rows.
-- A refreshable view recomputes the whole aggregate from FINAL and swaps it in atomically:
-- the numbers are exactly those of a plain query over the raw rows as of the refresh
-- (`v_board_as_of` shows when); board queries read a few hundred thousand rows at most.
-- Day semantics are unchanged (see 0005 and sinks/VIEWS.md).

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

-- Open dossiers past their promised date at the refresh.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{view agg_overdue}}
REFRESH EVERY {{param board_refresh_seconds}} SECOND
ENGINE = MergeTree ORDER BY (unit_code, dossier_code)
AS
SELECT dossier_code, unit_code, procedure_code, procedure_field, channel, status, received_at,
       assumeNotNull(promised_at) AS promised_at, now() AS as_of
FROM {{db}}.dossier_state FINAL
WHERE is_open AND promised_at < now();

CREATE MATERIALIZED VIEW IF NOT EXISTS {{view agg_ratings_daily}}
REFRESH EVERY {{param board_refresh_seconds}} SECOND
ENGINE = MergeTree ORDER BY (day, unit_code, kiosk_id, officer_id, level)
AS
SELECT toDate(event_time) AS day, unit_code, kiosk_id, ifNull(officer_id, '') AS officer_id, level,
       count() AS ratings, countIf(level >= 4) AS satisfied
FROM {{db}}.ratings FINAL
GROUP BY day, unit_code, kiosk_id, officer_id, level;

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

CREATE OR REPLACE VIEW {{view v_dossier_daily}} AS
SELECT
    a.day                                              AS day,
    a.unit_code                                        AS unit_code,
    if(u.unit_name = '', a.unit_code, u.unit_name)     AS unit_name,
    u.unit_kind                                        AS unit_kind,
    a.procedure_field                                  AS procedure_field,
    if(f.field_name = '', a.procedure_field, f.field_name) AS field_name,
    a.channel                                          AS channel,
    transform(a.channel, [1, 2, 3], ['Trực tiếp', 'Trực tuyến', 'Bưu chính công ích'], '') AS channel_name,
    a.received, a.resolved, a.resolved_early, a.resolved_on_time, a.resolved_late,
    a.withdrawn, a.refused, a.stopped, a.in_progress, a.online, a.digitised,
    a.paid_online, a.vneid, a.electronic_result, a.sum_resolution_working_days
FROM {{db}}.agg_dossier_daily AS a
LEFT JOIN (SELECT unit_code, unit_name, unit_kind FROM {{db}}.ref_units FINAL) AS u ON a.unit_code = u.unit_code
LEFT JOIN (SELECT field_code, field_name FROM {{db}}.ref_fields FINAL) AS f ON a.procedure_field = f.field_code;

CREATE OR REPLACE VIEW {{view v_unit_scoreboard}} AS
SELECT
    unit_code, unit_name, unit_kind,
    received, resolved, on_time_share, satisfaction_share, overdue_now, in_progress,
    online_share, digitised_share,
    rank() OVER (ORDER BY on_time_share IS NULL, on_time_share DESC)           AS rank_on_time,
    rank() OVER (ORDER BY satisfaction_share IS NULL, satisfaction_share DESC) AS rank_satisfaction,
    resolved_in_time, online, digitised, ratings, satisfied
FROM
(
    SELECT
        k.unit_code                                            AS unit_code,
        if(u.unit_name = '', k.unit_code, u.unit_name)         AS unit_name,
        u.unit_kind                                            AS unit_kind,
        d.received AS received, d.resolved AS resolved, d.resolved_in_time AS resolved_in_time,
        o.overdue_now AS overdue_now, d.in_progress AS in_progress,
        d.online AS online, d.digitised AS digitised,
        r.ratings AS ratings, r.satisfied AS satisfied,
        if(d.resolved > 0, d.resolved_in_time / d.resolved, NULL) AS on_time_share,
        if(r.ratings > 0, r.satisfied / r.ratings, NULL)          AS satisfaction_share,
        if(d.received > 0, d.online / d.received, NULL)           AS online_share,
        if(d.received > 0, d.digitised / d.received, NULL)        AS digitised_share
    FROM
    (
        SELECT unit_code FROM {{db}}.agg_dossier_daily
        UNION DISTINCT
        SELECT unit_code FROM {{db}}.agg_ratings_daily
        WHERE day >= toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh'))
    ) AS k
    LEFT JOIN
    (
        SELECT
            unit_code,
            sumIf(received, day >= s_month)                              AS received,
            sumIf(resolved, day >= s_month)                              AS resolved,
            sumIf(resolved_early + resolved_on_time, day >= s_month)     AS resolved_in_time,
            sum(in_progress)                                             AS in_progress,
            sumIf(online, day >= s_month)                                AS online,
            sumIf(digitised, day >= s_month)                             AS digitised
        FROM (SELECT *, toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh')) AS s_month FROM {{db}}.agg_dossier_daily)
        GROUP BY unit_code
    ) AS d ON k.unit_code = d.unit_code
    LEFT JOIN
    (
        SELECT unit_code, count() AS overdue_now FROM {{db}}.agg_overdue GROUP BY unit_code
    ) AS o ON k.unit_code = o.unit_code
    LEFT JOIN
    (
        SELECT unit_code, sum(ratings) AS ratings, sum(satisfied) AS satisfied
        FROM {{db}}.agg_ratings_daily
        WHERE day >= toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh'))
        GROUP BY unit_code
    ) AS r ON k.unit_code = r.unit_code
    LEFT JOIN (SELECT unit_code, unit_name, unit_kind FROM {{db}}.ref_units FINAL) AS u ON k.unit_code = u.unit_code
);

CREATE OR REPLACE VIEW {{view v_province_now}} AS
SELECT
    d.received_today AS received_today,
    d.received_month AS received_month,
    d.resolved_month AS resolved_month,
    if(d.resolved_month > 0, d.resolved_in_time_month / d.resolved_month, NULL) AS on_time_share,
    o.overdue_now AS overdue_now,
    d.in_progress AS in_progress,
    if(d.received_month > 0, d.online_month / d.received_month, NULL)       AS online_share,
    if(d.received_month > 0, d.digitised_month / d.received_month, NULL)    AS digitised_share,
    if(r.ratings_month > 0, r.satisfied_month / r.ratings_month, NULL)      AS satisfaction_share,
    d.resolved_in_time_month AS resolved_in_time_month,
    r.ratings_month AS ratings_month,
    r.satisfied_month AS satisfied_month
FROM
(
    SELECT
        sumIf(received, day = s_today)                                   AS received_today,
        sumIf(received, day >= s_month)                                  AS received_month,
        sumIf(resolved, day >= s_month)                                  AS resolved_month,
        sumIf(resolved_early + resolved_on_time, day >= s_month)         AS resolved_in_time_month,
        sum(in_progress)                                                 AS in_progress,
        sumIf(online, day >= s_month)                                    AS online_month,
        sumIf(digitised, day >= s_month)                                 AS digitised_month
    FROM
    (
        SELECT *, toDate(now(), 'Asia/Ho_Chi_Minh') AS s_today,
               toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh')) AS s_month
        FROM {{db}}.agg_dossier_daily
    )
) AS d
CROSS JOIN (SELECT count() AS overdue_now FROM {{db}}.agg_overdue) AS o
CROSS JOIN
(
    SELECT sum(ratings) AS ratings_month, sum(satisfied) AS satisfied_month
    FROM {{db}}.agg_ratings_daily
    WHERE day >= toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh'))
) AS r;

CREATE OR REPLACE VIEW {{view v_overdue_now}} AS
SELECT
    s.dossier_code AS dossier_code,
    s.unit_code AS unit_code,
    if(u.unit_name = '', s.unit_code, u.unit_name) AS unit_name,
    s.procedure_code AS procedure_code,
    if(p.procedure_name = '', s.procedure_code, p.procedure_name) AS procedure_name,
    s.procedure_field AS procedure_field,
    s.channel AS channel,
    s.status AS status,
    s.received_at AS received_at,
    s.promised_at AS promised_at,
    if(cp.working_index > 0 AND ct.working_index > 0,
       greatest(toInt64(ct.working_index) - toInt64(cp.working_index), 0),
       arrayCount(x -> toDayOfWeek(x) < 6,
                  arrayMap(i -> s.promised_day + i + 1, range(toUInt32(greatest(dateDiff('day', s.promised_day, s.today), 0)))))
    ) AS overdue_working_days,
    dateDiff('hour', s.promised_at, now()) AS overdue_hours
FROM
(
    SELECT dossier_code, unit_code, procedure_code, procedure_field, channel, status, received_at, promised_at,
           toDate(promised_at) AS promised_day,
           toDate(now(), 'Asia/Ho_Chi_Minh') AS today
    FROM {{db}}.agg_overdue
) AS s
LEFT JOIN (SELECT day, working_index FROM {{db}}.ref_calendar FINAL) AS cp ON s.promised_day = cp.day
LEFT JOIN (SELECT day, working_index FROM {{db}}.ref_calendar FINAL) AS ct ON s.today = ct.day
LEFT JOIN (SELECT unit_code, unit_name FROM {{db}}.ref_units FINAL) AS u ON s.unit_code = u.unit_code
LEFT JOIN (SELECT procedure_code, procedure_name FROM {{db}}.ref_procedures FINAL) AS p ON s.procedure_code = p.procedure_code;

CREATE OR REPLACE VIEW {{view v_ratings_daily}} AS
SELECT
    r.day AS day,
    r.unit_code AS unit_code,
    if(u.unit_name = '', r.unit_code, u.unit_name) AS unit_name,
    r.kiosk_id AS kiosk_id,
    r.officer_id AS officer_id,
    r.level AS level,
    transform(r.level, [1, 2, 3, 4, 5], ['RKHL', 'KHL', 'BT', 'HL', 'RHL'], '') AS level_code,
    transform(r.level, [1, 2, 3, 4, 5], ['Rất không hài lòng', 'Không hài lòng', 'Bình thường', 'Hài lòng', 'Rất hài lòng'], '') AS level_name,
    r.ratings AS ratings,
    r.satisfied AS satisfied
FROM {{db}}.agg_ratings_daily AS r
LEFT JOIN (SELECT unit_code, unit_name FROM {{db}}.ref_units FINAL) AS u ON r.unit_code = u.unit_code;

CREATE OR REPLACE VIEW {{view v_rating_criteria}} AS
SELECT day, unit_code, criterion, level, ratings, satisfied
FROM {{db}}.agg_rating_criteria;

-- When each board aggregate was last recomputed (show it on the boards: "số liệu lúc ...").
CREATE OR REPLACE VIEW {{view v_board_as_of}} AS
SELECT view, status, last_success_time, last_refresh_time, next_refresh_time,
       dateDiff('second', last_success_time, now()) AS age_s, exception
FROM system.view_refreshes
WHERE database = '{{db}}';

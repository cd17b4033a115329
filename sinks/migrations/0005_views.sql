-- Board views (contract with the Superset assets; columns documented in sinks/VIEWS.md).
-- Every view reads the replacing tables with FINAL, so the numbers are exact at query
-- time and equal a plain query over the latest row per key (no pre-aggregation that a
-- replaced dossier_state row could double-count). "Today" and "this month" are Vietnam
-- calendar days (Asia/Ho_Chi_Minh), whatever the server's timezone.
--
-- Day semantics of v_dossier_daily: a dossier is counted once on its arrival day
-- (received_at, else submitted_at, else first event) for received / in_progress /
-- online / digitised / paid_online / vneid, and once on its closing day (closed_at,
-- else finished/returned/refused, else last event) for resolved* / withdrawn / refused /
-- stopped / sum_resolution_working_days.

CREATE VIEW IF NOT EXISTS {{view v_dossier_daily}} AS
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
FROM
(
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
    GROUP BY day, unit_code, procedure_field, channel
) AS a
LEFT JOIN (SELECT unit_code, unit_name, unit_kind FROM {{db}}.ref_units FINAL) AS u ON a.unit_code = u.unit_code
LEFT JOIN (SELECT field_code, field_name FROM {{db}}.ref_fields FINAL) AS f ON a.procedure_field = f.field_code;

-- Per unit, this calendar month (Vietnam time); overdue_now and in_progress are as of now.
CREATE VIEW IF NOT EXISTS {{view v_unit_scoreboard}} AS
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
        d.overdue_now AS overdue_now, d.in_progress AS in_progress,
        d.online AS online, d.digitised AS digitised,
        r.ratings AS ratings, r.satisfied AS satisfied,
        if(d.resolved > 0, d.resolved_in_time / d.resolved, NULL) AS on_time_share,
        if(r.ratings > 0, r.satisfied / r.ratings, NULL)          AS satisfaction_share,
        if(d.received > 0, d.online / d.received, NULL)           AS online_share,
        if(d.received > 0, d.digitised / d.received, NULL)        AS digitised_share
    FROM
    (
        SELECT unit_code FROM {{db}}.dossier_state FINAL
        UNION DISTINCT
        SELECT unit_code FROM {{db}}.ratings FINAL
        WHERE toDate(event_time) >= toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh'))
    ) AS k
    LEFT JOIN
    (
        SELECT
            unit_code,
            countIf(s_recv_day >= s_month)                                              AS received,
            countIf(NOT is_open AND s_close_day >= s_month AND outcome IN ('early', 'on_time', 'late')) AS resolved,
            countIf(NOT is_open AND s_close_day >= s_month AND outcome IN ('early', 'on_time'))         AS resolved_in_time,
            countIf(is_open AND promised_at < now())                                    AS overdue_now,
            countIf(is_open)                                                            AS in_progress,
            countIf(s_recv_day >= s_month AND channel = 2)                              AS online,
            countIf(s_recv_day >= s_month AND digitised)                                AS digitised
        FROM
        (
            SELECT
                unit_code, outcome, is_open, promised_at, channel, digitised,
                toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh')) AS s_month,
                toDate(coalesce(received_at, submitted_at, first_event_time)) AS s_recv_day,
                toDate(coalesce(closed_at, finished_at, returned_at, refused_at, last_event_time)) AS s_close_day
            FROM {{db}}.dossier_state FINAL
        )
        GROUP BY unit_code
    ) AS d ON k.unit_code = d.unit_code
    LEFT JOIN
    (
        SELECT unit_code, count() AS ratings, countIf(level >= 4) AS satisfied
        FROM {{db}}.ratings FINAL
        WHERE toDate(event_time) >= toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh'))
        GROUP BY unit_code
    ) AS r ON k.unit_code = r.unit_code
    LEFT JOIN (SELECT unit_code, unit_name, unit_kind FROM {{db}}.ref_units FINAL) AS u ON k.unit_code = u.unit_code
);

-- One row for the whole province: today / this month (Vietnam time) and now.
CREATE VIEW IF NOT EXISTS {{view v_province_now}} AS
SELECT
    d.received_today AS received_today,
    d.received_month AS received_month,
    d.resolved_month AS resolved_month,
    if(d.resolved_month > 0, d.resolved_in_time_month / d.resolved_month, NULL) AS on_time_share,
    d.overdue_now AS overdue_now,
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
        countIf(s_recv_day = s_today)                                                       AS received_today,
        countIf(s_recv_day >= s_month)                                                      AS received_month,
        countIf(NOT is_open AND s_close_day >= s_month AND outcome IN ('early', 'on_time', 'late')) AS resolved_month,
        countIf(NOT is_open AND s_close_day >= s_month AND outcome IN ('early', 'on_time')) AS resolved_in_time_month,
        countIf(is_open AND promised_at < now())                                            AS overdue_now,
        countIf(is_open)                                                                    AS in_progress,
        countIf(s_recv_day >= s_month AND channel = 2)                                      AS online_month,
        countIf(s_recv_day >= s_month AND digitised)                                        AS digitised_month
    FROM
    (
        SELECT
            outcome, is_open, promised_at, channel, digitised,
            toDate(now(), 'Asia/Ho_Chi_Minh') AS s_today,
            toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh')) AS s_month,
            toDate(coalesce(received_at, submitted_at, first_event_time)) AS s_recv_day,
            toDate(coalesce(closed_at, finished_at, returned_at, refused_at, last_event_time)) AS s_close_day
        FROM {{db}}.dossier_state FINAL
    )
) AS d
CROSS JOIN
(
    SELECT count() AS ratings_month, countIf(level >= 4) AS satisfied_month
    FROM {{db}}.ratings FINAL
    WHERE toDate(event_time) >= toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh'))
) AS r;

-- Open dossiers whose promised date has passed, now. overdue_working_days counts working
-- days after the promised day up to today (ref_calendar; weekdays if the calendar has no row).
CREATE VIEW IF NOT EXISTS {{view v_overdue_now}} AS
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
           toDate(assumeNotNull(promised_at)) AS promised_day,
           toDate(now(), 'Asia/Ho_Chi_Minh') AS today
    FROM {{db}}.dossier_state FINAL
    WHERE is_open AND promised_at < now()
) AS s
LEFT JOIN (SELECT day, working_index FROM {{db}}.ref_calendar FINAL) AS cp ON s.promised_day = cp.day
LEFT JOIN (SELECT day, working_index FROM {{db}}.ref_calendar FINAL) AS ct ON s.today = ct.day
LEFT JOIN (SELECT unit_code, unit_name FROM {{db}}.ref_units FINAL) AS u ON s.unit_code = u.unit_code
LEFT JOIN (SELECT procedure_code, procedure_name FROM {{db}}.ref_procedures FINAL) AS p ON s.procedure_code = p.procedure_code;

CREATE VIEW IF NOT EXISTS {{view v_ratings_daily}} AS
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
FROM
(
    SELECT toDate(event_time) AS day, unit_code, kiosk_id, ifNull(officer_id, '') AS officer_id, level,
           count() AS ratings, countIf(level >= 4) AS satisfied
    FROM {{db}}.ratings FINAL
    GROUP BY day, unit_code, kiosk_id, officer_id, level
) AS r
LEFT JOIN (SELECT unit_code, unit_name FROM {{db}}.ref_units FINAL) AS u ON r.unit_code = u.unit_code;

-- Per-criterion levels; the rating's own level counts as criterion 'overall' unless the
-- kiosk sent an explicit 'overall'.
CREATE VIEW IF NOT EXISTS {{view v_rating_criteria}} AS
SELECT toDate(event_time) AS day, unit_code, criterion, clevel AS level, count() AS ratings,
       countIf(clevel >= 4) AS satisfied
FROM {{db}}.ratings FINAL
ARRAY JOIN
    mapKeys(mapUpdate(map('overall', level), criteria)) AS criterion,
    mapValues(mapUpdate(map('overall', level), criteria)) AS clevel
GROUP BY day, unit_code, criterion, level;

CREATE VIEW IF NOT EXISTS {{view v_silent_kiosks}} AS
SELECT
    k.kiosk_id AS kiosk_id,
    k.unit_code AS unit_code,
    if(u.unit_name = '', k.unit_code, u.unit_name) AS unit_name,
    k.last_rating_at AS last_rating_at,
    dateDiff('minute', k.last_rating_at, now()) AS silent_minutes,
    dateDiff('minute', k.last_rating_at, now()) >= {{param silent_kiosk_minutes}} AS is_silent
FROM
(
    SELECT kiosk_id, argMax(unit_code, event_time) AS unit_code, max(event_time) AS last_rating_at
    FROM {{db}}.ratings
    GROUP BY kiosk_id
) AS k
LEFT JOIN (SELECT unit_code, unit_name FROM {{db}}.ref_units FINAL) AS u ON k.unit_code = u.unit_code;

CREATE VIEW IF NOT EXISTS {{view v_dead_letters_by_reason}} AS
SELECT toDate(received_at) AS day, rule, source_system, kind, count() AS n,
       countIf(redriven_at IS NOT NULL) AS redriven
FROM {{db}}.dead_letters FINAL
ARRAY JOIN if(empty(rules), ['(none)'], rules) AS rule
GROUP BY day, rule, source_system, kind;

-- Latest snapshot per (consumer group, topic, partition).
CREATE VIEW IF NOT EXISTS {{view v_freshness}} AS
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

-- Board view (contract with the Superset assets; columns in sinks/VIEWS.md).
-- Per unit, this calendar month (Vietnam time); overdue_now and in_progress are as of
-- the aggregates' last refresh. Shares are NULL when the denominator is 0 and rank last.
-- Units are ranked among their peers (unit_kind: departments with departments, communes
-- with communes), as the national index ranks them: a commune's on-time share is not
-- comparable with a department's (different procedures, volumes and legal times).
-- depends: agg_dossier_daily, agg_overdue, agg_ratings_daily

CREATE OR REPLACE VIEW {{view v_unit_scoreboard}} AS
SELECT
    unit_code, unit_name, unit_kind,
    received, resolved, on_time_share, satisfaction_share, overdue_now, in_progress,
    online_share, digitised_share,
    rank() OVER (PARTITION BY unit_kind ORDER BY on_time_share IS NULL, on_time_share DESC)           AS rank_on_time,
    rank() OVER (PARTITION BY unit_kind ORDER BY satisfaction_share IS NULL, satisfaction_share DESC) AS rank_satisfaction,
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

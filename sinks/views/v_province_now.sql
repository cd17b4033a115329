-- Board view (contract with the Superset assets; columns in sinks/VIEWS.md).
-- One row for the whole province: today / this month (Vietnam time) and now (as of the
-- aggregates' last refresh).
-- depends: agg_dossier_daily, agg_overdue, agg_ratings_daily

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

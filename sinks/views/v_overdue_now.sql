-- Board view (contract with the Superset assets; columns in sinks/VIEWS.md).
-- Open dossiers the stream judged overdue (agg_overdue, as of its last refresh): past their
-- effective deadline (`deadline`; `promised_at` is the date the dossier carries).
-- overdue_working_days counts working days after the deadline's day up to today
-- (ref_calendar; weekdays if the calendar has no row for one of the two days).
-- depends: agg_overdue

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
    s.deadline AS deadline,
    s.deadline_reading AS deadline_reading,
    if(cp.working_index > 0 AND ct.working_index > 0,
       greatest(toInt64(ct.working_index) - toInt64(cp.working_index), 0),
       arrayCount(x -> toDayOfWeek(x) < 6,
                  arrayMap(i -> s.deadline_day + i + 1, range(toUInt32(greatest(dateDiff('day', s.deadline_day, s.today), 0)))))
    ) AS overdue_working_days,
    dateDiff('hour', s.deadline, now()) AS overdue_hours
FROM
(
    SELECT dossier_code, unit_code, procedure_code, procedure_field, channel, status, received_at, promised_at,
           deadline, deadline_reading, toDate(assumeNotNull(deadline)) AS deadline_day,
           toDate(now(), 'Asia/Ho_Chi_Minh') AS today
    FROM {{db}}.agg_overdue
) AS s
LEFT JOIN (SELECT day, working_index FROM {{db}}.ref_calendar FINAL) AS cp ON s.deadline_day = cp.day
LEFT JOIN (SELECT day, working_index FROM {{db}}.ref_calendar FINAL) AS ct ON s.today = ct.day
LEFT JOIN (SELECT unit_code, unit_name FROM {{db}}.ref_units FINAL) AS u ON s.unit_code = u.unit_code
LEFT JOIN (SELECT procedure_code, procedure_name FROM {{db}}.ref_procedures FINAL) AS p ON s.procedure_code = p.procedure_code;

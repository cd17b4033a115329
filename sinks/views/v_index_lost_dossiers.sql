-- Board view (contract with the Superset assets; columns in sinks/VIEWS.md).
-- The dossiers behind the service index's lost points this month (Vietnam calendar): the
-- dossiers that cost "resolved on time" and "satisfaction with dossier handling"
-- (rules.service_index: late = finished late in the month, or open past its effective
-- deadline, as the stream judged it: dossier_state.outcome / overdue / deadline), and those
-- rated dissatisfied this month (level 1-2: RKHL, KHL). One row per dossier and reason.
-- No depends: reads tables only.

CREATE OR REPLACE VIEW {{view v_index_lost_dossiers}} AS
SELECT
    s.dossier_code AS dossier_code,
    s.unit_code AS unit_code,
    if(u.unit_name = '', s.unit_code, u.unit_name) AS unit_name,
    s.procedure_code AS procedure_code,
    if(p.procedure_name = '', s.procedure_code, p.procedure_name) AS procedure_name,
    s.reason AS reason,
    transform(s.reason, ['finished_late', 'open_late', 'rated_dissatisfied'],
              ['Giải quyết trễ hạn', 'Đang quá hạn', 'Bị đánh giá không hài lòng'], s.reason) AS reason_name,
    s.indicators AS indicators,
    s.outcome AS outcome,
    transform(s.outcome, ['', 'early', 'on_time', 'late', 'withdrawn', 'refused', 'stopped'],
              ['Đang giải quyết', 'Sớm hạn', 'Đúng hạn', 'Trễ hạn', 'Rút hồ sơ', 'Từ chối', 'Dừng xử lý'], s.outcome)
        AS outcome_name,
    s.received_at AS received_at,
    s.deadline AS deadline,
    s.closed_at AS closed_at
FROM
(
    SELECT dossier_code, unit_code, procedure_code, toString(outcome) AS outcome, received_at, deadline, closed_at,
           multiIf(outcome = 'late', 'finished_late', 'open_late') AS reason,
           'Tỷ lệ hồ sơ xử lý đúng hạn; Tỷ lệ hài lòng trong tiếp nhận, giải quyết TTHC' AS indicators
    FROM {{db}}.dossier_state FINAL
    WHERE (outcome = 'late' AND closed_at >= toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh')))
       OR (is_open AND overdue)
    UNION ALL
    SELECT d.dossier_code, d.unit_code, d.procedure_code, toString(d.outcome), d.received_at, d.deadline,
           d.closed_at, 'rated_dissatisfied', 'Tỷ lệ hài lòng trong tiếp nhận, giải quyết TTHC'
    FROM {{db}}.dossier_state AS d FINAL
    WHERE d.dossier_code IN (
        SELECT assumeNotNull(dossier_code) FROM {{db}}.ratings FINAL
        WHERE dossier_code IS NOT NULL AND level <= 2
          AND toDate(event_time, 'Asia/Ho_Chi_Minh') >= toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh')))
) AS s
LEFT JOIN (SELECT unit_code, unit_name FROM {{db}}.ref_units FINAL) AS u ON s.unit_code = u.unit_code
LEFT JOIN (SELECT procedure_code, procedure_name FROM {{db}}.ref_procedures FINAL) AS p
    ON s.procedure_code = p.procedure_code;

-- Board view (contract with the Superset assets; columns in sinks/VIEWS.md).
-- One row per (day, unit, field, channel) from agg_dossier_daily (day semantics there),
-- with the Vietnamese labels of the reference tables (a code without one shows its code).
-- depends: agg_dossier_daily

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

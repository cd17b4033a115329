-- Board view (contract with the Superset assets; columns in sinks/VIEWS.md).
-- The national service index as the leader worker computed and stored it
-- (streams.service_index -> service_index; never re-derived here), the newest computation
-- of each (period, unit, indicator), with the unit's Vietnamese name. row_kind: 'indicator'
-- or 'total' (indicator '_total'). points NULL = not measured: `points_text` shows
-- "Chưa đo" for it (never 0, never full marks). is_latest marks the newest period of its
-- kind (the board's default: the current month to date); an older month to date is
-- left out (its month is stored as a month).
-- No depends: reads tables only.

CREATE OR REPLACE VIEW {{view v_service_index}} AS
SELECT
    s.period_kind AS period_kind,
    s.period AS period,
    transform(s.period_kind, ['mtd', 'month', 'quarter', 'year'],
              ['Tháng này (đến nay)', 'Tháng', 'Quý', 'Năm'], s.period_kind) AS period_kind_name,
    -- one name per stored period, the board's only period filter (one value, required): the
    -- month to date keeps one fixed name (only the newest is shown), the board's default
    if(s.period_kind = 'mtd', 'Tháng này (đến nay)',
       concat(transform(s.period_kind, ['month', 'quarter', 'year'], ['Tháng ', 'Quý ', 'Năm '], ''), s.period))
        AS period_name,
    s.period_start AS period_start,
    s.period_end AS period_end,
    s.unit_code AS unit_code,
    if(u.unit_name = '', s.unit_code, u.unit_name) AS unit_name,
    s.unit_kind AS unit_kind,
    transform(s.unit_kind, ['province', 'department', 'commune'], ['Tỉnh', 'Sở, ngành', 'Xã, phường'], s.unit_kind)
        AS unit_kind_name,
    if(s.indicator = '_total', 'total', 'indicator') AS row_kind,
    s.indicator AS indicator,
    s.name_vi AS indicator_name,
    s.group_code AS group_code,
    s.group_name AS group_name,
    s.numerator AS numerator,
    s.denominator AS denominator,
    s.ratio AS ratio,
    s.points AS points,
    if(s.points IS NULL, 'Chưa đo', toString(round(assumeNotNull(s.points), 2))) AS points_text,
    s.max_points AS max_points,
    s.measured AS measured,
    if(s.measured, 'Đã đo', 'Chưa đo') AS measured_text,
    s.source AS source,
    s.note AS note,
    s.measured_max AS measured_max,
    s.rank AS rank,
    s.peers AS peers,
    s.previous_points AS previous_points,
    s.change AS change,
    s.counts['finished'] AS finished,
    s.counts['finished_on_time'] AS finished_on_time,
    s.counts['received'] AS received,
    s.counts['received_online'] AS received_online,
    s.counts['ratings'] AS ratings,
    s.counts['ratings_satisfied'] AS ratings_satisfied,
    s.period = l.latest AS is_latest,
    s.config_version AS config_version,
    s.computed_at AS computed_at
FROM (SELECT * FROM {{db}}.service_index FINAL) AS s
LEFT JOIN (SELECT period_kind, max(period) AS latest FROM {{db}}.service_index GROUP BY period_kind) AS l
    ON s.period_kind = l.period_kind
LEFT JOIN (SELECT unit_code, unit_name FROM {{db}}.ref_units FINAL) AS u ON s.unit_code = u.unit_code
-- a month to date once its month is over is superseded by the month: only the newest is shown
WHERE s.period_kind != 'mtd' OR s.period = l.latest;

-- Board view (contract with the Superset assets; columns in sinks/VIEWS.md).
-- agg_ratings_daily with unit names and the level codes / names of the national scale.
-- depends: agg_ratings_daily

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

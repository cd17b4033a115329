-- Board view (contract with the Superset assets; columns in sinks/VIEWS.md). Live:
-- reads ratings at query time (a kiosk's last rating, not a refreshed aggregate). Every
-- kiosk that ever rated; is_silent after silent_kiosk_minutes (a parameter) without one.

CREATE OR REPLACE VIEW {{view v_silent_kiosks}} AS
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

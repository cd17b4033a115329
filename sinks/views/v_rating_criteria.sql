-- Board view (contract with the Superset assets; columns in sinks/VIEWS.md).
-- agg_rating_criteria as it is ('overall' semantics there).
-- depends: agg_rating_criteria

CREATE OR REPLACE VIEW {{view v_rating_criteria}} AS
SELECT day, unit_code, criterion, level, ratings, satisfied
FROM {{db}}.agg_rating_criteria;

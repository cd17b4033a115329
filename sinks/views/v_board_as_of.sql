-- Board view (columns in sinks/VIEWS.md). When each board aggregate was last recomputed:
-- show it on the boards ("số liệu lúc ...").

CREATE OR REPLACE VIEW {{view v_board_as_of}} AS
SELECT view, status, last_success_time, last_refresh_time, next_refresh_time,
       dateDiff('second', last_success_time, now()) AS age_s, exception
FROM system.view_refreshes
WHERE database = '{{db}}';

-- Board view (columns in sinks/VIEWS.md). Which reading of the supplement rule the stream
-- judged dossiers by (dossier_state.deadline_reading, stored with each judgement:
-- Settings.supplement_reading, docs/RULES.md), over the last day of judgements, so a leader
-- sees on the board what "late" and "overdue" were computed with. Two readings listed at
-- once means the setting was changed within the day (or workers disagree): worth a look.
-- Reads two columns of the rows written in the last day, without FINAL: a count of
-- judgements, not of dossiers, is what it needs.

CREATE OR REPLACE VIEW {{view v_rules_in_force}} AS
SELECT
    deadline_reading AS reading,
    multiIf(deadline_reading = 'shift_by_wait',
            'Hạn ban đầu cộng thời gian chờ bổ sung hồ sơ (ngày làm việc)',
            deadline_reading = 'new_promise',
            'Ngày hẹn trả mới của đơn vị sau bổ sung (NgayHenTraMoi)',
            deadline_reading) AS reading_name,
    count() AS judgements,
    max(updated_at) AS last_judged_at
FROM {{db}}.dossier_state
WHERE updated_at >= now64(3) - INTERVAL 1 DAY AND deadline_reading != ''
GROUP BY deadline_reading;

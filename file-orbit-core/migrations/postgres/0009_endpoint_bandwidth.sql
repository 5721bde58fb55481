-- Each endpoint's bandwidth limit as written (rate or timetable), readable without
-- unsealing its config: every process running transfers polls it to apply changes live.
ALTER TABLE endpoints ADD COLUMN bandwidth TEXT;

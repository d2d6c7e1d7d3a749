-- What a view of a finished deploy needs to draw it as it ran: the plan's
-- groups (batch sizes and failure limits, as the JSON array of
-- drover.PlanGroup; '' for none), whether a step was on the way back, and
-- the evaluations of canary analyses (drover.AnalysisEval as JSON; '' on
-- other steps).
ALTER TABLE deploys ADD COLUMN groups TEXT NOT NULL DEFAULT '';
ALTER TABLE steps ADD COLUMN restoring INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN analysis TEXT NOT NULL DEFAULT '';

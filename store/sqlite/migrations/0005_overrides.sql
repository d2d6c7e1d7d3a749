-- The emergency overrides of a deploy (--skip-check, --skip-analysis,
-- --skip-gate, each with its reason), as the JSON array of
-- drover.Override; '' for none. A deploy that skipped a check must say so
-- in history as long as the deploy is remembered.
ALTER TABLE deploys ADD COLUMN overrides TEXT NOT NULL DEFAULT '';

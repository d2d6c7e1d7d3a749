-- The colour a blue/green host served before a deploy. Without it a
-- crashed blue/green deploy was recovered towards no colour at all:
-- recovery started nothing, checked an empty port and left the host on
-- the dead run's release, "needs a person" (found by the crash matrix,
-- cmd/drover/e2e_crash_test.go).
ALTER TABLE deploy_hosts ADD COLUMN before_live TEXT NOT NULL DEFAULT '';

-- A deploy halted before any host switched (every host failed staging, an
-- interrupt while staging) was recorded rolled_back, "deploy halted and
-- rolled back", though nothing was rolled back — on a first deploy there
-- was not even a release to go back to. Such deploys are now recorded
-- halted (outcome.go); this relabels the ones recorded before: a
-- rolled_back deploy whose journal has no switch step switched nothing.
UPDATE deploys
SET outcome = 'halted',
    summary = CASE
        WHEN summary LIKE 'deploy halted and rolled back%'
        THEN 'deploy halted before any host switched' || substr(summary, length('deploy halted and rolled back') + 1)
        ELSE summary
    END
WHERE kind = 'deploy'
  AND outcome = 'rolled_back'
  AND finished_ns IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM steps WHERE steps.deploy_id = deploys.id AND steps.step = 'switch');

-- A host's pre-deploy snapshot may be another tool's release (Capistrano,
-- Scap, Ansible): how its current link read, exactly, and the content hash
-- of the directory, so that recovering a crashed first deploy puts back
-- that same link and history names the release as foreign. '' = not
-- foreign.

ALTER TABLE deploy_hosts ADD COLUMN before_foreign_link TEXT NOT NULL DEFAULT '';
ALTER TABLE deploy_hosts ADD COLUMN before_foreign_hash TEXT NOT NULL DEFAULT '';

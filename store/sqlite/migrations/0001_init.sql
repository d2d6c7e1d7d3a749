-- The first schema: deploys, the hosts each one targeted with what they
-- were on before, every step of every host, and the holders of deploy locks.
-- Times are Unix nanoseconds (UTC): they sort as numbers, which RFC 3339
-- text with a variable number of fraction digits does not.

CREATE TABLE deploys (
    id          TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    service     TEXT NOT NULL,
    env         TEXT NOT NULL DEFAULT '',
    release     TEXT NOT NULL DEFAULT '',
    version     TEXT NOT NULL DEFAULT '',
    revision    TEXT NOT NULL DEFAULT '',
    user        TEXT NOT NULL DEFAULT '',
    machine     TEXT NOT NULL DEFAULT '',
    message     TEXT NOT NULL DEFAULT '',
    started_ns  INTEGER NOT NULL,
    -- NULL while the deploy runs, or after its process died: recovery
    -- looks for exactly these rows.
    finished_ns INTEGER,
    duration_ns INTEGER,
    outcome     TEXT NOT NULL DEFAULT '',
    exit_code   INTEGER NOT NULL DEFAULT 0,
    summary     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX deploys_by_key ON deploys (key, started_ns);
CREATE INDEX deploys_unfinished ON deploys (key, started_ns) WHERE finished_ns IS NULL;

CREATE TABLE deploy_hosts (
    deploy_id          TEXT NOT NULL REFERENCES deploys (id) ON DELETE CASCADE,
    pos                INTEGER NOT NULL,
    host               TEXT NOT NULL,
    grp                TEXT NOT NULL DEFAULT '',
    skipped            INTEGER NOT NULL DEFAULT 0,
    before_current     TEXT NOT NULL DEFAULT '',
    before_previous    TEXT NOT NULL DEFAULT '',
    before_release     TEXT NOT NULL DEFAULT '',
    before_version     TEXT NOT NULL DEFAULT '',
    before_config_hash TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (deploy_id, pos)
);
CREATE INDEX deploy_hosts_by_host ON deploy_hosts (host);

CREATE TABLE steps (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    deploy_id  TEXT NOT NULL REFERENCES deploys (id) ON DELETE CASCADE,
    at_ns      INTEGER NOT NULL,
    host       TEXT NOT NULL DEFAULT '',
    step       TEXT NOT NULL DEFAULT '',
    phase      TEXT NOT NULL DEFAULT '',
    outcome    TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    slot       TEXT NOT NULL DEFAULT '',
    output     TEXT NOT NULL DEFAULT '',
    elapsed_ns INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX steps_by_deploy ON steps (deploy_id, seq);
CREATE INDEX steps_by_host ON steps (host, seq);

-- Who holds each deploy lock. The lock itself is a flock(2) on a file next
-- to the database; a row whose flock is free names a holder that died.
CREATE TABLE locks (
    key       TEXT PRIMARY KEY,
    pid       INTEGER NOT NULL,
    machine   TEXT NOT NULL DEFAULT '',
    user      TEXT NOT NULL DEFAULT '',
    deploy_id TEXT NOT NULL DEFAULT '',
    since_ns  INTEGER NOT NULL
);

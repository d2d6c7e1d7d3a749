-- Approvals: what people decide about a running deploy from any drover
-- process of the service (approve: manual gates, drover approve/abort).
-- Rows are only ever added: a request (a deploy waits at a gate), an
-- approval of one gate, or an abort of the whole deploy.

CREATE TABLE approvals (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    deploy_id  TEXT NOT NULL REFERENCES deploys (id) ON DELETE CASCADE,
    -- request | approve | abort
    kind       TEXT NOT NULL,
    grp        TEXT NOT NULL DEFAULT '',
    gate       TEXT NOT NULL DEFAULT '',
    decided_by TEXT NOT NULL DEFAULT '',
    message    TEXT NOT NULL DEFAULT '',
    at_ns      INTEGER NOT NULL,
    until_ns   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX approvals_by_deploy ON approvals (deploy_id, seq);

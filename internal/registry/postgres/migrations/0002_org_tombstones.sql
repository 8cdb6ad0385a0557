-- When each deleted org id was deleted, so that it is not created again
-- for registry.IDQuarantine: LiveKit rooms and room tokens name an org only
-- by its id, and a new org under the id would inherit the old one's rooms
-- while its tokens live. deleted_at is the database's now(), one clock for
-- every replica. No foreign key: the org is gone. Rows past the quarantine
-- are pruned at the next delete.
CREATE TABLE voicebroker.org_tombstones (
    id         text        PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX org_tombstones_deleted_at ON voicebroker.org_tombstones (deleted_at);

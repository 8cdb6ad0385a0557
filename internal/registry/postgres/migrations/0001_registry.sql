-- The tenant registry (contract §2, "Tenant registry in PostgreSQL").
-- Everything lives in the schema "voicebroker". Secrets are never stored:
-- keys as their SHA-256, per-org LiveKit secrets sealed with AES-256-GCM.

CREATE SCHEMA IF NOT EXISTS voicebroker;

-- One row: the registry's version, bumped by every write in the same
-- transaction (which also serialises writers), and sent with NOTIFY.
CREATE TABLE voicebroker.registry_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint  NOT NULL
);
INSERT INTO voicebroker.registry_version VALUES (true, 0);

CREATE TABLE voicebroker.orgs (
    id               text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    tier             text        NOT NULL,
    rate_per_minute  integer     NOT NULL DEFAULT 0,
    allow_demo_rooms boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

CREATE TABLE voicebroker.secret_keys (
    org_id       text        NOT NULL REFERENCES voicebroker.orgs (id) ON DELETE CASCADE,
    id           text        NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    seq          bigint      GENERATED ALWAYS AS IDENTITY,
    hash         text        NOT NULL UNIQUE CHECK (hash ~ '^sha256:[0-9a-f]{64}$'),
    scopes       text[]      NOT NULL,
    allowed_ips  text[]      NOT NULL DEFAULT '{}',
    expires_at   timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    PRIMARY KEY (org_id, id)
);

-- An agent as its tenants-file stanza (JSON with the file's field names),
-- without publishable keys: fields the file gains later need no migration,
-- and validation stays the file's.
CREATE TABLE voicebroker.agents (
    org_id     text        NOT NULL REFERENCES voicebroker.orgs (id) ON DELETE CASCADE,
    id         text        NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    seq        bigint      GENERATED ALWAYS AS IDENTITY,
    spec       jsonb       NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE voicebroker.publishable_keys (
    org_id     text        NOT NULL,
    agent_id   text        NOT NULL,
    id         text        NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    seq        bigint      GENERATED ALWAYS AS IDENTITY,
    hash       text        NOT NULL UNIQUE CHECK (hash ~ '^sha256:[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, agent_id, id),
    FOREIGN KEY (org_id, agent_id) REFERENCES voicebroker.agents (org_id, id) ON DELETE CASCADE
);

-- An (issuer, audience) pair belongs to one org: a backend JWT must never
-- authenticate as another org. issuer and audience hold the canonical forms
-- (config.CanonicalIdentifier: every spelling of one URL is one issuer);
-- spec holds the issuer as written.
CREATE TABLE voicebroker.jwt_issuers (
    org_id   text    NOT NULL REFERENCES voicebroker.orgs (id) ON DELETE CASCADE,
    position integer NOT NULL,
    issuer   text    NOT NULL,
    audience text    NOT NULL,
    spec     jsonb   NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
    PRIMARY KEY (org_id, position),
    UNIQUE (issuer, audience)
);

-- An org's own LiveKit project. The API key is unique: webhooks find their
-- org's secret by it.
CREATE TABLE voicebroker.livekit_projects (
    org_id         text        PRIMARY KEY REFERENCES voicebroker.orgs (id) ON DELETE CASCADE,
    url            text        NOT NULL,
    api_key        text        NOT NULL UNIQUE,
    secret_sealed  text        NOT NULL CHECK (secret_sealed LIKE 'v1:%'),
    secret_key_id  text        NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- Who changed what, when, with which request. No foreign key: the trail
-- outlives what it describes.
CREATE TABLE voicebroker.audit_events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text        NOT NULL,
    request_id text        NOT NULL DEFAULT '',
    org_id     text        NOT NULL DEFAULT '',
    action     text        NOT NULL,
    target     text        NOT NULL DEFAULT '',
    detail     jsonb
);
CREATE INDEX audit_events_org ON voicebroker.audit_events (org_id, id DESC);

package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/voicebroker/voicebroker/internal/registry"
)

// conflicts names the unique constraints a write may hit, by what they
// mean; the database's own detail (which quotes the values, hashes
// included) is never passed on.
var conflicts = map[string]string{
	"orgs_pkey":                       "org id",
	"secret_keys_pkey":                "key id",
	"secret_keys_hash_key":            "key hash",
	"agents_pkey":                     "agent id",
	"publishable_keys_pkey":           "publishable key id",
	"publishable_keys_hash_key":       "publishable key hash",
	"jwt_issuers_issuer_audience_key": "jwt_issuers: the issuer and audience are registered for another org",
	"livekit_projects_api_key_key":    "livekit.api_key: the API key is another org's project",
	"livekit_projects_pkey":           "LiveKit project",
}

// dbError turns a pgx error into the registry's: a unique violation is
// registry.ErrConflict naming what is taken, a missing parent
// registry.ErrNotFound, anything else registry.ErrUnavailable with the
// SQLSTATE. The text never quotes a value from the database.
func dbError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: the database did not answer in time", registry.ErrUnavailable)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			what := conflicts[pe.ConstraintName]
			if what == "" {
				what = "a unique value"
			}
			return fmt.Errorf("%w: %s", registry.ErrConflict, what)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%w: the org or agent is gone", registry.ErrNotFound)
		}
		// The message may quote an input value: keep only the code.
		return &dbErr{code: pe.Code}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.ErrNotFound
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return &dbErr{msg: "unreachable (" + oe.Err.Error() + ")"}
	}
	return &dbErr{msg: "unreachable"}
}

// dbErr is a database failure: registry.ErrUnavailable with the SQLSTATE,
// never the server's message or detail (which may quote values).
type dbErr struct{ code, msg string }

func (e *dbErr) Error() string {
	if e.code == "" {
		return registry.ErrUnavailable.Error() + ": the database is " + e.msg
	}
	return registry.ErrUnavailable.Error() + ": database error SQLSTATE " + e.code
}

func (e *dbErr) Unwrap() error { return registry.ErrUnavailable }

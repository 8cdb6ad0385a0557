package postgres_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/postgres"
	"github.com/voicebroker/voicebroker/internal/registry/registrytest"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// An import that changes many orgs with long ids names them in its
// notification only while the payload stays under PostgreSQL's limit
// (8000 bytes); past it, the whole import used to fail in pg_notify.
func TestImportOfManyLongOrgIDsNotifies(t *testing.T) {
	db := testenv.PostgresURL(t)
	a := open(t, db, nil)
	var b strings.Builder
	b.WriteString("orgs:\n")
	const n = 150
	id := func(i int) string { return fmt.Sprintf("org-%03d-%s", i, strings.Repeat("x", 55)) } // 63 characters
	for i := range n {
		fmt.Fprintf(&b, "  - id: %s\n    tier: free\n", id(i))
	}
	f, err := registry.ParseFile([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := a.Import(context.Background(), f)
	if err != nil {
		t.Fatalf("import of %d orgs with 63-character ids: %v", n, err)
	}
	if len(rep.Created) != n {
		t.Fatalf("created %d orgs, want %d", len(rep.Created), n)
	}
	registrytest.WaitFor(t, a, "every imported org in force", func(ten *config.Tenants) bool {
		return ten.Org(id(0)) != nil && ten.Org(id(n-1)) != nil && len(ten.Orgs()) == n
	})
}

// An org a replica had to leave out of its snapshot (here: the issuer key
// file its tenants-file import names could not be read when the replica
// loaded it) is tried again at the next full refresh, rather than staying
// out until its rows change or the replica restarts.
func TestLeftOutOrgIsRetriedAtRefresh(t *testing.T) {
	db := testenv.PostgresURL(t)
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "issuer.pem")
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(keyPath, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := registry.ParseFile([]byte(`
orgs:
  - id: acme
    tier: free
    jwt_issuers:
      - issuer: https://auth.acme.example
        audience: voicebroker
        public_key_file: ` + keyPath + `
        scopes: [tokens:create]
    agents:
      - id: bot
        channels: [chat]
`))
	if err != nil {
		t.Fatal(err)
	}
	a := open(t, db, nil)
	if _, err := a.Import(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	registrytest.WaitFor(t, a, "acme in force on a", func(ten *config.Tenants) bool { return ten.Org("acme") != nil })

	// The file is away (a volume not mounted yet) when b loads.
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	b := open(t, db, func(o *postgres.Options) { o.Refresh = 100 * time.Millisecond })
	if b.Current().Org("acme") != nil {
		t.Fatal("acme in force on b without its issuer key")
	}
	// It is back: b's next refresh takes acme in.
	if err := os.WriteFile(keyPath, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	registrytest.WaitFor(t, b, "acme in force on b once its issuer key is readable", func(ten *config.Tenants) bool {
		return ten.Org("acme") != nil && agentOfOrg(ten, "acme", "bot")
	})
}

func agentOfOrg(t *config.Tenants, org, agent string) bool {
	o := t.Org(org)
	return o != nil && o.Agent(agent) != nil
}

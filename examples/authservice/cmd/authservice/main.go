// Command authservice runs the example auth service:
//
//	AUTH_PUBLIC_KEY=auth_public_key.pem AUTH_TOKENS='user-token-1:acme,user-token-2:globex' \
//	ADDR=127.0.0.1:3001 go run ./examples/authservice/cmd/authservice
//
// and the broker with AUTH_SERVICE_URL=http://127.0.0.1:3001/auth and
// AUTH_SIGNING_KEY_PATH=auth_private_key.pem.
package main

import (
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/voicebroker/voicebroker/examples/authservice"
)

func main() {
	data, err := os.ReadFile(os.Getenv("AUTH_PUBLIC_KEY"))
	if err != nil {
		log.Fatalf("AUTH_PUBLIC_KEY: %v", err)
	}
	pub, err := authservice.ParsePublicKeyPEM(data)
	if err != nil {
		log.Fatalf("AUTH_PUBLIC_KEY: %v", err)
	}
	tokens := map[string]string{}
	for _, pair := range strings.Split(os.Getenv("AUTH_TOKENS"), ",") {
		if tok, org, ok := strings.Cut(pair, ":"); ok {
			tokens[tok] = org
		}
	}
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:3001"
	}
	mux := http.NewServeMux()
	mux.Handle("/auth", &authservice.Service{PublicKey: pub, Tokens: tokens})
	log.Printf("auth service on http://%s/auth (%d tokens)", addr, len(tokens))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

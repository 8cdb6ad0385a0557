package token_test

import (
	"fmt"
	"time"

	"github.com/voicebroker/voicebroker/pkg/token"
)

func Example() {
	key, _ := token.GenerateKey(token.EdDSA)
	issuer, _ := token.NewIssuer(key, "https://broker.example", time.Minute)
	signed, minted, _ := issuer.Mint(token.Ticket{Org: "acme", Agent: "florencia", Channel: "webrtc", Identity: "caller-1"})

	verifier, _ := token.NewVerifier("https://broker.example", []*token.Key{key}, nil, token.DefaultLeeway)
	claims, err := verifier.Verify(signed)
	fmt.Println(err, claims.Org, claims.Agent, claims.Channel, claims.Subject, string(claims.Metadata), claims.ID == minted.ID)

	_, err = verifier.Verify(signed + "x")
	fmt.Println(err != nil)
	// Output:
	// <nil> acme florencia webrtc caller-1 {} true
	// true
}

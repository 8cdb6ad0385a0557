package token_test

import (
	"errors"
	"fmt"
	"strings"
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

// ExampleDPoPVerifier binds a ticket to a client's key and checks the proof
// that comes with it, as /connect does.
func ExampleDPoPVerifier() {
	// The client's key pair; a browser makes it with WebCrypto and sends
	// its thumbprint as dpop_jkt when the ticket is minted.
	client, _ := token.GenerateKey(token.ES256)
	jkt := client.ID()

	key, _ := token.GenerateKey(token.EdDSA)
	issuer, _ := token.NewIssuer(key, "https://broker.example", time.Minute)
	signed, _, _ := issuer.Mint(token.Ticket{Org: "acme", Agent: "florencia", Channel: "webrtc", JKT: jkt})

	// At /connect: the ticket, then the proof from the DPoP header.
	verifier, _ := token.NewVerifier("https://broker.example", []*token.Key{key}, nil, token.DefaultLeeway)
	claims, _ := verifier.Verify(signed)
	dpop, _ := token.NewDPoPVerifier("https://broker.example/connect")
	proof, _ := token.NewDPoPProof(client, "POST", "https://broker.example/connect", time.Now())

	p, err := dpop.Verify(proof, "POST")
	fmt.Println(err, claims.JKT() == jkt, p.Confirms(claims))
	// The caller then stores p.ReplayKey() once, for dpop.ReplayTTL().
	fmt.Println(strings.HasPrefix(p.ReplayKey(), "dpop:"+jkt+":"), dpop.ReplayTTL())

	_, err = dpop.Verify(proof, "GET")
	fmt.Println(errors.Is(err, token.ErrDPoPInvalid), err)
	// Output:
	// <nil> true true
	// true 2m5s
	// true dpop proof invalid: htm does not match the request method
}

// ExampleVerifier_CheckUnsigned redeems a ticket without checking its
// signature: the store keeps the ticket's record with its nonce at mint,
// and the redemption consumes the nonce only if the presented ticket has
// the same record. Anything else goes to Verify.
func ExampleVerifier_CheckUnsigned() {
	key, _ := token.GenerateKey(token.EdDSA)
	issuer, _ := token.NewIssuer(key, "https://broker.example", time.Minute)
	signed, minted, _ := issuer.Mint(token.Ticket{Org: "acme", Agent: "florencia", Channel: "webrtc"})
	kept := map[string]string{minted.ID: issuer.Record(signed)} // the store, at mint

	verifier, _ := token.NewVerifier("https://broker.example", []*token.Key{key}, nil, token.DefaultLeeway)
	redeem := func(ticket string) string {
		claims, record, err := verifier.CheckUnsigned(ticket)
		if err == nil && kept[claims.ID] == record { // in the store, compared and consumed in one step
			delete(kept, claims.ID)
			return "redeemed " + claims.Agent
		}
		if _, err := verifier.Verify(ticket); err != nil { // every refusal: the signature first
			return "invalid"
		}
		return "used"
	}
	forged := signed[:strings.LastIndexByte(signed, '.')+1] + strings.Repeat("A", 86)
	fmt.Println(redeem(forged))
	fmt.Println(redeem(signed))
	fmt.Println(redeem(signed))
	// Output:
	// invalid
	// redeemed florencia
	// used
}

package notify_test

import (
	"fmt"

	"github.com/porteiro/porteiro/internal/notify"
)

// A webhook receiver checks the signature over the raw body before it
// parses it.
func ExampleVerifySignature() {
	secret := []byte("hook-secret")
	body := []byte(`{"version":1,"host":"web1","alerts":[]}`)
	header := notify.Sign(secret, body) // what porteiro sends in X-Porteiro-Signature
	fmt.Println(header)
	fmt.Println(notify.VerifySignature(secret, body, header))
	fmt.Println(notify.VerifySignature(secret, append(body, ' '), header))
	// The value matches `printf %s "$body" | openssl dgst -sha256 -hmac hook-secret`.
	// Output:
	// sha256=26e8c9283cc2e2204eff4c08c0e972688983caf4bc4d77746581a88f05c0b2d5
	// true
	// false
}

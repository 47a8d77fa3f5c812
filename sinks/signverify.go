package sinks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrSignatureMismatch is what VerifyStandard returns when no signature of the header
// was made with the secret.
var ErrSignatureMismatch = errors.New("no webhook-signature matches the secret")

// VerifyStandard checks a request the way a Standard Webhooks receiver holding secret
// does: header is the webhook-signature value, a space-separated list of "v1,<base64>"
// signatures (one per secret the sender signs with, during a rotation), and the request
// verifies when one of them is the HMAC-SHA256 of msgID "." timestamp "." body keyed
// with StandardKey(secret). Entries of another version are skipped. It is written apart
// from the signer, so that tests of the signer do not check it against itself; it does
// not judge the timestamp's age, which a receiver must also bound.
func VerifyStandard(secret, msgID, timestamp string, body []byte, header string) error {
	key, err := StandardKey(secret)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID + "." + timestamp + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, entry := range strings.Fields(header) {
		sig, ok := strings.CutPrefix(entry, "v1,")
		if !ok {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("webhook-id %s: %w", msgID, ErrSignatureMismatch)
}

package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/aadsshlogin/handler/failure"
)

// fuzzDecrypter derives the "plaintext" from the ciphertext, so the fuzzer
// also reaches the plaintext checks: it returns the DER bytes as they are.
type fuzzDecrypter struct{}

func (fuzzDecrypter) Decrypt(_ context.Context, der []byte, tp string) ([]byte, error) {
	if len(der) > 0 && der[0] == 'E' {
		return nil, errors.New("decrypt failed")
	}
	return der, nil
}

func FuzzParseSettings(f *testing.F) {
	f.Add([]byte(`{"runtimeSettings":[{"handlerSettings":{"publicSettings":{},"protectedSettings":null,"protectedSettingsCertThumbprint":null}}]}`))
	f.Add([]byte(`{"runtimeSettings":[{"handlerSettings":{"publicSettings":null,"protectedSettings":"eyJhIjoxfQ==","protectedSettingsCertThumbprint":"0123456789ABCDEF0123456789ABCDEF01234567"}}]}`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, dec := range []Decrypter{nil, fuzzDecrypter{}} {
			hs, err := ParseSettings(data, dec)
			if err != nil {
				if failure.CodeOf(err) != failure.BadSettings {
					t.Fatalf("error with code %v: %v", failure.CodeOf(err), err)
				}
				continue
			}
			if !hs.Found {
				t.Fatal("parsed settings not marked Found")
			}
			if hs.Public != nil && !isJSONObject(hs.Public) {
				t.Fatalf("Public is not an object: %q", hs.Public)
			}
			protected, err := hs.Protected(context.Background())
			if err != nil {
				if failure.CodeOf(err) != failure.BadSettings {
					t.Fatalf("protected settings error with code %v: %v", failure.CodeOf(err), err)
				}
				continue
			}
			if protected != nil && !isJSONObject(protected) {
				t.Fatalf("Protected is not an object: %q", protected)
			}
			if (protected != nil) != hs.HasProtected() {
				t.Fatalf("Protected %q but HasProtected %v", protected, hs.HasProtected())
			}
		}
	})
}

func FuzzParseEnvironment(f *testing.F) {
	f.Add([]byte(realEnvironment))
	f.Add([]byte(`[{"handlerEnvironment":{"logFolder":"/l","configFolder":"/c","statusFolder":"/s","eventsFolder_preview":"/e"}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvironment(data)
		if err != nil {
			if failure.CodeOf(err) != failure.BadEnvironment {
				t.Fatalf("error with code %v: %v", failure.CodeOf(err), err)
			}
			return
		}
		if env.LogFolder == "" || env.ConfigFolder == "" || env.StatusFolder == "" {
			t.Fatalf("required folder empty: %+v", env)
		}
	})
}

package imds

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/failure"
)

const (
	vmID   = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
	vmssID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss1"
	uaiID  = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/build-agent"
)

// jwt builds an unsigned token whose payload holds claims.
func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"typ":"JWT","alg":"RS256"}`)) + "." + enc(payload) + ".c2lnbmF0dXJl"
}

func tokenAnswer(t *testing.T, mirid string) string {
	claims := map[string]any{"aud": SignInResource, "oid": "11111111-1111-1111-1111-111111111111"}
	if mirid != "" {
		claims["xms_mirid"] = mirid
	}
	body, _ := json.Marshal(map[string]string{"access_token": jwt(t, claims), "token_type": "Bearer"})
	return string(body)
}

func TestTokenIdentity(t *testing.T) {
	for _, c := range []struct {
		name  string
		token string
		kind  IdentityKind
		id    string
	}{
		{"vm", jwt(t, map[string]any{"xms_mirid": vmID}), IdentitySystemAssigned, vmID},
		{"scale set", jwt(t, map[string]any{"xms_mirid": vmssID}), IdentitySystemAssigned, vmssID},
		{"user-assigned", jwt(t, map[string]any{"xms_mirid": uaiID}), IdentityUserAssigned, uaiID},
		{"user-assigned, lower case", jwt(t, map[string]any{"xms_mirid": strings.ToLower(uaiID)}), IdentityUserAssigned, strings.ToLower(uaiID)},
		{"no claim", jwt(t, map[string]any{"oid": "x"}), IdentityUnverified, ""},
		{"not a JWT", "fake-access-token-for-tests", IdentityUnverified, ""},
		{"bad base64", "a.!!!.c", IdentityUnverified, ""},
		{"payload not JSON", "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c", IdentityUnverified, ""},
		{"claim not a string", jwt(t, map[string]any{"xms_mirid": 7}), IdentityUnverified, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			kind, id := TokenIdentity(c.token)
			if kind != c.kind || id != c.id {
				t.Errorf("got %s %q, want %s %q", kind, id, c.kind, c.id)
			}
		})
	}
}

func TestCheckIdentityAcceptsSystemAssigned(t *testing.T) {
	for _, id := range []string{vmID, vmssID} {
		c, _ := newTest(t, status(200, tokenAnswer(t, id)))
		if err := c.CheckIdentity(context.Background(), time.Minute, time.Second); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// A VM with only a user-assigned identity gets a token for it when the
// request names no identity: that is exit 22 with a message saying why,
// after the same window as a missing identity.
func TestCheckIdentityRefusesUserAssignedOnly(t *testing.T) {
	c, f := newTest(t, status(200, tokenAnswer(t, uaiID)))
	err := c.CheckIdentity(context.Background(), 20*time.Millisecond, 5*time.Millisecond)
	wantCode(t, err, failure.NoManagedIdentity, `user-assigned identity "build-agent", which is not enough`)
	if !strings.Contains(failure.MessageOf(err), "az vm identity assign") {
		t.Errorf("no fix in %q", failure.MessageOf(err))
	}
	if n := f.calls.Load(); n != 5 {
		t.Errorf("%d calls, want 5 (the window applies)", n)
	}
}

// The system-assigned identity appearing during the window (IMDS switches
// from the user-assigned default to it) succeeds.
func TestCheckIdentitySystemAssignedAppears(t *testing.T) {
	c, _ := newTest(t, status(200, tokenAnswer(t, uaiID)), status(200, tokenAnswer(t, uaiID)), status(200, tokenAnswer(t, vmID)))
	if err := c.CheckIdentity(context.Background(), time.Minute, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestIdentityOnce(t *testing.T) {
	date := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	withDate := func(code int, body string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Date", date.Format(http.TimeFormat))
			status(code, body)(w)
		}
	}
	for _, c := range []struct {
		name string
		step func(http.ResponseWriter)
		code failure.Code
		kind IdentityKind
	}{
		{"system-assigned", withDate(200, tokenAnswer(t, vmID)), failure.OK, IdentitySystemAssigned},
		{"unverified token", withDate(200, tokenBody), failure.OK, IdentityUnverified},
		{"user-assigned only", withDate(200, tokenAnswer(t, uaiID)), failure.NoManagedIdentity, IdentityUserAssigned},
		{"missing", withDate(400, notFoundBody), failure.NoManagedIdentity, IdentityUnverified},
		{"server error", withDate(500, "{}"), failure.MetadataUnreachable, IdentityUnverified},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, f := newTest(t, c.step)
			a := cl.Identity(context.Background())
			if got := failure.CodeOf(a.Err); got != c.code {
				t.Errorf("code %d, want %d (%v)", got, c.code, a.Err)
			}
			if a.Kind != c.kind {
				t.Errorf("kind %s, want %s", a.Kind, c.kind)
			}
			if !a.Date.Equal(date) {
				t.Errorf("date %v, want %v", a.Date, date)
			}
			if c.code != failure.MetadataUnreachable {
				if n := f.calls.Load(); n != 1 {
					t.Errorf("%d requests, want 1", n)
				}
			}
		})
	}
}

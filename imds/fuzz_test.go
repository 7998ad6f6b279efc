package imds

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/aadsshlogin/handler/failure"
)

// answerTransport answers every request with one fixed status and body,
// without a network.
type answerTransport struct {
	status int
	body   []byte
}

func (a answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: a.status,
		Status:     http.StatusText(a.status),
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(bytes.NewReader(a.body)),
		Request:    r,
	}, nil
}

// hasAccessToken is the oracle for an accepted identity: the body is a JSON
// object with a non-empty string under "access_token". JSON object keys are
// matched as encoding/json matches struct fields: escapes decoded, case
// folded ("ACCess_token" counts), the last duplicate winning, a null
// leaving the value as it was.
func hasAccessToken(body []byte) bool {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return false
	}
	token := ""
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the opening brace
		return false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return false
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return false
		}
		if k, _ := key.(string); strings.EqualFold(k, "access_token") && string(value) != "null" {
			var s string
			if json.Unmarshal(value, &s) != nil {
				return false
			}
			token = s
		}
	}
	return token != ""
}

// FuzzAnswer feeds arbitrary IMDS answers (status code and body) through
// the client: the managed-identity check and the cloud lookup. Neither may
// panic; the identity check succeeds only on a 200 with an access token,
// reports "no identity" (22) only for a 400 that says so
// or a 200 whose token names a user-assigned identity, and everything else
// is "metadata service unreachable" (24).
func FuzzAnswer(f *testing.F) {
	f.Add(200, []byte(tokenBody))
	f.Add(400, []byte(notFoundBody))
	f.Add(400, []byte(`{"error":"invalid_request","error_description":"bad resource"}`))
	f.Add(500, []byte(`{"error":"unknown"}`))
	f.Add(200, []byte(`<html><body>this is not JSON</body></html>`))
	f.Add(200, []byte(`{"access_token":""}`))
	f.Add(200, []byte("AzurePublicCloud\n"))
	f.Add(404, []byte{})
	f.Add(200, []byte(`{"ACCess_token":"0"}`))
	f.Add(200, []byte(`{"acc\u0065ss_token":"x","access_token":""}`))
	f.Add(200, []byte(`{"access_token":"x","Access_Token":null}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			status = 100 + (status%900+900)%900
		}
		c := &Client{
			BaseURL: "http://169.254.169.254",
			HTTP: &retryablehttp.Client{
				HTTPClient: &http.Client{Transport: answerTransport{status: status, body: body}},
				RetryMax:   0,
				CheckRetry: retryablehttp.DefaultRetryPolicy,
				Backoff:    retryablehttp.DefaultBackoff,
			},
			Sleep: func(context.Context, time.Duration) error { return nil },
		}
		ctx := context.Background()

		err := c.CheckIdentity(ctx, 0, 0)
		tokenLike := status == 200 && hasAccessToken(body)
		switch code := failure.CodeOf(err); {
		case err == nil:
			if !tokenLike {
				t.Fatalf("identity accepted from HTTP %d %q", status, body)
			}
		case code == failure.NoManagedIdentity:
			if tokenLike && strings.Contains(failure.MessageOf(err), "user-assigned identity") {
				break // a token for a user-assigned identity only
			}
			if status != 400 || !strings.Contains(strings.ToLower(string(body)), "identity not found") {
				t.Fatalf("\"no identity\" from HTTP %d %q", status, body)
			}
		case code == failure.MetadataUnreachable:
			msg := failure.MessageOf(err)
			if !strings.Contains(msg, "169.254.169.254") {
				t.Fatalf("message does not name IMDS: %q", msg)
			}
		default:
			t.Fatalf("code %d: %v", code, err)
		}

		env, err := c.AzEnvironment(ctx)
		if err != nil {
			if failure.CodeOf(err) != failure.MetadataUnreachable || status == 200 {
				t.Fatalf("AzEnvironment on HTTP %d: %v", status, err)
			}
		} else if env != strings.TrimSpace(env) || len(env) > maxBody {
			t.Fatalf("AzEnvironment %q not trimmed or too long", env)
		}
	})
}

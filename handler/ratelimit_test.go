package handler

import (
	"strings"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/handler/agent"
	"github.com/aadsshlogin/handler/throttle"
)

func TestRateLimitSubstatus(t *testing.T) {
	r := &run{}
	if _, ok := r.rateLimitSubstatus(agent.Warning); ok {
		t.Error("a substatus without any wait")
	}
	r.waits = &throttle.Log{}
	if _, ok := r.rateLimitSubstatus(agent.Warning); ok {
		t.Error("a substatus with an empty log")
	}
	r.waits.Add(throttle.Wait{Source: "apt: refresh the package list", Status: 429, Delay: 12 * time.Second})
	r.waits.Add(throttle.Wait{Source: "GET https://packages.microsoft.com/keys/microsoft.asc", Status: 429, Delay: 3 * time.Second})
	sub, ok := r.rateLimitSubstatus(agent.Warning)
	if !ok || sub.Name != "RateLimit" || sub.Status != agent.Warning {
		t.Fatalf("substatus %+v", sub)
	}
	for _, want := range []string{"aadsshlogin was installed", "waited 2 times (15 s in all)", "HTTP 429 Too Many Requests", "4,000 requests per 5 minutes"} {
		if !strings.Contains(sub.Message, want) {
			t.Errorf("message %q lacks %q", sub.Message, want)
		}
	}
	if sub, _ := r.rateLimitSubstatus(agent.Error); strings.Contains(sub.Message, "was installed") || sub.Status != agent.Error {
		t.Errorf("failure substatus %+v", sub)
	}
}

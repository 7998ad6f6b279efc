package faults

import (
	"strings"
	"testing"

	"github.com/aadsshlogin/handler/test/agentsim"
	"github.com/aadsshlogin/handler/test/sandbox"
)

// TestRateLimit: packages.microsoft.com answers 429 Too Many Requests (its
// rate limit, with Retry-After) or 503 Service Unavailable to one kind of
// request for a while. The handler waits within its budget and converges,
// and the status says it waited; when the answers never end it fails with
// the rate limit named and the machine unchanged.
func TestRateLimit(t *testing.T) {
	// Requests one run of the package manager makes for one file that keeps
	// answering 429/503, its own retries included (recorded in
	// installer/pkgmgr/testdata/throttle/): one more than that makes the
	// handler's own retry necessary.
	// apt's Refresh runs apt-get update twice when the first run reports a
	// problem (the second with our source alone): 8 requests.
	perRun := map[string]int{"debian-12": 4, "rhel-9.4": 4, "sles-15.6": 1}
	perRefresh := map[string]int{"debian-12": 8, "rhel-9.4": 4, "sles-15.6": 1}
	metadata := map[string]string{"debian-12": "/dists/", "rhel-9.4": "/repodata/", "sles-15.6": "/repodata/"}
	pkg := map[string]string{"debian-12": ".deb", "rhel-9.4": ".rpm", "sles-15.6": ".rpm"}
	pm := map[string]string{"debian-12": "apt", "rhel-9.4": "dnf", "sles-15.6": "zypper"}

	// converges injects b and requires the first goal state to succeed
	// with a RateLimit substatus naming the answer, and b to have answered
	// every one of its Count requests.
	converges := func(b *sandbox.Burst, answer string) func(t *testing.T, f *fx) {
		return func(t *testing.T, f *fx) {
			f.Net.Repo.SetOptions(sandbox.RepoOptions{Bursts: []*sandbox.Burst{b}})
			res, exit := f.apply(0, f.pinned(), agentsim.Enable)
			if exit != 0 {
				t.Fatalf("install did not converge: %v", res)
			}
			f.wantHealthy(0)
			if b.Answered() != b.Count {
				t.Errorf("the repository answered %d of %d requests with %d", b.Answered(), b.Count, b.Status)
			}
			msg := substatus(f.Status(f.h, 0), "RateLimit")
			if !strings.Contains(msg, "aadsshlogin was installed, but the extension first waited") || !strings.Contains(msg, answer) {
				t.Errorf("RateLimit substatus %q does not say that the install waited after %s", msg, answer)
			}
			f.Net.Repo.SetOptions(sandbox.RepoOptions{})
		}
	}
	// fails injects a burst that never ends and requires a clean failure
	// within the budget, naming the rate limit.
	fails := func(b *sandbox.Burst, want ...string) func(t *testing.T, f *fx) {
		return func(t *testing.T, f *fx) {
			f.Net.Repo.SetOptions(sandbox.RepoOptions{Bursts: []*sandbox.Burst{b}})
			before := f.Root.Snapshot(t)
			res, exit := f.apply(0, f.pinned(), agentsim.Install)
			st := f.wantRefused(res, exit, 0, 20, before, want...)
			if sub := substatus(st, "RateLimit"); !strings.Contains(sub, "waited") {
				t.Errorf("RateLimit substatus %q does not say how long the install waited", sub)
			}
			for _, r := range res {
				if r.Verb == agentsim.Install && r.Duration > f.Agent.Timeout(agentsim.Install) {
					t.Errorf("install took %s, longer than the agent's timeout", r.Duration)
				}
			}
			f.Net.Repo.SetOptions(sandbox.RepoOptions{})
			f.recover(1)
		}
	}
	var cases []faultCase
	for _, d := range []string{"debian-12", "rhel-9.4"} {
		cases = append(cases,
			faultCase{
				Name: "key-429-" + d, Distro: d,
				Fault:  "the signing key download (/keys/) answers 429 with Retry-After: 2, twice",
				Expect: "the handler's HTTP client waits as told and converges; RateLimit substatus says it waited",
				Run:    converges(&sandbox.Burst{Match: []string{"/keys/"}, Status: 429, Count: 2, RetryAfter: "2"}, "HTTP 429"),
			},
			faultCase{
				Name: "metadata-429-" + d, Distro: d,
				Fault:  "repository metadata (" + metadata[d] + ") answers 429 with Retry-After: 1 to more requests than one " + pm[d] + " run makes",
				Expect: "the " + pm[d] + " refresh is re-run after a jittered wait and converges; RateLimit substatus says it waited",
				Run:    converges(&sandbox.Burst{Match: []string{metadata[d]}, Status: 429, Count: perRefresh[d] + 1, RetryAfter: "1"}, "HTTP 429"),
			},
			faultCase{
				Name: "package-429-" + d, Distro: d,
				Fault:  "package downloads (" + pkg[d] + ") answer 429 with Retry-After: 1 to more requests than one " + pm[d] + " run makes",
				Expect: "the install is re-run after a jittered wait and converges; RateLimit substatus says it waited",
				Run:    converges(&sandbox.Burst{Match: []string{pkg[d]}, Status: 429, Count: perRun[d] + 1, RetryAfter: "1"}, "HTTP 429"),
			},
			faultCase{
				Name: "503-burst-" + d, Distro: d,
				Fault:  "the first 3 requests of any kind answer 503 without Retry-After",
				Expect: "jittered backoff, then converges; RateLimit substatus names the 503s",
				Run:    converges(&sandbox.Burst{Status: 503, Count: 3}, "HTTP 503"),
			},
		)
	}
	cases = append(cases,
		faultCase{
			Name: "metadata-429-sles-15.6", Distro: "sles-15.6",
			Fault:  "repository metadata (/repodata/) answers 429 with Retry-After: 1, twice (zypper does not retry a 429 itself)",
			Expect: "the zypper refresh is re-run after a jittered wait and converges; RateLimit substatus says it waited",
			Run:    converges(&sandbox.Burst{Match: []string{"/repodata/"}, Status: 429, Count: 2, RetryAfter: "1"}, "HTTP 429"),
		},
		faultCase{
			Name: "package-429-sles-15.6", Distro: "sles-15.6",
			Fault:  "package downloads (.rpm) answer 429 with Retry-After: 1, twice",
			Expect: "the zypper install is re-run after a jittered wait and converges; RateLimit substatus says it waited",
			Run:    converges(&sandbox.Burst{Match: []string{".rpm"}, Status: 429, Count: 2, RetryAfter: "1"}, "HTTP 429"),
		},
		faultCase{
			Name: "metadata-429-forever-debian-12", Distro: "debian-12", Waits: true,
			Fault:  "repository metadata (/dists/) answers 429 with Retry-After: 1 and never stops",
			Expect: "apt-get update re-run at most 6 times with growing jittered waits (at most 270 s), then exit 20 naming HTTP 429 and PMC's limit, within the agent's timeout; machine unchanged; next run succeeds",
			Run:    fails(&sandbox.Burst{Match: []string{"/dists/"}, Status: 429, Count: -1, RetryAfter: "1"}, "HTTP 429 Too Many Requests", "4,000 requests per 5 minutes", "gave up"),
		},
		faultCase{
			Name: "all-429-forever-rhel-9.4", Distro: "rhel-9.4",
			Fault:  "every request answers 429 with Retry-After: 1 and never stops",
			Expect: "the key download is retried 4 times as told, then exit 20 naming HTTP 429 and PMC's limit; nothing written; next run succeeds",
			Run:    fails(&sandbox.Burst{Status: 429, Count: -1, RetryAfter: "1"}, "HTTP 429 Too Many Requests", "4,000 requests per 5 minutes"),
		},
	)
	runCases(t, cases)
}

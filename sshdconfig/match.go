package sshdconfig

import "strings"

// Conn describes a connection for evaluating Match criteria, as the
// connection spec of "sshd -T -C user=…,host=…,addr=…" does.
type Conn struct {
	User    string
	Host    string
	Address string
}

// Matches evaluates Match criteria (all of which must hold) for conn.
// Group membership is unknown for a user that may not exist yet, so Group
// never matches; criteria that cannot be evaluated here (LocalAddress,
// LocalPort, RDomain, …) are assumed to match. nil criteria (the global
// section) match.
func (conn Conn) Matches(criteria []Criterion) bool {
	for _, c := range criteria {
		var ok bool
		switch c.Attr {
		case "all":
			ok = true
		case "user":
			ok = MatchList(c.Arg, conn.User, false)
		case "group":
			ok = false
		case "host":
			ok = MatchList(c.Arg, conn.Host, true)
		case "address":
			ok = MatchList(c.Arg, conn.Address, false)
		default:
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}

// MatchList applies an OpenSSH pattern list ("a*,!b?,c"): it matches when
// some positive pattern matches and no negated one does.
func MatchList(list, s string, fold bool) bool {
	if fold {
		list, s = strings.ToLower(list), strings.ToLower(s)
	}
	got := false
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if Wildcard(p, s) {
			if neg {
				return false
			}
			got = true
		}
	}
	return got
}

// Wildcard matches s against an OpenSSH pattern with * and ?.
func Wildcard(p, s string) bool {
	pr, sr := []rune(p), []rune(s)
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(sr) {
		switch {
		case pi < len(pr) && (pr[pi] == '?' || pr[pi] == sr[si]):
			pi++
			si++
		case pi < len(pr) && pr[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pr) && pr[pi] == '*' {
		pi++
	}
	return pi == len(pr)
}

package checks

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// FuzzPackageOpenSSHVersion: the version read from a package version
// string is exactly its leading "[epoch:]major.minor" (up to six digits
// each), and anything else is refused rather than guessed.
func FuzzPackageOpenSSHVersion(f *testing.F) {
	for _, s := range []string{"1:9.2p1-2+deb12u3", "8.7p1-38.el9", "7.4p1", "x:1.2", "1:", "9.", "1234567.2", "0009.0002"} {
		f.Add(s)
	}
	epochRE := regexp.MustCompile(`^[0-9]{1,6}$`)
	versionRE := regexp.MustCompile(`^([0-9]{1,6})\.([0-9]{1,6})`)
	f.Fuzz(func(t *testing.T, in string) {
		major, minor, ok := ParsePackageOpenSSHVersion(in)
		v, wantOK := in, true
		if epoch, rest, found := strings.Cut(in, ":"); found {
			wantOK = epochRE.MatchString(epoch)
			v = rest
		}
		m := versionRE.FindStringSubmatch(v)
		wantOK = wantOK && m != nil
		if ok != wantOK {
			t.Fatalf("%q: ok = %v, want %v", in, ok, wantOK)
		}
		if !ok {
			return
		}
		wantMajor, _ := strconv.Atoi(m[1])
		wantMinor, _ := strconv.Atoi(m[2])
		if major != wantMajor || minor != wantMinor {
			t.Fatalf("%q: %d.%d, want %d.%d", in, major, minor, wantMajor, wantMinor)
		}
	})
}

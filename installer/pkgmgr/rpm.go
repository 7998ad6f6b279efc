package pkgmgr

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/aadsshlogin/handler/failure"
	"github.com/aadsshlogin/handler/installer/keys"
)

// This file holds what all rpm-based back ends share: the rpm database
// queries and the signing-key handling.

// rpmInstalled asks rpm for the version-release of every name in one run
// (each start of rpm opens the whole database). rpm prints "package <name>
// is not installed" for each unknown name and exits with their number.
// Several versions can be installed at once (install-only packages); rpm
// lists them oldest first, so the last line of a name wins.
func (b *base) rpmInstalled(ctx context.Context, names ...string) (map[string]string, error) {
	versions := map[string]string{}
	if len(names) == 0 {
		return versions, nil
	}
	res, err := b.exec(ctx, nil, "rpm", append([]string{"-q", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"}, names...)...)
	if err != nil {
		return nil, err
	}
	missing := 0
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		line = strings.TrimSpace(line)
		if name, version, ok := strings.Cut(line, "\t"); ok {
			if slices.Contains(names, name) && version != "" {
				versions[name] = version
			}
		} else if strings.HasPrefix(line, "package ") && strings.HasSuffix(line, " is not installed") {
			missing++
		}
	}
	// rpm reports a broken database on stderr ("error: rpmdb: ...") and
	// may then call every package missing: that is not an answer.
	if res.ExitCode != 0 && (missing == 0 || strings.Contains(string(res.Stderr), "error:")) {
		return nil, commandCause("rpm -q "+strings.Join(names, " "), res)
	}
	return versions, nil
}

// rpmImportKey imports an armored public key into the rpm database, which
// dnf, yum, tdnf and zypper all consult for package signatures.
func (b *base) rpmImportKey(ctx context.Context, path string) error {
	res, err := b.exec(ctx, nil, "rpm", "--import", path)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return failure.New(failure.UntrustedKey, commandCause("rpm --import "+path, res),
			"Could not import the repository signing key %s into the rpm database: %s. Run 'sudo rpm --import %s' on the VM to see the full error.",
			path, strings.TrimSuffix(orDefault(decisiveLine(res.Combined()), "no output"), "."), path)
	}
	return nil
}

// rpmKeysQuery prints each gpg-pubkey pseudo-package's NVR and then its
// description, which holds the armored key: the only place rpm 4 keeps the
// whole key, and so the whole fingerprint.
var rpmKeysQuery = []string{"-q", "gpg-pubkey", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\\n%{DESCRIPTION}\\n"}

// rpmTrustedKeys maps the full fingerprint of every key in the rpm database
// to its gpg-pubkey NVR. Keys are told apart by their whole fingerprint:
// rpm 4 names the pseudo-package after the 32-bit short id only, and two
// keys can share one (a user's key must never be taken for ours).
func (b *base) rpmTrustedKeys(ctx context.Context) (map[string]string, error) {
	res, err := b.exec(ctx, nil, "rpm", rpmKeysQuery...)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		if strings.Contains(res.Combined(), "is not installed") {
			return map[string]string{}, nil // no keys at all
		}
		return nil, commandCause("rpm -q gpg-pubkey", res)
	}
	return parseRPMKeys(string(res.Stdout), b.log), nil
}

// parseRPMKeys reads rpmKeysQuery's output. An entry whose key cannot be
// parsed is left out (logged): it cannot be one of ours.
func parseRPMKeys(out string, log logrus.FieldLogger) map[string]string {
	keysByFP := map[string]string{}
	const end = "-----END PGP PUBLIC KEY BLOCK-----"
	for rest := out; ; {
		nvr, after, ok := strings.Cut(rest, "\n")
		if !ok {
			break
		}
		nvr = strings.TrimSpace(nvr)
		i := strings.Index(after, end)
		if i < 0 {
			break
		}
		block := after[:i+len(end)]
		rest = strings.TrimLeft(after[i+len(end):], "\n")
		if !strings.HasPrefix(nvr, "gpg-pubkey-") {
			continue
		}
		fps, err := keys.FingerprintsOf([]byte(block))
		if err != nil {
			log.WithError(err).WithField("key", nvr).Debug("cannot read a key of the rpm database")
			continue
		}
		for _, fp := range fps {
			keysByFP[fp] = nvr
		}
	}
	return keysByFP
}

// rpmRemoveKey erases the gpg-pubkey pseudo-package that holds the key
// with exactly this fingerprint, and nothing else.
func (b *base) rpmRemoveKey(ctx context.Context, fingerprint string) error {
	fp, ok := normalizeFingerprint(fingerprint)
	if !ok {
		return fmt.Errorf("removing rpm key: %q is not a 40-digit fingerprint", fingerprint)
	}
	trusted, err := b.rpmTrustedKeys(ctx)
	if err != nil {
		return err
	}
	nvr, ok := trusted[fp]
	if !ok {
		return nil
	}
	res, err := b.exec(ctx, nil, "rpm", "-e", nvr)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return failure.New(failure.PackageManagerFailed, commandCause("rpm -e "+nvr, res),
			"Could not remove the repository signing key %s from the rpm database: %s. Run 'sudo rpm -e %s' on the VM to see the full error.",
			nvr, strings.TrimSuffix(orDefault(decisiveLine(res.Combined()), "no output"), "."), nvr)
	}
	b.log.WithFields(logrus.Fields{"key": nvr, "fingerprint": fp}).Info("removed repository signing key from the rpm database")
	return nil
}

// normalizeFingerprint upper-cases a v4 fingerprint and drops spaces and
// colons; ok is false unless 40 hexadecimal digits remain.
func normalizeFingerprint(fp string) (string, bool) {
	var sb strings.Builder
	for _, r := range strings.ToUpper(fp) {
		switch {
		case r == ' ' || r == ':':
		case (r >= '0' && r <= '9') || (r >= 'A' && r <= 'F'):
			sb.WriteRune(r)
		default:
			return "", false
		}
	}
	return sb.String(), sb.Len() == 40
}

// installedOnly returns those names that rpm reports installed.
func (b *base) installedOnly(ctx context.Context, names []string) ([]string, error) {
	versions, err := b.rpmInstalled(ctx, names...)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if _, ok := versions[n]; ok {
			out = append(out, n)
		}
	}
	return out, nil
}

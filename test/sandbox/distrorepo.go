package sandbox

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aadsshlogin/handler/test/fixtures"
)

// DistroRepoAddr is where the distribution repository listens: its own
// loopback address, so that it can be taken down (connection refused)
// without touching the fake packages.microsoft.com.
const DistroRepoAddr = "127.0.0.3:80"

// DistroRepo is the distribution's own repository (fixtures.DistroSet),
// served over plain HTTP for fixtures.DistroHost. A test makes it answer
// with a status, slowly, or not at all.
type DistroRepo struct {
	Set *fixtures.DistroSet

	mu       sync.Mutex
	status   int
	delay    time.Duration
	requests int
	srv      *http.Server
	files    http.Handler
}

// StartDistroRepo serves set on DistroRepoAddr, inside the isolated child
// only, until the end of the test.
func StartDistroRepo(t testing.TB, set *fixtures.DistroSet) *DistroRepo {
	t.Helper()
	MustBeIsolated(t)
	d := &DistroRepo{Set: set, files: http.FileServer(http.Dir(set.WebRoot))}
	if err := d.listen(); err != nil {
		t.Fatalf("distribution repository: %v", err)
	}
	t.Cleanup(func() { _ = d.SetDown(true) })
	return d
}

func (d *DistroRepo) listen() error {
	ln, err := net.Listen("tcp", DistroRepoAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", DistroRepoAddr, err)
	}
	d.srv = &http.Server{Handler: d, ReadHeaderTimeout: 30 * time.Second}
	go func(s *http.Server) { _ = s.Serve(ln) }(d.srv)
	return nil
}

// SetDown stops answering (connection refused) or starts again.
func (d *DistroRepo) SetDown(down bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case down && d.srv != nil:
		err := d.srv.Close()
		d.srv = nil
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("stopping the distribution repository: %w", err)
		}
	case !down && d.srv == nil:
		return d.listen()
	}
	return nil
}

// SetStatus makes every answer this HTTP status (0: serve the files).
func (d *DistroRepo) SetStatus(code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status = code
}

// SetDelay delays every answer by delay.
func (d *DistroRepo) SetDelay(delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay = delay
}

// Requests is the number of requests answered so far.
func (d *DistroRepo) Requests() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests
}

func (d *DistroRepo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.requests++
	status, delay := d.status, d.delay
	d.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	d.files.ServeHTTP(w, r)
}

// Distribution repository definitions, as the distributions name theirs.
const (
	DistroAptList     = "/etc/apt/sources.list"
	DistroAptKeyring  = "/etc/apt/trusted.gpg.d/distro-test.gpg"
	DistroRepoID      = "distro-test"
	DistroYumRepo     = "/etc/yum.repos.d/distro-test.repo"
	DistroZypperRepo  = "/etc/zypp/repos.d/distro-test.repo"
	DistroRPMKey      = "/etc/pki/rpm-gpg/RPM-GPG-KEY-distro-test"
	distroHostAddress = "127.0.0.3"
)

// AddDistributionRepo configures d in the root the way the distribution
// does: its host in /etc/hosts, and for deb roots a source in
// /etc/apt/sources.list whose key is in apt's trusted keyrings; for rpm
// roots a repository file (dnf/yum/tdnf or zypper) with gpgcheck and its
// key imported into the rpm database. No metadata is downloaded.
func (r *Root) AddDistributionRepo(t testing.TB, d *DistroRepo) {
	t.Helper()
	hosts := r.ReadFile("/etc/hosts")
	if !strings.Contains(hosts, fixtures.DistroHost) {
		r.WriteFile("/etc/hosts", hosts+distroHostAddress+"\t"+fixtures.DistroHost+"\n", 0o644)
	}
	base := "http://" + fixtures.DistroHost
	if r.Spec.Family == "deb" {
		r.WriteFile(DistroAptKeyring, string(d.Set.KeyBinary), 0o644)
		r.WriteFile(DistroAptList, "deb "+base+"/debian "+fixtures.DistroAptSuite+" main\n", 0o644)
		return
	}
	r.WriteFile(DistroRPMKey, string(d.Set.KeyArmored), 0o644)
	if r.Spec.Manager == "zypper" {
		r.WriteFile(DistroZypperRepo, fmt.Sprintf("[%s]\nname=Distribution Test\nenabled=1\nautorefresh=1\nbaseurl=%s/rpm\ntype=rpm-md\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\n",
			DistroRepoID, base, DistroRPMKey), 0o644)
	} else {
		r.WriteFile(DistroYumRepo, fmt.Sprintf("[%s]\nname=Distribution Test\nbaseurl=%s/rpm\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\n",
			DistroRepoID, base, DistroRPMKey), 0o644)
	}
	r.MustExec(t, nil, "rpm", "--import", DistroRPMKey)
}

// rhelDnfConf is /etc/dnf/dnf.conf as RHEL 8, 9 and 10 (and Fedora) ship
// it: a repository that fails is an error (skip_if_unavailable=False), and
// an upgrade that cannot take the best candidate fails (best=True).
// Debian's dnf ships skip_if_unavailable=True and best=False, which would
// hide exactly the failures a distribution repository causes on RHEL.
const rhelDnfConf = `[main]
gpgcheck=1
installonly_limit=3
clean_requirements_on_remove=True
best=True
skip_if_unavailable=False
`

// writeRPMDefaults gives dnf/yum look-alikes their distribution's dnf.conf.
func (r *Root) writeRPMDefaults() error {
	switch r.Spec.Manager {
	case "dnf", "yum":
		return r.writeFile("/etc/dnf/dnf.conf", rhelDnfConf, 0o644)
	}
	return nil
}

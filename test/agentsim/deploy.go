package agentsim

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// handlerPattern is the agent's _HANDLER_PATTERN: "<Name>-<Version>" with
// no "-" in the name and a dotted-digits version.
const handlerPattern = `^([^-]+)-(\d+(?:\.\d+)*)`

// matchHandlerName splits "<Name>-<Version><suffix>" (nil if it does not match).
func matchHandlerName(s, suffix string) []string {
	return regexp.MustCompile(handlerPattern + regexp.QuoteMeta(suffix) + `$`).FindStringSubmatch(s)
}

// NameVersionFromZip reads handler name and version from a package file name
// "<Publisher>.<Type>-<Version>.zip".
func NameVersionFromZip(zipPath string) (name, version string, err error) {
	m := matchHandlerName(filepath.Base(zipPath), ".zip")
	if m == nil {
		return "", "", fmt.Errorf("zip name %q is not <Publisher>.<Type>-<Version>.zip", filepath.Base(zipPath))
	}
	return m[1], m[2], nil
}

// handlerFor builds the Handler for a package without touching the disk
// beyond reading an existing manifest copy.
func (a *Agent) handlerFor(zipPath, name, version string) (*Handler, error) {
	if name == "" || version == "" {
		n, v, err := NameVersionFromZip(zipPath)
		if err != nil {
			return nil, err
		}
		if name == "" {
			name = n
		}
		if version == "" {
			version = v
		}
	}
	if strings.Contains(name, "-") || strings.ContainsAny(name, "/") || name == "" {
		return nil, fmt.Errorf("handler name %q is not valid for the agent (no '-' or '/')", name)
	}
	if _, err := parseVersion(version); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(zipPath)
	if err != nil {
		return nil, fmt.Errorf("zip path %s: %w", zipPath, err)
	}
	h := &Handler{Name: name, Version: version, Dir: a.handlerDir(name, version), zip: abs}
	if m, err := a.loadManifest(h); err == nil {
		h.Manifest = m
	}
	return h, nil
}

// Deploy makes a handler version available as the agent does before its
// first command: HandlerState NotInstalled, the zip copied to
// <LibDir>/<Name>__<Version>.zip and extracted into <LibDir>/<Name>-<Version>/
// with Python-zipfile semantics, then initialize (u+x on every file, the
// manifest copy, status/config/log/events folders, HandlerEnvironment.json).
// Name and version come from the zip file name when empty. A version whose
// HandlerState is Installed or Enabled is never set up again (the agent does
// not re-download an installed handler); Deploy then only loads it.
func (a *Agent) Deploy(zipPath, name, version string) (*Handler, error) {
	h, err := a.handlerFor(zipPath, name, version)
	if err != nil {
		return nil, err
	}
	if st := a.State(h); st == Installed || st == Enabled {
		a.logf("%s is %s; not deployed again", h.FullName(), st)
		return h, nil
	}
	if err := a.setup(h); err != nil {
		return nil, err
	}
	return h, nil
}

// setup is the agent's __setup_new_handler without the settings: state
// NotInstalled, download (extract), initialize.
func (a *Agent) setup(h *Handler) error {
	a.logf("setting up %s", h.FullName())
	if err := a.setHandlerState(h, NotInstalled); err != nil {
		return err
	}
	if err := a.download(h); err != nil {
		return err
	}
	return a.initialize(h)
}

// download reuses an existing <Name>__<Version>.zip in LibDir if it
// extracts, else "downloads" (copies) the package, extracts it and deletes
// the zip, as the agent's download path does.
func (a *Agent) download(h *Handler) error {
	zipIn := a.zipPath(h.Name, h.Version)
	zipHost, err := a.hostPath(zipIn)
	if err != nil {
		return err
	}
	dirHost, err := a.hostPath(h.Dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(zipHost); err == nil {
		a.logf("using existing extension package %s", zipIn)
		if err := a.extract(zipHost, h.Dir); err == nil {
			return nil
		}
		a.logf("the existing extension package is invalid, will ignore it")
		_ = os.Remove(zipHost)
		_ = os.RemoveAll(dirHost)
	}
	if h.zip == "" {
		return fmt.Errorf("%s: no package to download", h.FullName())
	}
	if err := os.MkdirAll(filepath.Dir(zipHost), 0o755); err != nil {
		return fmt.Errorf("creating lib dir: %w", err)
	}
	if err := copyFile(h.zip, zipHost, 0o644, false); err != nil {
		return fmt.Errorf("downloading %s: %w", h.zip, err)
	}
	defer func() { _ = os.Remove(zipHost) }()
	if err := a.extract(zipHost, h.Dir); err != nil {
		_ = os.RemoveAll(dirHost)
		return fmt.Errorf("unzipping %s: %w", zipIn, err)
	}
	return nil
}

// sanitizeZipName is Python zipfile's member-name sanitation: backslashes
// are not separators on Linux; empty, "." and ".." components are dropped,
// so absolute names become relative and nothing escapes the target.
func sanitizeZipName(name string) string {
	var parts []string
	for _, p := range strings.Split(name, "/") {
		if p == "" || p == "." || p == ".." {
			continue
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "/")
}

// extract is zipfile.ZipFile(zip).extractall(dir): regular files and
// directories only; no mode bits are kept (new files 0644, dirs 0755;
// existing files are truncated and keep their mode); a symlink entry becomes
// a regular file holding the link target.
func (a *Agent) extract(zipHost, dir string) error {
	zr, err := zip.OpenReader(zipHost)
	if err != nil {
		return fmt.Errorf("opening %s: %w", zipHost, err)
	}
	defer zr.Close()
	dirHost, err := a.hostPath(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dirHost, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, f := range zr.File {
		rel := sanitizeZipName(f.Name)
		if rel == "" {
			continue
		}
		target, err := a.hostPath(path.Join(dir, rel))
		if err != nil {
			return err
		}
		if !within(dirHost, target) && a.Root == "" {
			return fmt.Errorf("zip entry %q resolves outside %s", f.Name, dir)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return fmt.Errorf("extracting %s: %w", f.Name, err)
		}
		if strings.HasSuffix(f.Name, "/") {
			if fi, err := os.Stat(target); err == nil && fi.IsDir() {
				continue
			}
			if err := os.Mkdir(target, 0o755); err != nil {
				return fmt.Errorf("extracting %s: %w", f.Name, err)
			}
			continue
		}
		if err := extractFile(f, target); err != nil {
			return err
		}
	}
	return nil
}

func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func extractFile(f *zip.File, target string) error {
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("extracting %s: %w", f.Name, err)
	}
	defer rc.Close()
	_, statErr := os.Stat(target)
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("extracting %s: %w", f.Name, err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := out.Chmod(0o644); err != nil {
			out.Close()
			return fmt.Errorf("extracting %s: %w", f.Name, err)
		}
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return fmt.Errorf("extracting %s: %w", f.Name, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("extracting %s: %w", f.Name, err)
	}
	return nil
}

// initialize is the agent's ExtHandlerInstance.initialize for a
// single-config handler.
func (a *Agent) initialize(h *Handler) error {
	dirHost, err := a.hostPath(h.Dir)
	if err != nil {
		return err
	}
	// u+x on every file (symlinks are skipped so nothing outside the
	// directory is touched; the extraction never creates any).
	var manifestFound string
	err = walkTopDown(dirHost, func(p string, d fs.DirEntry) error {
		if d.Type()&fs.ModeSymlink != 0 || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o100); err != nil {
			return fmt.Errorf("chmod u+x %s: %w", p, err)
		}
		if manifestFound == "" && d.Name() == "HandlerManifest.json" {
			manifestFound = p
		}
		return nil
	})
	if err != nil {
		return err
	}
	if manifestFound == "" {
		return &Error{Code: CodeUnknownFailure, Message: "[ExtensionDownloadError] HandlerManifest.json not found"}
	}
	raw, err := os.ReadFile(manifestFound)
	if err != nil {
		return fmt.Errorf("reading %s: %w", manifestFound, err)
	}
	raw = bytes.TrimPrefix(raw, []byte(utf8BOM))
	if err := os.WriteFile(filepath.Join(dirHost, "HandlerManifest.json"), raw, 0o644); err != nil {
		return fmt.Errorf("saving HandlerManifest.json: %w", err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return &Error{Code: 1003, Message: fmt.Sprintf("[ExtensionError] Malformed manifest file (%s).", path.Join(h.Dir, "HandlerManifest.json")), Err: err}
	}
	h.Manifest = m

	for _, d := range []string{path.Join(h.Dir, "status"), path.Join(h.Dir, "config")} {
		if err := a.mkdirMode(d, 0o700, true); err != nil {
			return err
		}
	}
	logDir := a.handlerLogDir(h.Name)
	if err := a.mkdirMode(logDir, 0o755, false); err != nil {
		return err
	}
	events := path.Join(logDir, "events")
	if err := a.mkdirMode(events, 0o700, true); err != nil {
		return err
	}
	return a.writeHandlerEnvironment(h)
}

// HandlerEnvironmentJSON returns the exact HandlerEnvironment.json the agent
// writes for h.
func (a *Agent) HandlerEnvironmentJSON(h *Handler) string {
	logDir := a.handlerLogDir(h.Name)
	events := path.Join(logDir, "events")
	env := []any{pyObject{
		{"name", h.Name},
		{"version", json.Number("1.0")},
		{"handlerEnvironment", pyObject{
			{"logFolder", logDir},
			{"configFolder", path.Join(h.Dir, "config")},
			{"statusFolder", path.Join(h.Dir, "status")},
			{"heartbeatFile", path.Join(h.Dir, "heartbeat.log")},
			{"eventsFolder", events},
			{"eventsFolder_preview", events},
		}},
	}}
	return pyDumps(env)
}

func (a *Agent) writeHandlerEnvironment(h *Handler) error {
	return a.writeFile(path.Join(h.Dir, "HandlerEnvironment.json"), []byte(a.HandlerEnvironmentJSON(h)))
}

// mkdirMode is the agent's fileutil.mkdir: makedirs with mode, and (when
// reset) chmod to mode even if the directory existed.
func (a *Agent) mkdirMode(dir string, mode os.FileMode, reset bool) error {
	hp, err := a.hostPath(dir)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(hp)
	if err := os.MkdirAll(hp, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if reset || statErr != nil {
		if err := os.Chmod(hp, mode); err != nil {
			return fmt.Errorf("chmod %s: %w", dir, err)
		}
	}
	return nil
}

// writeFile writes an agent-owned file (plain write, not atomic, like the
// agent's fileutil.write_file). New files get 0644.
func (a *Agent) writeFile(p string, data []byte) error {
	hp, err := a.hostPath(p)
	if err != nil {
		return err
	}
	if err := os.WriteFile(hp, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// walkTopDown visits the tree like Python's os.walk (top-down): the files of
// a directory first, then each subdirectory in turn; names are sorted so the
// "first match" is deterministic. Symlinked directories are not followed.
func walkTopDown(dir string, fn func(p string, d fs.DirEntry) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var dirs []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			dirs = append(dirs, p)
			continue
		}
		if err := fn(p, e); err != nil {
			return err
		}
	}
	for _, d := range dirs {
		if err := walkTopDown(d, fn); err != nil {
			return err
		}
	}
	return nil
}

// loadManifest reads <dir>/HandlerManifest.json, as the agent does before
// every command.
func (a *Agent) loadManifest(h *Handler) (Manifest, error) {
	p := path.Join(h.Dir, "HandlerManifest.json")
	hp, err := a.hostPath(p)
	if err != nil {
		return Manifest{}, err
	}
	raw, err := os.ReadFile(hp)
	if err != nil {
		return Manifest{}, &Error{Code: 1002, Message: fmt.Sprintf("[ExtensionError] Failed to load manifest file (%s)", p), Err: err}
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return Manifest{}, &Error{Code: 1003, Message: fmt.Sprintf("[ExtensionError] Malformed manifest file (%s).", p), Err: err}
	}
	return m, nil
}

// WriteSettings writes <dir>/config/<seq>.settings in the agent's shape with
// publicSettings = public (nil gives null) and null protected settings.
func (a *Agent) WriteSettings(h *Handler, seq int, public any) error {
	pub := "null"
	if public != nil {
		s, err := pyDumpsGo(public)
		if err != nil {
			return err
		}
		pub = s
	}
	body := `{"runtimeSettings": [{"handlerSettings": {"publicSettings": ` + pub +
		`, "protectedSettings": null, "protectedSettingsCertThumbprint": null}}]}`
	if err := a.mkdirMode(path.Join(h.Dir, "config"), 0o700, false); err != nil {
		return err
	}
	return a.writeFile(a.settingsPath(h, seq), []byte(body))
}

// WriteEmptySettings writes a 0-byte <seq>.settings (the agent's legacy
// "no settings" case uses seq 0).
func (a *Agent) WriteEmptySettings(h *Handler, seq int) error {
	if err := a.mkdirMode(path.Join(h.Dir, "config"), 0o700, false); err != nil {
		return err
	}
	return a.writeFile(a.settingsPath(h, seq), nil)
}

func (a *Agent) settingsPath(h *Handler, seq int) string {
	return path.Join(h.Dir, "config", strconv.Itoa(seq)+".settings")
}

// State returns the persisted HandlerState of h (NotInstalled when the file
// is missing or unreadable).
func (a *Agent) State(h *Handler) HandlerState {
	hp, err := a.hostPath(path.Join(h.Dir, "config", "HandlerState"))
	if err != nil {
		return NotInstalled
	}
	fi, err := os.Stat(hp)
	if err != nil || !fi.Mode().IsRegular() {
		return NotInstalled
	}
	b, err := os.ReadFile(hp)
	if err != nil {
		return NotInstalled
	}
	return HandlerState(b)
}

func (a *Agent) setHandlerState(h *Handler, st HandlerState) error {
	if err := a.mkdirMode(path.Join(h.Dir, "config"), 0o700, false); err != nil {
		return err
	}
	a.logf("%s: HandlerState := %s", h.FullName(), st)
	return a.writeFile(path.Join(h.Dir, "config", "HandlerState"), []byte(st))
}

// setHandlerStatus writes config/HandlerStatus like the agent.
func (a *Agent) setHandlerStatus(h *Handler, status, message string, code int) {
	body := pyDumps(pyObject{
		{"name", h.Name},
		{"version", h.Version},
		{"status", status},
		{"code", code},
		{"message", message},
		{"supports_multi_config", false},
		{"extension_status", nil},
	})
	dir := path.Join(h.Dir, "config")
	hp, err := a.hostPath(dir)
	if err != nil {
		return
	}
	if _, err := os.Stat(hp); err != nil {
		return
	}
	if err := a.writeFile(path.Join(dir, "HandlerStatus"), []byte(body)); err != nil {
		a.logf("writing HandlerStatus: %v", err)
	}
}

// HandlerStatus returns the raw config/HandlerStatus the agent wrote for h
// ("" if none).
func (a *Agent) HandlerStatus(h *Handler) string {
	hp, err := a.hostPath(path.Join(h.Dir, "config", "HandlerStatus"))
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(hp)
	if err != nil {
		return ""
	}
	return string(b)
}

// copyFile copies src to dst; with keep, mode and mtime are preserved like
// shutil.copy2.
func copyFile(src, dst string, mode os.FileMode, keep bool) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening %s: %w", src, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", src, err)
	}
	if keep {
		mode = fi.Mode().Perm()
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("creating %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying to %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", dst, err)
	}
	if keep {
		if err := os.Chmod(dst, mode); err != nil {
			return fmt.Errorf("chmod %s: %w", dst, err)
		}
		if err := os.Chtimes(dst, time.Now(), fi.ModTime()); err != nil {
			return fmt.Errorf("chtimes %s: %w", dst, err)
		}
	}
	return nil
}

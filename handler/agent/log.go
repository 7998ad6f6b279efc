package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// LogOptions configure OpenLog. Zero values mean the defaults.
type LogOptions struct {
	// FileName is the log file's name in the log folder; default
	// "handler.log".
	FileName string
	// MaxBytes is the size at which the file is rotated; default 4 MiB.
	MaxBytes int64
	// Keep is how many rotated files (.1 … .Keep) are kept; default 3.
	Keep int
	// Level is the minimum level logged; the zero value (PanicLevel)
	// means Info, since nobody wants a log of panics only.
	Level logrus.Level
}

const (
	defaultLogName  = "handler.log"
	defaultLogBytes = 4 << 20
	defaultLogKeep  = 3
)

// OpenLog opens the handler's log in logFolder, rotated by size so that the
// log folder never holds more than about (Keep+1)×MaxBytes of our logs. If
// the log cannot be opened it returns a logger that discards everything and
// the error, which the caller may print: an operation must never fail only
// because logging does.
func OpenLog(logFolder string, opts LogOptions) (*logrus.Logger, io.Closer, error) {
	if opts.FileName == "" {
		opts.FileName = defaultLogName
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = defaultLogBytes
	}
	if opts.Keep <= 0 {
		opts.Keep = defaultLogKeep
	}
	if opts.Level == logrus.PanicLevel {
		opts.Level = logrus.InfoLevel
	}
	log := logrus.New()
	log.SetLevel(opts.Level)
	log.SetFormatter(&logrus.TextFormatter{
		DisableColors:   true,
		FullTimestamp:   true,
		TimestampFormat: "2006-01-02T15:04:05.000Z07:00",
	})
	log.AddHook(pidHook{pid: os.Getpid()})

	if strings.ContainsRune(opts.FileName, '/') || opts.FileName == "." || opts.FileName == ".." {
		log.SetOutput(io.Discard)
		return log, nopCloser{}, fmt.Errorf("opening log: invalid file name %q", opts.FileName)
	}
	// The agent creates the log folder with 0755; match it if we have to.
	if err := os.MkdirAll(logFolder, 0o755); err != nil {
		log.SetOutput(io.Discard)
		return log, nopCloser{}, fmt.Errorf("opening log: %w", err)
	}
	w := &rotatingFile{path: filepath.Join(logFolder, opts.FileName), max: opts.MaxBytes, keep: opts.Keep}
	if err := w.open(); err != nil {
		log.SetOutput(io.Discard)
		return log, nopCloser{}, fmt.Errorf("opening log: %w", err)
	}
	log.SetOutput(w)
	return log, w, nil
}

// pidHook adds the process id to every entry: several handler processes
// (verbs of two versions during an update) write to the same file.
type pidHook struct{ pid int }

func (pidHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h pidHook) Fire(e *logrus.Entry) error {
	e.Data["pid"] = h.pid
	return nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// rotatingFile is an io.WriteCloser that rotates path to path.1 … path.keep
// when it would grow beyond max bytes.
//
// Write never returns an error: logrus prints write errors to stderr, and
// the agent puts our stderr into the status message users read. A log line
// that cannot be written is lost, nothing more.
type rotatingFile struct {
	path string
	max  int64
	keep int

	mu     sync.Mutex
	f      *os.File
	size   int64
	closed bool
}

// open opens (or creates) the file for appending, rotating first when it is
// already full and removing rotated files beyond keep, which a version with
// a larger Keep may have left.
func (r *rotatingFile) open() error {
	r.removeExtra()
	if info, err := os.Stat(r.path); err == nil && info.Size() >= r.max {
		r.shift()
	}
	return r.openCurrent()
}

func (r *rotatingFile) openCurrent() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", r.path, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("opening %s: %w", r.path, err)
	}
	r.f, r.size = f, info.Size()
	return nil
}

// shift renames path.(keep-1) → path.keep, …, path → path.1; the oldest file
// is overwritten by the rename and so removed. Errors are ignored: a failed
// rotation only means the file grows a little more until the next attempt.
func (r *rotatingFile) shift() {
	for i := r.keep - 1; i >= 1; i-- {
		_ = os.Rename(r.path+"."+strconv.Itoa(i), r.path+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		// Could not move it away: truncate rather than grow unbounded.
		_ = os.Truncate(r.path, 0)
	}
}

// removeExtra deletes rotated files numbered above keep.
func (r *rotatingFile) removeExtra() {
	matches, _ := filepath.Glob(r.path + ".*")
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, r.path+"."))
		if err == nil && n > r.keep {
			_ = os.Remove(m)
		}
	}
}

func (r *rotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	if r.closed {
		return n, nil
	}
	if r.f == nil {
		// An earlier rotation could not reopen the file; try again.
		if err := r.openCurrent(); err != nil {
			return n, nil
		}
	}
	// One entry larger than a whole file would break the size bound.
	if int64(len(p)) > r.max {
		cut := r.max - int64(len("…\n"))
		if cut < 0 {
			cut = 0
		}
		p = append(p[:cut:cut], "…\n"...)
		if int64(len(p)) > r.max {
			p = p[:r.max]
		}
	}
	r.refresh()
	if r.f == nil {
		return n, nil
	}
	if r.size > 0 && r.size+int64(len(p)) > r.max {
		_ = r.f.Close()
		r.f = nil
		r.shift()
		if err := r.openCurrent(); err != nil {
			return n, nil
		}
	}
	written, _ := r.f.Write(p)
	r.size += int64(written)
	return n, nil
}

// refresh follows another handler process's rotation: several processes
// (two versions' verbs during an update) may append to the same log. When
// path is no longer the file we hold, we reopen it; either way the size is
// taken from the file itself, which includes the other writers' lines.
func (r *rotatingFile) refresh() {
	cur, err := r.f.Stat()
	if err != nil {
		return
	}
	onDisk, err := os.Stat(r.path)
	if err != nil || !os.SameFile(cur, onDisk) {
		_ = r.f.Close()
		r.f = nil
		_ = r.openCurrent()
		return
	}
	r.size = cur.Size()
}

// Close closes the file; later writes are discarded.
func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	if err != nil {
		return fmt.Errorf("closing log: %w", err)
	}
	return nil
}

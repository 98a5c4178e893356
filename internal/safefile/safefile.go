// Package safefile opens and reads files named by users or by model files
// without trusting them: only regular files are read (a FIFO, a device such
// as /dev/zero or a folder is refused), opening never blocks (O_NONBLOCK:
// opening a FIFO with no writer would otherwise wait forever), and a whole
// file is read only after its size has been checked against a limit, so
// nothing is allocated for data that is not there or not allowed. Files of3c
// writes go through WriteAtomic (write.go): a temporary file renamed into
// place, removed on failure or interrupt, never replacing a non-regular file.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// TooLargeError reports a file or tensor larger than what may be read.
type TooLargeError struct {
	What  string // what is too large, e.g. the path
	Size  int64  // its size in bytes
	Limit int64  // the limit in bytes
	Why   string // what the limit is, e.g. "the available memory"
}

func (e *TooLargeError) Error() string {
	why := ""
	if e.Why != "" {
		why = " (" + e.Why + ")"
	}
	return fmt.Sprintf("%s: %d bytes, more than the %d bytes allowed%s", e.What, e.Size, e.Limit, why)
}

// Open opens path for reading if it is a regular file and returns it with
// its size. The open does not block, whatever path names.
func Open(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	size, err := checkRegular(f, path)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

// OpenIn is Open for a name inside root (os.Root keeps it there).
func OpenIn(root *os.Root, name string) (*os.File, int64, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	size, err := checkRegular(f, name)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

// ErrNotRegular is wrapped by the errors of Open, OpenIn and ReadFile for
// anything that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

func checkRegular(f *os.File, name string) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		kind := "a special file"
		switch m := st.Mode(); {
		case m.IsDir():
			kind = "a folder"
		case m&os.ModeNamedPipe != 0:
			kind = "a FIFO"
		case m&os.ModeDevice != 0:
			kind = "a device"
		case m&os.ModeSocket != 0:
			kind = "a socket"
		}
		return 0, fmt.Errorf("%s: %w (it is %s)", name, ErrNotRegular, kind)
	}
	return st.Size(), nil
}

// ReadFile reads a whole regular file of at most limit bytes (limit ≤ 0:
// no limit beyond the file's size). The buffer is allocated once, at the
// size the file has; a file that grows while it is read is read only up
// to that size.
func ReadFile(path string, limit int64, why string) ([]byte, error) {
	f, size, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if limit > 0 && size > limit {
		return nil, &TooLargeError{What: path, Size: size, Limit: limit, Why: why}
	}
	if int64(int(size)) != size {
		return nil, &TooLargeError{What: path, Size: size, Limit: int64(^uint(0) >> 1)}
	}
	buf := make([]byte, size)
	n, err := io.ReadFull(f, buf)
	if err != nil && !(err == io.ErrUnexpectedEOF || err == io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(n) != size {
		return nil, fmt.Errorf("%s: read %d bytes, the file had %d (it shrank while being read)", path, n, size)
	}
	return buf, nil
}

var (
	tempMu      sync.Mutex
	temps       = map[string]bool{}
	interrupted bool
)

// TrackTemp records a temporary file or folder that RemoveTemps removes
// (on SIGINT/SIGTERM, see of3c's main); the returned function forgets it
// once it has been renamed into place or removed.
func TrackTemp(path string) (forget func()) {
	tempMu.Lock()
	temps[path] = true
	tempMu.Unlock()
	return func() {
		tempMu.Lock()
		delete(temps, path)
		tempMu.Unlock()
	}
}

// RemoveTemps removes every tracked temporary file or folder, for a
// process about to exit on a signal: it keeps the registry locked, so a
// Rename racing with it waits (until the exit) instead of putting a file in
// place after its temporary was removed.
func RemoveTemps() {
	tempMu.Lock()
	interrupted = true
	for p := range temps {
		os.RemoveAll(p)
	}
	clear(temps)
}

// Rename moves a tracked temporary file or folder to its final path and
// forgets it, unless RemoveTemps has run.
func Rename(tmp, path string) error {
	tempMu.Lock()
	defer tempMu.Unlock()
	if interrupted {
		return errors.New("interrupted")
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	delete(temps, tmp)
	return nil
}

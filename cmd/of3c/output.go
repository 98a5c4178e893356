package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/of3c/of3c/internal/safefile"
)

// checkOutput validates an output path before any work is done: it must
// not be any of the command's inputs (the same file, by device and inode,
// whatever the path says), an existing path must be a regular file (a
// device node, FIFO or socket is never replaced; a folder only where
// dirOK: `run -o DIR`), and its folder must exist and accept a new file.
func checkOutput(out string, dirOK bool, inputs ...string) error {
	for _, in := range inputs {
		if in != "" && filepath.Clean(in) == filepath.Clean(out) {
			return fmt.Errorf("-o %s is the input %s; refusing to overwrite it", out, in)
		}
	}
	st, err := os.Stat(out)
	switch {
	case err == nil:
		if st.IsDir() && !dirOK {
			return fmt.Errorf("-o %s is a folder", out)
		}
		if !st.IsDir() && !st.Mode().IsRegular() {
			return fmt.Errorf("-o %s exists and is not a regular file; refusing to replace it", out)
		}
		for _, in := range inputs {
			if in == "" {
				continue
			}
			if ist, err := os.Stat(in); err == nil && os.SameFile(st, ist) {
				return fmt.Errorf("-o %s is the input %s; refusing to overwrite it", out, in)
			}
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("-o %s: %v", out, err)
	}
	// A symlink at out is replaced, not followed, by the atomic rename; its
	// target (checked above, through Stat) is untouched either way.
	dir := filepath.Dir(filepath.Clean(out))
	f, err := os.CreateTemp(dir, ".of3c-check-*")
	if err != nil {
		return fmt.Errorf("-o %s: cannot write in %s: %v", out, dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// cleanupOnSignal removes the temporary files of writes in progress
// (safefile.TrackTemp) when the process is interrupted or terminated, then
// exits with the shell's status for the signal (128 + its number).
func cleanupOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		safefile.RemoveTemps()
		code := 130
		if sig == syscall.SIGTERM {
			code = 143
		}
		os.Exit(code)
	}()
}

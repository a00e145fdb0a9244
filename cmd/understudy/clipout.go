package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// clipOutput is where `export -o` and `ctl export -o` write a clip: stdout
// for "-", otherwise a temporary file next to the target that becomes the
// target only once the whole clip is in it, so that a failed or interrupted
// export leaves neither a partial clip nor a temporary file behind.
//
// Only a new path, or with --force an existing regular file, is ever
// replaced: renaming over a device (/dev/null as root), a FIFO, a socket or
// a symbolic link would silently swap the thing itself for a file, and an
// existing clip is an operator's work.
type clipOutput struct {
	io.Writer
	path  string
	force bool
	tmp   *os.File // nil when writing to stdout
	done  bool     // commit or abort ran
}

// openClipOutput checks the target and opens the output: stdout when path
// is "-", a temporary file otherwise.
func openClipOutput(path string, force bool, stdout io.Writer) (*clipOutput, error) {
	if path == "-" {
		return &clipOutput{Writer: stdout, path: path}, nil
	}
	if err := checkClipTarget(path, force); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return nil, err
	}
	return &clipOutput{Writer: f, path: path, force: force, tmp: f}, nil
}

// toStdout says whether the clip goes to stdout (status lines then go to
// stderr).
func (o *clipOutput) toStdout() bool { return o.tmp == nil }

// checkClipTarget refuses a target that exists and is not a regular file,
// and a regular file unless force.
func checkClipTarget(path string, force bool) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	m := fi.Mode()
	switch {
	case m&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link: not replaced (give the path of the file itself)", path)
	case m.IsDir():
		return fmt.Errorf("%s is a directory: give the path of the clip file", path)
	case m&fs.ModeNamedPipe != 0:
		return fmt.Errorf("%s is a named pipe: not replaced (-o - writes the clip to stdout)", path)
	case m&fs.ModeSocket != 0:
		return fmt.Errorf("%s is a socket: not replaced", path)
	case m&fs.ModeDevice != 0:
		return fmt.Errorf("%s is a device: not replaced (-o - writes the clip to stdout)", path)
	case !m.IsRegular():
		return fmt.Errorf("%s is not a regular file (%s): not replaced", path, m.Type())
	case !force:
		return fmt.Errorf("%s exists: not replaced without --force", path)
	}
	return nil
}

// commit makes the complete clip the target. On error nothing is left
// behind but what was there before.
func (o *clipOutput) commit() (err error) {
	if o.tmp == nil || o.done {
		return nil
	}
	o.done = true
	tmp := o.tmp.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	err = o.tmp.Chmod(0o644)
	if err == nil {
		err = o.tmp.Sync()
	}
	if cerr := o.tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if !o.force {
		// link(2) never replaces: a file that appeared meanwhile stays.
		lerr := os.Link(tmp, o.path)
		if lerr == nil {
			os.Remove(tmp)
			return nil
		}
		if errors.Is(lerr, fs.ErrExist) {
			return fmt.Errorf("%s exists: not replaced without --force", o.path)
		}
		// A file system without hard links: check again and rename.
	}
	if err := checkClipTarget(o.path, o.force); err != nil {
		return err
	}
	return os.Rename(tmp, o.path)
}

// abort discards the temporary file; it is a no-op after commit.
func (o *clipOutput) abort() {
	if o.tmp == nil || o.done {
		return
	}
	o.done = true
	o.tmp.Close()
	os.Remove(o.tmp.Name())
}

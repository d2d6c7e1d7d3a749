package file

import (
	"errors"
	"os"
	"path/filepath"
)

// writeAtomic makes dir/name hold data, whole or not at all: write a temp
// file, fsync it, move it into place, fsync the directory. A reader or a
// crash sees the old content or the new, never a torn record.
//
// With exclusive the final step is link(2), which fails with
// fs.ErrExist when name exists: a second Begin of a deploy ID cannot
// overwrite the first, even from another process.
func writeAtomic(dir, name string, data []byte, exclusive bool) (err error) {
	// The temp name does not end in .json, so listings never read it.
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil || exclusive {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	final := filepath.Join(dir, name)
	if exclusive {
		err = os.Link(tmp, final)
	} else {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory, making the names created in it durable: a
// file's own fsync does not persist its directory entry.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirDurable creates dir and any missing parents up to stop, fsyncing
// each parent that gained an entry.
func mkdirDurable(dir, stop string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if dir != stop && parent != dir {
		if err := mkdirDurable(parent, stop); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(parent)
}

package pebblestore

import (
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// watchFS passes every call through to the filesystem below and puts the
// store in the failed state at the first error writing or syncing a WAL
// or MANIFEST file. Pebble treats those errors as fatal, and some of its
// code paths crash the process on them (see the package doc): noticing
// the error here, on Pebble's WAL flusher goroutine, stops the committer
// from handing Pebble another batch as early as possible, usually before
// Pebble's own commit path meets the error.
type watchFS struct {
	vfs.FS
	s *Store
}

func (fs watchFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil {
		fs.check(name, "create", err)
		return nil, err
	}
	return fs.wrap(name, f), nil
}

func (fs watchFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil {
		fs.check(newname, "reuse", err)
		return nil, err
	}
	return fs.wrap(newname, f), nil
}

// watched reports whether errors on name fail the store.
func watched(name string) bool {
	base := name[strings.LastIndexAny(name, `/\`)+1:]
	return strings.HasSuffix(base, ".log") || strings.HasPrefix(base, "MANIFEST-")
}

func (fs watchFS) check(name, op string, err error) {
	if err != nil && watched(name) {
		fs.s.fail(fmt.Errorf("%s %s: %w", op, name, err))
	}
}

func (fs watchFS) wrap(name string, f vfs.File) vfs.File {
	if !watched(name) {
		return f
	}
	return &watchFile{File: f, fs: fs, name: name}
}

type watchFile struct {
	vfs.File
	fs   watchFS
	name string
}

func (f *watchFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.fs.check(f.name, "write", err)
	return n, err
}

func (f *watchFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.fs.check(f.name, "write", err)
	return n, err
}

func (f *watchFile) Sync() error {
	err := f.File.Sync()
	f.fs.check(f.name, "sync", err)
	return err
}

func (f *watchFile) SyncData() error {
	err := f.File.SyncData()
	f.fs.check(f.name, "sync", err)
	return err
}

func (f *watchFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	f.fs.check(f.name, "sync", err)
	return full, err
}

func (f *watchFile) Preallocate(off, length int64) error {
	err := f.File.Preallocate(off, length)
	f.fs.check(f.name, "preallocate", err)
	return err
}

// FileOp is a file operation that Options.Fault may fail.
type FileOp uint8

const (
	FileWrite FileOp = iota + 1 // a write (Write, WriteAt)
	FileSync                    // an fsync (Sync, SyncData, SyncTo)
)

// faultInjector asks fault about every write and fsync that Pebble's
// errorfs reports; other operations pass.
func faultInjector(fault func(FileOp, string) error) errorfs.Injector {
	return errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileWrite, errorfs.OpFileWriteAt:
			return fault(FileWrite, op.Path)
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			return fault(FileSync, op.Path)
		}
		return nil
	})
}

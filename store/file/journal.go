package file

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"drover"
)

// Append writes e as one JSON line at the end of the deploy's journal and
// fsyncs it before returning. The runner journals a step before running
// it; if the entry were still in the page cache when the machine died,
// recovery would not know the host had been depooled, and it would stay
// out of rotation. An entry with no time is stamped with s.Now().
//
// Appending to a finished deploy is EINVALID: its outcome is already
// reported, and a late entry would contradict it.
func (s *Store) Append(ctx context.Context, deployID string, e drover.JournalEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return internal("encode journal entry", err)
	}
	line = append(line, '\n')

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	dd, err := s.deploysDir(deployID)
	if err != nil {
		return err
	}
	d, err := readRecord(dd, deployID)
	if err != nil {
		return err
	}
	if !d.Finished.IsZero() {
		return drover.Errorf(drover.EINVALID, "deploy %s finished (%s); its journal is closed", deployID, d.Outcome)
	}
	path := filepath.Join(dd, deployID+journalExt)
	if err := appendLine(path, line); err != nil {
		return internal("append to journal of "+deployID, err)
	}
	return nil
}

// AppendBatch journals es, in order, with one write and one fsync, and
// returns once all of them are on disk, as Append does for one. After a
// crash in the middle of the write, a prefix of the batch may survive (the
// cut line is dropped, as for Append), never a later entry without an
// earlier one.
func (s *Store) AppendBatch(ctx context.Context, deployID string, es []drover.JournalEntry) error {
	if len(es) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var lines []byte
	for _, e := range es {
		if e.At.IsZero() {
			e.At = s.now()
		}
		line, err := json.Marshal(e)
		if err != nil {
			return internal("encode journal entry", err)
		}
		lines = append(append(lines, line...), '\n')
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	dd, err := s.deploysDir(deployID)
	if err != nil {
		return err
	}
	d, err := readRecord(dd, deployID)
	if err != nil {
		return err
	}
	if !d.Finished.IsZero() {
		return drover.Errorf(drover.EINVALID, "deploy %s finished (%s); its journal is closed", deployID, d.Outcome)
	}
	if err := appendLine(filepath.Join(dd, deployID+journalExt), lines); err != nil {
		return internal("append to journal of "+deployID, err)
	}
	return nil
}

// appendLine appends line (ending in "\n") to the file at path and fsyncs.
func appendLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if isNotExist(err) {
		// Begin died between writing the record and the journal.
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
		if err == nil {
			err = syncDir(filepath.Dir(path))
		}
	}
	if err != nil {
		return err
	}
	err = writeLine(f, line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeLine appends line to f, which is open with O_APPEND, and fsyncs.
func writeLine(f *os.File, line []byte) error {
	size, err := cutPartialLine(f)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		// Take back a partial write (a full disk), so that the journal
		// does not end in a fragment the next line would follow.
		f.Truncate(size)
		return err
	}
	// If fsync fails the entry may or may not survive a crash; the error
	// tells the runner to stop rather than act on an unjournaled step.
	return f.Sync()
}

// cutPartialLine removes a final line without its newline — a write cut
// short by a crash, never acknowledged — so that the next entry starts on
// a line of its own instead of turning the fragment into corruption in the
// middle of the journal. It returns the resulting size.
func cutPartialLine(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return 0, err
	}
	if last[0] == '\n' {
		return size, nil
	}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, size))
	if err != nil {
		return 0, err
	}
	keep := int64(bytes.LastIndexByte(data, '\n') + 1)
	if err := f.Truncate(keep); err != nil {
		return 0, err
	}
	return keep, nil
}

// Journal returns the deploy's entries in order; ENOTFOUND when there is
// no such deploy. A final line without its newline is skipped: it is a
// write cut short by a crash, or one in progress right now, and in either
// case it was never acknowledged. A damaged line before the last is
// EINTERNAL: entries are missing, and recovery must not guess.
func (s *Store) Journal(ctx context.Context, deployID string) ([]drover.JournalEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dd, err := s.deploysDir(deployID)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dd, deployID+journalExt)
	data, err := os.ReadFile(path)
	if isNotExist(err) {
		return []drover.JournalEntry{}, nil
	}
	if err != nil {
		return nil, internal("read journal of "+deployID, err)
	}
	return parseJournal(path, data)
}

// parseJournal decodes the complete lines of a journal file.
func parseJournal(path string, data []byte) ([]drover.JournalEntry, error) {
	entries := []drover.JournalEntry{}
	for n := 1; ; n++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return entries, nil // nothing left, or a partial last line
		}
		var e drover.JournalEntry
		if err := json.Unmarshal(data[:i], &e); err != nil {
			return nil, (&drover.Error{Code: drover.EINTERNAL, Where: fmt.Sprintf("%s:%d", path, n), Message: "journal line is corrupt", Err: err}).
				WithHint("entries after a damaged line cannot be trusted; check the hosts of this deploy with `drover status` before resuming")
		}
		entries = append(entries, e)
		data = data[i+1:]
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"drover"
)

// migrations holds the schema changes, NNNN_name.sql, applied in order.
// A released file is never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded files in version order.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		b, err := migrations.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must run 1, 2, 3... without gaps", m.name)
		}
	}
	return out, nil
}

// migrate brings the database to the newest schema. The version is read
// first without a write lock, so that a database already up to date (every
// run but the first after an upgrade) is only read. Pending migrations are
// applied together with their schema_version rows in one transaction:
// BEGIN IMMEDIATE makes a second process starting at the same moment wait,
// then find the work done.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := loadMigrations()
	if err != nil {
		return internal("embedded migrations", err)
	}
	latest := len(ms)
	v, err := schemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if v == latest {
		return nil
	}
	if v > latest {
		return tooNew(v, latest)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return internal("begin migration", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ns INTEGER NOT NULL)`); err != nil {
		return internal("create schema_version", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return internal("read schema version", err)
	}
	if v > latest {
		return tooNew(v, latest)
	}
	for _, m := range ms[v:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return internal("apply migration "+m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_ns) VALUES (?, ?, strftime('%s','now') * 1000000000)`, m.version, m.name); err != nil {
			return internal("record migration "+m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return internal("commit migrations", err)
	}
	return nil
}

// schemaVersion returns the applied version; 0 for a new database.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).Scan(&n); err != nil {
		return 0, internal("open database", err)
	}
	if n == 0 {
		return 0, nil
	}
	var v int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, internal("read schema version", err)
	}
	return v, nil
}

func tooNew(have, know int) error {
	return (&drover.Error{Code: drover.EINTERNAL, Message: fmt.Sprintf("store: the database has schema version %d; this drover knows up to %d", have, know)}).
		WithHint("a newer drover wrote it: upgrade drover, or point state_dir elsewhere")
}

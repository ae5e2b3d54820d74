package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Reset deletes every checkpoint and savepoint in the state directory dir,
// so that the next Open starts from nothing. It removes only the store's own
// files and refuses while another process has the directory open. A
// missing dir is not an error.
func Reset(dir string) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	return removeStore(dir)
}

// removeStore removes the store's files from dir. Its caller holds the lock.
func removeStore(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("state: reset %s: %w", dir, err)
	}
	for _, e := range entries {
		if !storeFile(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("state: reset %s: %w", dir, err)
		}
	}
	return syncDir(dir)
}

// storeFile reports whether name is one of the files a store keeps in its
// directory: Badger's and the record of the last checkpoint.
func storeFile(name string) bool {
	for _, suffix := range []string{".sst", ".vlog", ".mem"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	for _, prefix := range []string{"MANIFEST", "KEYREGISTRY", "DISCARD", "LOCK", recordName} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return name == orphanDir
}

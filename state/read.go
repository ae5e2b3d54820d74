package state

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Get returns key's value as of checkpoint epoch, which must be a kept complete
// checkpoint (else the error wraps ErrNoCheckpoint). found is false when the key
// did not exist then. The value is the caller's. A read at the oldest kept
// checkpoint that races a Complete pruning it may see compacted data.
func (s *Store) Get(epoch uint64, key []byte) (value []byte, found bool, err error) {
	defer s.recoverBadger(&err)
	if bytes.HasPrefix(key, []byte(ReservedPrefix)) {
		return nil, false, fmt.Errorf("state: get %q: key uses the reserved prefix %q", key, ReservedPrefix)
	}
	if err := s.kept(epoch); err != nil {
		return nil, false, err
	}
	txn := s.db.NewTransactionAt(epoch, false)
	defer txn.Discard()
	v, found, err := getAt(txn, key)
	if err != nil {
		return nil, false, fmt.Errorf("state: get %q at %d: %w", key, epoch, err)
	}
	return v, found, nil
}

// Scan calls fn for every key with prefix that is live as of checkpoint epoch, in
// key order. epoch must be a kept complete checkpoint (else the error wraps
// ErrNoCheckpoint). key and value are only valid during fn; copy them to keep
// them. An error from fn stops the scan and is returned as is. Like Get, a scan
// at the oldest kept checkpoint must not race a Complete that prunes it.
func (s *Store) Scan(epoch uint64, prefix []byte, fn func(key, value []byte) error) error {
	reserved := []byte(ReservedPrefix)
	if bytes.HasPrefix(prefix, reserved) {
		return fmt.Errorf("state: scan %q: prefix uses the reserved prefix %q", prefix, ReservedPrefix)
	}
	if err := s.kept(epoch); err != nil {
		return err
	}
	return s.scan(epoch, prefix, fn)
}

// scan is Scan without its checks of prefix and epoch.
func (s *Store) scan(epoch uint64, prefix []byte, fn func(key, value []byte) error) (err error) {
	defer s.recoverBadger(&err)
	reserved := []byte(ReservedPrefix)
	txn := s.db.NewTransactionAt(epoch, false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	// Keys just past the reserved range: the prefix with its last byte incremented.
	past := append(bytes.Clone(reserved[:len(reserved)-1]), reserved[len(reserved)-1]+1)
	for it.Rewind(); it.Valid(); {
		item := it.Item()
		key := item.Key()
		if bytes.HasPrefix(key, reserved) {
			it.Seek(past)
			continue
		}
		var ferr error
		err := item.Value(func(v []byte) error {
			ferr = fn(key, v)
			return ferr
		})
		if ferr != nil {
			return ferr
		}
		if err != nil {
			return fmt.Errorf("state: scan %q at %d: read %q: %w", prefix, epoch, key, err)
		}
		it.Next()
	}
	return nil
}

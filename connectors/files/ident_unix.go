//go:build unix

package files

import (
	"os"
	"syscall"
)

// identOf returns the device and inode of a file, which tell a file that
// was replaced at the same path from the one a checkpoint saw.
func identOf(st os.FileInfo) (dev, ino uint64) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Dev), uint64(s.Ino)
	}
	return 0, 0
}

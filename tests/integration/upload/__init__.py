"""Integration tests of the spool: real processes killed, real full and read-only filesystems."""

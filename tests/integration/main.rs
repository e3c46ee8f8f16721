//! Integration tests for xrun, an OCI runtime meant as a drop-in for runc.
//!
//! Each test builds a bundle (busybox-static rootfs plus tests/checker, a C
//! probe that prints what the container sees as JSON) and drives the runtime
//! named by `XRUN_BIN` (default: the xrun built by cargo). The suite is
//! validated against runc 1.1.x:
//!
//!     XRUN_BIN=/usr/sbin/runc cargo test --test integration -- --test-threads=2
//!
//! Tests for behaviour runc lacks call `xrun_only()` and are reported as
//! SKIPPED on stderr when run against runc. Everything needs root.

mod common;

mod cgroups;
mod check;
mod cli;
mod cli_query;
mod errors;
mod events;
mod exec;
mod exec_cgroup;
mod hardening_fds;
mod hooks;
mod idmap;
mod interrupted;
mod lifecycle;
mod lifecycle_extra;
mod lsm;
mod memory_policy;
mod namespaces;
mod pidfd_socket;
mod process;
mod process_attrs;
mod rootfs;
mod rootfs_hardening;
mod rootless;
mod seccomp;
mod security;
mod state;
mod systemd;
mod terminal;
mod time_ns;

//! A minimal, blocking D-Bus client: values and their wire format (driven by
//! signatures), messages, and a connection that authenticates with EXTERNAL,
//! calls methods and waits for signals. Just what the systemd cgroup driver
//! needs: no unix fds, no object serving, no introspection.
//!
//! Everything read from the socket is checked (lengths, alignment, nesting,
//! UTF-8) and turns into an error, never a panic.

mod connection;
mod message;
mod value;

pub use connection::*;
pub use message::*;
pub use value::*;

#[cfg(test)]
pub(super) mod tests;

//! A verb's result on stdout. A reader that went away (`xrun list | head`)
//! ends the output quietly, as for runc (whose Go runtime dies of SIGPIPE
//! there), instead of println!'s panic on EPIPE.

use std::io::{ErrorKind, Write};

use anyhow::{Context, Result};

pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        written => written.context("write to stdout"),
    }
}

//! `xrun state`: the spec's state JSON plus runc's extra fields.

use std::path::Path;

use anyhow::Result;

use crate::state::{self, ContainerDir};

pub fn run(root: &Path, id: &str) -> Result<i32> {
    let (dir, saved) = ContainerDir::load_unlocked(root, id)?;
    let status = state::status_of(&dir, &saved);
    crate::output::print(&format!("{}\n", serde_json::to_string_pretty(&saved.report(status))?))?;
    Ok(0)
}

//! `xrun create`: set the container up and leave its process waiting on
//! exec.fifo for `xrun start`.

use std::path::Path;

use anyhow::Result;

use crate::cli::CreateArgs;
use crate::container::{self, Mode};

pub fn run(root: &Path, args: &CreateArgs) -> Result<i32> {
    container::create(root, args, Mode::Create)?;
    Ok(0)
}

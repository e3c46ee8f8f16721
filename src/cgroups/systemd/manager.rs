//! PLACEHOLDER (lead's branch only): replaced by helper's manager on merge.
#![allow(dead_code, unused_variables)]
use super::dbus::Value;
use anyhow::{bail, Result};

#[derive(Debug)]
pub struct DbusError {
    pub name: String,
    pub message: String,
}
impl std::fmt::Display for DbusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}
impl std::error::Error for DbusError {}

pub struct Manager;
impl Manager {
    pub fn connect(user: bool) -> Result<Manager> {
        bail!("placeholder")
    }
    pub fn start_transient_unit(&mut self, name: &str, props: Vec<(String, Value)>) -> Result<()> {
        bail!("placeholder")
    }
    pub fn stop_unit(&mut self, name: &str) -> Result<()> {
        bail!("placeholder")
    }
    pub fn reset_failed_unit(&mut self, name: &str) -> Result<()> {
        bail!("placeholder")
    }
    pub fn set_unit_properties(&mut self, name: &str, runtime: bool, props: Vec<(String, Value)>) -> Result<()> {
        bail!("placeholder")
    }
    pub fn manager_property(&mut self, property: &str) -> Result<Value> {
        bail!("placeholder")
    }
}

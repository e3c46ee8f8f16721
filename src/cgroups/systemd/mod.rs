pub mod dbus;
pub mod manager;

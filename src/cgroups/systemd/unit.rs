//! Which systemd unit a container gets: cgroupsPath `slice:prefix:name`
//! becomes the scope `prefix-name.scope` in `slice` (or the slice `name`
//! itself when it ends in ".slice"), and where its cgroup then is.

use anyhow::{bail, Result};

/// The unit of one container, as the state records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unit {
    /// "prefix-name.scope", or "name.slice".
    pub name: String,
    /// The slice it is started in ("system.slice", "a-b.slice").
    pub slice: String,
    /// Started by the caller's own systemd instance (rootless), not PID 1.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user: bool,
}

impl Unit {
    /// The unit for `cgroups_path` (empty: the container's id, in the
    /// default slice, as runc does, with xrun's own prefix).
    pub fn from_cgroups_path(cgroups_path: &str, id: &str, user: bool) -> Result<Unit> {
        let default_slice = if user { "user.slice" } else { "system.slice" };
        let (slice, prefix, name) = if cgroups_path.is_empty() {
            ("", "xrun", id)
        } else {
            match cgroups_path.split(':').collect::<Vec<_>>()[..] {
                [slice, prefix, name] => (slice, prefix, name),
                _ => bail!(
                    "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {cgroups_path:?} instead"
                ),
            }
        };
        let slice = if slice.is_empty() { default_slice } else { slice };
        // Checked here so a bad slice fails before anything exists.
        expand_slice(slice)?;
        let name = if name.ends_with(".slice") {
            expand_slice(name)?;
            name.to_string()
        } else {
            format!("{prefix}-{name}.scope")
        };
        if name.contains('/') {
            bail!("invalid unit name: {name}");
        }
        Ok(Unit {
            name,
            slice: slice.to_string(),
            user,
        })
    }

    pub fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }

    /// The unit's cgroup below the manager's own (`/` for PID 1): its
    /// slice's path, then the unit.
    pub fn cgroup(&self, manager_cgroup: &str) -> Result<String> {
        let slice = expand_slice(&self.slice)?;
        let base = manager_cgroup.trim_end_matches('/');
        Ok(format!("{base}{}/{}", slice.trim_end_matches('/'), self.name))
    }
}

/// A slice's cgroup path: "a-b.slice" lives in "/a.slice/a-b.slice", and
/// "-.slice" is the root. Names systemd would refuse are refused in runc's
/// words.
pub fn expand_slice(slice: &str) -> Result<String> {
    let invalid = || anyhow::anyhow!("invalid slice name: {slice}");
    let stem = slice.strip_suffix(".slice").ok_or_else(invalid)?;
    if stem.is_empty() || slice.contains('/') {
        return Err(invalid());
    }
    if stem == "-" {
        return Ok("/".to_string());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err(invalid());
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
        prefix.push('-');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_to_their_parents() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(expand_slice("a-b-c.slice").unwrap(), "/a.slice/a-b.slice/a-b-c.slice");
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            "a",
            ".slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "a.slice.x",
        ] {
            let e = expand_slice(bad).unwrap_err().to_string();
            assert_eq!(e, format!("invalid slice name: {bad}"));
        }
    }

    #[test]
    fn cgroups_path_names_a_scope_in_a_slice() {
        let u = Unit::from_cgroups_path("system.slice:docker:abc", "id", false).unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("docker-abc.scope", "system.slice")
        );
        assert_eq!(u.cgroup("/").unwrap(), "/system.slice/docker-abc.scope");
        let u = Unit::from_cgroups_path("a-b.slice:p:n", "id", false).unwrap();
        assert_eq!(u.cgroup("").unwrap(), "/a.slice/a-b.slice/p-n.scope");
        let u = Unit::from_cgroups_path(":p:n", "id", false).unwrap();
        assert_eq!(u.slice, "system.slice");
        let u = Unit::from_cgroups_path("", "c1", true).unwrap();
        assert_eq!((u.name.as_str(), u.slice.as_str()), ("xrun-c1.scope", "user.slice"));
        assert_eq!(
            u.cgroup("/user.slice/user-1001.slice/user@1001.service").unwrap(),
            "/user.slice/user-1001.slice/user@1001.service/user.slice/xrun-c1.scope"
        );
        let u = Unit::from_cgroups_path("-.slice:p:n", "id", false).unwrap();
        assert_eq!(u.cgroup("/").unwrap(), "/p-n.scope");
        let u = Unit::from_cgroups_path("system.slice::my-app.slice", "id", false).unwrap();
        assert!(u.is_slice());
        assert_eq!(u.cgroup("/").unwrap(), "/system.slice/my-app.slice");
    }

    #[test]
    fn malformed_paths_are_refused_in_runcs_words() {
        let e = Unit::from_cgroups_path("/a/b", "id", false).unwrap_err().to_string();
        assert_eq!(
            e,
            "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got \"/a/b\" instead"
        );
        assert!(Unit::from_cgroups_path("a:b:c:d", "id", false).is_err());
        let e = Unit::from_cgroups_path("bad:p:n", "id", false).unwrap_err().to_string();
        assert_eq!(e, "invalid slice name: bad");
        assert!(Unit::from_cgroups_path("system.slice:p:a/b", "id", false).is_err());
    }
}

//! The users file: who may log in to msg_server, and the departments they
//! belong to, without a database server.
//!
//! TeamTalk validated logins through its db_proxy_server and MySQL. Here a
//! text file holds one user per line, and optionally departments:
//!
//! ```text
//! # id  name   salt      sha256(salt + md5hex(password))  [department id]
//! 1     alice  a1ce5a17  <64 hex digits>                  1
//! # dept  id  parent id (0: none)  name (may contain spaces)
//! dept    1   0                    Engineering
//! ```
//!
//! Passwords: a TeamTalk client sends `IMLoginReq.password` as the MD5 of what
//! the person typed, in lowercase hex (32 characters). The file keeps a salt
//! and `sha256(salt + that hex)`, so it never holds what the client sends in
//! the clear. [`user_line`] (used by `im_client adduser`) takes the password
//! as typed and does both steps; [`md5_hex`] is the client's step.
//!
//! Departments: the fifth column of a user line is optional (a file without
//! it reads as before; such users have department 0, "none"). A `dept` line
//! declares a department for TeamTalk's department list (`IMDepartmentRsp`);
//! a user's department must be declared somewhere in the file, and a parent
//! must be another declared department.

use md5::Md5;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// TeamTalk user id.
    pub id: u32,
    /// Login name.
    pub name: String,
    /// Department id (0: none).
    pub department: u32,
    salt: String,
    hash: [u8; 32],
}

/// A department (TeamTalk's `DepartInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// Department id (above 0).
    pub id: u32,
    /// Parent department id (0: top level).
    pub parent: u32,
    /// Display name.
    pub name: String,
}

/// All accounts, by name and by id, and the departments.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, User>,
    /// Name by id, ordered, for the all-users list.
    by_id: BTreeMap<u32, String>,
    departments: BTreeMap<u32, Department>,
    version: u32,
}

/// What a TeamTalk client sends as the password: the MD5 of what the person
/// typed, as 32 lowercase hex digits.
///
/// ```
/// assert_eq!(servers::users::md5_hex("alice123"), "7abdccbea8473767e91378e37850d296");
/// ```
pub fn md5_hex(typed: &str) -> String {
    hex(&Md5::digest(typed.as_bytes()))
}

fn digest(salt: &str, sent: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(sent.as_bytes());
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A users-file line for a new account whose person types `password`.
pub fn user_line(id: u32, name: &str, salt: &str, password: &str) -> String {
    format!(
        "{id} {name} {salt} {}",
        hex(&digest(salt, &md5_hex(password)))
    )
}

fn parse_dept(n: usize, rest: &str) -> Result<Department, String> {
    let mut f = rest.split_whitespace();
    let (Some(id), Some(parent)) = (f.next(), f.next()) else {
        return Err(format!("line {n}: expected `dept id parent_id name`"));
    };
    let name = f.collect::<Vec<_>>().join(" ");
    let id: u32 = id
        .parse()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| format!("line {n}: bad department id {id:?} (a number above 0)"))?;
    let parent = parent
        .parse()
        .map_err(|e| format!("line {n}: bad parent department id {parent:?}: {e}"))?;
    if name.is_empty() {
        return Err(format!("line {n}: department {id} has no name"));
    }
    Ok(Department { id, parent, name })
}

impl Users {
    /// Parses a users file's text.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut users = Users::default();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line
                .strip_prefix("dept")
                .filter(|r| r.starts_with(char::is_whitespace))
            {
                let d = parse_dept(n, rest)?;
                if users.departments.insert(d.id, d).is_some() {
                    return Err(format!("line {n}: department declared twice"));
                }
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let (id, name, salt, hash, dept) = match f[..] {
                [id, name, salt, hash] => (id, name, salt, hash, None),
                [id, name, salt, hash, dept] => (id, name, salt, hash, Some(dept)),
                _ => {
                    return Err(format!(
                    "line {n}: expected `id name salt hash [department]` or `dept id parent name`"
                ))
                }
            };
            let id: u32 = id
                .parse()
                .map_err(|e| format!("line {n}: bad user id {id:?}: {e}"))?;
            let hash =
                unhex(hash).ok_or_else(|| format!("line {n}: hash must be 64 hex digits"))?;
            let department = match dept {
                None => 0,
                Some(d) => d
                    .parse()
                    .map_err(|e| format!("line {n}: bad department {d:?}: {e}"))?,
            };
            if users.by_id.insert(id, name.to_string()).is_some() {
                return Err(format!("line {n}: user id {id} used twice"));
            }
            let user = User {
                id,
                name: name.to_string(),
                department,
                salt: salt.to_string(),
                hash,
            };
            if users.by_name.insert(name.to_string(), user).is_some() {
                return Err(format!("line {n}: user name {name:?} used twice"));
            }
        }
        for u in users.by_name.values() {
            if u.department != 0 && !users.departments.contains_key(&u.department) {
                return Err(format!(
                    "user {:?}: department {} is not declared (add a `dept {} 0 <name>` line)",
                    u.name, u.department, u.department
                ));
            }
        }
        for d in users.departments.values() {
            if d.parent != 0 && !users.departments.contains_key(&d.parent) {
                return Err(format!(
                    "department {}: parent {} is not declared",
                    d.id, d.parent
                ));
            }
        }
        Ok(users)
    }

    /// Reads a users file. Its modification time (Unix seconds) becomes
    /// the list's [`version`](Self::version).
    pub fn load(path: &Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut users = Users::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mtime = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(1, |d| d.as_secs().clamp(1, u64::from(u32::MAX)) as u32);
        users.version = mtime;
        Ok(users)
    }

    /// When the list last changed, as TeamTalk's `latest_update_time`
    /// (Unix seconds; the file's modification time, 1 for parsed text):
    /// a client that has this version needs no new list.
    pub fn version(&self) -> u32 {
        self.version.max(1)
    }

    /// The account `name` if `sent` (what the client sent: the MD5 hex of
    /// the typed password; upper-case hex is accepted too) matches.
    pub fn authenticate(&self, name: &str, sent: &str) -> Option<&User> {
        let user = self.by_name.get(name)?;
        let given = digest(&user.salt, &sent.to_ascii_lowercase());
        // Compare without an early exit.
        let diff = given
            .iter()
            .zip(user.hash.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        (diff == 0).then_some(user)
    }

    /// The account with id `id`.
    pub fn by_id(&self, id: u32) -> Option<&User> {
        self.by_name.get(self.by_id.get(&id)?)
    }

    /// Every account, by id.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.by_id.values().filter_map(|n| self.by_name.get(n))
    }

    /// Every department, by id.
    pub fn departments(&self) -> impl Iterator<Item = &Department> {
        self.departments.values()
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True without accounts.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticates_the_md5_hex_against_salted_hashes() {
        let text = format!(
            "# demo\n{}\n{}\n",
            user_line(1, "alice", "s1", "pw1"),
            user_line(2, "bob", "s2", "pw2")
        );
        let users = Users::parse(&text).unwrap();
        let pw1 = md5_hex("pw1");
        assert_eq!(pw1.len(), 32);
        assert_eq!(users.authenticate("alice", &pw1).map(|u| u.id), Some(1));
        assert_eq!(
            users
                .authenticate("alice", &pw1.to_ascii_uppercase())
                .map(|u| u.id),
            Some(1)
        );
        // What the person typed is not what a client sends.
        assert!(users.authenticate("alice", "pw1").is_none());
        assert!(users.authenticate("alice", &md5_hex("pw2")).is_none());
        assert!(users.authenticate("carol", &pw1).is_none());
        assert!(!text.contains("pw1") && !text.contains(&pw1));
        assert!(Users::parse("1 alice salt nothex").is_err());
    }

    #[test]
    fn md5_hex_is_what_teamtalk_clients_send() {
        // RFC 1321 test vectors.
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn departments_are_optional_and_checked() {
        let plain = user_line(1, "alice", "s1", "pw1");
        let users = Users::parse(&plain).unwrap();
        assert_eq!(users.by_id(1).unwrap().department, 0);
        assert_eq!(users.departments().count(), 0);

        let text = format!(
            "dept 1 0 Engineering\ndept 2 1 Storage team\n{plain} 2\n{}\n",
            user_line(2, "bob", "s2", "pw2")
        );
        let users = Users::parse(&text).unwrap();
        assert_eq!(users.by_id(1).unwrap().department, 2);
        assert_eq!(users.by_id(2).unwrap().department, 0);
        let depts: Vec<_> = users.departments().map(|d| d.name.as_str()).collect();
        assert_eq!(depts, ["Engineering", "Storage team"]);
        assert_eq!(users.departments().nth(1).unwrap().parent, 1);
        let ids: Vec<u32> = users.iter().map(|u| u.id).collect();
        assert_eq!(ids, [1, 2]);

        assert!(Users::parse(&format!("{plain} 9")).is_err()); // undeclared
        assert!(Users::parse("dept 1 7 Orphan").is_err()); // unknown parent
        assert!(Users::parse("dept 0 0 Zero").is_err());
        assert!(Users::parse("dept 1 0").is_err()); // no name
        assert_eq!(
            Users::parse("dept\t3\t0\tTabs")
                .unwrap()
                .departments()
                .count(),
            1
        );
        assert!(Users::parse(&format!("{plain}\n{plain}")).is_err()); // twice
    }
}

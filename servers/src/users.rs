//! The users file: who may log in to msg_server, without a database server.
//!
//! TeamTalk validated logins through its db_proxy_server and MySQL. Here a
//! text file holds one user per line:
//!
//! ```text
//! # id  name   salt              sha256(salt + password) in hex
//! 1     alice  5f1c0d2e9a7b3c44  <64 hex digits>
//! ```
//!
//! "password" is whatever the client sends in `IMLoginReq.password` (TeamTalk
//! clients send the MD5 of what the person typed), so the file never holds
//! it in the clear. `im_client adduser` prints such a line.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// TeamTalk user id.
    pub id: u32,
    /// Login name.
    pub name: String,
    salt: String,
    hash: [u8; 32],
}

/// All accounts, by name.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, User>,
}

fn digest(salt: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(password.as_bytes());
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

/// A users-file line for a new account.
pub fn user_line(id: u32, name: &str, salt: &str, password: &str) -> String {
    format!("{id} {name} {salt} {}", hex(&digest(salt, password)))
}

impl Users {
    /// Parses a users file's text.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut by_name = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let [id, name, salt, hash] = f[..] else {
                return Err(format!("line {}: expected `id name salt hash`", n + 1));
            };
            let id = id
                .parse()
                .map_err(|e| format!("line {}: bad user id {id:?}: {e}", n + 1))?;
            let hash =
                unhex(hash).ok_or_else(|| format!("line {}: hash must be 64 hex digits", n + 1))?;
            by_name.insert(
                name.to_string(),
                User {
                    id,
                    name: name.to_string(),
                    salt: salt.to_string(),
                    hash,
                },
            );
        }
        Ok(Users { by_name })
    }

    /// Reads a users file.
    pub fn load(path: &Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Users::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The account `name` if `password` matches.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<&User> {
        let user = self.by_name.get(name)?;
        let given = digest(&user.salt, password);
        // Compare without an early exit.
        let diff = given
            .iter()
            .zip(user.hash.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        (diff == 0).then_some(user)
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True without accounts.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every account, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticates_against_salted_hashes() {
        let text = format!(
            "# demo\n{}\n{}\n",
            user_line(1, "alice", "s1", "pw1"),
            user_line(2, "bob", "s2", "pw2")
        );
        let users = Users::parse(&text).unwrap();
        assert_eq!(users.authenticate("alice", "pw1").map(|u| u.id), Some(1));
        assert!(users.authenticate("alice", "pw2").is_none());
        assert!(users.authenticate("carol", "pw1").is_none());
        assert!(!text.contains("pw1"));
        assert!(Users::parse("1 alice salt nothex").is_err());
    }
}

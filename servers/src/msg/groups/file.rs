//! The groups file (`GroupsFile`): normal groups, one a line, `#` comments:
//!
//! ```text
//! # id name creator members
//! 100 engineering 1 1,2,3
//! ```

use crate::msg::store::GroupRecord;
use crate::users::Users;
use pdu::proto::GroupType;
use std::collections::HashSet;
use std::path::Path;

/// Reads the groups file: every member and creator must be an account, ids
/// unique and above 0, at most `members_max` members.
pub fn load(path: &Path, users: &Users, members_max: usize) -> Result<Vec<GroupRecord>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text, users, members_max).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse(text: &str, users: &Users, members_max: usize) -> Result<Vec<GroupRecord>, String> {
    let ids: HashSet<u32> = users.iter().map(|u| u.id).collect();
    let mut seen = HashSet::new();
    let mut groups = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        let [id, name, creator, members] = f[..] else {
            return Err(bad("expected: id name creator member,member,..."));
        };
        let id: u32 = id
            .parse()
            .ok()
            .filter(|i| *i > 0)
            .ok_or_else(|| bad("bad id"))?;
        let creator: u32 = creator.parse().map_err(|_| bad("bad creator"))?;
        let mut members: Vec<u32> = members
            .split(',')
            .map(|m| m.parse::<u32>().map_err(|_| bad("bad member id")))
            .collect::<Result<_, _>>()?;
        members.push(creator);
        members.sort_unstable();
        members.dedup();
        if let Some(m) = members.iter().find(|m| !ids.contains(m)) {
            return Err(bad(&format!("user {m} is not in the users file")));
        }
        if members.len() > members_max {
            return Err(bad("more members than GroupMembersMax"));
        }
        if !seen.insert(id) {
            return Err(bad("duplicate group id"));
        }
        groups.push(GroupRecord {
            id,
            name: name.to_string(),
            avatar: String::new(),
            creator,
            kind: GroupType::Normal as i32,
            version: 1,
            members,
            shielded: Vec::new(),
        });
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: u32) -> Users {
        let text: String = (1..=n)
            .map(|i| crate::users::user_line(i, &format!("u{i}"), "s", "p") + "\n")
            .collect();
        Users::parse(&text).unwrap()
    }

    #[test]
    fn groups_file_lines_and_their_errors() {
        let g = parse("# comment\n\n100 eng 1 2,3,2\n7 ops 3 3\n", &users(3), 10).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].id, g[0].name.as_str(), g[0].creator), (100, "eng", 1));
        assert_eq!(g[0].members, [1, 2, 3]);
        assert_eq!(g[1].members, [3]);
        for (text, why) in [
            ("1 a 1", "expected"),
            ("0 a 1 1", "bad id"),
            ("1 a 1 9", "user 9"),
            ("1 a 1 1\n1 b 1 1", "duplicate"),
            ("1 a 1 x", "bad member"),
            ("1 a 1 1,2,3", "GroupMembersMax"),
        ] {
            let e = parse(text, &users(3), 2).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}

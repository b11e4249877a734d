//! Temporary groups: creating one, adding and removing members, leaving.
//! The same words serve the script form (`im_client group create lunch bob`)
//! and chat mode (`group create lunch bob`): both parse them with
//! [`GroupOp`] and carry them out with [`run`].

use crate::session::{answered, Failure, Session, TIMEOUT};
use clap::{Parser, Subcommand};
use pdu::proto::GroupModifyType;
use servers::client::Peer;

/// What to do with a temporary group (users and groups: name or id).
#[derive(Subcommand, Debug)]
pub enum GroupOp {
    /// Create a temporary group of you and USERS (0x0405)
    Create {
        /// The group's name
        name: String,
        /// Its other members
        #[arg(required = true, num_args = 1..)]
        users: Vec<String>,
    },
    /// Add USERS to one of your groups (0x0407; any member of a temporary
    /// group may add)
    Add {
        group: String,
        #[arg(required = true, num_args = 1..)]
        users: Vec<String>,
    },
    /// Remove USERS from a group (0x0407; only its creator removes others)
    Remove {
        group: String,
        #[arg(required = true, num_args = 1..)]
        users: Vec<String>,
    },
    /// Leave a temporary group
    Leave { group: String },
}

// A chat-mode `group ...` line, parsed as the script form is.
#[derive(Parser, Debug)]
#[command(name = "group", no_binary_name = true, disable_help_flag = true)]
struct GroupLine {
    #[command(subcommand)]
    op: GroupOp,
}

/// Parses the words after `group` in chat mode; the error is clap's
/// complaint and the usage.
pub fn parse_line(words: &str) -> Result<GroupOp, String> {
    const USAGE: &str = "usage: group create <name> <user>... | group add <group> <user>... | \
                         group remove <group> <user>... | group leave <group>";
    if words.trim().is_empty() {
        return Err(USAGE.into());
    }
    GroupLine::try_parse_from(words.split_whitespace())
        .map(|l| l.op)
        .map_err(|e| {
            let text = e.render().to_string();
            let complaint: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
            format!("{}\n{USAGE}", complaint.join("\n"))
        })
}

/// Carries out `op`; says what was done, or (as [`Failure::Fatal`]) why
/// not: an unknown user or group, or a refusal by the server.
pub fn run(s: &mut Session, op: &GroupOp) -> Result<String, Failure> {
    let me = s.client.user_id;
    let users = |s: &mut Session, names: &[String]| -> Result<Vec<u32>, Failure> {
        names
            .iter()
            .map(|n| s.resolve(n, false).map(Peer::id))
            .collect()
    };
    let group = |s: &mut Session, g: &str| s.resolve(g, true).map(Peer::id);
    let line = match op {
        GroupOp::Create { name, users: names } => {
            let ids = users(s, names)?;
            let rsp = answered(s.client.create_group(name, &ids, TIMEOUT))?;
            let Some(id) = rsp.group_id.filter(|_| rsp.result_code == 0) else {
                return Err(Failure::Fatal(format!(
                    "group {name} not created: refused by the server"
                )));
            };
            format!(
                "created {name} ({id}), members: {}",
                s.directory.names_of(&rsp.user_id_list)
            )
        }
        GroupOp::Add {
            group: g,
            users: names,
        }
        | GroupOp::Remove {
            group: g,
            users: names,
        } => {
            let (id, ids) = (group(s, g)?, users(s, names)?);
            let (how, done) = match op {
                GroupOp::Add { .. } => (GroupModifyType::Add, "added"),
                _ => (GroupModifyType::Del, "removed"),
            };
            let rsp = answered(s.client.change_group(id, how, &ids, TIMEOUT))?;
            let name = s.directory.peer_name(Peer::Group(id));
            if rsp.result_code != 0 {
                return Err(Failure::Fatal(format!(
                    "{name}: members not changed: refused by the server (normal groups are \
                     changed by their creator; only the creator removes others)"
                )));
            }
            format!(
                "{name}: {done} {}; members: {}",
                s.directory.names_of(&rsp.chg_user_id_list),
                s.directory.names_of(&rsp.cur_user_id_list)
            )
        }
        GroupOp::Leave { group: g } => {
            let id = group(s, g)?;
            let rsp = answered(
                s.client
                    .change_group(id, GroupModifyType::Del, &[me], TIMEOUT),
            )?;
            let name = s.directory.peer_name(Peer::Group(id));
            if rsp.result_code != 0 {
                return Err(Failure::Fatal(format!(
                    "{name}: not left: refused by the server (a normal group is changed by \
                     its creator)"
                )));
            }
            format!("left {name}")
        }
    };
    s.refresh_groups()?;
    Ok(line)
}

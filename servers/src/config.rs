//! TeamTalk-style configuration files (`loginserver.conf`, `msgserver.conf`)
//! with command-line overrides.
//!
//! The format is TeamTalk's `CConfigFileReader`: one `Key=Value` per line,
//! `#` starts a comment, blank lines are ignored, and list values (listen
//! addresses) are separated by `;`. Keys are case-sensitive as in TeamTalk.
//!
//! Every key can be overridden on the command line with `--Key value` or
//! `--Key=value`; `-c FILE`/`--config FILE` names the file. With no file
//! the servers run on loopback defaults. Each server declares the keys it
//! reads ([`Key`]); [`Config::from_command_line`] answers `-h`/`--help` with
//! them and their defaults, and refuses a key it does not know. A value that
//! does not parse (a bad port, a bad number, an empty address list) is an
//! error naming the key and the value - never a panic.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// Parsed key/value settings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    values: BTreeMap<String, String>,
}

/// A configuration problem, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A key a server reads: its name, its default as text, and what it means.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The name, as in the file and after `--`. A name ending in `N` stands
    /// for a numbered family: `LoginServerIPN` matches `LoginServerIP1`,
    /// `LoginServerIP2`, ...
    pub name: &'static str,
    /// The default, as shown by `--help` (empty: none).
    pub default: &'static str,
    /// One line of help.
    pub help: &'static str,
}

impl Key {
    /// Whether `name` is this key (or a member of its numbered family).
    pub fn matches(&self, name: &str) -> bool {
        if name == self.name {
            return true;
        }
        match self.name.strip_suffix('N') {
            Some(stem) if !stem.is_empty() => name
                .strip_prefix(stem)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
            _ => false,
        }
    }
}

/// What a server's command line asks for.
#[derive(Debug, Clone)]
pub enum CommandLine {
    /// Run with this configuration.
    Run(Config),
    /// Print [`help`] and exit 0.
    Help,
}

/// The `--help` text of a server: usage, then every key with its default.
pub fn help(program: &str, about: &str, keys: &[Key]) -> String {
    let mut text = format!(
        "{about}\n\nUsage: {program} [-c FILE] [--Key value]...\n\n\
         Options:\n  -c, --config FILE  read Key=Value lines from FILE (TeamTalk's format)\n  \
         --Key value        set Key, overriding the file (also --Key=value)\n  \
         -h, --help         print this help\n\nKeys:\n"
    );
    let width = keys.iter().map(|k| k.name.len()).max().unwrap_or(0);
    for k in keys {
        let default = if k.default.is_empty() {
            String::new()
        } else {
            format!(" [default: {}]", k.default)
        };
        text.push_str(&format!(
            "  {:width$}  {}{default}\n",
            k.name,
            k.help,
            width = width
        ));
    }
    text
}

impl Config {
    /// Parses the text of a configuration file.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut values = BTreeMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigError(format!(
                    "line {}: expected Key=Value, got {raw:?}",
                    n + 1
                )));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(ConfigError(format!("line {}: empty key", n + 1)));
            }
            values.insert(key.to_string(), value.trim().to_string());
        }
        Ok(Config { values })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Loads the file named by `-c`/`--config` (if any) and applies the other
    /// `--Key value` arguments on top. Returns the unparsed positional
    /// arguments too.
    pub fn from_args(args: &[String]) -> Result<(Config, Vec<String>), ConfigError> {
        let mut config = Config::default();
        let mut overrides = Vec::new();
        let mut positional = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            let take_value = |i: &mut usize| -> Result<String, ConfigError> {
                *i += 1;
                args.get(*i)
                    .cloned()
                    .ok_or_else(|| ConfigError(format!("{arg} needs a value")))
            };
            if arg == "-c" || arg == "--config" {
                let path = take_value(&mut i)?;
                config = Config::load(Path::new(&path))?;
            } else if let Some(flag) = arg.strip_prefix("--") {
                match flag.split_once('=') {
                    Some((k, v)) => overrides.push((k.to_string(), v.to_string())),
                    None => {
                        let v = take_value(&mut i)?;
                        overrides.push((flag.to_string(), v));
                    }
                }
            } else {
                positional.push(arg.clone());
            }
            i += 1;
        }
        for (k, v) in overrides {
            config.set(&k, &v);
        }
        Ok((config, positional))
    }

    /// Parses a server's arguments: `-h`/`--help`, `-c FILE`, and
    /// `--Key value` overrides of the keys in `keys`. A key given on the
    /// command line that is not in `keys`, a positional argument or a
    /// missing value is an error; keys in the file that the server does not
    /// read are reported on stderr and otherwise ignored (TeamTalk's files
    /// carry keys for servers not ported here).
    pub fn from_command_line(args: &[String], keys: &[Key]) -> Result<CommandLine, ConfigError> {
        if args.iter().any(|a| a == "-h" || a == "--help") {
            return Ok(CommandLine::Help);
        }
        let (config, positional) = Config::from_args(args)?;
        if let Some(p) = positional.first() {
            return Err(ConfigError(format!(
                "unexpected argument {p:?} (keys are given as --Key value)"
            )));
        }
        let known = |name: &str| keys.iter().any(|k| k.matches(name));
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            if arg == "-c" || arg == "--config" {
                i += 2;
                continue;
            }
            if let Some(flag) = arg.strip_prefix("--") {
                let name = flag.split_once('=').map_or(flag, |(k, _)| k);
                if !known(name) {
                    let hint = keys
                        .iter()
                        .find(|k| k.name.eq_ignore_ascii_case(name))
                        .map(|k| format!(" (did you mean --{}?)", k.name))
                        .unwrap_or_default();
                    return Err(ConfigError(format!(
                        "unknown key --{name}{hint}; --help lists the keys"
                    )));
                }
                if !flag.contains('=') {
                    i += 1;
                }
            }
            i += 1;
        }
        for key in config.values.keys() {
            if !known(key) {
                eprintln!("warning: ignoring unknown key {key:?} in the configuration file");
            }
        }
        Ok(CommandLine::Run(config))
    }

    /// Sets a value.
    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_string(), value.to_string());
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// `key` parsed as `T`, or `default` when absent; a value that does not
    /// parse is an error naming the key.
    pub fn get_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| ConfigError(format!("bad value for {key}: {v:?} ({e})"))),
        }
    }

    /// A `;`-separated list, or `default` when absent.
    pub fn list_or(&self, key: &str, default: &str) -> Vec<String> {
        self.get(key)
            .unwrap_or(default)
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// Socket addresses from a `;`-separated IP list and one port.
    pub fn listen_addrs(
        &self,
        ip_key: &str,
        port_key: &str,
        default_port: u16,
    ) -> Result<Vec<std::net::SocketAddr>, ConfigError> {
        let port: u16 = self.get_or(port_key, default_port)?;
        let ips = self.list_or(ip_key, "127.0.0.1");
        if ips.is_empty() {
            return Err(ConfigError(format!(
                "bad value for {ip_key}: {:?} (no address in the list)",
                self.get(ip_key).unwrap_or("")
            )));
        }
        ips.iter()
            .map(|ip| {
                let ip: std::net::IpAddr = ip
                    .parse()
                    .map_err(|e| ConfigError(format!("bad value for {ip_key}: {ip:?} ({e})")))?;
                Ok(std::net::SocketAddr::new(ip, port))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_teamtalk_style_files() {
        let c = Config::parse(
            "# login server\nClientListenIP=127.0.0.1;::1\nClientPort = 8008 # clients\n\nmsfs=http://x/\n",
        )
        .unwrap();
        assert_eq!(c.list_or("ClientListenIP", ""), vec!["127.0.0.1", "::1"]);
        assert_eq!(c.get_or::<u16>("ClientPort", 1).unwrap(), 8008);
        assert_eq!(c.get("msfs"), Some("http://x/"));
        assert_eq!(c.get_or::<u16>("Missing", 7).unwrap(), 7);
        let addrs = c.listen_addrs("ClientListenIP", "ClientPort", 1).unwrap();
        assert_eq!(addrs.len(), 2);
        assert!(Config::parse("no equals sign").is_err());
        assert!(c.get_or::<u16>("msfs", 1).is_err());
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let c = Config::parse("ListenIP=;\nListenPort=70000\nOther=1.2.3\n").unwrap();
        let e = c.listen_addrs("ListenIP", "Missing", 1).unwrap_err().0;
        assert!(e.contains("ListenIP") && e.contains("\";\""), "{e}");
        let e = c.listen_addrs("Other", "Missing", 1).unwrap_err().0;
        assert!(e.contains("Other") && e.contains("1.2.3"), "{e}");
        let e = c.get_or::<u16>("ListenPort", 1).unwrap_err().0;
        assert!(e.contains("ListenPort") && e.contains("70000"), "{e}");
    }

    #[test]
    fn command_line_knows_its_keys() {
        const KEYS: &[Key] = &[
            Key {
                name: "Port",
                default: "1",
                help: "a port",
            },
            Key {
                name: "ServerN",
                default: "",
                help: "numbered",
            },
        ];
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let run = |a: &[&str]| Config::from_command_line(&args(a), KEYS);
        assert!(matches!(run(&["--help"]), Ok(CommandLine::Help)));
        let Ok(CommandLine::Run(c)) = run(&["--Port", "2", "--Server12=x"]) else {
            panic!()
        };
        assert_eq!(c.get("Port"), Some("2"));
        assert_eq!(c.get("Server12"), Some("x"));
        let e = run(&["--port", "2"]).unwrap_err().0;
        assert!(e.contains("--port") && e.contains("--Port"), "{e}");
        assert!(run(&["--Server", "x"]).is_err());
        assert!(run(&["--ServerX", "x"]).is_err());
        assert!(run(&["stray"]).unwrap_err().0.contains("stray"));
        assert!(run(&["--Port"]).unwrap_err().0.contains("needs a value"));
        let h = help("srv", "A server.", KEYS);
        assert!(h.contains("Port") && h.contains("[default: 1]"), "{h}");
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("netlib-conf-{}", std::process::id()));
        std::fs::write(&dir, "ClientPort=8008\nHttpPort=8080\n").unwrap();
        let args: Vec<String> = [
            "-c",
            dir.to_str().unwrap(),
            "--ClientPort",
            "0",
            "--HttpPort=9",
            "extra",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (c, rest) = Config::from_args(&args).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(c.get("ClientPort"), Some("0"));
        assert_eq!(c.get("HttpPort"), Some("9"));
        assert_eq!(rest, vec!["extra"]);
    }
}

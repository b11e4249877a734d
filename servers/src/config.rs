//! TeamTalk-style configuration files (`loginserver.conf`, `msgserver.conf`)
//! with command-line overrides.
//!
//! The format is TeamTalk's `CConfigFileReader`: one `Key=Value` per line,
//! `#` starts a comment, blank lines are ignored, and list values (listen
//! addresses) are separated by `;`. Keys are case-sensitive as in TeamTalk.
//!
//! Every key can be overridden on the command line with `--Key value` or
//! `--Key=value`; `-c FILE`/`--config FILE` names the file. With no file
//! the servers run on loopback defaults.

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
                .map_err(|e| ConfigError(format!("{key}={v:?}: {e}"))),
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
        self.list_or(ip_key, "127.0.0.1")
            .iter()
            .map(|ip| {
                let ip: std::net::IpAddr = ip
                    .parse()
                    .map_err(|e| ConfigError(format!("{ip_key}={ip:?}: {e}")))?;
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

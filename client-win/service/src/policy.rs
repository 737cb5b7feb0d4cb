//! The service host's decisions, platform-neutral so they are unit-tested on Linux: where
//! things live, how long to wait before restarting a crashed agent, when to rotate the log,
//! and how the guard's filter comes back from `gsra-agent windivert-guard`.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything the host touches, from the install folder and %ProgramData%.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// C:\Program Files\GSRA (where gsra-service.exe, node.exe, the bundle and WinDivert live).
    pub install: PathBuf,
    /// C:\ProgramData\GSRA: config, state (cached login), logs. SYSTEM and Administrators only.
    pub data: PathBuf,
}

impl Paths {
    pub fn new(install: &Path, program_data: &Path) -> Paths {
        Paths {
            install: install.to_path_buf(),
            data: program_data.join("GSRA"),
        }
    }
    pub fn node(&self) -> PathBuf {
        self.install.join("node.exe")
    }
    pub fn agent(&self) -> PathBuf {
        self.install.join("gsra-agent.mjs")
    }
    pub fn config(&self) -> PathBuf {
        self.data.join("agent.json")
    }
    pub fn state(&self) -> PathBuf {
        self.data.join("state")
    }
    pub fn logs(&self) -> PathBuf {
        self.data.join("logs")
    }
    pub fn agent_log(&self) -> PathBuf {
        self.logs().join("agent.log")
    }
    /// Where `gsra-agent windivert-guard` writes the guard's filter for the host to read.
    pub fn guard_file(&self) -> PathBuf {
        self.data.join("guard-filter.txt")
    }
    /// The agent's command line (after node.exe).
    pub fn agent_args(&self, command: &str) -> Vec<String> {
        vec![
            self.agent().display().to_string(),
            command.to_string(),
            "--config".to_string(),
            self.config().display().to_string(),
        ]
    }
}

/// The protected DACL of %ProgramData%\GSRA: full control for SYSTEM and Administrators,
/// inherited by everything below, nothing for anyone else (P: not inherited from ProgramData,
/// whose default lets Users read).
pub const DATA_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// Restart delays after the agent exits: 1 s, doubling to 60 s; a run that lasted at least
/// `HEALTHY` starts the series again.
pub struct Backoff {
    next: Duration,
}

pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
pub const HEALTHY: Duration = Duration::from_secs(60);
/// How long the agent gets to close its handles after its stdin closes, before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// The wait before the next start, given how long the last run lasted.
    pub fn after_exit(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY {
            self.next = BACKOFF_MIN;
        }
        let d = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        d
    }
}

/// The log is rotated (agent.log -> agent.log.1) at start when it has grown past this.
pub const LOG_ROTATE_BYTES: u64 = 10 << 20;

pub fn should_rotate(len: u64) -> bool {
    len >= LOG_ROTATE_BYTES
}

/// The guard's filter from what `gsra-agent windivert-guard` wrote: one line, a WinDivert filter
/// for outbound packets to the VIN range. Anything else is refused (the host then runs without
/// its own guard and says so; the agent keeps its own).
pub fn parse_guard(text: &str) -> Result<String, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or("empty guard filter")?;
    let t: Vec<&str> = line.split(' ').collect();
    let quad = |s: &str| {
        s.split('.').count() == 4
            && s.split('.')
                .all(|o| !o.is_empty() && o.len() <= 3 && o.parse::<u8>().is_ok())
    };
    let shape = [
        "outbound",
        "and",
        "ip",
        "and",
        "ip.DstAddr",
        ">=",
        "",
        "and",
        "ip.DstAddr",
        "<=",
        "",
    ];
    let ok = t.len() == shape.len()
        && t.iter()
            .zip(shape.iter())
            .all(|(a, b)| if b.is_empty() { quad(a) } else { a == b });
    if !ok {
        return Err(format!("unexpected guard filter: {:?}", line));
    }
    Ok(line.to_string())
}

/// One log line of the host itself (the agent's own lines are JSON from winston).
pub fn log_line(unix_ms: u128, event: &str, detail: &str) -> String {
    format!(
        "{{\"t\":{},\"component\":\"service-host\",\"event\":{:?},\"detail\":{:?}}}\n",
        unix_ms, event, detail
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_hang_off_the_install_folder_and_program_data() {
        let p = Paths::new(Path::new("/pf/GSRA"), Path::new("/pd"));
        assert_eq!(p.node(), Path::new("/pf/GSRA/node.exe"));
        assert_eq!(p.agent(), Path::new("/pf/GSRA/gsra-agent.mjs"));
        assert_eq!(p.config(), Path::new("/pd/GSRA/agent.json"));
        assert_eq!(p.state(), Path::new("/pd/GSRA/state"));
        assert_eq!(p.agent_log(), Path::new("/pd/GSRA/logs/agent.log"));
        assert_eq!(
            p.agent_args("run"),
            vec![
                "/pf/GSRA/gsra-agent.mjs",
                "run",
                "--config",
                "/pd/GSRA/agent.json"
            ]
        );
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_a_healthy_run() {
        let mut b = Backoff::default();
        let short = Duration::from_millis(300);
        let seq: Vec<u64> = (0..9).map(|_| b.after_exit(short).as_secs()).collect();
        assert_eq!(seq, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.after_exit(HEALTHY).as_secs(), 1);
        assert_eq!(b.after_exit(short).as_secs(), 2);
    }

    #[test]
    fn the_log_rotates_at_ten_mib() {
        assert!(!should_rotate(LOG_ROTATE_BYTES - 1));
        assert!(should_rotate(LOG_ROTATE_BYTES));
    }

    #[test]
    fn only_a_vin_guard_filter_is_accepted() {
        let f = "outbound and ip and ip.DstAddr >= 198.19.224.0 and ip.DstAddr <= 198.19.239.255";
        assert_eq!(parse_guard(&format!("\n{}\r\n", f)).unwrap(), f);
        assert!(parse_guard("").is_err());
        assert!(parse_guard("true").is_err());
        assert!(
            parse_guard("outbound and ip and ip.DstAddr >= 1.2.3.4 or true").is_err(),
            "no 'or'"
        );
        assert!(parse_guard("outbound and ip and ip.DstAddr >= 1.2.3.4 and (tcp)").is_err());
    }

    #[test]
    fn the_data_folder_acl_is_protected_and_admin_only() {
        assert!(DATA_SDDL.starts_with("D:P"));
        assert!(DATA_SDDL.contains(";;;SY)") && DATA_SDDL.contains(";;;BA)"));
        assert_eq!(
            DATA_SDDL.matches("(A;").count(),
            2,
            "no other allow entries"
        );
    }

    #[test]
    fn host_log_lines_are_one_json_object() {
        let l = log_line(5, "agent exited", "code 1 \"x\"");
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1);
        assert!(l.contains("\"event\":\"agent exited\"") && l.contains("\\\"x\\\""));
    }
}

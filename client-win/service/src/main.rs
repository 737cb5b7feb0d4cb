//! gsra-service.exe — the GSRA Agent's Windows service host (service `GsraAgent`, LocalSystem,
//! automatic start). Why our own host and not node-windows/WinSW: see docs/windows.md.
//!
//!   gsra-service.exe            run under the service control manager
//!   gsra-service.exe console    the same supervision in the foreground (diagnosis, tests)
//!   gsra-service.exe prepare    MSI custom action: %ProgramData%\GSRA with its admin-only ACL
//!   gsra-service.exe cleanup    MSI custom action on uninstall: WinDivert driver service,
//!                               its event source, %ProgramData%\GSRA
//!
//! Under the SCM: put itself in a kill-on-close job; tighten the data folder's ACL; set the
//! service's failure actions; open its own WinDivert guard (drops VIN-bound packets if the agent
//! dies); start `node.exe gsra-agent.mjs run --service`, restart it with backoff when it exits,
//! and on STOP close its stdin, wait, kill. Everything is logged to
//! %ProgramData%\GSRA\logs\agent.log with the agent's own lines.

// Off Windows only the portable parts are compiled, for their tests.
#![cfg_attr(not(windows), allow(dead_code))]

mod policy;
mod win32;

#[cfg(windows)]
mod acl_windows;
#[cfg(windows)]
mod child_windows;
#[cfg(windows)]
mod cleanup_windows;
#[cfg(windows)]
mod guard_windows;
#[cfg(windows)]
mod scm_windows;

#[cfg(windows)]
fn paths() -> policy::Paths {
    let exe = std::env::current_exe().unwrap_or_default();
    let install = exe.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let pd = std::env::var_os("ProgramData").map(std::path::PathBuf::from).unwrap_or_else(|| std::path::PathBuf::from("C:\\ProgramData"));
    policy::Paths::new(&install, &pd)
}

#[cfg(windows)]
fn log(p: &policy::Paths, event: &str, detail: &str) {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    child_windows::append(&p.agent_log(), &policy::log_line(ms, event, detail));
}

/// The host's work, under the SCM or in the console. Returns the service exit code.
#[cfg(windows)]
pub fn supervise(signal: std::sync::Arc<scm_windows::StopSignal>, running: impl FnOnce(), under_scm: bool) -> u32 {
    use policy::*;
    let p = paths();
    let _ = std::fs::create_dir_all(p.logs());
    if let Err(e) = acl_windows::protect_dir(&p.data) {
        log(&p, "acl failed", &e);
    }
    if let Ok(m) = std::fs::metadata(p.agent_log()) {
        if should_rotate(m.len()) {
            let _ = std::fs::rename(p.agent_log(), p.logs().join("agent.log.1"));
        }
    }
    log(&p, "service host starting", &p.install.display().to_string());
    if let Err(e) = child_windows::enter_job() {
        log(&p, "job object failed", &e);
    }
    if under_scm {
        if let Err(e) = scm_windows::set_failure_actions() {
            log(&p, "failure actions not set", &e);
        }
    }
    // The guard lives as long as this function.
    let _guard = open_guard(&p);
    running();
    let mut backoff = Backoff::default();
    let args: Vec<String> = p.agent_args("run").into_iter().chain(std::iter::once("--service".to_string())).collect();
    'outer: while !signal.is_stopped() {
        let mut agent = match child_windows::start(&p.node(), &args, &p.agent_log(), &[("GSRA_SERVICE", "1")]) {
            Ok(a) => a,
            Err(e) => {
                log(&p, "agent did not start", &e);
                if signal.wait(backoff.after_exit(std::time::Duration::ZERO)) {
                    break;
                }
                continue;
            }
        };
        log(&p, "agent started", "");
        loop {
            if signal.wait(std::time::Duration::from_millis(500)) {
                let how = agent.stop(STOP_GRACE);
                log(&p, "agent stopped", &how);
                break 'outer;
            }
            if let Some(status) = agent.exited() {
                let wait = backoff.after_exit(agent.started.elapsed());
                log(&p, "agent exited", &format!("{}; restarting in {} s", status, wait.as_secs()));
                if signal.wait(wait) {
                    break 'outer;
                }
                break;
            }
        }
    }
    log(&p, "service host stopped", "");
    0
}

#[cfg(windows)]
fn open_guard(p: &policy::Paths) -> Option<guard_windows::Guard> {
    let args = p.agent_args("windivert-guard");
    let filter = match child_windows::run_to_file(&p.node(), &args, &p.guard_file(), std::time::Duration::from_secs(30)) {
        Ok(0) => std::fs::read_to_string(p.guard_file()).map_err(|e| e.to_string()).and_then(|t| policy::parse_guard(&t)),
        Ok(code) => Err(format!("gsra-agent windivert-guard exited with {}", code)),
        Err(e) => Err(e),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            log(p, "no service guard (no filter)", &e);
            return None;
        }
    };
    match guard_windows::open(&p.install, &filter) {
        Ok(g) => {
            log(p, "service guard open", &filter);
            Some(g)
        }
        Err(code) => {
            log(p, "no service guard (WinDivertOpen failed)", &format!("Windows error {}; the agent reports what it means", code));
            None
        }
    }
}

#[cfg(windows)]
fn main() {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    let code = match cmd.as_str() {
        "" => match scm_windows::dispatch() {
            Ok(()) => 0,
            Err(win32::ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) => {
                eprintln!("gsra-service: this is the GSRA Agent service; start it with `sc start GsraAgent` (or run `gsra-service.exe console`)");
                2
            }
            Err(e) => {
                eprintln!("gsra-service: service dispatcher failed: error {}", e);
                1
            }
        },
        "console" => supervise(scm_windows::StopSignal::new(), || eprintln!("gsra-service: running in the console"), false) as i32,
        "prepare" => {
            let p = paths();
            let r = acl_windows::protect_dir(&p.data).and_then(|_| std::fs::create_dir_all(p.state()).map_err(|e| e.to_string())).and_then(|_| std::fs::create_dir_all(p.logs()).map_err(|e| e.to_string()));
            match r {
                Ok(()) => {
                    println!("gsra-service: {} ready (SYSTEM and Administrators only)", p.data.display());
                    0
                }
                Err(e) => {
                    eprintln!("gsra-service prepare: {}", e);
                    1
                }
            }
        }
        "cleanup" => {
            for line in cleanup_windows::run(&paths().data) {
                println!("gsra-service cleanup: {}", line);
            }
            0
        }
        other => {
            eprintln!("gsra-service: unknown command {:?} (commands: console, prepare, cleanup; none under the SCM)", other);
            2
        }
    };
    std::process::exit(code);
}

#[cfg(not(windows))]
fn main() {
    eprintln!("gsra-service is the Windows service host of the GSRA agent; on Linux the agent runs under systemd");
    std::process::exit(2);
}

//! gsra-service.exe — the GSRA Agent's Windows service host (service `GsraAgent`, LocalSystem,
//! automatic start). Why our own host and not node-windows/WinSW: see docs/windows.md.
//!
//!   gsra-service.exe            run under the service control manager
//!   gsra-service.exe console    the same supervision in the foreground (diagnosis, tests)
//!   gsra-service.exe prepare    MSI custom action: %ProgramData%\GSRA with its admin-only ACL
//!   gsra-service.exe cleanup [--purge]
//!                               MSI custom action on uninstall: WinDivert driver service and
//!                               its event source [and %ProgramData%\GSRA]
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

/// %ProgramData% from the shell's known folder, not the environment: a service's environment
/// need not carry it (Wine's gives services C:\users\Public).
#[cfg(windows)]
fn program_data() -> std::path::PathBuf {
    use std::os::windows::ffi::OsStringExt;
    unsafe {
        let mut p: *mut u16 = std::ptr::null_mut();
        if win32::SHGetKnownFolderPath(
            &win32::FOLDERID_PROGRAM_DATA,
            0,
            std::ptr::null_mut(),
            &mut p,
        ) == 0
            && !p.is_null()
        {
            let mut n = 0;
            while *p.add(n) != 0 {
                n += 1;
            }
            let s = std::ffi::OsString::from_wide(std::slice::from_raw_parts(p, n));
            win32::CoTaskMemFree(p as *mut std::os::raw::c_void);
            return std::path::PathBuf::from(s);
        }
    }
    std::path::PathBuf::from("C:\\ProgramData")
}

#[cfg(windows)]
fn paths() -> policy::Paths {
    let exe = std::env::current_exe().unwrap_or_default();
    let install = exe.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    policy::Paths::new(&install, &program_data())
}

#[cfg(windows)]
fn log(p: &policy::Paths, event: &str, detail: &str) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    child_windows::append(&p.agent_log(), &policy::log_line(ms, event, detail));
}

/// The host's work, under the SCM or in the console. Returns the service exit code.
#[cfg(windows)]
pub fn supervise(
    signal: std::sync::Arc<scm_windows::StopSignal>,
    running: impl FnOnce(),
    under_scm: bool,
) -> u32 {
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
    log(
        &p,
        "service host starting",
        &p.install.display().to_string(),
    );
    if let Err(e) = child_windows::enter_job() {
        log(&p, "job object failed", &e);
    }
    if under_scm {
        if let Err(e) = scm_windows::set_failure_actions() {
            log(&p, "failure actions not set", &e);
        }
    }
    running();
    // The guard lives as long as this function; it is open before the agent starts.
    let _guard = open_guard(&p);
    let mut backoff = Backoff::default();
    let args: Vec<String> = p
        .agent_args("run")
        .into_iter()
        .chain(std::iter::once("--service".to_string()))
        .collect();
    'outer: while !signal.is_stopped() {
        let mut agent = match child_windows::start(&p.node(), &args, &p.agent_log(), &child_env(&p))
        {
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
                log(
                    &p,
                    "agent exited",
                    &format!("{}; restarting in {} s", status, wait.as_secs()),
                );
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

/// The agent's environment: the same %ProgramData% the host uses (its default state folder).
#[cfg(windows)]
fn child_env(p: &policy::Paths) -> Vec<(String, String)> {
    let pd = p
        .data
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    vec![
        ("GSRA_SERVICE".into(), "1".into()),
        ("ProgramData".into(), pd),
    ]
}

#[cfg(windows)]
fn open_guard(p: &policy::Paths) -> Option<guard_windows::Guard> {
    let args = p.agent_args("windivert-guard");
    let filter = match child_windows::run_to_file(
        &p.node(),
        &args,
        &p.guard_file(),
        &child_env(p),
        std::time::Duration::from_secs(30),
    ) {
        Ok(0) => std::fs::read_to_string(p.guard_file())
            .map_err(|e| e.to_string())
            .and_then(|t| policy::parse_guard(&t)),
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
            log(
                p,
                "no service guard (WinDivertOpen failed)",
                &format!("Windows error {}; the agent reports what it means", code),
            );
            None
        }
    }
}

#[cfg(windows)]
fn main() {
    // A panic is written to the log before the process goes (the SCM then restarts the service).
    std::panic::set_hook(Box::new(|info| {
        log(&paths(), "service host panicked", &info.to_string())
    }));
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
        "console" => supervise(
            scm_windows::StopSignal::new(),
            || eprintln!("gsra-service: running in the console"),
            false,
        ) as i32,
        "prepare" => {
            let p = paths();
            let r = acl_windows::protect_dir(&p.data)
                .and_then(|_| std::fs::create_dir_all(p.state()).map_err(|e| e.to_string()))
                .and_then(|_| std::fs::create_dir_all(p.logs()).map_err(|e| e.to_string()));
            match r {
                Ok(()) => {
                    println!(
                        "gsra-service: {} ready (SYSTEM and Administrators only)",
                        p.data.display()
                    );
                    0
                }
                Err(e) => {
                    eprintln!("gsra-service prepare: {}", e);
                    1
                }
            }
        }
        "cleanup" => {
            let purge = std::env::args().nth(2).as_deref() == Some("--purge");
            for line in cleanup_windows::run(&paths().data, purge) {
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

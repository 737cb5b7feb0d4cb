//! `gsra-service.exe cleanup [--purge]`: what the MSI runs (deferred, as SYSTEM) on uninstall:
//! stop the WinDivert driver service so the driver unloads and its service entry goes away
//! (WinDivert.dll marks it for deletion when it starts it) and remove WinDivert's event log
//! source; with --purge (MSI property PURGE=1) also delete %ProgramData%\GSRA (config, cached
//! login, logs). Every step is best-effort and reported; a driver still used by another program
//! stays until reboot.

use crate::win32::*;
use std::path::Path;

fn stop_and_delete(name: &str) -> String {
    unsafe {
        let scm = OpenSCManagerW(std::ptr::null(), std::ptr::null(), SC_MANAGER_ALL_ACCESS);
        if scm.is_null() {
            return format!("service manager: error {}", GetLastError());
        }
        let n = wide(std::ffi::OsStr::new(name));
        let svc = OpenServiceW(scm, n.as_ptr(), SERVICE_ALL_ACCESS);
        if svc.is_null() {
            let e = GetLastError();
            CloseServiceHandle(scm);
            return if e == ERROR_SERVICE_DOES_NOT_EXIST {
                format!("{}: not installed", name)
            } else {
                format!("{}: error {}", name, e)
            };
        }
        let mut st = SERVICE_STATUS::default();
        let stopped = if ControlService(svc, SERVICE_CONTROL_STOP, &mut st) != 0 {
            "stopped".to_string()
        } else {
            match GetLastError() {
                ERROR_SERVICE_NOT_ACTIVE => "was not running".to_string(),
                e => format!("stop failed (error {}; removed at reboot)", e),
            }
        };
        let deleted = if DeleteService(svc) != 0 {
            "deleted".to_string()
        } else {
            format!("delete: error {}", GetLastError())
        };
        CloseServiceHandle(svc);
        CloseServiceHandle(scm);
        format!("{}: {}, {}", name, stopped, deleted)
    }
}

pub fn run(data: &Path, purge: bool) -> Vec<String> {
    let mut out = vec![stop_and_delete("WinDivert")];
    let key = wide(std::ffi::OsStr::new(
        "SYSTEM\\CurrentControlSet\\Services\\EventLog\\System\\WinDivert",
    ));
    let r = unsafe { RegDeleteTreeW(HKEY_LOCAL_MACHINE, key.as_ptr()) };
    out.push(format!(
        "WinDivert event source: {}",
        if r == 0 {
            "removed".to_string()
        } else if r == 2 {
            "not present".to_string()
        } else {
            format!("error {}", r)
        }
    ));
    if !purge {
        out.push(format!(
            "{}: kept (uninstall with PURGE=1 to remove it)",
            data.display()
        ));
        return out;
    }
    out.push(match std::fs::remove_dir_all(data) {
        Ok(()) => format!("{}: removed", data.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("{}: not present", data.display())
        }
        Err(e) => format!("{}: {}", data.display(), e),
    });
    out
}

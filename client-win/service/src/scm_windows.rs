//! The service control manager's side: the dispatcher, the control handler, status reports,
//! and the service's own failure actions (restart after 5 s, 30 s, 60 s; reset after a day).
//! SCM -> `service_main` -> `crate::supervise` on this thread; STOP/SHUTDOWN set the stop flag
//! the supervisor waits on.

use crate::win32::*;
use std::os::raw::c_void;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Condvar, Mutex};

pub const SERVICE_NAME: &str = "GsraAgent";

/// Set by a STOP or SHUTDOWN control; the supervisor waits on it.
pub struct StopSignal {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    pub fn new() -> Arc<StopSignal> {
        Arc::new(StopSignal {
            stopped: Mutex::new(false),
            cv: Condvar::new(),
        })
    }
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }
    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Waits up to `d`; true if stopped.
    pub fn wait(&self, d: std::time::Duration) -> bool {
        let g = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, d, |s| !*s)
            .unwrap_or_else(|p| p.into_inner());
        *g
    }
}

static STATUS_HANDLE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static SIGNAL: Mutex<Option<Arc<StopSignal>>> = Mutex::new(None);

pub fn report(state: u32, exit_code: u32, wait_hint_ms: u32) {
    let h = STATUS_HANDLE.load(Ordering::Acquire);
    if h.is_null() {
        return;
    }
    let accepts = if state == SERVICE_RUNNING {
        SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN
    } else {
        0
    };
    let st = SERVICE_STATUS {
        service_type: SERVICE_WIN32_OWN_PROCESS,
        current_state: state,
        controls_accepted: accepts,
        win32_exit_code: if exit_code == 0 {
            NO_ERROR
        } else {
            ERROR_SERVICE_SPECIFIC_ERROR
        },
        service_exit_code: exit_code,
        check_point: if state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING {
            1
        } else {
            0
        },
        wait_hint: wait_hint_ms,
    };
    unsafe { SetServiceStatus(h, &st) };
}

unsafe extern "system" fn handler(
    control: u32,
    _ev: u32,
    _data: *mut c_void,
    _ctx: *mut c_void,
) -> u32 {
    match control {
        SERVICE_CONTROL_STOP | SERVICE_CONTROL_SHUTDOWN => {
            report(
                SERVICE_STOP_PENDING,
                0,
                (crate::policy::STOP_GRACE.as_millis() as u32) + 5000,
            );
            if let Some(s) = SIGNAL.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                s.stop();
            }
            NO_ERROR
        }
        SERVICE_CONTROL_INTERROGATE => NO_ERROR,
        _ => ERROR_CALL_NOT_IMPLEMENTED,
    }
}

unsafe extern "system" fn service_main(_argc: u32, _argv: *mut *mut u16) {
    let name = wide(std::ffi::OsStr::new(SERVICE_NAME));
    let h = RegisterServiceCtrlHandlerExW(name.as_ptr(), Some(handler), std::ptr::null_mut());
    if h.is_null() {
        return;
    }
    STATUS_HANDLE.store(h, Ordering::Release);
    let signal = StopSignal::new();
    *SIGNAL.lock().unwrap_or_else(|p| p.into_inner()) = Some(signal.clone());
    report(SERVICE_START_PENDING, 0, 10_000);
    let code = crate::supervise(signal, || report(SERVICE_RUNNING, 0, 0), true);
    report(SERVICE_STOPPED, code, 0);
}

/// Runs under the SCM. Err(1063) when started from a console instead.
pub fn dispatch() -> Result<(), u32> {
    let mut name = wide(std::ffi::OsStr::new(SERVICE_NAME));
    let table = [
        SERVICE_TABLE_ENTRYW {
            name: name.as_mut_ptr(),
            proc_: Some(service_main),
        },
        SERVICE_TABLE_ENTRYW {
            name: std::ptr::null_mut(),
            proc_: None,
        },
    ];
    if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } == 0 {
        return Err(unsafe { GetLastError() });
    }
    Ok(())
}

/// The service restarts itself if the host dies: 5 s, 30 s, then 60 s; the count resets after a
/// day without failure; a non-zero exit counts as a failure too. Idempotent (every start).
pub fn set_failure_actions() -> Result<(), String> {
    unsafe {
        let scm = OpenSCManagerW(std::ptr::null(), std::ptr::null(), SC_MANAGER_CONNECT);
        if scm.is_null() {
            return Err(format!("OpenSCManager: error {}", GetLastError()));
        }
        let name = wide(std::ffi::OsStr::new(SERVICE_NAME));
        let svc = OpenServiceW(scm, name.as_ptr(), SERVICE_ALL_ACCESS);
        if svc.is_null() {
            let e = GetLastError();
            CloseServiceHandle(scm);
            return Err(format!("OpenService {}: error {}", SERVICE_NAME, e));
        }
        let mut actions = [
            SC_ACTION {
                kind: SC_ACTION_RESTART,
                delay_ms: 5000,
            },
            SC_ACTION {
                kind: SC_ACTION_RESTART,
                delay_ms: 30_000,
            },
            SC_ACTION {
                kind: SC_ACTION_RESTART,
                delay_ms: 60_000,
            },
        ];
        let mut fa = SERVICE_FAILURE_ACTIONSW {
            reset_period_s: 86_400,
            reboot_msg: std::ptr::null_mut(),
            command: std::ptr::null_mut(),
            count: actions.len() as u32,
            actions: actions.as_mut_ptr(),
        };
        let ok1 = ChangeServiceConfig2W(
            svc,
            SERVICE_CONFIG_FAILURE_ACTIONS,
            &mut fa as *mut _ as *mut c_void,
        );
        let e1 = GetLastError();
        let mut flag = SERVICE_FAILURE_ACTIONS_FLAG {
            on_non_crash_failures: 1,
        };
        let ok2 = ChangeServiceConfig2W(
            svc,
            SERVICE_CONFIG_FAILURE_ACTIONS_FLAG,
            &mut flag as *mut _ as *mut c_void,
        );
        let e2 = GetLastError();
        CloseServiceHandle(svc);
        CloseServiceHandle(scm);
        match (ok1, ok2) {
            (0, _) => Err(format!("failure actions: error {}", e1)),
            (_, 0) => Err(format!("failure actions flag: error {}", e2)),
            _ => Ok(()),
        }
    }
}

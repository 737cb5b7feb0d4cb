//! The Win32 declarations the service host uses (advapi32, kernel32), declared by hand like
//! native/'s FFI: std + FFI only, no crates. x86-64 only (the MSI is x64). The structs compile
//! everywhere, so their sizes are checked by `cargo test` on Linux too.
#![allow(non_snake_case, clippy::upper_case_acronyms)]

use std::os::raw::c_void;

pub type HANDLE = *mut c_void;
pub type BOOL = i32;

#[repr(C)]
pub struct SERVICE_TABLE_ENTRYW {
    pub name: *mut u16,
    pub proc_: Option<unsafe extern "system" fn(u32, *mut *mut u16)>,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SERVICE_STATUS {
    pub service_type: u32,
    pub current_state: u32,
    pub controls_accepted: u32,
    pub win32_exit_code: u32,
    pub service_exit_code: u32,
    pub check_point: u32,
    pub wait_hint: u32,
}

#[repr(C)]
pub struct SC_ACTION {
    pub kind: u32,
    pub delay_ms: u32,
}

#[repr(C)]
pub struct SERVICE_FAILURE_ACTIONSW {
    pub reset_period_s: u32,
    pub reboot_msg: *mut u16,
    pub command: *mut u16,
    pub count: u32,
    pub actions: *mut SC_ACTION,
}

#[repr(C)]
pub struct SERVICE_FAILURE_ACTIONS_FLAG {
    pub on_non_crash_failures: BOOL,
}

#[repr(C)]
#[derive(Default)]
pub struct JOBOBJECT_BASIC_LIMIT_INFORMATION {
    pub per_process_user_time: i64,
    pub per_job_user_time: i64,
    pub limit_flags: u32,
    pub min_ws: usize,
    pub max_ws: usize,
    pub active_process_limit: u32,
    pub affinity: usize,
    pub priority_class: u32,
    pub scheduling_class: u32,
}

#[repr(C)]
#[derive(Default)]
pub struct IO_COUNTERS {
    pub counts: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
pub struct JOBOBJECT_EXTENDED_LIMIT_INFORMATION {
    pub basic: JOBOBJECT_BASIC_LIMIT_INFORMATION,
    pub io: IO_COUNTERS,
    pub process_memory_limit: usize,
    pub job_memory_limit: usize,
    pub peak_process_memory: usize,
    pub peak_job_memory: usize,
}

pub const SERVICE_WIN32_OWN_PROCESS: u32 = 0x10;
pub const SERVICE_STOPPED: u32 = 1;
pub const SERVICE_START_PENDING: u32 = 2;
pub const SERVICE_STOP_PENDING: u32 = 3;
pub const SERVICE_RUNNING: u32 = 4;
pub const SERVICE_ACCEPT_STOP: u32 = 1;
pub const SERVICE_ACCEPT_SHUTDOWN: u32 = 4;
pub const SERVICE_CONTROL_STOP: u32 = 1;
pub const SERVICE_CONTROL_INTERROGATE: u32 = 4;
pub const SERVICE_CONTROL_SHUTDOWN: u32 = 5;
pub const NO_ERROR: u32 = 0;
pub const ERROR_CALL_NOT_IMPLEMENTED: u32 = 120;
pub const ERROR_SERVICE_SPECIFIC_ERROR: u32 = 1066;
pub const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: u32 = 1063;
pub const ERROR_SERVICE_DOES_NOT_EXIST: u32 = 1060;
pub const ERROR_SERVICE_NOT_ACTIVE: u32 = 1062;
pub const SC_MANAGER_CONNECT: u32 = 0x1;
pub const SC_MANAGER_ALL_ACCESS: u32 = 0xF003F;
pub const SERVICE_ALL_ACCESS: u32 = 0xF01FF;
pub const SERVICE_CONFIG_FAILURE_ACTIONS: u32 = 2;
pub const SERVICE_CONFIG_FAILURE_ACTIONS_FLAG: u32 = 4;
pub const SC_ACTION_RESTART: u32 = 1;
pub const JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS: u32 = 9;
pub const JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: u32 = 0x2000;
pub const SE_FILE_OBJECT: u32 = 1;
pub const DACL_SECURITY_INFORMATION: u32 = 0x4;
pub const PROTECTED_DACL_SECURITY_INFORMATION: u32 = 0x8000_0000;
pub const SDDL_REVISION_1: u32 = 1;
#[repr(C)]
pub struct GUID {
    pub d1: u32,
    pub d2: u16,
    pub d3: u16,
    pub d4: [u8; 8],
}
/// FOLDERID_ProgramData {62AB5D82-FDC1-4DC3-A9DD-070D1D495D97}.
pub const FOLDERID_PROGRAM_DATA: GUID = GUID {
    d1: 0x62AB5D82,
    d2: 0xFDC1,
    d3: 0x4DC3,
    d4: [0xA9, 0xDD, 0x07, 0x0D, 0x1D, 0x49, 0x5D, 0x97],
};
pub const HKEY_LOCAL_MACHINE: HANDLE = 0x8000_0002usize as HANDLE;

#[cfg(windows)]
#[link(name = "advapi32")]
extern "system" {
    pub fn StartServiceCtrlDispatcherW(table: *const SERVICE_TABLE_ENTRYW) -> BOOL;
    pub fn RegisterServiceCtrlHandlerExW(
        name: *const u16,
        handler: Option<unsafe extern "system" fn(u32, u32, *mut c_void, *mut c_void) -> u32>,
        ctx: *mut c_void,
    ) -> HANDLE;
    pub fn SetServiceStatus(h: HANDLE, status: *const SERVICE_STATUS) -> BOOL;
    pub fn OpenSCManagerW(machine: *const u16, db: *const u16, access: u32) -> HANDLE;
    pub fn OpenServiceW(scm: HANDLE, name: *const u16, access: u32) -> HANDLE;
    pub fn ChangeServiceConfig2W(svc: HANDLE, level: u32, info: *mut c_void) -> BOOL;
    pub fn ControlService(svc: HANDLE, control: u32, status: *mut SERVICE_STATUS) -> BOOL;
    pub fn DeleteService(svc: HANDLE) -> BOOL;
    pub fn CloseServiceHandle(h: HANDLE) -> BOOL;
    pub fn ConvertStringSecurityDescriptorToSecurityDescriptorW(
        sddl: *const u16,
        rev: u32,
        sd: *mut *mut c_void,
        len: *mut u32,
    ) -> BOOL;
    pub fn GetSecurityDescriptorDacl(
        sd: *mut c_void,
        present: *mut BOOL,
        dacl: *mut *mut c_void,
        defaulted: *mut BOOL,
    ) -> BOOL;
    pub fn SetNamedSecurityInfoW(
        name: *mut u16,
        kind: u32,
        info: u32,
        owner: *mut c_void,
        group: *mut c_void,
        dacl: *mut c_void,
        sacl: *mut c_void,
    ) -> u32;
    pub fn RegDeleteTreeW(key: HANDLE, subkey: *const u16) -> i32;
}

#[cfg(windows)]
#[link(name = "kernel32")]
extern "system" {
    pub fn CreateJobObjectW(attrs: *mut c_void, name: *const u16) -> HANDLE;
    pub fn SetInformationJobObject(job: HANDLE, class: u32, info: *mut c_void, len: u32) -> BOOL;
    pub fn AssignProcessToJobObject(job: HANDLE, process: HANDLE) -> BOOL;
    pub fn GetCurrentProcess() -> HANDLE;
    pub fn LocalFree(mem: *mut c_void) -> *mut c_void;
    pub fn GetLastError() -> u32;
    pub fn LoadLibraryExW(name: *const u16, file: HANDLE, flags: u32) -> HANDLE;
    pub fn GetProcAddress(module: HANDLE, name: *const u8) -> *mut c_void;
}

#[cfg(windows)]
#[link(name = "shell32")]
extern "system" {
    pub fn SHGetKnownFolderPath(
        id: *const GUID,
        flags: u32,
        token: HANDLE,
        path: *mut *mut u16,
    ) -> i32;
}

#[cfg(windows)]
#[link(name = "ole32")]
extern "system" {
    pub fn CoTaskMemFree(p: *mut c_void);
}

/// A NUL-terminated UTF-16 copy of `s`.
#[cfg(windows)]
pub fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt;
    s.encode_wide().chain(std::iter::once(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn struct_sizes_match_the_windows_headers() {
        assert_eq!(std::mem::size_of::<SERVICE_STATUS>(), 28);
        assert_eq!(std::mem::size_of::<SERVICE_FAILURE_ACTIONSW>(), 40);
        assert_eq!(std::mem::size_of::<JOBOBJECT_BASIC_LIMIT_INFORMATION>(), 64);
        assert_eq!(
            std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>(),
            144
        );
        assert_eq!(std::mem::size_of::<GUID>(), 16);
    }
}

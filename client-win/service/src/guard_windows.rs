//! The service's own WinDivert guard: a WINDIVERT_FLAG_DROP handle for outbound packets to the
//! VIN range, below the agent's handles in priority, held for as long as the service runs. The
//! agent translates VIN-bound packets before they reach it; if the agent dies, what WinDivert
//! re-injects from its closing handles and every new VIN-bound packet is dropped here instead
//! of leaving untranslated. The filter comes from the agent itself (`gsra-agent
//! windivert-guard`), so it follows the configured VIN range.

use crate::win32::*;
use std::ffi::CString;
use std::path::Path;

/// PRIORITY_SERVICE_GUARD in native/src/backend/windivert_rules.rs.
const PRIORITY: i16 = -1001;
const FLAG_DROP: u64 = 0x0002;
const LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR: u32 = 0x100;
const LOAD_LIBRARY_SEARCH_SYSTEM32: u32 = 0x800;

type OpenFn = unsafe extern "system" fn(*const i8, u32, i16, u64) -> HANDLE;

pub struct Guard(#[allow(dead_code)] HANDLE);

/// Opens the guard with `filter`; Err(code) is WinDivertOpen's (or the loader's) error.
pub fn open(install: &Path, filter: &str) -> Result<Guard, u32> {
    unsafe {
        let dll = wide(install.join("WinDivert.dll").as_os_str());
        let m = LoadLibraryExW(
            dll.as_ptr(),
            std::ptr::null_mut(),
            LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32,
        );
        if m.is_null() {
            return Err(GetLastError());
        }
        let f = GetProcAddress(m, b"WinDivertOpen\0".as_ptr());
        if f.is_null() {
            return Err(GetLastError());
        }
        let open: OpenFn = std::mem::transmute(f);
        let c = CString::new(filter).map_err(|_| 87u32)?;
        let h = open(c.as_ptr(), 0, PRIORITY, FLAG_DROP);
        if h.is_null() || h == (-1isize) as HANDLE {
            return Err(GetLastError());
        }
        Ok(Guard(h))
    }
}

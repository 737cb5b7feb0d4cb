//! %ProgramData%\GSRA readable by SYSTEM and Administrators only (config, cached login, logs).
//! wixl has no Permission element, so the MSI runs `gsra-service.exe prepare` as a deferred
//! custom action (as SYSTEM) after the files are in place; the service host applies the same
//! ACL again at every start, so a folder whose ACL was loosened by hand is tightened again.

use crate::policy::DATA_SDDL;
use crate::win32::*;
use std::os::raw::c_void;
use std::path::Path;

/// Creates `dir` if needed and gives it the protected DACL of `DATA_SDDL` (children inherit it).
pub fn protect_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
    unsafe {
        let sddl = wide(std::ffi::OsStr::new(DATA_SDDL));
        let mut sd: *mut c_void = std::ptr::null_mut();
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        ) == 0
        {
            return Err(format!("SDDL {}: error {}", DATA_SDDL, GetLastError()));
        }
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl: *mut c_void = std::ptr::null_mut();
        let ok = GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted);
        let r = if ok == 0 || present == 0 {
            Err(format!("no DACL in {}", DATA_SDDL))
        } else {
            let mut name = wide(dir.as_os_str());
            match SetNamedSecurityInfoW(
                name.as_mut_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null_mut(),
            ) {
                0 => Ok(()),
                e => Err(format!("setting the ACL of {}: error {}", dir.display(), e)),
            }
        };
        LocalFree(sd);
        r
    }
}

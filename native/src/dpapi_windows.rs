//! DPAPI (CryptProtectData / CryptUnprotectData, crypt32.dll): how the Windows agent keeps its
//! cached login (per-user secret, group keys) on disk. On Linux the same file is plain JSON with
//! mode 0600 (client-win/src/protected-file-linux.ts).
//!
//! Scope: `machine` (CRYPTPROTECT_LOCAL_MACHINE) binds the blob to this PC: a copy of the file
//! is useless elsewhere, but any process on this PC that can read the file can decrypt it, so
//! the file's ACL (SYSTEM and Administrators only) is what keeps other users out. The agent
//! uses machine scope because `gsra-agent login` runs as an administrator and the service that
//! reads the file runs as LocalSystem; user scope would bind it to one of them only.
//! The fixed entropy keeps other DPAPI users' blobs and ours apart.

use std::os::raw::c_void;

#[repr(C)]
struct Blob {
    len: u32,
    data: *mut u8,
}

#[link(name = "crypt32")]
extern "system" {
    fn CryptProtectData(data_in: *const Blob, descr: *const u16, entropy: *const Blob, reserved: *mut c_void, prompt: *mut c_void, flags: u32, data_out: *mut Blob) -> i32;
    fn CryptUnprotectData(data_in: *const Blob, descr: *mut *mut u16, entropy: *const Blob, reserved: *mut c_void, prompt: *mut c_void, flags: u32, data_out: *mut Blob) -> i32;
}

#[link(name = "kernel32")]
extern "system" {
    fn LocalFree(mem: *mut c_void) -> *mut c_void;
    fn GetLastError() -> u32;
}

const CRYPTPROTECT_UI_FORBIDDEN: u32 = 0x1;
const CRYPTPROTECT_LOCAL_MACHINE: u32 = 0x4;
const ENTROPY: &[u8] = b"GSRA agent cached login v1";

fn blob(b: &[u8]) -> Blob {
    Blob { len: b.len() as u32, data: b.as_ptr() as *mut u8 }
}

/// Takes DPAPI's output buffer (LocalAlloc'ed) into a Vec and frees it.
unsafe fn take(out: Blob) -> Vec<u8> {
    let v = if out.data.is_null() { Vec::new() } else { std::slice::from_raw_parts(out.data, out.len as usize).to_vec() };
    if !out.data.is_null() {
        // Plaintext from CryptUnprotectData: wipe before giving the memory back.
        std::ptr::write_bytes(out.data, 0, out.len as usize);
        LocalFree(out.data as *mut c_void);
    }
    v
}

pub fn protect(data: &[u8], machine: bool) -> Result<Vec<u8>, String> {
    if data.len() > u32::MAX as usize / 2 {
        return Err("too much data for DPAPI".into());
    }
    let inp = blob(data);
    let ent = blob(ENTROPY);
    let mut out = Blob { len: 0, data: std::ptr::null_mut() };
    let flags = CRYPTPROTECT_UI_FORBIDDEN | if machine { CRYPTPROTECT_LOCAL_MACHINE } else { 0 };
    let descr: Vec<u16> = "GSRA agent".encode_utf16().chain(std::iter::once(0)).collect();
    let ok = unsafe { CryptProtectData(&inp, descr.as_ptr(), &ent, std::ptr::null_mut(), std::ptr::null_mut(), flags, &mut out) };
    if ok == 0 {
        return Err(format!("DPAPI could not protect the data (Windows error {})", unsafe { GetLastError() }));
    }
    Ok(unsafe { take(out) })
}

pub fn unprotect(data: &[u8]) -> Result<Vec<u8>, String> {
    let inp = blob(data);
    let ent = blob(ENTROPY);
    let mut out = Blob { len: 0, data: std::ptr::null_mut() };
    let ok = unsafe { CryptUnprotectData(&inp, std::ptr::null_mut(), &ent, std::ptr::null_mut(), std::ptr::null_mut(), CRYPTPROTECT_UI_FORBIDDEN, &mut out) };
    if ok == 0 {
        let code = unsafe { GetLastError() };
        return Err(match code {
            13 => "the cached login cannot be decrypted: it was written on another PC or altered (error 13); log in again".to_string(),
            c => format!("the cached login cannot be decrypted (Windows error {}); log in again", c),
        });
    }
    Ok(unsafe { take(out) })
}

//! N-API as node exports it, declared by hand (no crates). On Linux the cdylib leaves these
//! symbols undefined and node provides them at load time; on Windows they are imported from
//! node.exe (build.sh --windows makes the import library).

use std::os::raw::{c_char, c_int, c_void};

pub type Env = *mut c_void;
pub type Value = *mut c_void;
pub type CbInfo = *mut c_void;
pub type Status = c_int;
pub type Callback = unsafe extern "C" fn(Env, CbInfo) -> Value;
pub type Finalize = unsafe extern "C" fn(Env, *mut c_void, *mut c_void);
pub type CallJs = unsafe extern "C" fn(Env, Value, *mut c_void, *mut c_void);
pub type Tsfn = *mut c_void;

extern "C" {
    pub fn napi_create_function(env: Env, name: *const c_char, len: usize, cb: Callback, data: *mut c_void, result: *mut Value) -> Status;
    pub fn napi_set_named_property(env: Env, obj: Value, name: *const c_char, v: Value) -> Status;
    pub fn napi_get_named_property(env: Env, obj: Value, name: *const c_char, result: *mut Value) -> Status;
    pub fn napi_get_cb_info(env: Env, info: CbInfo, argc: *mut usize, argv: *mut Value, this: *mut Value, data: *mut *mut c_void) -> Status;
    pub fn napi_typeof(env: Env, v: Value, result: *mut c_int) -> Status;
    pub fn napi_get_value_double(env: Env, v: Value, result: *mut f64) -> Status;
    pub fn napi_get_value_bool(env: Env, v: Value, result: *mut bool) -> Status;
    pub fn napi_get_value_string_utf8(env: Env, v: Value, buf: *mut c_char, size: usize, result: *mut usize) -> Status;
    pub fn napi_is_typedarray(env: Env, v: Value, result: *mut bool) -> Status;
    pub fn napi_get_typedarray_info(env: Env, v: Value, ty: *mut c_int, len: *mut usize, data: *mut *mut c_void, ab: *mut Value, off: *mut usize) -> Status;
    pub fn napi_is_array(env: Env, v: Value, result: *mut bool) -> Status;
    pub fn napi_get_array_length(env: Env, v: Value, result: *mut u32) -> Status;
    pub fn napi_get_element(env: Env, v: Value, i: u32, result: *mut Value) -> Status;
    pub fn napi_set_element(env: Env, v: Value, i: u32, e: Value) -> Status;
    pub fn napi_create_array_with_length(env: Env, len: usize, result: *mut Value) -> Status;
    pub fn napi_create_object(env: Env, result: *mut Value) -> Status;
    pub fn napi_create_double(env: Env, v: f64, result: *mut Value) -> Status;
    pub fn napi_create_string_utf8(env: Env, s: *const c_char, len: usize, result: *mut Value) -> Status;
    pub fn napi_get_boolean(env: Env, v: bool, result: *mut Value) -> Status;
    pub fn napi_get_undefined(env: Env, result: *mut Value) -> Status;
    pub fn napi_get_null(env: Env, result: *mut Value) -> Status;
    pub fn napi_create_buffer_copy(env: Env, len: usize, data: *const c_void, rdata: *mut *mut c_void, result: *mut Value) -> Status;
    pub fn napi_create_external(env: Env, data: *mut c_void, fin: Finalize, hint: *mut c_void, result: *mut Value) -> Status;
    pub fn napi_get_value_external(env: Env, v: Value, result: *mut *mut c_void) -> Status;
    pub fn napi_throw_type_error(env: Env, code: *const c_char, msg: *const c_char) -> Status;
    pub fn napi_throw_error(env: Env, code: *const c_char, msg: *const c_char) -> Status;
    pub fn napi_is_exception_pending(env: Env, result: *mut bool) -> Status;
    pub fn napi_call_function(env: Env, recv: Value, f: Value, argc: usize, argv: *const Value, result: *mut Value) -> Status;
    pub fn napi_create_threadsafe_function(
        env: Env,
        func: Value,
        res: Value,
        res_name: Value,
        max_queue: usize,
        threads: usize,
        fin_data: *mut c_void,
        fin: Option<Finalize>,
        ctx: *mut c_void,
        call_js: CallJs,
        result: *mut Tsfn,
    ) -> Status;
    pub fn napi_call_threadsafe_function(f: Tsfn, data: *mut c_void, blocking: c_int) -> Status;
    pub fn napi_unref_threadsafe_function(env: Env, f: Tsfn) -> Status;
}

pub const T_UNDEFINED: c_int = 0;
pub const T_NULL: c_int = 1;
pub const T_BOOLEAN: c_int = 2;
pub const T_NUMBER: c_int = 3;
pub const T_STRING: c_int = 4;
pub const T_OBJECT: c_int = 6;
pub const T_FUNCTION: c_int = 7;
pub const T_EXTERNAL: c_int = 8;

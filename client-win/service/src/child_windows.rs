//! The agent process: node.exe with the bundled agent, in a job object that dies with the host.
//!
//! The host puts itself in a job with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE before it starts
//! anything; children inherit the job, and the host holds the job's only handle, so when the
//! host ends for any reason (stopped, crashed, killed) Windows kills node.exe too: no orphaned
//! agent keeps diverting packets without a supervisor.
//! Stop: the host closes the agent's stdin (the agent's `run --service` treats end of stdin as
//! its stop signal, like SIGTERM on Linux), waits `STOP_GRACE`, then kills it.

use crate::win32::*;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::raw::c_void;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Puts this process (and so every child it starts) in a kill-on-close job.
pub fn enter_job() -> Result<(), String> {
    unsafe {
        let job = CreateJobObjectW(std::ptr::null_mut(), std::ptr::null());
        if job.is_null() {
            return Err(format!("CreateJobObject: error {}", GetLastError()));
        }
        let mut info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
        info.basic.limit_flags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        if SetInformationJobObject(
            job,
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
            &mut info as *mut _ as *mut c_void,
            std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        ) == 0
        {
            return Err(format!("SetInformationJobObject: error {}", GetLastError()));
        }
        if AssignProcessToJobObject(job, GetCurrentProcess()) == 0 {
            return Err(format!(
                "AssignProcessToJobObject: error {}",
                GetLastError()
            ));
        }
        // The handle stays open for the life of the process, on purpose.
        Ok(())
    }
}

pub struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    pub started: Instant,
}

pub fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Starts `node args…` with stdout and stderr appended to `log` and a pipe as stdin.
pub fn start(
    node: &Path,
    args: &[String],
    log: &Path,
    env: &[(String, String)],
) -> Result<Agent, String> {
    let out = open_log(log).map_err(|e| format!("{}: {}", log.display(), e))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(node);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(dir) = node.parent() {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {}", node.display(), e))?;
    let stdin = child.stdin.take();
    Ok(Agent {
        child,
        stdin,
        started: Instant::now(),
    })
}

impl Agent {
    /// Non-blocking: Some(status) once the agent has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Asks the agent to stop (end of stdin), then kills it after `grace`.
    pub fn stop(mut self, grace: Duration) -> String {
        drop(self.stdin.take());
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Some(s) = self.exited() {
                return format!("agent stopped ({})", s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("agent did not stop within {} s: killed", grace.as_secs())
    }
}

/// Runs `node args…` to completion with stdout to `out_file` (a file: node.exe's stdio works
/// with files everywhere, also under Wine). Returns the exit code.
pub fn run_to_file(
    node: &Path,
    args: &[String],
    out_file: &Path,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<i32, String> {
    let out = File::create(out_file).map_err(|e| format!("{}: {}", out_file.display(), e))?;
    let mut cmd = Command::new(node);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let until = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(s.code().unwrap_or(-1));
        }
        if Instant::now() >= until {
            let _ = child.kill();
            return Err("timed out".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn append(log: &Path, line: &str) {
    if let Ok(mut f) = open_log(log) {
        let _ = f.write_all(line.as_bytes());
    }
}

//! Poison-tolerant locking: a panic caught while one packet held a lock must not wedge the engine,
//! so a poisoned mutex is used as it is (every holder leaves its data consistent between packets).

use std::sync::{Mutex, MutexGuard};

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

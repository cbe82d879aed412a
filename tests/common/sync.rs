//! A value guarded by a mutex with a condition variable, so tests wait for a state instead of
//! sleeping. Poisoning is ignored: a panicking helper thread must not hide the state from the test.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct Watch<T> {
    state: Mutex<T>,
    changed: Condvar,
}

impl<T> Watch<T> {
    pub fn new(value: T) -> Self {
        Watch {
            state: Mutex::new(value),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the value and wakes every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }

    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.lock())
    }

    /// Waits until `pred` holds or `timeout` has passed; returns whether it holds.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&T) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock();
        loop {
            if pred(&guard) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

//! Pinning the data path's threads to CPUs (`daemon.cpus`). Where ocalad shares a few cores
//! with busy applications, the scheduler moves its threads from core to core and now and
//! then stacks them on one with the applications on the other; a pinned thread keeps a core,
//! its caches and its place in the kernel's per-CPU queues. The engine thread pins itself
//! before it starts work; the writer thread is pinned by the thread that started it, so a
//! refusal is an error at start, not a warning lost on another thread.

use std::io;
use std::mem::size_of;
use std::os::unix::thread::JoinHandleExt;
use std::thread::JoinHandle;

/// How many CPUs a CPU set can name (`CPU_SETSIZE`): a larger number cannot be pinned to.
pub const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;

/// The set holding `cpu` alone.
fn only(cpu: usize) -> io::Result<libc::cpu_set_t> {
    if cpu >= MAX_CPUS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is beyond the {MAX_CPUS} a CPU set can name"),
        ));
    }
    // SAFETY: a cpu_set_t is a plain bit array, and all zeros is the empty set; `cpu` is
    // within it (checked above).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        Ok(set)
    }
}

/// Pins the calling thread to `cpu`. The kernel refuses a CPU that is offline or outside the
/// cpuset of the process's cgroup, with `EINVAL`.
pub fn pin_current(cpu: usize) -> io::Result<()> {
    let set = only(cpu)?;
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Pins the thread of `handle` to `cpu`.
pub fn pin<T>(handle: &JoinHandle<T>, cpu: usize) -> io::Result<()> {
    let set = only(cpu)?;
    // SAFETY: the handle's thread has not been joined, so its pthread_t is valid; `set` is
    // a valid cpu_set_t of the size passed.
    let rc = unsafe {
        libc::pthread_setaffinity_np(handle.as_pthread_t(), size_of::<libc::cpu_set_t>(), &set)
    };
    match rc {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// The CPUs the calling thread may run on now, in order: what a refused pin is told to
/// choose from.
pub fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: all zeros is a valid cpu_set_t, which the kernel fills; pid 0 is the calling
    // thread.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        set
    };
    // SAFETY: every index is below CPU_SETSIZE.
    Ok((0..MAX_CPUS)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<usize> {
        super::allowed().expect("the calling thread's CPUs")
    }

    /// A CPU the kernel refuses: the last one a set can name, which no machine here has.
    fn refused() -> usize {
        MAX_CPUS - 1
    }

    #[test]
    fn a_thread_pinned_to_a_cpu_runs_there_alone() {
        // On threads of their own: pinning the test harness's would outlast the test.
        let last = *allowed().last().expect("some CPU");
        let pinned_here = std::thread::spawn(move || {
            pin_current(last).unwrap();
            allowed()
        });
        assert_eq!(pinned_here.join().unwrap(), vec![last]);

        let (go, wait) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let _ = wait.recv();
            allowed()
        });
        pin(&other, last).unwrap();
        go.send(()).unwrap();
        assert_eq!(other.join().unwrap(), vec![last]);
    }

    #[test]
    fn a_cpu_the_process_may_not_use_is_refused() {
        let refused = std::thread::spawn(|| {
            let before = allowed();
            assert!(!before.contains(&refused()), "{before:?}");
            let err = pin_current(refused()).unwrap_err();
            (before, allowed(), err.raw_os_error())
        });
        let (before, after, errno) = refused.join().unwrap();
        assert_eq!(errno, Some(libc::EINVAL));
        assert_eq!(before, after, "a refused pin changes nothing");
        let beyond = pin_current(MAX_CPUS).unwrap_err();
        assert_eq!(beyond.kind(), io::ErrorKind::InvalidInput);
        assert!(
            beyond.to_string().contains(&MAX_CPUS.to_string()),
            "{beyond}"
        );
    }
}

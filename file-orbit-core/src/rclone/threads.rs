//! The threads rclone jobs run on: each job is one blocking call into librclone for as
//! long as the transfer lasts. Threads are kept and reused (a call from a thread Go has
//! not seen before pays Go's per-thread setup) and leave after a minute without work.
//! Not tokio's blocking pool: a runtime waits for that pool when it shuts down, and a
//! transfer may run for hours.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

type Task = Box<dyn FnOnce() + Send>;

/// How long an idle thread waits for work before it leaves.
const IDLE: Duration = Duration::from_secs(60);

struct Pool {
    sender: mpsc::Sender<Task>,
    receiver: Mutex<mpsc::Receiver<Task>>,
    /// Threads waiting for work that no task has claimed yet.
    idle: AtomicUsize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// Runs `task` on an idle thread, or on a new one when none is idle.
pub(super) fn run(task: Task) -> std::io::Result<()> {
    let pool = POOL.get_or_init(|| {
        let (sender, receiver) = mpsc::channel();
        Pool {
            sender,
            receiver: Mutex::new(receiver),
            idle: AtomicUsize::new(0),
        }
    });
    if claim(pool) {
        // The pool holds the receiver for ever: sending cannot fail.
        let _ = pool.sender.send(task);
        return Ok(());
    }
    std::thread::Builder::new()
        .name("rclone-job".into())
        .spawn(move || serve(pool, task))
        .map(|_| ())
}

/// Takes one idle thread for a task; false when none is idle.
fn claim(pool: &Pool) -> bool {
    pool.idle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn serve(pool: &'static Pool, first: Task) {
    first();
    loop {
        pool.idle.fetch_add(1, Ordering::SeqCst);
        let receiver = || {
            pool.receiver
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        let next = receiver().recv_timeout(IDLE);
        let task = match next {
            Ok(task) => task,
            // Idle for a minute: leave, unless a task claimed this thread meanwhile.
            Err(_) if claim(pool) => return,
            Err(_) => match receiver().recv() {
                Ok(task) => task,
                Err(_) => return,
            },
        };
        task();
    }
}

//! The one background thread that builds segments: jobs run in order, inside a one-thread rayon
//! pool, so an index build never takes more than one core from searches.

use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;

/// A queued job.
pub type Job = Box<dyn FnOnce() + Send>;

/// Handle to the background thread.
pub struct Worker {
    tx: Mutex<Sender<Job>>,
}

impl Worker {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Worker> {
        let (tx, rx) = channel::<Job>();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "quiver-build".into())
            .build()
            .map_err(std::io::Error::other)?;
        std::thread::Builder::new()
            .name("quiver-bg".into())
            .spawn(move || {
                for job in rx {
                    pool.install(job);
                }
            })?;
        Ok(Worker { tx: Mutex::new(tx) })
    }

    /// Queues a job.
    pub fn submit(&self, job: Job) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if tx.send(job).is_err() {
            log::error!("background worker is gone; job dropped");
        }
    }
}

//! Loading librclone from a wrong path fails with an error that names the path and how to
//! fix it. Its own test binary: a process loads librclone at most once.

use file_orbit::ErrorKind;
use file_orbit::rclone::{Rclone, RcloneOptions};

#[test]
fn a_wrong_library_path_gives_a_clear_error() {
    let options = RcloneOptions {
        library_path: Some("/nonexistent/file-orbit/librclone.so".into()),
    };
    let Err(err) = Rclone::init(options) else {
        panic!("initialised rclone from a path that does not exist");
    };
    assert_eq!(err.kind, ErrorKind::Library);
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent/file-orbit/librclone.so"),
        "{message}"
    );
    assert!(message.contains("No such file"), "{message}");
    assert!(message.contains("FILE_ORBIT_LIBRCLONE"), "{message}");

    // The failure is not sticky: the default library still loads afterwards.
    let client = Rclone::global().expect("the built library loads after a failed attempt");
    assert!(client.version().version.starts_with("v1.76."));
}

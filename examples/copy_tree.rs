//! Copies a directory tree local→local with rclone in-process, printing live progress,
//! then verifies every file by checksum. Usage: `copy_tree SOURCE_DIR DESTINATION_DIR`.

use bytesize::ByteSize;
use file_orbit::rclone::methods::{Check, Fs, SyncCopy, TreeTransfer};
use file_orbit::rclone::{JobOptions, Rclone};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;
use tokio_stream::StreamExt;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, destination] = args.as_slice() else {
        eprintln!("usage: copy_tree SOURCE_DIR DESTINATION_DIR");
        return ExitCode::from(2);
    };
    match copy_and_verify(source, destination).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nerror: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn copy_and_verify(source: &str, destination: &str) -> file_orbit::Result<()> {
    let rclone = Rclone::global()?;
    println!(
        "rclone {} in-process from {}",
        rclone.version().version,
        rclone.library_path()
    );
    let request = SyncCopy(TreeTransfer {
        src_fs: Fs::local(source),
        dst_fs: Fs::local(destination),
        create_empty_src_dirs: true,
    });
    let options = JobOptions {
        config: json!({"CheckSum": true}).as_object().cloned(),
        ..JobOptions::default()
    };
    let job = rclone.start(&request, options).await?;
    let mut progress = job.progress();
    let printer = tokio::spawn(async move {
        while let Some(p) = progress.next().await {
            print!(
                "\r{} / {} ({}/{} files) at {}/s, eta {}        ",
                ByteSize(p.bytes),
                ByteSize(p.total_bytes),
                p.files,
                p.total_files,
                ByteSize(p.speed as u64),
                p.eta
                    .map_or("-".to_string(), |eta| format!("{}s", eta.as_secs())),
            );
            let _ = std::io::stdout().flush();
        }
    });
    let copied = job.wait().await;
    let _ = printer.await;
    copied?;
    let check = rclone
        .call_async(&Check::new(Fs::local(source), Fs::local(destination)))
        .await?;
    println!(
        "\nverified with {}: {} (differ: {}, missing: {})",
        check.hash_type.as_deref().unwrap_or("size"),
        check.status,
        check.differ.len(),
        check.missing_on_dst.len()
    );
    if check.success {
        Ok(())
    } else {
        Err(file_orbit::Error::new(
            file_orbit::ErrorKind::Remote,
            "verifying the copy",
            check.status,
        ))
    }
}

//! What a person sees on a terminal, under a real pseudo-terminal (util-
//! linux `script`) of a set width: the progress bar and `monitor` fit the
//! width, the bar shows a rate and an ETA while the job transfers.

use std::process::Command;

use crate::support::{content, read, Home};
use bits_test_support::TestServer;

/// Runs `command` (a shell command line) on a pseudo-terminal `cols` wide;
/// returns the exit code and what the terminal received.
fn on_terminal(h: &Home, cols: u16, command: &str) -> Option<(i32, String)> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: needs script(1) from util-linux");
        return None;
    }
    let out = h
        .command_named("script")
        .args([
            "-qec",
            &format!("stty cols {cols} rows 30; {command}"),
            "/dev/null",
        ])
        .output()
        .unwrap();
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// The screen lines drawn: split at line feeds and carriage returns, the
/// escape sequences taken out.
fn drawn_lines(text: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters, then one final letter.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn bits() -> &'static str {
    env!("CARGO_BIN_EXE_bits")
}

#[test]
fn the_progress_bar_fits_the_terminal_and_shows_rate_and_eta() {
    let h = Home::new();
    let server = TestServer::start();
    let body = content(1_500_000, 4);
    server.put_file("/big.bin", body.clone());
    let dest = h.path("big.bin");
    for cols in [60u16, 100] {
        let _ = std::fs::remove_file(&dest);
        // A job cap makes the transfer last about 1.5 s, long enough to see.
        let Some((code, screen)) = on_terminal(
            &h,
            cols,
            &format!(
                "{} start --max-bandwidth 1M {} {}",
                bits(),
                server.url("/big.bin"),
                dest.display()
            ),
        ) else {
            return;
        };
        assert_eq!(code, 0, "{screen}");
        assert_eq!(read(&dest), body);
        let lines = drawn_lines(&screen);
        for line in &lines {
            assert!(
                line.chars().count() <= cols as usize,
                "a line wider than {cols} columns: {line:?}"
            );
        }
        assert!(
            lines
                .iter()
                .any(|l| l.contains("Transferring") && l.contains("/s") && l.contains("ETA")),
            "no bar with a rate and an ETA: {lines:#?}"
        );
        let last = lines.last().unwrap();
        assert!(
            last.contains("Acknowledged") && !last.contains("ETA"),
            "the finished bar: {last:?}"
        );
    }
}

#[test]
fn monitor_fits_the_terminal() {
    let h = Home::new();
    // A suspended job with long names, so that columns must give way.
    h.ok(&[
        "start",
        "--suspended",
        "--name",
        "a display name long enough to need shortening on a narrow terminal",
        &h.src(),
        h.path("copy.txt").to_str().unwrap(),
    ]);
    for cols in [70u16, 120] {
        let Some((_, screen)) = on_terminal(
            &h,
            cols,
            &format!("timeout -s INT 1.5 {} monitor --refresh 0.2", bits()),
        ) else {
            return;
        };
        let lines = drawn_lines(&screen);
        assert!(lines.iter().any(|l| l.contains("JobState")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("Suspended")), "{lines:#?}");
        for line in &lines {
            assert!(
                line.chars().count() <= cols as usize,
                "a line wider than {cols} columns: {line:?}"
            );
        }
    }
}

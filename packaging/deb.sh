#!/usr/bin/env bash
# Builds the Debian package of bits (both programs, both systemd units,
# manual pages, shell completions) into target/debian/. Needs cargo-deb
# (`cargo install cargo-deb`).
#   bash packaging/deb.sh && sudo dpkg -i target/debian/bits_*.deb
#   sudo systemctl enable --now bitsd            # the system daemon
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
command -v cargo-deb >/dev/null 2>&1 || {
    echo "deb.sh: cargo-deb not found (cargo install cargo-deb)" >&2
    exit 1
}
cargo build --release -p bits --bins
docs=$target/release/docs
rm -rf "$docs"
cargo run --release -q -p bits --example docs -- "$docs"
gzip -9nf "$docs"/man/*.1
# The user unit as packaged: the programs live in /usr/bin.
sed 's|^ExecStart=.*|ExecStart=/usr/bin/bitsd|' packaging/systemd/bitsd.service > "$docs/bitsd-user.service"
cargo deb -p bits --no-build
ls "$target"/debian/bits_*.deb

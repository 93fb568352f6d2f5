fn main() {
    std::process::exit(bits_daemon::main())
}

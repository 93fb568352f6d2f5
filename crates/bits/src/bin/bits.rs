fn main() {
    std::process::exit(bits_cli::main())
}

//! `taskreg`: see `taskreg --help`, or the README.

fn main() -> std::process::ExitCode {
    registry_host::cli::main()
}

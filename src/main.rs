//! The `attrsync` binary: everything lives in the library so that tests, the demo and the
//! benchmark use the same code; this only hands over to the CLI.

fn main() -> std::process::ExitCode {
    attrsync::cli::main()
}

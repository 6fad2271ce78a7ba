//! The wabridge binary: `serve`, `sandbox` and `migrate` arrive with their issues.

fn main() {
    eprintln!("wabridge: no command is available yet in this build; see the README for what is there");
    std::process::exit(2);
}

fn main() {
    std::process::exit(wsgate::cli::main());
}

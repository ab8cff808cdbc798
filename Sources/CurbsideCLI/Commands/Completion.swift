import ArgumentParser

extension Curbside {
    /// `curbside completion SHELL`: the completion script of every command and option, for the shell to load.
    struct Completion: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the shell completion script for bash, zsh or fish.",
            discussion: """
                Load it once per shell, or install it where the shell finds completions:

                  bash   curbside completion bash > ~/.local/share/bash-completion/completions/curbside
                  zsh    curbside completion zsh > "${fpath[1]}/_curbside"   (then restart zsh)
                  fish   curbside completion fish > ~/.config/fish/completions/curbside.fish

                Or, for this shell only: source <(curbside completion bash)
                """
        )

        enum Shell: String, ExpressibleByArgument, CaseIterable {
            case bash, zsh, fish
        }

        @Argument(help: "bash, zsh or fish.") var shell: Shell

        func run() throws {
            guard let shell = CompletionShell(rawValue: shell.rawValue) else {
                throw ValidationError("completion scripts exist for bash, zsh and fish")
            }
            print(Curbside.completionScript(for: shell), terminator: "")
        }
    }
}

"""One module per `hyena` subcommand."""

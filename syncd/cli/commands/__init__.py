"""The `syncd` subcommands, by group: the queue and the daemon steered through its
socket (`queue`), a run in this process (`once`), the daemon's life (`daemon`), notes
(`notes`), and the bucket (`remote`). Each handler takes the parsed arguments and the
`Invocation` and returns the exit code."""

"""The `syncd` command: parser, commands, output, doctor."""

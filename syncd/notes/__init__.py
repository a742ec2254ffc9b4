"""Store to notes: reading and writing notes safely, rewriting and localizing links."""

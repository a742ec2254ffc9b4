"""The pure Markdown core: image references found and rewritten, text to text."""

"""syncd: offline-first image sync for Markdown notes."""

__version__ = "0.1.0"

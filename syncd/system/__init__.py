"""What syncd needs from the operating system: files, processes, systemd, logs."""

"""The sweep driver: experiment files, planning, the Ray Tuner, and the CLI."""

"""Service runtime: supervise replicas from the manifest (pure decisions, a process shell)."""

"""Optional integrations with other frameworks (imported on demand, never by ssvision)."""
